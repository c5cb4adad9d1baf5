"""The exception center: raised once, routed by data, worked through its lifecycle, SLA clocks that pause, warn,
escalate and keep their breach, fed by the detectors in sets, and the monthly closed-loop report."""
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from shared.actors import SYSTEM, Actor
from shared.extensions import db
from shared.models import (AuditEvent, ExceptionCase, ExceptionEvent, ExceptionRoute, ExceptionSlaTarget, Lot, Order,
                           StatusMapping)
from shared.services import exception_feeds, exceptions, roles
from shared.services.errors import Conflict, ValidationFailed
from tests.factories import ADMIN, count_queries

T0 = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _payment(key="payment_not_received:order:1", now=T0, **links):
    return exceptions.raise_exception("payment_not_received", key, "paid there, unpaid here", SYSTEM, now=now,
                                      **links)


def _count() -> int:
    return db.session.execute(select(func.count()).select_from(ExceptionCase)).scalar_one()


def _actor(user) -> Actor:
    return Actor(id=user.id, label=user.username, role=user.role, ip="127.0.0.1")


def test_seeded_rules_targets_and_replies(session):
    targets = exceptions.sla_targets()
    assert (targets["payment"].first_response_minutes, targets["payment"].resolve_minutes) == (15, 120)
    assert targets["logistics"].resolve_minutes == 24 * 60
    assert set(targets) == set(exceptions.CATEGORIES)
    assert exceptions.routes()["payment"] == "finance"
    assert {reply.category for reply in exceptions.canned_replies()} == set(exceptions.CATEGORIES)


def test_a_problem_is_raised_once_and_waits_unrouted_until_its_team_exists(session, create_user):
    first = _payment()
    again = _payment(now=T0 + timedelta(minutes=5))
    assert first.id == again.id and _count() == 1
    assert first.team_id is None and exceptions.unrouted_count() == 1  # no "finance" team yet: managers see it
    assert (first.first_response_due_at, first.resolve_due_at) == (T0 + timedelta(minutes=15), T0 + timedelta(hours=2))
    assert first.warn_at == T0 + timedelta(minutes=96)
    lead = create_user("fin_lead", "finance")
    team = roles.create_team("finance", "财务组", "Finance", ADMIN, lead=lead)
    assert exceptions.route_unrouted() == 1
    db.session.refresh(first)
    assert first.team_id == team.id and exceptions.unrouted_count() == 0
    db.session.commit()
    raised = db.session.execute(select(AuditEvent).where(AuditEvent.action == "exception.raise")).scalars().all()
    assert [event.entity_id for event in raised] == [str(first.id)]


def test_the_lifecycle_pauses_the_clock_and_needs_a_resolution_note(session, create_user):
    worker = create_user("cs1", "customer_service")
    row = _payment()
    exceptions.assign(row, worker, ADMIN, now=T0 + timedelta(minutes=1))
    assert row.status == "assigned" and row.first_responded_at is None
    exceptions.transition(row, "in_progress", _actor(worker), now=T0 + timedelta(minutes=10))
    assert row.first_responded_at == T0 + timedelta(minutes=10) and not row.breached
    exceptions.transition(row, "waiting_platform", _actor(worker), comment="asked the platform",
                          now=T0 + timedelta(minutes=30))
    assert row.resolve_due_at is None and exceptions.time_left(row) is None  # paused
    exceptions.transition(row, "in_progress", _actor(worker), now=T0 + timedelta(minutes=75))
    assert row.paused_seconds == 45 * 60
    assert row.resolve_due_at == T0 + timedelta(hours=2, minutes=45)  # the 45 paused minutes are added
    with pytest.raises(ValidationFailed) as refused:
        exceptions.transition(row, "resolved", _actor(worker), now=T0 + timedelta(minutes=80))
    assert refused.value.code == "comment_required" and refused.value.field == "comment"
    assert row.status == "in_progress"
    exceptions.transition(row, "resolved", _actor(worker), canned="payment_confirmed", language="en",
                          now=T0 + timedelta(minutes=90))
    assert row.status == "resolved" and row.resolution.startswith("The platform confirmed")
    assert row.resolve_seconds == 90 * 60 and not row.breached
    exceptions.transition(row, "closed", _actor(worker), now=T0 + timedelta(days=1))
    with pytest.raises(Conflict) as refused:
        exceptions.transition(row, "in_progress", _actor(worker), now=T0 + timedelta(days=1, minutes=1))
    assert refused.value.code == "invalid_transition" and row.status == "closed"
    exceptions.transition(row, "reopened", _actor(worker), comment="the buyer says it is still unpaid",
                          now=T0 + timedelta(days=2))
    assert row.status == "reopened" and row.resolved_at is None and row.closed_at is None
    kinds = [(e.kind, e.to_status) for e in exceptions.history(row)]
    assert kinds == [("raised", "open"), ("assigned", "assigned"), ("transition", "in_progress"),
                     ("transition", "waiting_platform"), ("transition", "in_progress"), ("transition", "resolved"),
                     ("transition", "closed"), ("reopened", "reopened")]


