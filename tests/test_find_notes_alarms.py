"""Order notes and tags, and alarms acknowledged, assigned and muted (issue 14 item 5): escaped, audited, refused
when malformed or not allowed, and the mute keeps the alarm from being raised."""
from datetime import timedelta

import pytest
from sqlalchemy import select

from shared import history
from shared.actors import Actor
from shared.extensions import db
from shared.models import AlarmMute, AuditEvent, FulfilmentAlarm, Order, OrderNote, OrderTag
from shared.services import alarms, order_notes
from shared.services.errors import ServiceError
from shared.timekeeping import utc_now
from tests.portal_client import csrf_token, english_client, sign_in


@pytest.fixture
def browser(portal, create_user):
    def make(role: str, username: str | None = None):
        user = create_user(username or f"n_{role}", role)
        client = english_client(portal)
        assert sign_in(client, user.username).status_code == 302
        client.user = user
        return client
    return make


def post(client, path: str, page: str, **form):
    return client.post(path, data={**form, "csrf_token": csrf_token(client, page)})


def events(action: str) -> list[AuditEvent]:
    return db.session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)).all()


# --- notes ---------------------------------------------------------------------------------------------------

def test_a_note_is_escaped_on_the_order_page_and_audited(browser, create_order):
    order = create_order()
    client = browser("customer_service")
    page = f"/orders/{order.order_no}"
    note = '<script>alert("x")</script> 客户要求周六送达'
    assert post(client, f"{page}/notes", page, body=note).status_code == 303
    shown = client.get(page).text
    assert "<script>alert" not in shown and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; 客户要求周六送达" in shown
    [event] = events("order.note_added")
    assert event.entity_id == order.order_no and event.actor_label == "n_customer_service"
    assert "script" not in str(event.after) and event.after == {"length": len(note)}
    assert "added a note to order" in history.describe(event, "admin").sentence


def test_a_note_too_long_or_empty_is_refused_and_nothing_is_stored(browser, create_order):
    order = create_order()
    client = browser("customer_service")
    page = f"/orders/{order.order_no}"
    for body in ("x" * 1001, "   "):
        post(client, f"{page}/notes", page, body=body)
    with pytest.raises(ServiceError):
        order_notes.add_order_note(order, "y" * 1001, Actor(id=None, label="t", role="admin"))
    db.session.rollback()
    assert db.session.scalars(select(OrderNote)).all() == [] and events("order.note_added") == []


def test_a_role_that_may_not_edit_orders_cannot_add_notes_or_tags(browser, create_order):
    order = create_order()
    client = browser("auditor")
    page = f"/orders/{order.order_no}"
    assert 'data-testid="note-form"' not in client.get(page).text
    assert post(client, f"{page}/notes", page, body="hello").status_code == 403
    assert post(client, f"{page}/tags", page, tag="vip").status_code == 403
    assert db.session.scalars(select(OrderNote)).all() == [] and db.session.scalars(select(OrderTag)).all() == []


# --- tags ----------------------------------------------------------------------------------------------------

def test_tags_are_shown_audited_and_filter_the_list(browser, create_order):
    tagged, plain = create_order(channel_order_id="T-1"), create_order(channel_order_id="T-2")
    client = browser("customer_service")
    page = f"/orders/{tagged.order_no}"
    assert post(client, f"{page}/tags", page, tag="vip").status_code == 303
    assert post(client, f"{page}/tags", page, tag="vip").status_code == 303  # twice: refused, one tag
    assert order_notes.order_tags(tagged.id) == ["vip"]
    assert "VIP" in client.get(page).text
    listing = client.get("/orders/?tag=vip").text
    assert f'href="/orders/{tagged.order_no}"' in listing and f'href="/orders/{plain.order_no}"' not in listing
    assert 'data-testid="tag-filter"' in listing
    assert client.get("/orders/?tag=nonsense").status_code == 422
    assert [e.after for e in events("order.tag_added")] == [{"tag": "vip"}]
    assert post(client, f"{page}/tags/vip/remove", page).status_code == 303
    assert order_notes.order_tags(tagged.id) == [] and len(events("order.tag_removed")) == 1
    assert f'href="/orders/{tagged.order_no}"' not in client.get("/orders/?tag=vip").text


