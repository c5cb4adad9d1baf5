"""Bulk work on the order list (issue 14 item 4): hold, release, cancel, assign, print, export a set of orders frozen
when asked for, each order through the single action's service with its own result; progress, the CSV of results,
the size limit, permissions per action and per order, audit per order; saved filters private to their owner."""
import csv
import io

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from jobs.bulk import run_bulk_job
from shared.actors import Actor
from shared.extensions import db
from shared.models import AuditEvent, BulkJob, BulkJobItem, ExportRequest, OrderAssignment, SavedOrderFilter, StockLevel
from shared.order_search import parse_filters
from shared.services import bulk_actions, orders, saved_filters
from shared.services.errors import Forbidden, NotFound, ValidationFailed
from tests.portal_client import csrf_token, english_client, sign_in


def _actor(user) -> Actor:
    return Actor.for_staff(user, ip="10.0.0.9")


def _results(job) -> dict[str, tuple]:
    return {item.order_no: (item.outcome, item.code, item.status_after)
            for item in bulk_actions.items_of(db.session.get(BulkJob, job.id))}


def _run(job) -> BulkJob:
    assert run_bulk_job(job.id) == "done"
    db.session.expire_all()
    return db.session.get(BulkJob, job.id)


def test_bulk_hold_gives_each_order_its_own_result_and_audit_event(create_order, create_user):
    user = create_user("ops1", "ops_manager")
    confirmed, held, shipped = create_order("confirmed"), create_order("on_hold"), create_order("shipped")
    job = bulk_actions.start("hold", _actor(user), order_nos=[confirmed.order_no, held.order_no, shipped.order_no],
                             reason="客户要求改期")
    db.session.commit()
    assert (job.status, job.total) == ("queued", 3)

    job = _run(job)

    assert (job.status, job.done_count, job.refused_count) == ("done", 1, 2)
    assert _results(job) == {confirmed.order_no: ("done", None, "on_hold"),
                             held.order_no: ("refused", "invalid_transition", "on_hold"),
                             shipped.order_no: ("refused", "invalid_transition", "shipped")}
    refused = next(i for i in bulk_actions.items_of(job) if i.order_no == shipped.order_no)
    assert bulk_actions.result_words(refused, "hold") == "an order that is Shipped cannot be put on hold"
    events = db.session.execute(select(AuditEvent).where(AuditEvent.action == "order.transition",
                                                         AuditEvent.actor_label == "ops1")).scalars().all()
    assert [(e.entity_id, e.after["status"], e.reason) for e in events] == [(confirmed.order_no, "on_hold",
                                                                           "客户要求改期")]
    actions = db.session.execute(select(AuditEvent.action).where(AuditEvent.entity_id == job.public_id)
                                 .order_by(AuditEvent.id)).scalars().all()
    assert actions == ["bulk.start", "bulk.finish"]


def test_bulk_release_refuses_orders_not_on_hold(create_order, create_user):
    user = create_user("ops1", "ops_manager")
    held, confirmed = create_order("on_hold"), create_order("confirmed")
    job = _run(bulk_actions.start("release", _actor(user), order_nos=[held.order_no, confirmed.order_no],
                                  reason="客户确认"))
    assert _results(job) == {held.order_no: ("done", None, "confirmed"),
                             confirmed.order_no: ("refused", "invalid_transition", "confirmed")}
    assert db.session.execute(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "order.release_hold", AuditEvent.entity_id == held.order_no)).scalar_one() == 1


def test_bulk_cancel_states_the_stock_released_waits_for_confirmation_and_checks_each_order(create_order,
                                                                                          create_user):
    """Customer service may cancel before picking, not after: the picking order is refused by the lifecycle's own
    permission, the others are cancelled and their stock comes back."""
    user = create_user("cs1", "customer_service")
    first = create_order("confirmed", lines=[{"sku": "SKU-1", "quantity": 2, "unit_price": "10.00"}], paid=False)
    second = create_order("confirmed", lines=[{"sku": "SKU-1", "quantity": 3, "unit_price": "10.00"}], paid=False)
    picking = create_order("picking")
    with pytest.raises(ValidationFailed) as no_reason:
        bulk_actions.start("cancel", _actor(user), order_nos=[first.order_no])
    assert no_reason.value.code == "reason_required"
    job = bulk_actions.start("cancel", _actor(user), order_nos=[first.order_no, second.order_no, picking.order_no],
                             reason="客户不要了")
    db.session.commit()
    assert job.status == "awaiting_confirmation"
    assert run_bulk_job(job.id) == "skipped"  # not confirmed: nothing runs
    holding, units = bulk_actions.stock_released(job)
    assert (holding, units) == (3, 6)
    bulk_actions.confirm(job, _actor(user))
    db.session.commit()
    job = _run(job)
    assert _results(job) == {first.order_no: ("done", None, "cancelled"), second.order_no: ("done", None, "cancelled"),
                             picking.order_no: ("refused", "transition_forbidden", "picking")}
    level = db.session.execute(select(StockLevel)).scalar_one()
    assert level.reserved == 1  # only the picking order's unit is still reserved