def test_unknown_and_undeclared_moves_are_refused_and_change_nothing(session):
    row = _payment()
    with pytest.raises(ValidationFailed) as refused:
        exceptions.transition(row, "exploded", ADMIN, now=T0)
    assert refused.value.code == "invalid_state"
    with pytest.raises(Conflict) as refused:
        exceptions.transition(row, "closed", ADMIN, now=T0)
    assert refused.value.code == "invalid_transition"
    with pytest.raises(ValidationFailed) as refused:
        exceptions.transition(row, "in_progress", ADMIN, canned="no_such_reply", now=T0)
    assert refused.value.code == "unknown_reply"
    assert row.status == "open" and len(exceptions.history(row)) == 1


def test_an_exception_is_assigned_only_to_someone_who_may_work_it(session, create_user):
    row = _payment()
    auditor = create_user("aud1", "auditor")
    with pytest.raises(ValidationFailed) as refused:
        exceptions.assign(row, auditor, ADMIN, now=T0)
    assert refused.value.code == "assignee_cannot_work"
    with pytest.raises(ValidationFailed) as refused:
        exceptions.assign(row, None, ADMIN, now=T0)
    assert refused.value.code == "assignee_required"
    assert (row.status, row.assignee_id) == ("open", None)
    exceptions.transition(row, "resolved", ADMIN, comment="done", now=T0)
    with pytest.raises(Conflict):
        exceptions.assign(row, create_user("cs5", "customer_service"), ADMIN, now=T0)
    assert row.assignee_id is None


def test_a_role_without_edit_may_not_work_exceptions(session):
    row = _payment()
    with pytest.raises(Exception) as refused:
        exceptions.transition(row, "in_progress", Actor(id=None, label="aud", role="auditor"), now=T0)
    assert getattr(refused.value, "code", None) == "forbidden" and row.status == "open"


