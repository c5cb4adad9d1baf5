"""The exception center: one list of everything that needs a person, each with an owner team, a state and SLA clocks.

A problem is raised by a detector (shared.services.exception_feeds) or by hand, named by a dedupe key so it is
raised once: raised again while open it is left alone; after it was resolved, a new occurrence (seen after the
resolution) reopens it within 7 days and is a new exception later. Routing rules, SLA targets and canned replies
are rows (edited here, audited). The clocks run in business or calendar time (shared.business_hours) and stand still
while the exception waits on the customer or the platform; the SLA job warns at 80%, escalates at breach to the
owner team's lead and an hour later to the lead's superior, and the breach flag stays.
"""
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from shared import business_hours, paging, sets
from shared.actors import Actor
from shared.exception_lifecycle import DONE, EXCEPTION, STATES, WORKING
from shared.extensions import db
from shared.models import (CannedReply, ExceptionCase, ExceptionEvent, ExceptionRoute, ExceptionSlaTarget, StaffUser,
                           Team)
from shared.security.permissions import SYSTEM_ROLE, can
from shared.services import audit
from shared.services import validation as check
from shared.services.errors import Conflict, Forbidden, NotFound, ValidationFailed
from shared.services.validation import N_, say
from shared.timekeeping import as_utc, utc_now

# What a person reads when this module refuses: message codes, said in the reader's language (say).
EXCEPTION_NOT_FOUND = N_("No exception \"%(exception_id)s\"")
MAY_NOT_WORK_EXCEPTIONS = N_("Your role may not work exceptions")
INVALID_MONTH = N_("The month is YYYY-MM")
INVALID_FLAG = N_("%(field)s must be true or false")

CATEGORIES = ("payment", "logistics", "product_stock", "account_risk", "after_sales", "customer_service")
# kind → category: the vocabulary, fixed (a new kind is a code change with its detector).
KINDS = {
    "payment_not_received": "payment",  # paid on the platform, unpaid here 30 minutes later
    "callback_failed": "payment",  # a platform message or our webhook that could not be applied / delivered
    # payment notifications and the providers' daily bills (shared/services/payments.py)
    "payment_amount_mismatch": "payment", "paid_not_recorded": "payment", "recorded_not_paid": "payment",
    "refund_mismatch": "payment", "bill_row_unreadable": "payment",
    "parcel_stalled": "logistics", "parcel_returned": "logistics", "carrier_refused": "logistics",
    "late_packing": "logistics",
    "parcel_not_received": "logistics",  # the customer's "not received yet?" (shared/services/parcel_help.py)
    "out_of_stock": "product_stock", "unmapped_sku": "product_stock", "near_expiry": "product_stock",
    "stocktake_variance": "product_stock",
    "address_changed_after_packing": "account_risk", "duplicate_buyer_orders": "account_risk",
    "over_limit_purchase": "account_risk",
    "after_sales_overdue": "after_sales",  # an after-sales request past its due time (shared/services/after_sales.py)
    # the customer asks (shared/services/customer_requests.py, shared/services/order_threads.py)
    "cancel_request": "customer_service", "customer_message": "customer_service",
}
CLOCKS = ("business", "calendar")
REOPEN_WITHIN = timedelta(days=7)
RECURRENCE_WITHIN = timedelta(days=30)
WARN_SHARE = 0.8
SECOND_ESCALATION_AFTER = timedelta(hours=1)
MAX_TARGET_MINUTES = 30 * 24 * 60  # a target beyond 30 days is no service level
CHUNK = 5000
DEFAULT_LIMIT, MAX_LIMIT = 50, 200

UNKNOWN_STATE = N_("%(state)s is not a state of an exception")
NOT_A_MOVE = N_("an exception that is %(source)s cannot become %(target)s")
COMMENT_REQUIRED = N_("moving an exception to %(target)s needs a comment (for a resolution: what was done)")
REOPEN_TOO_LATE = N_("an exception is reopened only within 7 days of its resolution; raise a new one")
NO_ASSIGNEE = N_("choose whom to assign the exception to")
ASSIGNEE_CANNOT = N_("%(user)s may not work exceptions")
DONE_CANNOT_ASSIGN = N_("a resolved or closed exception is not assigned; reopen it first")
BAD_TARGET = N_("an SLA target is a whole number of minutes from 1 to 43200 (30 days)")
FIRST_AFTER_RESOLVE = N_("the first response cannot be due after the resolution")
BAD_CLOCK = N_("the clock is business or calendar")
UNKNOWN_CATEGORY = N_("unknown exception category or kind: %(key)s")
UNKNOWN_TEAM = N_("no team %(code)s: make the team first")
UNKNOWN_REPLY = N_("no canned reply %(code)s for this category")


@dataclass
class Problem:
    """What a detector found: the kind, the key naming the problem, when it happened, what it is about."""

    kind: str
    key: str
    summary: str
    occurred_at: datetime
    order_id: int | None = None
    sku_id: int | None = None
    shipment_id: int | None = None
    buyer_index: str | None = None
    details: dict | None = None


@dataclass
class Raised:
    raised: list[int] = field(default_factory=list)
    reopened: list[int] = field(default_factory=list)
    superseded: list[int] = field(default_factory=list)