def test_discarding_a_cancel_changes_no_order(create_order, create_user):
    user = create_user("cs1", "customer_service")
    order = create_order("confirmed")
    job = bulk_actions.start("cancel", _actor(user), order_nos=[order.order_no], reason="x")
    bulk_actions.discard(job, _actor(user))
    db.session.commit()
    assert run_bulk_job(job.id) == "skipped"
    db.session.expire_all()
    assert orders.get_order(order.order_no).status == "confirmed"
    with pytest.raises(ValidationFailed):
        bulk_actions.confirm(job, _actor(user))


def test_all_that_match_is_frozen_when_asked_for(create_order, create_user):
    user = create_user("ops1", "ops_manager")
    before = [create_order("confirmed"), create_order("confirmed")]
    create_order("shipped")
    job = bulk_actions.start("hold", _actor(user), matching=parse_filters(
        MultiDict({"status": "confirmed"}), "Asia/Shanghai"), reason="盘点")
    db.session.commit()
    late = create_order("confirmed")  # arrives after the click
    job = _run(job)
    assert set(_results(job)) == {o.order_no for o in before}
    assert job.total == 2
    db.session.expire_all()
    assert orders.get_order(late.order_no).status == "confirmed"


def test_more_than_the_limit_is_refused_and_nothing_is_written(create_order, create_user, monkeypatch):
    user = create_user("ops1", "ops_manager")
    numbers = [create_order("confirmed").order_no for _ in range(3)]
    with monkeypatch.context() as patched:
        patched.setattr(bulk_actions, "MAX_ORDERS", 2)
        with pytest.raises(ValidationFailed) as refused:
            bulk_actions.start("hold", _actor(user), order_nos=numbers, reason="x")
    assert refused.value.code == "too_many_orders"
    assert "at most 2 orders; 3 were chosen" in refused.value.message
    db.session.rollback()
    assert db.session.execute(select(func.count()).select_from(BulkJob)).scalar_one() == 0


def test_nothing_selected_or_an_unknown_order_is_refused(create_order, create_user):
    user = create_user("ops1", "ops_manager")
    with pytest.raises(ValidationFailed) as empty:
        bulk_actions.start("hold", _actor(user), order_nos=[], reason="x")
    assert empty.value.code == "nothing_selected"
    with pytest.raises(ValidationFailed) as unknown:
        bulk_actions.start("hold", _actor(user), order_nos=["OS20990101000001"], reason="x")
    assert unknown.value.code == "unknown_order"
    with pytest.raises(ValidationFailed) as action:
        bulk_actions.start("explode", _actor(user), order_nos=[], reason="x")
    assert action.value.code == "unknown_action"


def test_a_role_without_the_action_is_refused(create_order, create_user):
    order = create_order("confirmed")
    auditor = create_user("aud1", "auditor")
    for action in ("hold", "cancel", "release", "assign"):
        with pytest.raises(Forbidden) as refused:
            bulk_actions.start(action, _actor(auditor), order_nos=[order.order_no], reason="x")
        assert refused.value.code == "bulk_forbidden"
    assert not {"hold", "cancel", "release", "assign"} & set(bulk_actions.actions_for("auditor"))


def test_a_role_taken_away_meanwhile_refuses_the_orders_left(create_order, create_user):
    user = create_user("ops1", "ops_manager")
    order = create_order("confirmed")
    job = bulk_actions.start("hold", _actor(user), order_nos=[order.order_no], reason="x")
    user.role = "auditor"  # test set-up: the role changed between the click and the job
    db.session.commit()
    job = _run(job)
    assert _results(job) == {order.order_no: ("refused", "transition_forbidden", "confirmed")}