def test_reopening_after_seven_days_is_refused_and_a_new_occurrence_is_a_new_exception(session):
    row = _payment()
    exceptions.transition(row, "resolved", ADMIN, comment="paid by bank transfer", now=T0 + timedelta(hours=1))
    resolved_at = row.resolved_at
    # the same occurrence seen again by the detector does not reopen it
    same = exceptions.raise_many([exceptions.Problem("payment_not_received", row.dedupe_key, "again", T0)], SYSTEM,
                                 now=T0 + timedelta(hours=2))
    assert (same.raised, same.reopened) == ([], []) and row.status == "resolved"
    # a new occurrence within 7 days reopens it
    again = exceptions.raise_many([exceptions.Problem("payment_not_received", row.dedupe_key, "again",
                                                      T0 + timedelta(days=1))], SYSTEM, now=T0 + timedelta(days=1))
    assert again.reopened == [row.id] and row.status == "reopened" and row.occurrences == 2
    exceptions.transition(row, "resolved", ADMIN, comment="really paid now", now=T0 + timedelta(days=1, hours=1))
    late = T0 + timedelta(days=9)
    with pytest.raises(Conflict) as refused:
        exceptions.transition(row, "reopened", ADMIN, comment="too late", now=late)
    assert refused.value.code == "reopen_window_passed" and row.status == "resolved"
    assert resolved_at < row.resolved_at
    later = exceptions.raise_many([exceptions.Problem("payment_not_received", row.dedupe_key, "once more", late)],
                                  SYSTEM, now=late)
    assert later.superseded == [row.id] and len(later.raised) == 1 and later.raised[0] != row.id
    db.session.refresh(row)
    fresh = db.session.get(ExceptionCase, later.raised[0])
    assert row.live_key is None and fresh.live_key == row.dedupe_key and fresh.status == "open"
    assert fresh.recurrence_of_id == row.id or fresh.recurrence_of_id is None  # no order link: no recurrence


@pytest.mark.parametrize(("first", "resolve", "clock"), [
    (0, 120, "calendar"), (-5, 120, "calendar"), (15, 0, "calendar"), (15, 10 ** 9, "calendar"),
    ("abc", 120, "calendar"), (True, 120, "calendar"), (None, 120, "calendar"), (120, 15, "calendar"),
    (15, 120, "lunar"),
])
def test_an_sla_target_at_or_below_zero_or_absurd_is_refused(session, first, resolve, clock):
    with pytest.raises(ValidationFailed) as refused:
        exceptions.set_sla_target("payment", first, resolve, clock, ADMIN)
    assert refused.value.code in ("invalid_sla_target", "invalid_clock")
    db.session.expire_all()
    row = db.session.get(ExceptionSlaTarget, "payment")
    assert (row.first_response_minutes, row.resolve_minutes, row.clock) == (15, 120, "calendar")


def test_sla_targets_and_routes_are_data_and_audited(session, create_user):
    exceptions.set_sla_target("logistics", 60, 600, "business", ADMIN)
    roles.create_team("cs", "客服组", "Customer service", ADMIN)
    exceptions.set_route("parcel_stalled", "cs", ADMIN)
    row = exceptions.raise_exception("parcel_stalled", "parcel_stalled:shipment:9", "stuck", SYSTEM, now=T0)
    assert (row.sla_clock, row.first_response_minutes, row.resolve_minutes) == ("business", 60, 600)
    assert row.team.code == "cs"
    db.session.commit()
    actions = set(db.session.execute(select(AuditEvent.action).where(AuditEvent.action.like("exception.%")))
                  .scalars())
    assert {"exception.sla_target", "exception.route", "exception.raise"} <= actions


def test_routing_to_an_unknown_team_or_category_is_refused(session):
    with pytest.raises(ValidationFailed) as refused:
        exceptions.set_route("payment", "no-such-team", ADMIN)
    assert refused.value.code == "unknown_team"
    with pytest.raises(ValidationFailed) as refused:
        exceptions.set_route("weather", "finance", ADMIN)
    assert refused.value.code == "unknown_category"
    db.session.expire_all()
    assert db.session.get(ExceptionRoute, "payment").team_code == "finance"
    assert db.session.get(ExceptionRoute, "weather") is None


def test_a_business_hours_clock_runs_only_in_working_hours(session):
    friday_five = datetime(2026, 11, 6, 17, 0, tzinfo=SHANGHAI)  # 1 h left on Friday, then Monday 09:00
    row = exceptions.raise_exception("near_expiry", "near_expiry:lot:1", "expires soon", SYSTEM, now=friday_five)
    assert row.sla_clock == "business"  # product_stock: 4 business hours to respond, 24 to resolve
    assert row.first_response_due_at.astimezone(SHANGHAI) == datetime(2026, 11, 9, 12, 0, tzinfo=SHANGHAI)
    # 24 business hours: Friday 1 h, Monday 9, Tuesday 9, Wednesday 5 → Wednesday 14:00
    assert row.resolve_due_at.astimezone(SHANGHAI) == datetime(2026, 11, 11, 14, 0, tzinfo=SHANGHAI)
    saturday = datetime(2026, 11, 7, 12, 0, tzinfo=SHANGHAI)
    assert exceptions.elapsed(row, saturday) == timedelta(hours=1)