def get_exception(exception_id, for_update: bool = False) -> ExceptionCase:
    row = None
    if str(exception_id or "").isdigit() and int(exception_id) < 2 ** 31:
        query = select(ExceptionCase).where(ExceptionCase.id == int(exception_id))
        row = db.session.execute(query.with_for_update() if for_update else query).scalar_one_or_none()
    if row is None:
        raise NotFound(say(EXCEPTION_NOT_FOUND, exception_id=str(exception_id)[:40]), field="id",
                       code="exception_not_found")
    return row


# --- configuration: routing, SLA targets, canned replies ---------------------------------------------------------

def _category_key(key: str) -> str:
    if key not in CATEGORIES and key not in KINDS:
        raise ValidationFailed(say(UNKNOWN_CATEGORY, key=str(key)[:40]), field="category", code="unknown_category")
    return key


def routes() -> dict[str, str]:
    return dict(db.session.execute(select(ExceptionRoute.key, ExceptionRoute.team_code)).all())


def set_route(key: str, team_code: str, actor: Actor) -> ExceptionRoute:
    """Route a category (or one kind) to a team that exists; unrouted open exceptions of it follow at once."""
    from shared.services.roles import team_by_code

    key = _category_key(key)
    code = (team_code or "").strip().lower()
    team = team_by_code(code) if code else None
    if team is None:
        raise ValidationFailed(say(UNKNOWN_TEAM, code=code[:32] or "—"), field="team", code="unknown_team")
    row = db.session.get(ExceptionRoute, key)
    before = {"team": row.team_code} if row else None
    if row is None:
        row = ExceptionRoute(key=key, team_code=code)
        db.session.add(row)
    row.team_code, row.updated_at = code, utc_now()
    db.session.flush()
    audit.record(actor, "exception.route", "exception_route", key, before=before, after={"team": code})
    route_unrouted()
    return row


def remove_route(key: str, actor: Actor) -> None:
    row = db.session.get(ExceptionRoute, _category_key(key))
    if row is not None:
        audit.record(actor, "exception.route_removed", "exception_route", key, before={"team": row.team_code})
        db.session.delete(row)
        db.session.flush()


def sla_targets() -> dict[str, ExceptionSlaTarget]:
    return {row.category: row for row in db.session.execute(select(ExceptionSlaTarget)).scalars()}


def _minutes(value, name: str) -> int:
    if isinstance(value, bool) or value is None:
        raise ValidationFailed(say(BAD_TARGET), field=name, code="invalid_sla_target")
    try:
        minutes = int(str(value).strip())
    except ValueError:
        raise ValidationFailed(say(BAD_TARGET), field=name, code="invalid_sla_target") from None
    if not 1 <= minutes <= MAX_TARGET_MINUTES:
        raise ValidationFailed(say(BAD_TARGET), field=name, code="invalid_sla_target")
    return minutes


def set_sla_target(category: str, first_response_minutes, resolve_minutes, clock: str,
                   actor: Actor) -> ExceptionSlaTarget:
    """A category's targets; exceptions raised from now on use them (open ones keep the targets they got)."""
    if category not in CATEGORIES:
        raise ValidationFailed(say(UNKNOWN_CATEGORY, key=str(category)[:40]), field="category",
                               code="unknown_category")
    first = _minutes(first_response_minutes, "first_response_minutes")
    resolve = _minutes(resolve_minutes, "resolve_minutes")
    if first > resolve:
        raise ValidationFailed(say(FIRST_AFTER_RESOLVE), field="first_response_minutes", code="invalid_sla_target")
    if clock not in CLOCKS:
        raise ValidationFailed(say(BAD_CLOCK), field="clock", code="invalid_clock")
    row = db.session.get(ExceptionSlaTarget, category)
    before = None
    if row is None:
        row = ExceptionSlaTarget(category=category)
        db.session.add(row)
    else:
        before = {"first_response_minutes": row.first_response_minutes, "resolve_minutes": row.resolve_minutes,
                  "clock": row.clock}
    row.first_response_minutes, row.resolve_minutes, row.clock, row.updated_at = first, resolve, clock, utc_now()
    db.session.flush()
    audit.record(actor, "exception.sla_target", "exception_sla_target", category, before=before,
                 after={"first_response_minutes": first, "resolve_minutes": resolve, "clock": clock})
    return row


def canned_replies(category: str | None = None) -> list[CannedReply]:
    query = select(CannedReply).order_by(CannedReply.category, CannedReply.code)
    if category:
        query = query.where(CannedReply.category == category)
    return list(db.session.execute(query).scalars())


def save_canned_reply(category: str, code: str, text_zh: str, text_en: str, actor: Actor) -> CannedReply:
    if category not in CATEGORIES:
        raise ValidationFailed(say(UNKNOWN_CATEGORY, key=str(category)[:40]), field="category",
                               code="unknown_category")
    code = check.text(code, "code", 40)
    zh, en = check.text(text_zh, "text_zh", 1000), check.text(text_en, "text_en", 1000)
    row = db.session.execute(select(CannedReply).where(CannedReply.category == category,
                                                       CannedReply.code == code)).scalar_one_or_none()
    before = {"text_zh": row.text_zh, "text_en": row.text_en} if row else None
    if row is None:
        row = CannedReply(category=category, code=code)
        db.session.add(row)
    row.text_zh, row.text_en, row.updated_at = zh, en, utc_now()
    db.session.flush()
    audit.record(actor, "exception.canned_reply", "exception_canned_reply", f"{category}:{code}", before=before,
                 after={"text_zh": zh, "text_en": en})
    return row