def test_bulk_assign_is_audited_per_order_and_shown_on_the_list(create_order, create_user, portal):
    lead = create_user("ops1", "ops_manager")
    create_user("cs_wang", "customer_service")
    first, second = create_order("confirmed"), create_order("confirmed")
    with pytest.raises(ValidationFailed):
        bulk_actions.start("assign", _actor(lead), order_nos=[first.order_no], assignee="nobody_here")
    job = _run(bulk_actions.start("assign", _actor(lead), order_nos=[first.order_no, second.order_no],
                                  assignee="cs_wang"))
    assert job.done_count == 2
    assert db.session.execute(select(func.count()).select_from(OrderAssignment)).scalar_one() == 2
    events = db.session.execute(select(AuditEvent).where(AuditEvent.action == "order.assign")
                                .order_by(AuditEvent.id)).scalars().all()
    assert [(e.entity_id, e.before, e.after) for e in events] == [
        (o.order_no, {"assignee": None, "team": None}, {"assignee": "cs_wang", "team": None}) for o in (first, second)]
    again = _run(bulk_actions.start("assign", _actor(lead), order_nos=[first.order_no], assignee="cs_wang"))
    assert _results(again) == {first.order_no: ("refused", "already_assigned", "confirmed")}
    client = english_client(portal)
    assert sign_in(client, "ops1").status_code == 302
    page = client.get("/orders/")
    assert f'data-testid="assignee-{first.order_no}">cs_wang' in page.text


def test_bulk_print_makes_a_pick_list_by_bin_of_the_orders_with_something_to_pick(create_order, create_user,
                                                                                  portal):
    user = create_user("wh1", "ops_manager")
    confirmed, shipped = create_order("confirmed"), create_order("shipped")
    job = _run(bulk_actions.start("print", _actor(user), order_nos=[confirmed.order_no, shipped.order_no]))
    assert _results(job) == {confirmed.order_no: ("done", None, "confirmed"),
                             shipped.order_no: ("refused", "nothing_to_pick", "shipped")}
    lines = bulk_actions.pick_lines(job)
    assert [(line["order_no"], line["sku"], line["quantity"]) for line in lines] == [(confirmed.order_no, "SKU-1", 1)]
    client = english_client(portal)
    assert sign_in(client, "wh1").status_code == 302
    page = client.get(f"/bulk/{job.public_id}/pick-list")
    assert page.status_code == 200 and confirmed.order_no in page.text and shipped.order_no not in page.text


def test_bulk_export_goes_through_the_governed_export_with_the_selection(create_order, create_user):
    user = create_user("ops1", "ops_manager")
    chosen = [create_order("confirmed"), create_order("confirmed")]
    create_order("confirmed")  # not chosen: not in the file
    job = _run(bulk_actions.start("export", _actor(user), order_nos=[o.order_no for o in chosen]))
    export = db.session.execute(select(ExportRequest).where(ExportRequest.public_id == job.export_public_id)) \
        .scalar_one()
    assert (export.kind, export.filters, export.requested_by_id) == ("orders", {"bulk": job.public_id}, user.id)
    from shared.services import exports

    assert exports.claim(export.id)
    made = exports.build(export.id, commit=db.session.flush)
    text = made.content.decode("utf-8-sig")
    assert made.row_count == 2 and all(o.order_no in text for o in chosen)


# --- the portal ----------------------------------------------------------------------------------------------

def _client(portal, username):
    client = english_client(portal)
    assert sign_in(client, username).status_code == 302
    return client, csrf_token(client, "/orders/")


def test_the_list_starts_a_bulk_hold_and_the_page_shows_progress_results_and_a_csv(create_order, create_user,
                                                                                  portal):
    create_user("ops1", "ops_manager")
    confirmed, shipped = create_order("confirmed"), create_order("shipped")
    client, token = _client(portal, "ops1")
    listing = client.get("/orders/")
    assert 'data-testid="bulk-form"' in listing.text and f'data-testid="bulk-pick-{confirmed.order_no}"' in listing.text
    response = client.post("/bulk/", data={"csrf_token": token, "action": "hold", "reason": "客户要求改期",
                                           "order": [confirmed.order_no, shipped.order_no], "scope": "selected"})
    assert response.status_code == 303
    page = client.get(response.headers["Location"])
    assert page.status_code == 200
    assert 'data-status="done"' in page.text and 'hx-trigger="every 2s"' not in page.text
    assert f'data-testid="bulk-result-{confirmed.order_no}" data-outcome="done"' in page.text
    assert "an order that is Shipped cannot be put on hold" in page.text
    public_id = response.headers["Location"].rstrip("/").rsplit("/", 1)[1]
    rows = list(csv.reader(io.StringIO(client.get(f"/bulk/{public_id}/results.csv").data.decode("utf-8-sig"))))
    assert rows[0] == ["Order no.", "Result", "Reason", "Status before", "Status after"]
    assert sorted(rows[1:]) == sorted([[confirmed.order_no, "Done", "", "Confirmed", "On hold"],
                                       [shipped.order_no, "Refused", "an order that is Shipped cannot be put on hold",
                                        "Shipped", "Shipped"]])