def _teams(create_user):
    manager = create_user("ops_boss", "ops_manager")
    lead = create_user("fin_lead", "finance")
    ops = roles.create_team("ops", "运营部", "Operations", ADMIN, lead=manager)
    roles.create_team("finance", "财务组", "Finance", ADMIN, lead=lead, parent=ops)
    return lead, manager


def test_the_sla_pass_warns_escalates_to_the_lead_then_the_manager_and_the_breach_stays(session, create_user):
    lead, manager = _teams(create_user)
    row = _payment()
    quiet = exceptions.check_slas(T0 + timedelta(minutes=10))
    assert (quiet.warned, quiet.breached) == ([], [])
    # the first response is due at 15 minutes: nobody answered, so it is breached and goes to the lead
    first = exceptions.check_slas(T0 + timedelta(minutes=16))
    db.session.refresh(row)
    assert first.breached == [row.id] and row.breached and row.escalation_level == 1
    assert row.escalated_to_id == lead.id
    assert any(f"@{lead.display_name}" in line for n in first.notices for line in n.lines)
    assert exceptions.check_slas(T0 + timedelta(minutes=30)).escalated == []  # not yet an hour later
    second = exceptions.check_slas(T0 + timedelta(minutes=77))
    db.session.refresh(row)
    assert second.escalated == [row.id] and row.escalation_level == 2 and row.escalated_to_id == manager.id
    assert exceptions.check_slas(T0 + timedelta(minutes=78)).escalated == []  # a rerun does nothing
    exceptions.transition(row, "resolved", ADMIN, comment="paid", now=T0 + timedelta(minutes=80))
    assert row.breached  # the flag stays after the resolution
    kinds = [e.kind for e in exceptions.history(row)]
    assert kinds.count("escalated") == 2


def test_the_eighty_percent_warning_comes_once(session, create_user):
    _teams(create_user)
    row = _payment()
    exceptions.transition(row, "in_progress", ADMIN, now=T0 + timedelta(minutes=5))  # responded in time
    assert exceptions.check_slas(T0 + timedelta(minutes=95)).warned == []
    warned = exceptions.check_slas(T0 + timedelta(minutes=97))
    assert warned.warned == [row.id] and warned.breached == []
    assert "80%" in warned.notices[0].title
    assert exceptions.check_slas(T0 + timedelta(minutes=98)).warned == []
    breached = exceptions.check_slas(T0 + timedelta(minutes=121))
    assert breached.breached == [row.id]


def test_resolved_exceptions_close_themselves_after_seven_days(session):
    row = _payment()
    exceptions.transition(row, "resolved", ADMIN, comment="done", now=T0 + timedelta(minutes=5))
    assert exceptions.check_slas(T0 + timedelta(days=6)).closed == []
    assert exceptions.check_slas(T0 + timedelta(days=7, minutes=6)).closed == [row.id]
    db.session.refresh(row)
    assert row.status == "closed"


def test_a_waiting_exception_does_not_breach(session):
    row = _payment()
    exceptions.transition(row, "in_progress", ADMIN, now=T0 + timedelta(minutes=5))
    exceptions.transition(row, "waiting_customer", ADMIN, comment="asked the buyer", now=T0 + timedelta(minutes=6))
    assert exceptions.check_slas(T0 + timedelta(hours=5)).breached == []
    db.session.refresh(row)
    assert not row.breached


# --- feeds -------------------------------------------------------------------------------------------------------