# --- clocks -------------------------------------------------------------------------------------------------------

class Clocks:
    """The calendars an operation needs, loaded once: business hours from the stored calendar, or plain time."""

    def __init__(self):
        self._business = None

    def of(self, clock: str) -> business_hours.Calendar:
        if clock != "business":
            return business_hours.Calendar.always()
        if self._business is None:
            try:
                self._business = business_hours.load()
            except LookupError:  # no calendar stored: count calendar time rather than never fall due
                self._business = business_hours.Calendar.always()
        return self._business


def _dues(opened_at: datetime, first_minutes: int, resolve_minutes: int, paused_seconds: int, calendar):
    """(first response due, resolution due, warning moment) of a running clock with `paused_seconds` paused."""
    paused = timedelta(seconds=paused_seconds)
    return (calendar.add(opened_at, timedelta(minutes=first_minutes)),
            calendar.add(opened_at, timedelta(minutes=resolve_minutes) + paused),
            calendar.add(opened_at, timedelta(minutes=resolve_minutes * WARN_SHARE) + paused))


def time_left(row: ExceptionCase, now: datetime | None = None) -> timedelta | None:
    """Calendar time until the resolution falls due (negative: overdue); None while the clock is paused."""
    if row.resolve_due_at is None or row.status in EXCEPTION.paused:
        return None
    return as_utc(row.resolve_due_at) - (now or utc_now())


def elapsed(row: ExceptionCase, now: datetime | None = None, clocks: Clocks | None = None) -> timedelta:
    """Clock time the exception has run (pauses left out), in its own business or calendar time."""
    now = now or utc_now()
    calendar = (clocks or Clocks()).of(row.sla_clock)
    running = calendar.between(as_utc(row.opened_at), now) - timedelta(seconds=row.paused_seconds)
    if row.paused_since is not None:
        running -= calendar.between(as_utc(row.paused_since), now)
    return max(running, timedelta(0))


# --- raising ------------------------------------------------------------------------------------------------------

def _team_ids(codes) -> dict[str, int]:
    codes = set(codes)
    if not codes:
        return {}
    return dict(db.session.execute(select(Team.code, Team.id).where(Team.code.in_(codes))).all())


def _route_of(kind: str, table: dict[str, str]) -> str | None:
    return table.get(kind) or table.get(KINDS[kind])


def _recurrences(problems: list[Problem], now: datetime) -> dict[str, int]:
    """For each problem's key, the newest exception of the last 30 days on the same order, SKU or buyer (one query)."""
    orders = {p.order_id for p in problems if p.order_id}
    skus = {p.sku_id for p in problems if p.sku_id}
    buyers = {p.buyer_index for p in problems if p.buyer_index}
    if not (orders or skus or buyers):
        return {}
    links = []
    if orders:
        links.append(sets.among(ExceptionCase.order_id, orders))
    if skus:
        links.append(sets.among(ExceptionCase.sku_id, skus))
    if buyers:
        links.append(sets.among(ExceptionCase.buyer_index, buyers))
    rows = db.session.execute(select(ExceptionCase.id, ExceptionCase.order_id, ExceptionCase.sku_id,
                                     ExceptionCase.buyer_index)
                              .where(ExceptionCase.opened_at >= now - RECURRENCE_WITHIN, or_(*links))
                              .order_by(ExceptionCase.id)).all()
    by_order, by_sku, by_buyer = {}, {}, {}
    for row_id, order_id, sku_id, buyer in rows:  # ascending: the newest wins
        by_order[order_id], by_sku[sku_id], by_buyer[buyer] = row_id, row_id, row_id
    found = {}
    for p in problems:
        earlier = [by_order.get(p.order_id) if p.order_id else None, by_sku.get(p.sku_id) if p.sku_id else None,
                   by_buyer.get(p.buyer_index) if p.buyer_index else None]
        earlier = [e for e in earlier if e]
        if earlier:
            found[p.key] = max(earlier)
    return found


def _insert_statement():
    table = ExceptionCase.__table__
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    return insert.on_conflict_do_nothing(index_elements=["live_key"]).returning(table.c.id, table.c.live_key)


def _event_rows(rows: list[dict]) -> None:
    if rows:
        db.session.execute(ExceptionEvent.__table__.insert(), rows)


