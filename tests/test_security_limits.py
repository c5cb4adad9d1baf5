"""Limits where a stranger can knock: refused webhook and tracking requests limited per address and overall,
counted per hour and pruned; the guest look-up locked per order after 5 wrong tries, on SQLite and PostgreSQL."""
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from jobs.schedule import SCHEDULE
from shared.extensions import db, limiter
from shared.models import AuditEvent, FulfilmentAlarm, WebhookRejection, WebhookRejectionRollup
from shared.services import knocking
from shared.timekeeping import utc_now

TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
NOT_FOUND_TEXT = "We found no order with this number and phone."
PHONE = "13966667777"


def knock(portal, address: str, path: str = "/hooks/zz"):
    return portal.test_client().post(path, data=b"{}", content_type="application/json",
                                     environ_base={"REMOTE_ADDR": address})


def rollup() -> dict:
    """Counts per (door, address, reason), summed over the hours."""
    counts: dict = {}
    for row in db.session.scalars(select(WebhookRejectionRollup)):
        key = (row.channel_code, row.remote_addr, row.reason)
        counts[key] = counts.get(key, 0) + row.count
    return counts


def detail_rows() -> int:
    return db.session.scalar(select(func.count()).select_from(WebhookRejection))


def test_refusals_per_address_are_limited_and_still_counted(portal, session, monkeypatch):
    monkeypatch.setitem(portal.config, "REFUSED_PER_ADDRESS_PER_HOUR", 3)
    statuses = [knock(portal, "127.0.0.21").status_code for _ in range(5)]
    assert statuses == [404, 404, 404, 429, 429]
    assert detail_rows() == 3  # a flood writes no more rows
    assert rollup() == {("zz", "127.0.0.21", "unknown_channel"): 3,
                        ("zz", "127.0.0.21", "rate_limited_address"): 2}
    assert knock(portal, "127.0.0.22").status_code == 404  # another address is not punished


def test_refusals_overall_are_limited(portal, session, monkeypatch):
    monkeypatch.setitem(portal.config, "REFUSED_GLOBAL_PER_HOUR", 4)
    assert [knock(portal, f"127.0.1.{n}").status_code for n in range(1, 7)] == [404, 404, 404, 404, 429, 429]
    assert detail_rows() == 4


def test_refused_tracking_pushes_are_counted_and_limited_too(portal, session, monkeypatch):
    monkeypatch.setitem(portal.config, "REFUSED_PER_ADDRESS_PER_HOUR", 2)
    monkeypatch.setitem(portal.config, "TRACK17_KEY", "")
    statuses = [knock(portal, "127.0.0.31", "/hooks/tracking/17track").status_code for _ in range(3)]
    assert statuses == [503, 503, 429]
    assert rollup()[("17track", "127.0.0.31", "not_configured")] == 2


def test_the_periodic_job_prunes_old_rows_and_roll_ups(portal, session):
    now = utc_now()
    knocking.record_refusal("zz", "bad_signature", "old", "127.0.0.41", now=now - timedelta(days=8))
    knocking.record_refusal("zz", "bad_signature", "new", "127.0.0.41", now=now)
    db.session.add(WebhookRejectionRollup(hour=(now - timedelta(days=91)).replace(minute=0, second=0, microsecond=0),
                                          channel_code="zz", remote_addr="127.0.0.42", reason="bad_signature",
                                          count=7))
    db.session.commit()
    assert knocking.prune(now) == {"rejections": 1, "rollups": 1}
    assert db.session.scalars(select(WebhookRejection.detail)).all() == ["new"]
    assert sum(rollup().values()) == 2  # the two refusals of the last 90 days stay counted in their hours
    assert ("prune_refused_requests", "jobs.knocking.prune_refused_requests", 3600, "default") in \
        {(name, dotted, interval, str(queue)) for name, dotted, interval, queue in SCHEDULE}


def test_hourly_summary_counts_per_source_and_reason(portal, session):
    for _ in range(3):
        knocking.record_refusal("tb", "bad_signature", "x", "127.0.0.51")
    knocking.record_refusal("tb", "too_large", "x", "127.0.0.51")
    rows = [(door, address, reason, count) for _hour, door, address, reason, count in knocking.hourly_summary()]
    assert rows == [("tb", "127.0.0.51", "bad_signature", 3), ("tb", "127.0.0.51", "too_large", 1)]


# --- guest look-up per order -------------------------------------------------------------------------------

@pytest.fixture
def shop(customer_app):
    limiter.reset()
    yield customer_app
    limiter.reset()


def look_up(app, order_no: str, last4: str, address: str):
    client = app.test_client()
    client.environ_base.update({"HTTP_ACCEPT_LANGUAGE": "en", "REMOTE_ADDR": address})
    token = TOKEN.search(client.get("/track/").text).group(1)
    return client.post("/track/", data={"order_no": order_no, "phone_last4": last4, "csrf_token": token})


def test_five_wrong_tries_from_many_addresses_lock_the_orders_guest_lookup(shop, create_order):
    order = create_order(phone=PHONE)
    for n in range(5):  # each address stays under its own limit
        assert look_up(shop, order.order_no, f"000{n}", f"127.0.2.{n + 1}").status_code == 404
    right = look_up(shop, order.order_no, PHONE[-4:], "127.0.2.99")
    assert right.status_code == 404 and NOT_FOUND_TEXT in right.text  # locked reads like a wrong guess
    alarm = db.session.scalars(select(FulfilmentAlarm).where(FulfilmentAlarm.kind == "guest_lookup_locked")).one()
    assert alarm.role == "auditor" and alarm.order_id == order.id and order.order_no in alarm.message
    assert "order.guest_lookup_locked" in db.session.scalars(select(AuditEvent.action)).all()


def test_the_lock_runs_out_after_an_hour(shop, create_order):
    from shared.models import GuestLookupLock

    order = create_order(phone=PHONE)
    for n in range(5):
        look_up(shop, order.order_no, "1234", f"127.0.3.{n + 1}")
    lock = db.session.scalars(select(GuestLookupLock).where(GuestLookupLock.order_id == order.id)).one()
    lock.locked_until = utc_now() - timedelta(seconds=1)
    db.session.commit()
    assert look_up(shop, order.order_no, PHONE[-4:], "127.0.3.50").status_code == 302


def test_a_right_answer_starts_the_count_again(shop, create_order):
    order = create_order(phone=PHONE)
    for n in range(4):
        look_up(shop, order.order_no, "1234", f"127.0.4.{n + 1}")
    assert look_up(shop, order.order_no, PHONE[-4:], "127.0.4.20").status_code == 302
    for n in range(4):
        look_up(shop, order.order_no, "1234", f"127.0.4.{n + 30}")
    assert look_up(shop, order.order_no, PHONE[-4:], "127.0.4.40").status_code == 302
    assert db.session.scalar(select(func.count()).select_from(FulfilmentAlarm)) == 0


def test_wrong_tries_at_one_order_do_not_lock_another(shop, create_order):
    locked, other = create_order(phone=PHONE), create_order(phone="13955554444")
    for n in range(5):
        look_up(shop, locked.order_no, "1234", f"127.0.5.{n + 1}")
    assert look_up(shop, other.order_no, "4444", "127.0.5.60").status_code == 302
