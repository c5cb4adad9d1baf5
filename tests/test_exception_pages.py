"""The exception center over HTTP: the JSON API (filters, keyset paging, transitions and their bad bodies) and the
portal's list, detail, settings and report pages, in both languages."""
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from shared.actors import SYSTEM
from shared.extensions import db
from shared.models import ExceptionCase, ExceptionEvent, ExceptionSlaTarget
from shared.services import exceptions, roles, staff
from tests.factories import ADMIN
from tests.portal_client import csrf_token, english_client, sign_in
from tests.test_api import ApiClient


def _raise(kind="parcel_stalled", key=None, now=None, **links):
    return exceptions.raise_exception(kind, key or f"{kind}:{datetime.now(UTC).timestamp()}", f"{kind} here", SYSTEM,
                                      now=now, **links)


def _api(portal, create_user, role="customer_service", name="api-cs"):
    user = create_user(name, role)
    token = staff.issue_token(user, ADMIN)
    db.session.commit()
    return ApiClient(portal.test_client(), token), user


def _unchanged(row_id: int) -> tuple:
    db.session.expire_all()
    row = db.session.get(ExceptionCase, row_id)
    events = db.session.execute(select(func.count()).select_from(ExceptionEvent)
                                .where(ExceptionEvent.exception_id == row_id)).scalar_one()
    return row.status, row.assignee_id, row.resolution, events


def test_api_lists_with_filters_and_keyset_pages(portal, create_user, create_order):
    order = create_order()
    start = datetime.now(UTC) - timedelta(hours=1)
    made = [_raise("parcel_stalled", f"k{i}", now=start + timedelta(minutes=i), order_id=order.id) for i in range(3)]
    _raise("near_expiry", "lot-1", now=start)
    breached = made[0]
    # A week on, every one has breached its first response: the stock category counts business hours, and two
    # calendar days from a Friday evening are a weekend with none of them.
    exceptions.check_slas(start + timedelta(days=7))
    db.session.commit()
    api, user = _api(portal, create_user)
    page = api.get("/exceptions?category=logistics&limit=2")
    assert page.status_code == 200, page.text
    body = page.json
    assert [item["id"] for item in body["items"]] == [made[2].id, made[1].id] and body["next_cursor"]
    assert body["items"][0]["order_no"] == order.order_no and body["items"][0]["category"] == "logistics"
    rest = api.get(f"/exceptions?category=logistics&limit=2&cursor={body['next_cursor']}").json
    assert [item["id"] for item in rest["items"]] == [breached.id] and rest["next_cursor"] is None
    assert len(api.get("/exceptions?breached=true").json["items"]) == 4
    assert api.get("/exceptions?state=open&category=near_expiry").json["items"][0]["kind"] == "near_expiry"
    assert api.get("/exceptions?mine=true").json["items"] == []
    assert api.get("/exceptions?team=none").status_code == 200


def test_api_list_refuses_bad_filters(portal, create_user):
    api, _user = _api(portal, create_user)
    for query, code in (("category=weather", "unknown_category"), ("state=exploded", "invalid_state"),
                        ("team=no-such-team", "unknown_team"), ("breached=maybe", "invalid_flag"),
                        ("limit=0", None), ("cursor=%%%", "invalid_cursor")):
        answer = api.get(f"/exceptions?{query}")
        assert answer.status_code == 422, (query, answer.text)
        if code:
            assert answer.json["error"]["code"] == code, query


def test_api_transitions_an_exception_through_its_lifecycle(portal, create_user):
    row = _raise()
    db.session.commit()
    api, user = _api(portal, create_user)
    assigned = api.post(f"/exceptions/{row.id}/transitions", {"to": "assigned", "assignee": user.username})
    assert assigned.status_code == 200, assigned.text
    assert (assigned.json["state"], assigned.json["assignee"]) == ("assigned", user.username)
    assert api.post(f"/exceptions/{row.id}/transitions", {"to": "in_progress"}).json["state"] == "in_progress"
    waiting = api.post(f"/exceptions/{row.id}/transitions", {"to": "waiting_customer", "comment": "asked the buyer"})
    assert waiting.json["paused"] is True and waiting.json["seconds_left"] is None
    api.post(f"/exceptions/{row.id}/transitions", {"to": "in_progress"})
    done = api.post(f"/exceptions/{row.id}/transitions", {"to": "resolved", "canned": "asked_carrier"},
                    headers={"Accept-Language": "en"})
    assert done.status_code == 200 and done.json["resolution"].startswith("We asked the carrier")
    assert api.get("/exceptions?mine=true").json["items"][0]["id"] == row.id