def test_the_feeds_raise_what_the_detectors_find_once(session, create_order, stocked):
    now = datetime.now(UTC)
    paid_there = create_order(paid=False)
    db.session.add(StatusMapping(channel_id=paid_there.channel_id, platform_status="WAIT_SELLER_SEND_GOODS",
                                 lifecycle="confirmed", payment_status="paid"))
    db.session.execute(update(Order).where(Order.id == paid_there.id).values(
        platform_status="WAIT_SELLER_SEND_GOODS", platform_modified_at=now - timedelta(minutes=31)))
    from shared.services import catalog, lots

    catalog.create_bin(stocked["warehouse"], {"code": "A-01"}, ADMIN)
    lot = lots.receive("SKU-1", "HZ1", "A-01", 5, ADMIN, lot_no="B1", expires_on=date.today() + timedelta(days=10))
    db.session.flush()
    first = exception_feeds.feed(now)
    kinds = {row.kind: row for row in db.session.execute(select(ExceptionCase)).scalars()}
    assert {"payment_not_received", "near_expiry"} <= set(kinds)
    assert kinds["payment_not_received"].order_id == paid_there.id
    assert kinds["payment_not_received"].buyer_index == paid_there.receiver_phone_index
    assert kinds["near_expiry"].sku_id == lot.sku_id and isinstance(db.session.get(Lot, lot.id), Lot)
    again = exception_feeds.feed(now + timedelta(minutes=1))
    assert again.raised == [] and again.reopened == [] and len(first.raised) == _count()


def test_duplicate_orders_of_one_buyer_across_channels(session, create_order, create_channel):
    create_channel("TB", "淘宝店", "taobao")
    one = create_order(phone="13900001111")
    other = create_order(channel="TB", phone="13900001111")
    create_order(phone="13700002222")
    found = exception_feeds.duplicate_buyers(datetime.now(UTC))
    assert [p.order_id for p in found] == [max(one.id, other.id)]
    assert found[0].buyer_index == one.receiver_phone_index


def test_feeds_read_in_sets_not_row_by_row(session, create_order):
    for _ in range(5):
        create_order(paid=False)
    db.session.add(StatusMapping(channel_id=db.session.execute(select(Order.channel_id)).scalars().first(),
                                 platform_status="PAID", lifecycle="confirmed", payment_status="paid"))
    db.session.execute(update(Order).values(platform_status="PAID",
                                            platform_modified_at=datetime.now(UTC) - timedelta(hours=1)))
    db.session.flush()
    with count_queries() as statements:
        outcome = exception_feeds.feed()
    assert len(outcome.raised) == 5
    assert len(statements) <= 25  # one read per detector, one insert and one history insert: not 5 × anything


def test_the_batch_limit_applies_to_problems_not_yet_raised(session, create_order, monkeypatch):
    """Already-raised rows are left out in SQL (anti-join on the live key), so a backlog larger than one run's
    limit is raised over several runs instead of the same first rows being read every time."""
    for _ in range(3):
        create_order(paid=False)
    db.session.add(StatusMapping(channel_id=db.session.execute(select(Order.channel_id)).scalars().first(),
                                 platform_status="PAID", lifecycle="confirmed", payment_status="paid"))
    db.session.execute(update(Order).values(platform_status="PAID",
                                            platform_modified_at=datetime.now(UTC) - timedelta(hours=1)))
    monkeypatch.setattr(exception_feeds, "LIMIT", 2)
    assert len(exception_feeds.feed().raised) == 2
    assert len(exception_feeds.feed().raised) == 1
    assert exception_feeds.feed().raised == [] and _count() == 3
    # a resolved one whose problem occurs again (a newer platform update) is found again and reopened
    row = db.session.execute(select(ExceptionCase).order_by(ExceptionCase.id)).scalars().first()
    exceptions.transition(row, "resolved", ADMIN, comment="checked", now=datetime.now(UTC) - timedelta(minutes=50))
    assert exception_feeds.paid_not_recorded(datetime.now(UTC)) == []  # same occurrence: settled
    db.session.execute(update(Order).where(Order.id == row.order_id).values(
        platform_modified_at=datetime.now(UTC) - timedelta(minutes=40)))
    assert exception_feeds.feed().reopened == [row.id]