def test_an_unknown_tag_is_refused(create_order):
    order = create_order()
    with pytest.raises(ServiceError) as refused:
        order_notes.add_tag(order, "<b>", Actor(id=None, label="t", role="admin"))
    assert refused.value.code == "unknown_tag"


# --- alarms --------------------------------------------------------------------------------------------------

@pytest.fixture
def late_orders(create_order):
    """Two paid, confirmed orders; five hours on, both are late to pack."""
    return create_order(status="confirmed", channel_order_id="L-1"), create_order(status="confirmed",
                                                                                   channel_order_id="L-2")


def test_an_alarm_is_acknowledged_and_assigned_on_the_board_and_audited(browser, late_orders, create_user):
    alarms.check(now=utc_now() + timedelta(hours=5))
    db.session.commit()
    alarm = db.session.scalars(select(FulfilmentAlarm).order_by(FulfilmentAlarm.id)).first()
    client = browser("warehouse", "keeper")
    create_user("packer", "warehouse")
    assert post(client, f"/fulfilment/alarms/{alarm.id}/acknowledge", "/fulfilment/").status_code == 303
    assert post(client, f"/fulfilment/alarms/{alarm.id}/assign", "/fulfilment/", assignee="packer").status_code == 303
    db.session.expire_all()
    assert alarm.acknowledged_by_id == client.user.id and alarm.acknowledged_at is not None
    assert alarm.assigned_to.username == "packer"
    board = client.get("/fulfilment/").text
    assert "Acknowledged by keeper" in board and "Assigned to packer" in board
    assert [e.actor_label for e in events("alarm.acknowledged")] == ["keeper"]
    assert [e.after for e in events("alarm.assigned")] == [{"assignee": "packer"}]
    # A second acknowledgement and an unknown assignee change nothing.
    post(client, f"/fulfilment/alarms/{alarm.id}/acknowledge", "/fulfilment/")
    post(client, f"/fulfilment/alarms/{alarm.id}/assign", "/fulfilment/", assignee="nobody")
    assert len(events("alarm.acknowledged")) == 1 and len(events("alarm.assigned")) == 1
    db.session.expire_all()
    assert alarm.assigned_to.username == "packer"


def test_a_role_that_only_views_the_board_cannot_handle_alarms(browser, late_orders):
    alarms.check(now=utc_now() + timedelta(hours=5))
    db.session.commit()
    alarm = db.session.scalars(select(FulfilmentAlarm)).first()
    client = browser("customer_service")
    assert 'data-testid="mute-form"' not in client.get("/fulfilment/").text
    assert post(client, f"/fulfilment/alarms/{alarm.id}/acknowledge", "/fulfilment/").status_code == 403
    assert post(client, "/fulfilment/alarms/mutes", "/fulfilment/", kind="low_stock", hours="4",
                reason="x").status_code == 403
    db.session.expire_all()
    assert alarm.acknowledged_at is None and db.session.scalars(select(AlarmMute)).all() == []


def test_a_mute_keeps_its_alarms_from_being_raised_until_it_ends(browser, late_orders):
    first, second = late_orders
    client = browser("warehouse", "lead")
    assert post(client, "/fulfilment/alarms/mutes", "/fulfilment/", kind="not_packed_in_time",
                subject=f"order:{first.order_no}", hours="6", reason="客户要求改期").status_code == 303
    [event] = events("alarm.muted")
    assert event.reason == "客户要求改期" and event.after["subject"] == f"order:{first.order_no}"
    assert "muted alarms" in history.describe(event, "admin").sentence
    raised = alarms.check(now=utc_now() + timedelta(hours=5))
    assert [a.order_id for a in raised] == [second.id]
    assert "not_packed_in_time" in client.get("/fulfilment/").text and "客户要求改期" in client.get("/fulfilment/").text
    later = alarms.check(now=utc_now() + timedelta(hours=7))  # the mute has ended
    assert [a.order_id for a in later] == [first.id]