def test_api_bad_bodies_and_refused_moves_change_nothing(portal, create_user):
    row = _raise()
    db.session.commit()
    api, _user = _api(portal, create_user)
    before = _unchanged(row.id)
    path = f"/exceptions/{row.id}/transitions"
    cases = [
        (api.post(path, data="not json", headers={"Content-Type": "application/json"}), 400, "invalid_json"),
        (api.post(path, data="to=resolved", headers={"Content-Type": "application/x-www-form-urlencoded"}), 415,
         None),
        (api.post(path, [1, 2]), 422, "invalid_type"),
        (api.post(path, {}), 422, "invalid_state"),
        (api.post(path, {"to": 7}), 422, "invalid_type"),
        (api.post(path, {"to": "exploded"}), 422, "invalid_state"),
        (api.post(path, {"to": "closed"}), 409, "invalid_transition"),
        (api.post(path, {"to": "resolved"}), 422, "comment_required"),
        (api.post(path, {"to": "resolved", "comment": 5}), 422, "invalid_type"),
        (api.post(path, {"to": "in_progress", "canned": "nope"}), 422, "unknown_reply"),
        (api.post(path, {"to": "assigned"}), 422, "assignee_required"),
        (api.post(path, {"to": "assigned", "assignee": "ghost"}), 422, "unknown_user"),
        (api.post("/exceptions/999999/transitions", {"to": "in_progress"}), 404, "exception_not_found"),
        (api.post("/exceptions/abc/transitions", {"to": "in_progress"}), 404, "exception_not_found"),
    ]
    for answer, status, code in cases:
        assert answer.status_code == status, (answer.status_code, answer.text)
        assert "error" in answer.json
        if code:
            assert answer.json["error"]["code"] == code, answer.text
    assert _unchanged(row.id) == before


def test_api_refuses_closed_to_in_progress_and_a_late_reopen(portal, create_user):
    row = _raise(now=datetime.now(UTC) - timedelta(days=10))
    exceptions.transition(row, "resolved", ADMIN, comment="fixed", now=datetime.now(UTC) - timedelta(days=9))
    exceptions.transition(row, "closed", ADMIN, now=datetime.now(UTC) - timedelta(days=8))
    db.session.commit()
    api, _user = _api(portal, create_user)
    before = _unchanged(row.id)
    moved = api.post(f"/exceptions/{row.id}/transitions", {"to": "in_progress"})
    assert moved.status_code == 409 and moved.json["error"]["code"] == "invalid_transition"
    late = api.post(f"/exceptions/{row.id}/transitions", {"to": "reopened", "comment": "again"})
    assert late.status_code == 409 and late.json["error"]["code"] == "reopen_window_passed"
    assert _unchanged(row.id) == before


def test_api_needs_the_permission(portal, create_user):
    row = _raise()
    db.session.commit()
    auditor, _user = _api(portal, create_user, "auditor", "api-aud")
    assert auditor.get("/exceptions").status_code == 200
    assert auditor.post(f"/exceptions/{row.id}/transitions", {"to": "in_progress"}).status_code == 403
    assert _unchanged(row.id)[0] == "open"


# --- portal pages ------------------------------------------------------------------------------------------------

def _signed_in(portal, create_user, role="ops_manager", name="ops1", locale="en"):
    user = create_user(name, role, locale=locale)
    client = english_client(portal)
    if locale == "zh_CN":
        client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh-CN"
    assert sign_in(client, user.username).status_code == 302
    return client, user


def test_the_list_shows_a_countdown_the_order_link_and_unrouted_ones(portal, create_user, create_order):
    order = create_order()
    running = _raise("parcel_stalled", "a", order_id=order.id)
    late = _raise("payment_not_received", "b", now=datetime.now(UTC) - timedelta(hours=3))
    db.session.commit()
    client, _user = _signed_in(portal, create_user)
    page = client.get("/exceptions/")
    assert page.status_code == 200
    assert f'href="/orders/{order.order_no}"' in page.text
    assert "left" in page.text and "overdue" in page.text  # running one counts down, the 3 h old payment is late
    assert 'data-testid="unrouted"' in page.text  # seeded rules name teams that do not exist yet
    filtered = client.get("/exceptions/?category=payment")
    assert f'data-exception="{late.id}"' in filtered.text and f'data-exception="{running.id}"' not in filtered.text
    refused = client.get("/exceptions/?state=exploded")
    assert refused.status_code == 200 and 'data-testid="filter-problem"' in refused.text