def test_the_progress_partial_polls_while_the_job_runs(create_order, create_user, portal):
    user = create_user("ops1", "ops_manager")
    order = create_order("confirmed")
    job = bulk_actions.start("hold", _actor(user), order_nos=[order.order_no], reason="x")
    db.session.commit()
    client, _token = _client(portal, "ops1")
    waiting = client.get(f"/bulk/{job.public_id}/progress")
    assert 'hx-trigger="every 2s"' in waiting.text and 'data-testid="bulk-handled">0<' in waiting.text
    _run(job)
    done = client.get(f"/bulk/{job.public_id}/progress")
    assert 'hx-trigger' not in done.text and 'data-testid="bulk-handled">1<' in done.text
    assert f'data-testid="bulk-result-{order.order_no}"' in done.text


def test_the_list_cancels_all_matching_after_a_confirmation_that_states_the_stock(create_order, create_user, portal):
    create_user("cs1", "customer_service")
    orders_ = [create_order("confirmed", lines=[{"sku": "SKU-1", "quantity": 2, "unit_price": "10.00"}], paid=False)
               for _ in range(2)]
    client, token = _client(portal, "cs1")
    response = client.post("/bulk/", data={"csrf_token": token, "action": "cancel", "reason": "缺货",
                                           "scope": "matching", "f.status": "confirmed"})
    page = client.get(response.headers["Location"])
    assert "Cancel 2 orders? This releases 4 units of stock held by 2 of them." in page.text
    public_id = response.headers["Location"].rsplit("/", 1)[1]
    assert all(orders.get_order(o.order_no).status == "confirmed" for o in orders_)
    confirmed = client.post(f"/bulk/{public_id}/confirm", data={"csrf_token": token})
    page = client.get(confirmed.headers["Location"])
    assert 'data-status="done"' in page.text
    db.session.expire_all()
    assert all(orders.get_order(o.order_no).status == "cancelled" for o in orders_)


def test_the_portal_refuses_a_role_without_the_action_and_changes_nothing(create_order, create_user, portal):
    create_user("wh1", "warehouse")
    order = create_order("confirmed")
    client, token = _client(portal, "wh1")
    response = client.post("/bulk/", data={"csrf_token": token, "action": "cancel", "reason": "x",
                                           "order": [order.order_no]}, follow_redirects=True)
    assert "Not started: your role (Warehouse staff) may not cancel orders" in response.text
    assert db.session.execute(select(func.count()).select_from(BulkJob)).scalar_one() == 0


def test_the_portal_refuses_too_many_with_a_clear_message(create_order, create_user, portal, monkeypatch):
    create_user("ops1", "ops_manager")
    numbers = [create_order("confirmed").order_no for _ in range(3)]
    client, token = _client(portal, "ops1")
    with monkeypatch.context() as patched:
        patched.setattr(bulk_actions, "MAX_ORDERS", 2)
        response = client.post("/bulk/", data={"csrf_token": token, "action": "hold", "reason": "x",
                                               "scope": "matching", "f.status": "confirmed"}, follow_redirects=True)
    assert "Not started: a bulk action takes at most 2 orders; 2+ were chosen: narrow the filter" in response.text
    assert numbers and db.session.execute(select(func.count()).select_from(BulkJob)).scalar_one() == 0


def test_another_users_bulk_action_is_not_found(create_order, create_user, portal):
    owner = create_user("ops1", "ops_manager")
    create_user("ops2", "ops_manager")
    order = create_order("confirmed")
    job = bulk_actions.start("hold", _actor(owner), order_nos=[order.order_no], reason="x")
    db.session.commit()
    client, token = _client(portal, "ops2")
    for path in (f"/bulk/{job.public_id}", f"/bulk/{job.public_id}/progress", f"/bulk/{job.public_id}/results.csv"):
        assert client.get(path).status_code == 404
    assert client.post(f"/bulk/{job.public_id}/confirm", data={"csrf_token": token}).status_code == 404
    with pytest.raises(NotFound):
        bulk_actions.for_owner_or_404(job.public_id, owner.id + 1000)


# --- saved filters -------------------------------------------------------------------------------------------