def raise_many(problems: list[Problem], actor: Actor, now: datetime | None = None) -> Raised:
    """Raise each problem once, in sets: new keys are inserted together, an open exception of the key is left
    alone, a resolved one is reopened by an occurrence after its resolution within 7 days, or superseded by a new
    exception later. A concurrent raise of the same key inserts nothing (the live key is unique)."""
    now = now or utc_now()
    outcome = Raised()
    by_key: dict[str, Problem] = {}
    for problem in problems:
        if problem.kind not in KINDS:
            raise ValidationFailed(say(UNKNOWN_CATEGORY, key=str(problem.kind)[:40]), field="kind",
                                   code="unknown_category")
        by_key[problem.key[:120]] = problem
    if not by_key:
        return outcome
    keys = list(by_key)
    existing = {}
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start:start + CHUNK]
        existing.update({row.live_key: row for row in db.session.execute(
            select(ExceptionCase.id, ExceptionCase.live_key, ExceptionCase.status, ExceptionCase.resolved_at)
            .where(sets.among(ExceptionCase.live_key, chunk))).all()})
    fresh, reopen, supersede = [], [], []
    for key, problem in by_key.items():
        row = existing.get(key)
        if row is None:
            fresh.append(problem)
        elif row.status in DONE and row.resolved_at is not None and as_utc(problem.occurred_at) > as_utc(
                row.resolved_at):
            if now - as_utc(row.resolved_at) <= REOPEN_WITHIN:
                reopen.append((row.id, problem))
            else:
                supersede.append(row.id)
                fresh.append(problem)
    if supersede:
        db.session.execute(update(ExceptionCase).where(sets.among(ExceptionCase.id, supersede))
                           .values(live_key=None).execution_options(synchronize_session=False))
        db.session.flush()
        outcome.superseded = supersede
    for row_id, problem in reopen:
        row = db.session.get(ExceptionCase, row_id)
        _reopen(row, actor, f"raised again: {problem.summary}"[:1000], now, occurred_at=problem.occurred_at)
        outcome.reopened.append(row_id)
    if fresh:
        outcome.raised = _insert_fresh(fresh, actor, now)
    return outcome


def _insert_fresh(problems: list[Problem], actor: Actor, now: datetime) -> list[int]:
    targets, route_table, clocks = sla_targets(), routes(), Clocks()
    team_ids = _team_ids(route_table.values())
    recurrence = _recurrences(problems, now)
    rows = []
    for p in problems:
        category = KINDS[p.kind]
        target = targets.get(category)
        first, resolve, clock = ((target.first_response_minutes, target.resolve_minutes, target.clock) if target
                                 else (240, 1440, "calendar"))
        first_due, resolve_due, warn_at = _dues(now, first, resolve, 0, clocks.of(clock))
        code = _route_of(p.kind, route_table)
        rows.append({
            "kind": p.kind, "category": category, "dedupe_key": p.key[:120], "live_key": p.key[:120],
            "summary": p.summary[:300], "details": p.details, "order_id": p.order_id, "sku_id": p.sku_id,
            "shipment_id": p.shipment_id, "buyer_index": p.buyer_index, "team_id": team_ids.get(code),
            "assignee_id": None, "status": EXCEPTION.initial, "occurrences": 1,
            "recurrence_of_id": recurrence.get(p.key), "opened_at": now, "occurred_at": as_utc(p.occurred_at),
            "sla_clock": clock, "first_response_minutes": first, "resolve_minutes": resolve,
            "first_response_due_at": first_due, "resolve_due_at": resolve_due, "warn_at": warn_at,
            "paused_seconds": 0, "escalation_level": 0, "breached": False, "updated_at": now})
    inserted = db.session.execute(_insert_statement(), rows).all()  # a key raised meanwhile is skipped
    by_key = {row["live_key"]: row for row in rows}
    _event_rows([{"exception_id": row_id, "kind": "raised", "from_status": None, "to_status": "open",
                  "actor_label": actor.label, "comment": by_key[key]["summary"], "occurred_at": now}
                 for row_id, key in inserted])
    audit.record_many(actor, "exception.raise", "exception", [
        (row_id, None, {"kind": by_key[key]["kind"], "key": key, "team_id": by_key[key]["team_id"],
                        "order_id": by_key[key]["order_id"], "sku_id": by_key[key]["sku_id"]})
        for row_id, key in inserted])
    ids = [row_id for row_id, _key in inserted]
    return ids


def raise_exception(kind: str, key: str, summary: str, actor: Actor, now: datetime | None = None,
                    occurred_at: datetime | None = None, **links) -> ExceptionCase:
    """Raise one problem (idempotent by its key): the exception it is now, new, reopened or already open."""
    now = now or utc_now()
    if kind not in KINDS:
        raise ValidationFailed(say(UNKNOWN_CATEGORY, key=str(kind)[:40]), field="kind", code="unknown_category")
    key = check.text(key, "key", 120)
    summary = check.text(summary, "summary", 300)
    raise_many([Problem(kind, key, summary, occurred_at or now, **links)], actor, now)
    row = db.session.execute(select(ExceptionCase).where(ExceptionCase.live_key == key)).scalar_one()
    return row


# --- working an exception ----------------------------------------------------------------------------------------

def _may_work(actor: Actor) -> None:
    if actor.role != SYSTEM_ROLE and not can(actor.role, "exceptions", "edit"):
        raise Forbidden(say(MAY_NOT_WORK_EXCEPTIONS), code="forbidden")


def _record(row: ExceptionCase, actor: Actor, kind: str, source: str | None, comment: str | None,
            now: datetime) -> None:
    db.session.add(ExceptionEvent(exception_id=row.id, kind=kind, from_status=source, to_status=row.status,
                                  actor_label=actor.label, comment=comment, occurred_at=now))