def test_each_detector_leaves_out_what_it_already_raised(session, create_order):
    """The SQL key of each detector's anti-join is the key it raises with: after one feed, nothing is read again."""
    from shared.models import FulfilmentAlarm, InboxItem

    order = create_order()
    now = datetime.now(UTC)
    db.session.add_all([
        InboxItem(channel_id=order.channel_id, source="webhook", content_hash="h1", content_type="application/json",
                  body="{}", status="review", error_code="unmapped_sku", last_error="SKU X-9 is not mapped",
                  received_at=now),
        InboxItem(channel_id=order.channel_id, source="webhook", content_hash="h2", content_type="application/json",
                  body="{}", status="dead", error_code="timeout", last_error="gave up", received_at=now),
        FulfilmentAlarm(kind="not_packed_in_time", order_id=order.id, role="warehouse", message="late", raised_at=now),
        FulfilmentAlarm(kind="low_stock", subject="sku:SKU-1", role="ops_manager", message="low", raised_at=now)])
    db.session.flush()
    assert len(exception_feeds.inbox_problems(now)) == 2 and len(exception_feeds.fulfilment_alarms(now)) == 2
    raised = exception_feeds.feed(now)
    kinds = sorted(db.session.get(ExceptionCase, row_id).kind for row_id in raised.raised)
    assert kinds == ["callback_failed", "late_packing", "out_of_stock", "unmapped_sku"]
    stock = db.session.execute(select(ExceptionCase).where(ExceptionCase.kind == "out_of_stock")).scalar_one()
    assert stock.sku.code == "SKU-1"
    assert exception_feeds.inbox_problems(now) == [] and exception_feeds.fulfilment_alarms(now) == []


def test_detector_events_carry_history_rows(session):
    _payment()
    events = db.session.execute(select(ExceptionEvent)).scalars().all()
    assert [(e.kind, e.actor_label) for e in events] == [("raised", "system")]


# --- the monthly report ------------------------------------------------------------------------------------------

def test_the_monthly_report_counts_times_sla_and_recurrence(session, create_order):
    order = create_order()
    november = datetime(2026, 11, 10, 2, 0, tzinfo=UTC)
    rows = []
    for index, minutes in enumerate((30, 60, 180)):
        row = exceptions.raise_exception("payment_not_received", f"k{index}", "x", SYSTEM,
                                         now=november + timedelta(days=index), order_id=order.id)
        exceptions.transition(row, "in_progress", ADMIN, now=row.opened_at + timedelta(minutes=1))
        exceptions.transition(row, "resolved", ADMIN, comment="ok", now=row.opened_at + timedelta(minutes=minutes))
        rows.append(row)
    exceptions.raise_exception("near_expiry", "lot", "x", SYSTEM, now=november)
    exceptions.raise_exception("near_expiry", "other-month", "x", SYSTEM, now=datetime(2026, 10, 1, tzinfo=UTC))
    report = {r.category: r for r in exceptions.monthly_report(2026, 11, "Asia/Shanghai")}
    payment = report["payment"]
    assert (payment.count, payment.resolved, payment.recurrences) == (3, 3, 2)  # the 2nd and 3rd: same order
    assert payment.mean_seconds == pytest.approx(90 * 60) and payment.median_seconds == pytest.approx(60 * 60)
    assert payment.sla_met_percent == pytest.approx(66.7)  # the 3-hour one missed the 2-hour target
    assert (report["product_stock"].count, report["product_stock"].resolved) == (1, 0)
    assert report["logistics"].count == 0 and report["logistics"].sla_met_percent is None
    with pytest.raises(ValidationFailed):
        exceptions.monthly_report(2026, 13, "Asia/Shanghai")