def test_saved_filters_are_saved_applied_and_deleted_by_their_owner_only(create_order, create_user, portal):
    owner = create_user("ops1", "ops_manager")
    create_user("ops2", "ops_manager")
    client, token = _client(portal, "ops1")
    saved = client.post("/orders/saved-filters/", data={"csrf_token": token, "name": "待挂起", "status": "confirmed",
                                                        "channel": "OS", "cursor": "abc"})
    assert saved.status_code == 303
    row = db.session.execute(select(SavedOrderFilter)).scalar_one()
    assert (row.owner_id, row.name, row.query) == (owner.id, "待挂起", {"status": ["confirmed"], "channel": ["OS"]})
    applied = client.get(f"/orders/saved-filters/{row.id}")
    assert applied.status_code == 303 and "status=confirmed" in applied.headers["Location"] \
        and "channel=OS" in applied.headers["Location"]
    assert "待挂起" in client.get("/orders/").text
    assert db.session.execute(select(AuditEvent.action).where(AuditEvent.entity_type == "saved_filter")) \
        .scalars().all() == ["order_filter.save"]

    other, other_token = _client(portal, "ops2")
    assert other.get(f"/orders/saved-filters/{row.id}").status_code == 404
    assert other.post(f"/orders/saved-filters/{row.id}/delete", data={"csrf_token": other_token}).status_code == 404
    assert "待挂起" not in other.get("/orders/").text
    assert db.session.execute(select(func.count()).select_from(SavedOrderFilter)).scalar_one() == 1

    assert client.post(f"/orders/saved-filters/{row.id}/delete", data={"csrf_token": token}).status_code == 303
    assert db.session.execute(select(func.count()).select_from(SavedOrderFilter)).scalar_one() == 0


def test_a_saved_filter_refuses_a_phone_search_a_taken_name_and_no_filters(create_user):
    owner = _actor(create_user("ops1", "ops_manager"))
    from werkzeug.datastructures import MultiDict

    with pytest.raises(ValidationFailed) as phone:
        saved_filters.save(owner, "phone", MultiDict({"q": "13812345678"}))
    assert phone.value.code == "personal_value_in_filter"
    with pytest.raises(ValidationFailed) as nothing:
        saved_filters.save(owner, "empty", MultiDict({"sort": "placed_desc"}))
    assert nothing.value.code == "no_filters"
    with pytest.raises(ValidationFailed) as bad:
        saved_filters.save(owner, "bad", MultiDict({"status": "exploded"}))
    assert bad.value.field == "status"
    saved_filters.save(owner, "mine", MultiDict({"status": "on_hold"}))
    with pytest.raises(ValidationFailed) as taken:
        saved_filters.save(owner, "mine", MultiDict({"status": "confirmed"}))
    assert taken.value.code == "name_taken"
    assert db.session.execute(select(func.count()).select_from(BulkJobItem)).scalar_one() == 0


def test_cancelling_a_paid_order_in_bulk_needs_the_askers_fresh_step_up(create_order, create_user):
    user = create_user("cs1", "customer_service")
    paid = create_order("confirmed")  # paid by default
    without = bulk_actions.start("cancel", _actor(user), order_nos=[paid.order_no], reason="客户不要了")
    bulk_actions.confirm(without, _actor(user))
    db.session.commit()
    assert _results(_run(without)) == {paid.order_no: ("refused", "step_up_required", "confirmed")}
    stepped = bulk_actions.start("cancel", _actor(user), order_nos=[paid.order_no], reason="客户不要了",
                                 stepped_up=True)
    bulk_actions.confirm(stepped, _actor(user))
    db.session.commit()
    outcome = _results(_run(stepped))[paid.order_no]
    assert outcome == ("done", None, "cancelled")


def test_all_that_match_refuses_a_search_by_phone(create_order, create_user):
    user = create_user("ops1", "ops_manager")
    create_order("confirmed")
    with pytest.raises(ValidationFailed) as refused:
        bulk_actions.start("hold", _actor(user), matching=parse_filters(MultiDict({"q": "138****5678"}),
                                                                        "Asia/Shanghai"), reason="x")
    assert refused.value.code == "personal_value_in_bulk"


def test_an_order_an_approval_rule_holds_is_reported_as_sent_for_approval(create_order, create_user):
    from shared.services import approvals
    from tests.factories import ADMIN

    create_user("lead1", "cs_lead")
    approvals.save_rule(ADMIN, code="void", operation="order.cancel_paid", name_zh="取消已付款", name_en="Void paid",
                        steps=[{"kind": "role", "target": "cs_lead", "quorum": 1}])
    user = create_user("cs1", "customer_service")
    paid = create_order("confirmed")
    job = bulk_actions.start("cancel", _actor(user), order_nos=[paid.order_no], reason="客户不要了", stepped_up=True)
    bulk_actions.confirm(job, _actor(user))
    db.session.commit()
    job = _run(job)
    assert _results(job) == {paid.order_no: ("held", None, "confirmed")}
    assert (job.done_count, job.refused_count) == (1, 0)