def _state(row: ExceptionCase) -> dict:
    return {"status": row.status, "assignee_id": row.assignee_id, "team_id": row.team_id, "breached": row.breached}


def _pause(row: ExceptionCase, now: datetime) -> None:
    if row.paused_since is None:
        row.paused_since, row.resolve_due_at, row.warn_at = now, None, None


def _resume(row: ExceptionCase, now: datetime, clocks: Clocks) -> None:
    calendar = clocks.of(row.sla_clock)
    if row.paused_since is not None:
        row.paused_seconds += int(calendar.between(as_utc(row.paused_since), now).total_seconds())
        row.paused_since = None
    _first, row.resolve_due_at, row.warn_at = _dues(as_utc(row.opened_at), row.first_response_minutes,
                                                   row.resolve_minutes, row.paused_seconds, calendar)


def _mark_breach(row: ExceptionCase, now: datetime) -> None:
    """A move made after a target fell due (before the SLA job saw it) still counts as a breach."""
    late_response = row.first_responded_at is None and now > as_utc(row.first_response_due_at)
    late_resolution = row.resolve_due_at is not None and now > as_utc(row.resolve_due_at)
    if (late_response or late_resolution) and not row.breached:
        row.breached, row.breached_at = True, now


def _reply_text(row: ExceptionCase, canned: str | None, language: str) -> str | None:
    if not canned:
        return None
    reply = db.session.execute(select(CannedReply).where(CannedReply.category == row.category,
                                                         CannedReply.code == str(canned)[:40])).scalar_one_or_none()
    if reply is None:
        raise ValidationFailed(say(UNKNOWN_REPLY, code=str(canned)[:40]), field="canned", code="unknown_reply")
    return reply.text_zh if language.startswith("zh") else reply.text_en


def transition(row: ExceptionCase, target, actor: Actor, comment: str | None = None, canned: str | None = None,
               language: str = "zh", now: datetime | None = None) -> ExceptionCase:
    """Move an exception along its lifecycle, with a comment or canned reply where the move needs one."""
    now = now or utc_now()
    _may_work(actor)
    if not isinstance(target, str) or target not in STATES:
        raise ValidationFailed(say(UNKNOWN_STATE, state=str(target)[:40]), field="to", code="invalid_state")
    source = row.status
    if not EXCEPTION.allowed(source, target):
        raise Conflict(say(NOT_A_MOVE, source=source, target=target), field="to", code="invalid_transition")
    text = check.text(comment, "comment", 1000, required=False)
    reply = _reply_text(row, canned, language)
    text = "\n".join(part for part in (reply, text) if part) or None
    if target in EXCEPTION.needs_comment and not text:
        raise ValidationFailed(say(COMMENT_REQUIRED, target=target), field="comment", code="comment_required")
    if target == "assigned" and row.assignee_id is None:
        raise ValidationFailed(say(NO_ASSIGNEE), field="assignee", code="assignee_required")
    if target == "reopened":
        _reopen(row, actor, text, now)
        return row
    before = _state(row)
    _move(row, target, now, Clocks(), text)
    _record(row, actor, "transition", source, text, now)
    db.session.flush()
    audit.record(actor, "exception.transition", "exception", row.id, before=before,
                 after={**_state(row), "comment": text})
    return row


def note(row: ExceptionCase, actor: Actor, comment: str, kind: str = "note", now: datetime | None = None) -> None:
    """Add a line to an exception's history without moving it (a customer's new message on its thread)."""
    now = now or utc_now()
    text = check.text(comment, "comment", 1000)
    _record(row, actor, kind, row.status, text, now)
    row.updated_at = now
    db.session.flush()
    audit.record(actor, "exception.note", "exception", row.id, after={"kind": kind})


def _move(row: ExceptionCase, target: str, now: datetime, clocks: Clocks, text: str | None) -> None:
    source = row.status
    if target in EXCEPTION.responses and row.first_responded_at is None:
        _mark_breach(row, now)
        row.first_responded_at = now
    if target in EXCEPTION.paused and source not in EXCEPTION.paused:
        _mark_breach(row, now)
        _pause(row, now)
    elif target not in EXCEPTION.paused and source in EXCEPTION.paused:
        _resume(row, now, clocks)
    if target == "resolved":
        row.resolved_at, row.resolution = now, text
        row.resolve_seconds = int((now - as_utc(row.opened_at)).total_seconds())
    if target == "closed":
        row.closed_at = now
    EXCEPTION.move(row, target)
    row.updated_at = now


def _reopen(row: ExceptionCase, actor: Actor, text: str | None, now: datetime,
            occurred_at: datetime | None = None) -> None:
    if row.resolved_at is None or now - as_utc(row.resolved_at) > REOPEN_WITHIN:
        raise Conflict(say(REOPEN_TOO_LATE), field="to", code="reopen_window_passed")
    before, source = _state(row), row.status
    _resume(row, now, Clocks())
    row.resolved_at = row.resolve_seconds = row.closed_at = None
    if occurred_at is not None:
        row.occurred_at, row.occurrences = as_utc(occurred_at), row.occurrences + 1
    EXCEPTION.move(row, "reopened")
    row.updated_at = now
    _record(row, actor, "reopened", source, text, now)
    db.session.flush()
    audit.record(actor, "exception.reopen", "exception", row.id, before=before, after={**_state(row),
                                                                                      "comment": text})