def test_the_detail_page_works_an_exception_with_a_canned_reply_in_chinese(portal, create_user):
    row = _raise()
    db.session.commit()
    client, user = _signed_in(portal, create_user, "customer_service", "cs_zh", locale="zh_CN")
    page = client.get(f"/exceptions/{row.id}")
    assert page.status_code == 200 and "开始处理" in page.text and "异常单" in page.text
    token = csrf_token(client, f"/exceptions/{row.id}")
    client.post(f"/exceptions/{row.id}/assign", data={"csrf_token": token, "assignee": str(user.id)})
    client.post(f"/exceptions/{row.id}/transition", data={"csrf_token": token, "target": "in_progress",
                                                          "m-in_progress-to": "in_progress"})
    refused = client.post(f"/exceptions/{row.id}/transition", data={
        "csrf_token": token, "target": "resolved", "m-resolved-to": "resolved"}, follow_redirects=True)
    assert refused.status_code == 422 and 'data-testid="comment-error-resolved"' in refused.text  # shown again, beside
    db.session.expire_all()
    assert db.session.get(ExceptionCase, row.id).status == "in_progress"  # no resolution note: refused
    client.post(f"/exceptions/{row.id}/transition", data={
        "csrf_token": token, "target": "resolved", "m-resolved-to": "resolved", "m-resolved-canned": "reshipped"})
    db.session.expire_all()
    done = db.session.get(ExceptionCase, row.id)
    assert done.status == "resolved" and done.resolution.startswith("已为客户补发") and done.assignee_id == user.id
    history = client.get(f"/exceptions/{row.id}").text
    assert "已为客户补发" in history


def test_settings_need_approve_and_refuse_bad_targets_and_unknown_teams(portal, create_user):
    viewer, _user = _signed_in(portal, create_user, "customer_service", "cs2")
    assert viewer.get("/exceptions/settings").status_code == 403
    client, _user = _signed_in(portal, create_user, "ops_manager", "ops2")
    page = client.get("/exceptions/settings")
    assert page.status_code == 200 and "no such team yet" in page.text
    token = csrf_token(client, "/exceptions/settings")
    for first, resolve in (("0", "120"), ("-1", "120"), ("15", "999999999"), ("x", "120")):
        answer = client.post("/exceptions/settings/sla", data={
            "csrf_token": token, "sla-category": "payment", "sla-first_response_minutes": first,
            "sla-resolve_minutes": resolve, "sla-clock": "calendar"}, follow_redirects=True)
        assert "Not saved" in answer.text, (first, resolve)
    db.session.expire_all()
    assert db.session.get(ExceptionSlaTarget, "payment").first_response_minutes == 15
    answer = client.post("/exceptions/settings/routes", data={"csrf_token": token, "route-key": "payment",
                                                              "route-team": "ghosts"}, follow_redirects=True)
    assert "Not saved" in answer.text and exceptions.routes()["payment"] == "finance"
    roles.create_team("money", "资金组", "Money", ADMIN)
    db.session.commit()
    client.post("/exceptions/settings/routes", data={"csrf_token": token, "route-key": "payment",
                                                     "route-team": "money"})
    client.post("/exceptions/settings/sla", data={"csrf_token": token, "sla-category": "payment",
                                                  "sla-first_response_minutes": "10", "sla-resolve_minutes": "60",
                                                  "sla-clock": "business"})
    db.session.expire_all()
    assert exceptions.routes()["payment"] == "money"
    assert db.session.get(ExceptionSlaTarget, "payment").clock == "business"


def test_the_report_page_in_both_languages(portal, create_user):
    row = _raise("payment_not_received", "r1")
    exceptions.transition(row, "resolved", ADMIN, comment="ok")
    db.session.commit()
    client, _user = _signed_in(portal, create_user, "finance", "fin1")
    page = client.get("/exceptions/report")
    assert page.status_code == 200 and 'data-category="payment"' in page.text and "SLA met" in page.text
    assert 'data-testid="report-problem"' in client.get("/exceptions/report?month=2026-13").text
    zh, _user = _signed_in(portal, create_user, "finance", "fin2", locale="zh_CN")
    assert "闭环" in zh.get("/exceptions/report").text