def test_bad_mutes_are_refused_and_change_nothing(browser):
    client = browser("warehouse", "lead")
    for form in ({"kind": "search_rate", "hours": "4", "reason": "noisy"},  # the auditor's signal: not mutable
                 {"kind": "low_stock", "hours": "0", "reason": "noisy"},
                 {"kind": "low_stock", "hours": "500", "reason": "noisy"},
                 {"kind": "low_stock", "hours": "4", "reason": ""}):
        post(client, "/fulfilment/alarms/mutes", "/fulfilment/", **form)
    with pytest.raises(ServiceError) as refused:
        alarms.mute("search_rate", None, 4, "noisy", Actor(id=None, label="t", role="admin"))
    assert refused.value.code == "not_mutable"
    db.session.rollback()
    assert db.session.scalars(select(AlarmMute)).all() == [] and events("alarm.muted") == []
    assert db.session.scalars(select(Order)).all() == []


# --- channel sync alerts: the same handling on the channels page -----------------------------------------------

def _silence(channel) -> None:
    from shared.models import ChannelConnection

    connection = db.session.execute(select(ChannelConnection).where(
        ChannelConnection.channel_id == channel.id)).scalar_one()
    connection.last_success_at = utc_now() - timedelta(minutes=11)
    db.session.commit()


def test_sync_alerts_are_acknowledged_assigned_and_muted_on_the_channels_page(browser, sync_channels):
    from jobs.sync import check_sync_health
    from shared.models import SyncAlert

    taobao, jd = sync_channels["taobao"], sync_channels["jd"]
    client = browser("ops_manager", "ops")
    assert post(client, "/channels/alerts/mutes", "/channels/", kind="not_syncing", subject=f"channel:{jd.code}",
                hours="2", reason="JD maintenance window").status_code == 303
    # A fulfilment kind cannot be muted from the channels page (nor a sync kind from the board).
    post(client, "/channels/alerts/mutes", "/channels/", kind="low_stock", hours="2", reason="x")
    post(browser("warehouse", "wh"), "/fulfilment/alarms/mutes", "/fulfilment/", kind="not_syncing", hours="2",
         reason="x")
    assert len(events("alarm.muted")) == 1
    _silence(taobao)
    _silence(jd)
    check_sync_health()
    alerts = db.session.scalars(select(SyncAlert).where(SyncAlert.kind == "not_syncing")).all()
    assert [a.channel_id for a in alerts] == [taobao.id]  # JD's is muted
    [alert] = alerts
    assert post(client, f"/channels/alerts/{alert.id}/acknowledge", "/channels/").status_code == 303
    assert post(client, f"/channels/alerts/{alert.id}/assign", "/channels/", assignee="ops").status_code == 303
    page = client.get("/channels/").text
    assert "Acknowledged by ops" in page and "Assigned to ops" in page and "JD maintenance window" in page
    assert [(e.entity_type, e.entity_id) for e in events("alarm.acknowledged")] == [("sync_alert", str(alert.id))]
    viewer = browser("customer_service")  # channels: view only
    assert post(viewer, f"/channels/alerts/{alert.id}/assign", "/channels/", assignee="ops").status_code == 403


def test_the_api_filters_orders_by_tag(portal, create_user, create_order):
    from shared.services import staff
    from tests.factories import ADMIN

    tagged, _plain = create_order(channel_order_id="A-1"), create_order(channel_order_id="A-2")
    order_notes.add_tag(tagged, "urgent", ADMIN)
    token = staff.issue_token(create_user("api_cs", "customer_service"), ADMIN)
    db.session.commit()
    headers = {"Authorization": f"Bearer {token}"}
    listed = portal.test_client().get("/api/v1/orders?tag=urgent", headers=headers)
    assert [item["channel_order_id"] for item in listed.get_json()["items"]] == ["A-1"]
    searched = portal.test_client().post("/api/v1/orders/search", json={"tag": "urgent"}, headers=headers)
    assert [item["channel_order_id"] for item in searched.get_json()["items"]] == ["A-1"]
    refused = portal.test_client().get("/api/v1/orders?tag=nope", headers=headers)
    assert refused.status_code == 422 and refused.get_json()["error"]["code"] == "unknown_tag"