def assign(row: ExceptionCase, assignee: StaffUser | None, actor: Actor, now: datetime | None = None,
           comment: str | None = None) -> ExceptionCase:
    """Give the exception to a person who may work exceptions (open/reopened become assigned; a worked one keeps
    its state and changes hands)."""
    now = now or utc_now()
    _may_work(actor)
    if assignee is None:
        raise ValidationFailed(say(NO_ASSIGNEE), field="assignee", code="assignee_required")
    if not assignee.active or not can(assignee.role, "exceptions", "edit"):
        raise ValidationFailed(say(ASSIGNEE_CANNOT, user=assignee.username), field="assignee",
                               code="assignee_cannot_work")
    if row.status in DONE:
        raise Conflict(say(DONE_CANNOT_ASSIGN), field="assignee", code="invalid_transition")
    before, source = _state(row), row.status
    row.assignee_id = assignee.id
    if row.status in ("open", "reopened", "assigned"):
        EXCEPTION.move(row, "assigned")
    if row.team_id is None and assignee.team_id is not None:
        row.team_id = assignee.team_id  # a manager routing an unrouted exception by hand
    row.updated_at = now
    text = check.text(comment, "comment", 1000, required=False)
    _record(row, actor, "assigned", source, f"→ {assignee.username}" + (f": {text}" if text else ""), now)
    db.session.flush()
    audit.record(actor, "exception.assign", "exception", row.id, before=before,
                 after={**_state(row), "assignee": assignee.username})
    return row


def route_unrouted() -> int:
    """Exceptions still open without a team get the team their rule names once that team exists (one UPDATE per
    rule whose team exists)."""
    table = routes()
    team_ids = _team_ids(table.values())
    moved = 0
    kinds_with_own_rule = [kind for kind in KINDS if kind in table]
    for key, code in table.items():
        team_id = team_ids.get(code)
        if team_id is None:
            continue
        condition = (ExceptionCase.kind == key) if key in KINDS else (
            (ExceptionCase.category == key) & ExceptionCase.kind.not_in(kinds_with_own_rule or [""]))
        moved += db.session.execute(update(ExceptionCase).where(
            ExceptionCase.team_id.is_(None), ExceptionCase.status.not_in(DONE), condition)
            .values(team_id=team_id).execution_options(synchronize_session=False)).rowcount
    return moved


# --- the SLA job's work ------------------------------------------------------------------------------------------

@dataclass
class Notice:
    """A robot message to send after the commit."""

    title: str
    lines: list[str]


@dataclass
class SlaPass:
    warned: list[int] = field(default_factory=list)
    breached: list[int] = field(default_factory=list)
    escalated: list[int] = field(default_factory=list)  # to the second level
    closed: list[int] = field(default_factory=list)
    routed: int = 0
    notices: list[Notice] = field(default_factory=list)


def _lead_of(team_id: int | None, cache: dict) -> StaffUser | None:
    if team_id not in cache:
        team = db.session.get(Team, team_id) if team_id else None
        cache[team_id] = team.lead if team is not None and team.lead is not None and team.lead.active else None
    return cache[team_id]


def _name(user: StaffUser | None) -> str:
    return f"{user.display_name} ({user.username})" if user else "运营经理 Ops managers"


def check_slas(now: datetime | None = None, actor: Actor | None = None) -> SlaPass:
    """One pass of the SLA clock: route what can now be routed, warn at 80%, escalate at breach to the team lead
    and an hour later to the lead's superior, close what was resolved 7 days ago. Each step reads its rows with
    one query and writes them with one UPDATE per target person; a rerun at the same moment does nothing."""
    from shared.actors import SYSTEM
    from shared.services.roles import superior_of

    now, actor = now or utc_now(), actor or SYSTEM
    result = SlaPass(routed=route_unrouted())
    running = ExceptionCase.status.in_(WORKING)
    table = ExceptionCase.__table__
    events = []

    leads: dict = {}
    warn = db.session.execute(select(ExceptionCase.id, ExceptionCase.summary, ExceptionCase.resolve_due_at,
                                     ExceptionCase.assignee_id, ExceptionCase.team_id)
                              .where(running, ExceptionCase.warned_at.is_(None), ExceptionCase.breached.is_(False),
                                     ExceptionCase.warn_at <= now)).all()
    if warn:
        result.warned = [row.id for row in warn]
        db.session.execute(update(table).where(sets.among(table.c.id, result.warned), table.c.warned_at.is_(None))
                           .values(warned_at=now, updated_at=now))
        for row in warn:
            due_at = f"{as_utc(row.resolve_due_at):%Y-%m-%d %H:%M} UTC"
            owner = db.session.get(StaffUser, row.assignee_id) if row.assignee_id else _lead_of(row.team_id, leads)
            events.append(("warned", row.id, f"80% of the resolution time used; due {due_at}"))
            result.notices.append(Notice("异常单即将超时 Exception SLA at 80%",
                                         [f"@{_name(owner)}", f"#{row.id} {row.summary}", f"due {due_at}"]))

    due = db.session.execute(select(ExceptionCase.id, ExceptionCase.summary, ExceptionCase.team_id)
                             .where(running, ExceptionCase.escalation_level == 0, or_(
                                 ExceptionCase.resolve_due_at <= now,
                                 ExceptionCase.first_responded_at.is_(None) & (
                                     ExceptionCase.first_response_due_at <= now)))).all()
    by_target = defaultdict(list)
    for row in due:
        lead = _lead_of(row.team_id, leads)
        by_target[lead.id if lead else None].append(row)
    for target_id, rows in by_target.items():
        ids = [row.id for row in rows]
        db.session.execute(update(table).where(sets.among(table.c.id, ids), table.c.escalation_level == 0).values(
            breached=True, breached_at=func.coalesce(table.c.breached_at, now), escalation_level=1,
            escalated_at=now, escalated_to_id=target_id, updated_at=now))
        lead = db.session.get(StaffUser, target_id) if target_id else None
        for row in rows:
            result.breached.append(row.id)
            events.append(("escalated", row.id, f"SLA breached: escalated to {_name(lead)}"))
            result.notices.append(Notice("异常单已超时 Exception SLA breached",
                                         [f"@{_name(lead)}", f"#{row.id} {row.summary}"]))

    second = db.session.execute(select(ExceptionCase.id, ExceptionCase.summary, ExceptionCase.escalated_to_id,
                                       ExceptionCase.team_id)
                                .where(running, ExceptionCase.escalation_level == 1,
                                       ExceptionCase.escalated_at <= now - SECOND_ESCALATION_AFTER)).all()
    by_manager = defaultdict(list)
    managers: dict = {}
    for row in second:
        lead = db.session.get(StaffUser, row.escalated_to_id) if row.escalated_to_id else None
        if lead is not None and lead.id not in managers:
            managers[lead.id] = superior_of(lead)
        manager = managers.get(lead.id) if lead is not None else None
        by_manager[manager.id if manager else None].append(row)
    for target_id, rows in by_manager.items():
        ids = [row.id for row in rows]
        db.session.execute(update(table).where(sets.among(table.c.id, ids), table.c.escalation_level == 1).values(
            escalation_level=2, escalated_at=now, escalated_to_id=target_id, updated_at=now))
        manager = db.session.get(StaffUser, target_id) if target_id else None
        for row in rows:
            result.escalated.append(row.id)
            events.append(("escalated", row.id, f"still open an hour after breach: escalated to {_name(manager)}"))
            result.notices.append(Notice("异常单超时升级 Exception escalated to the manager",
                                         [f"@{_name(manager)}", f"#{row.id} {row.summary}"]))

    stale = db.session.execute(select(ExceptionCase.id, ExceptionCase.status).where(
        ExceptionCase.status == "resolved", ExceptionCase.resolved_at <= now - REOPEN_WITHIN)).all()
    if stale:
        moved = EXCEPTION.move_set(ExceptionCase, [(r.id, r.status) for r in stale], "closed",
                                   values={"closed_at": now, "updated_at": now})
        result.closed = moved.moved
        events += [("transition", row_id, "closed 7 days after its resolution") for row_id in moved.moved]

    _event_rows([{"exception_id": row_id, "kind": kind, "from_status": None,
                  "to_status": "closed" if kind == "transition" else None, "actor_label": actor.label,
                  "comment": comment, "occurred_at": now} for kind, row_id, comment in events])
    for action, ids in (("exception.warn", result.warned), ("exception.breach", result.breached),
                        ("exception.escalate", result.escalated), ("exception.close", result.closed)):
        if ids:
            audit.record_many(actor, action, "exception", [(row_id, None, {"at": now.isoformat()}) for row_id in ids])
    db.session.expire_all()
    return result


def deliver_notices(notices: list[Notice]) -> int:
    """Send the SLA job's messages to the configured WeCom/DingTalk robot (after the commit); returns how many
    were accepted. Without a robot configured the portal's list is where they are seen."""
    from flask import current_app

    from shared.notify.robots import Alert
    from shared.notify.robots import deliver as send

    kind, url = current_app.config.get("ALERT_ROBOT_KIND"), current_app.config.get("ALERT_ROBOT_URL")
    if not kind or not url:
        return 0
    sent = 0
    for notice in notices:
        result = send(kind, url, Alert(title=notice.title, lines=notice.lines),
                      secret=current_app.config.get("ALERT_ROBOT_SECRET"))
        sent += bool(result.ok)
    return sent


# --- the list ----------------------------------------------------------------------------------------------------

@dataclass
class Filters:
    category: str | None = None
    team: str | None = None  # a team id, or "none" for unrouted
    state: str | None = None
    mine: bool = False
    breached: bool | None = None
    open_only: bool = False


def parse_filters(args) -> Filters:
    """The list's filters from query parameters, each checked (bad values are refused, never ignored)."""
    category = (args.get("category") or "").strip() or None
    if category and category not in CATEGORIES and category not in KINDS:
        raise ValidationFailed(say(UNKNOWN_CATEGORY, key=category[:40]), field="category", code="unknown_category")
    state = (args.get("state") or "").strip() or None
    if state and state not in STATES and state != "active":
        raise ValidationFailed(say(UNKNOWN_STATE, state=state[:40]), field="state", code="invalid_state")
    team = (args.get("team") or "").strip() or None
    if team and team != "none" and not team.isdigit():
        from shared.services.roles import team_by_code

        found = team_by_code(team)
        if found is None:
            raise ValidationFailed(say(UNKNOWN_TEAM, code=team[:32]), field="team", code="unknown_team")
        team = str(found.id)
    flags = {}
    for name in ("mine", "breached"):
        value = (args.get(name) or "").strip().lower()
        if value not in ("", "1", "0", "true", "false", "yes", "no"):
            raise ValidationFailed(say(INVALID_FLAG, field=name), field=name, code="invalid_flag")
        flags[name] = None if value == "" else value in ("1", "true", "yes")
    return Filters(category=category, team=team, state=state, mine=bool(flags["mine"]), breached=flags["breached"])


def list_query(filters: Filters, viewer_id: int | None):
    query = select(ExceptionCase)
    if filters.category:
        column = ExceptionCase.kind if filters.category in KINDS else ExceptionCase.category
        query = query.where(column == filters.category)
    if filters.team == "none":
        query = query.where(ExceptionCase.team_id.is_(None))
    elif filters.team:
        query = query.where(ExceptionCase.team_id == int(filters.team))
    if filters.state == "active":
        query = query.where(ExceptionCase.status.not_in(DONE))
    elif filters.state:
        query = query.where(ExceptionCase.status == filters.state)
    if filters.mine:
        query = query.where(ExceptionCase.assignee_id == viewer_id)
    if filters.breached is not None:
        query = query.where(ExceptionCase.breached.is_(filters.breached))
    return query


def page(filters: Filters, viewer_id: int | None, cursor: str | None = None, back: str | None = None,
         limit: int = DEFAULT_LIMIT) -> paging.Window:
    """Newest first, keyset-paged on (opened_at, id)."""
    return paging.window(db.session, list_query(filters, viewer_id), ExceptionCase.opened_at, ExceptionCase.id,
                         cursor=cursor, back=back, limit=limit, descending=True)


def unrouted_count() -> int:
    return db.session.execute(select(func.count()).select_from(ExceptionCase).where(
        ExceptionCase.team_id.is_(None), ExceptionCase.status.not_in(DONE))).scalar_one()


def history(row: ExceptionCase) -> list[ExceptionEvent]:
    return list(db.session.execute(select(ExceptionEvent).where(ExceptionEvent.exception_id == row.id)
                                   .order_by(ExceptionEvent.id)).scalars())


# --- the monthly closed-loop report ------------------------------------------------------------------------------

@dataclass
class ReportRow:
    category: str
    count: int
    resolved: int
    mean_seconds: float | None
    median_seconds: float | None
    sla_met_percent: float | None
    recurrences: int


def month_bounds(year: int, month: int, zone: str) -> tuple[datetime, datetime]:
    if not (2000 <= int(year) <= 2100 and 1 <= int(month) <= 12):
        raise ValidationFailed(say(INVALID_MONTH), field="month", code="invalid_month")
    tz = ZoneInfo(zone)
    start = datetime.combine(date(year, month, 1), time(0), tz)
    end = datetime.combine(date(year + (month == 12), month % 12 + 1, 1), time(0), tz)
    return start, end


def monthly_report(year: int, month: int, zone: str) -> list[ReportRow]:
    """Per category, for exceptions raised in the month (merchant time): how many, how many resolved, mean and
    median time to resolve, the share resolved within SLA, and recurrences (the same order, SKU or buyer had an
    exception in the 30 days before). Aggregated in SQL; the median too on PostgreSQL."""
    start, end = month_bounds(year, month, zone)
    in_month = (ExceptionCase.opened_at >= start, ExceptionCase.opened_at < end)
    resolved = ExceptionCase.resolve_seconds.is_not(None)
    postgres = db.session.get_bind().dialect.name == "postgresql"
    columns = [ExceptionCase.category, func.count(), func.count(ExceptionCase.resolve_seconds),
               func.avg(ExceptionCase.resolve_seconds),
               func.sum(case((resolved & ExceptionCase.breached.is_(False), 1), else_=0)),
               func.count(ExceptionCase.recurrence_of_id)]
    if postgres:
        columns.append(func.percentile_cont(0.5).within_group(ExceptionCase.resolve_seconds))
    rows = db.session.execute(select(*columns).where(*in_month).group_by(ExceptionCase.category)).all()
    medians = {}
    if not postgres:  # SQLite has no percentile: one read of the month's resolution times, in order
        spans = defaultdict(list)
        for category, seconds in db.session.execute(
                select(ExceptionCase.category, ExceptionCase.resolve_seconds).where(*in_month, resolved)
                .order_by(ExceptionCase.category, ExceptionCase.resolve_seconds)).all():
            spans[category].append(seconds)
        medians = {category: float(statistics.median(values)) for category, values in spans.items()}
    found = {}
    for row in rows:
        category, count, done, mean, met, recurrences = row[:6]
        median = (float(row[6]) if row[6] is not None else None) if postgres else medians.get(category)
        found[category] = ReportRow(category, count, done, float(mean) if mean is not None else None, median,
                                    round(100.0 * (met or 0) / done, 1) if done else None, recurrences)
    return [found.get(category, ReportRow(category, 0, 0, None, None, None, 0)) for category in CATEGORIES]
