"""Bulk actions on orders: hold, release, cancel, assign, print pick lists, export, for a set of orders frozen when
they were asked for, worked through by a job with progress and a result per order.

Every order goes through the same service call the single action uses (shared.services.orders for the lifecycle,
order_assignment for the assignee, the governed exports for an export), with the asker as the actor: permission,
reason, guards, approvals and audit are that call's, one place per rule. An order the call refuses is kept with
the refusal's code (its words are chosen in the reader's language when shown) and the others go ahead: each order
is its own savepoint.
"""
import csv
import io
import secrets
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm.exc import StaleDataError

from shared import dispatch, timekeeping
from shared.actors import Actor
from shared.extensions import db
from shared.labels import BULK_ACTION, BULK_OUTCOME, BULK_STATUS, STATUS, label, role_name
from shared.lifecycle import TRANSITIONS, OrderStatus, may_fire
from shared.database import insert_rows
from shared.models import (Bin, BulkJob, BulkJobItem, Lot, Order, OrderLine, Reservation, Sku, StaffUser,
                           Warehouse)
from shared.order_search import matching_order_ids
from shared.security.permissions import can
from shared.services import audit, exports, second_factor
from shared.services import orders as order_service
from shared.services.export_kinds import KINDS
from shared.services.order_assignment import assign, may_assign, resolve
from shared.services.errors import Forbidden, NotFound, ServiceError, ValidationFailed
from shared.services.validation import N_, say, text

RUN_JOB = "jobs.bulk.run_bulk_job"
QUEUE = "default"
JOB_TIMEOUT = 3600  # seconds: 5,000 orders one at a time is more than RQ's default 180 s
MAX_ORDERS = 5000
CHUNK = 50  # orders between progress commits
ACTIONS = ("hold", "release", "cancel", "assign", "print", "export")
NEEDS_CONFIRMATION = ("cancel",)  # irreversible: the consequence is stated and confirmed before the job starts
STATUSES = ("awaiting_confirmation", "queued", "running", "done", "failed", "discarded")
LIFECYCLE_TARGET = {"hold": OrderStatus.ON_HOLD, "cancel": OrderStatus.CANCELLED}
PICKABLE = (OrderStatus.CONFIRMED, OrderStatus.ALLOCATED, OrderStatus.PICKING, OrderStatus.PACKED)

UNKNOWN_ACTION = N_("unknown bulk action %(action)s")
MAY_NOT = N_("your role (%(role)s) may not %(action)s orders")
NOTHING_SELECTED = N_("select at least one order")
TOO_MANY = N_("a bulk action takes at most %(limit)s orders; %(count)s were chosen: narrow the filter")
UNKNOWN_ORDERS = N_("no such order: %(orders)s")
REASON_NEEDED = N_("say why (the reason is kept with every order)")
NOT_WAITING = N_("this bulk action is %(status)s: it is not waiting for confirmation")
NOT_YOURS = N_("no such bulk action of yours")

# What became of an order, in the reader's words: a refusal by its code (per action where the words differ), then
# the service's own message as it said it.
REFUSALS = {
    ("hold", "invalid_transition"): N_("an order that is %(status)s cannot be put on hold"),
    ("cancel", "invalid_transition"): N_("an order that is %(status)s cannot be cancelled"),
    ("release", "invalid_transition"): N_("the order is not on hold (it is %(status)s)"),
    "transition_forbidden": N_("your role may not do this to an order that is %(status)s"),
    "reason_required": N_("this change needs a reason"),
    "approval_pending": N_("an approval is pending on this order: it does not change until that is decided"),
    "step_up_required": N_("cancelling a paid order needs your second verification: cancel it on its own page"),
    "order_changed": N_("the order changed while the job ran: try it again"),
    "already_assigned": N_("the order already has this assignee and team"),
    "assign_forbidden": N_("your role may not assign orders"),
    "nothing_to_pick": N_("an order that is %(status)s has nothing to pick"),
    "no_warehouse": N_("the order has no warehouse yet: nothing to pick"),
    "account_inactive": N_("your account is no longer active"),
    "guard_failed": N_("the order is not ready for this (%(status)s)"),
}
# What an action is called (in MAY_NOT: "may not hold orders").
ACTION_VERBS = {"hold": N_("hold"), "release": N_("release"), "cancel": N_("cancel"), "assign": N_("assign"),
                "print": N_("print pick lists for"), "export": N_("export")}


def may_start(role: str, action: str) -> bool:
    """Whether the role may take this action on any order at all (each order is checked again by its service)."""
    if action in LIFECYCLE_TARGET:
        return any(t.target == LIFECYCLE_TARGET[action] and may_fire(t, role) for t in TRANSITIONS)
    if action == "release":
        return can(role, "holds", "approve")
    if action == "assign":
        return may_assign(role)
    if action == "print":
        return can(role, "fulfilment", "view")
    if action == "export":
        return exports.may_export(role, KINDS["orders"])
    return False


def actions_for(role: str) -> list[str]:
    return [action for action in ACTIONS if may_start(role, action)]


def reason_required(action: str) -> bool:
    """A reason is asked exactly where the lifecycle requires it (every move to the action's target needs one)."""
    target = LIFECYCLE_TARGET.get(action)
    return target is not None and all(t.needs_reason for t in TRANSITIONS if t.target == target)


def _new_public_id() -> str:
    return "BK" + secrets.token_hex(8).upper()


def _ids_of(order_nos: list[str]) -> list[int]:
    wanted = list(dict.fromkeys(str(no).strip().upper()[:20] for no in order_nos if str(no).strip()))
    found = dict(db.session.execute(select(Order.order_no, Order.id).where(Order.order_no.in_(wanted))).all()) \
        if wanted else {}
    missing = [no for no in wanted if no not in found]
    if missing:
        raise ValidationFailed(say(UNKNOWN_ORDERS, orders=", ".join(missing[:5])), field="orders",
                               code="unknown_order")
    return [found[no] for no in wanted]


def start(action: str, actor: Actor, order_nos: list[str] | None = None, matching=None, zone: str = "Asia/Shanghai",
          reason: str | None = None, assignee: str | None = None, team: str | None = None,
          stepped_up: bool = False) -> BulkJob:
    """Record a bulk action on the orders named (`order_nos`) or on all orders matching `matching` (OrderFilters),
    their ids frozen now. Audited; queued at once, or, for an irreversible action, waiting for `confirm`.

    Refused (nothing written): an unknown action, a role that may not take it, no reason where the lifecycle
    needs one, an unknown assignee or team, an unknown order, no order, more than MAX_ORDERS orders."""
    if action not in ACTIONS:
        raise ValidationFailed(say(UNKNOWN_ACTION, action=str(action)[:20]), field="action", code="unknown_action")
    if not may_start(actor.role, action):
        raise Forbidden(say(MAY_NOT, role=role_name(actor.role), action=say(ACTION_VERBS[action])),
                        code="bulk_forbidden")
    user = db.session.get(StaffUser, actor.id) if actor.id is not None else None
    if user is None or not user.active:
        raise Forbidden(say(REFUSALS["account_inactive"]), code="account_inactive")
    reason = text(reason, "reason", 500, required=False)
    if reason_required(action) and not reason:
        raise ValidationFailed(say(REASON_NEEDED), field="reason", code="reason_required")
    params = {"reason": reason}
    if action == "assign":
        found_user, found_team = resolve(assignee, team)
        params.update(assignee=found_user.username if found_user else None,
                      team=found_team.code if found_team else None)
    if matching is not None:
        ids = matching_order_ids(matching, zone, MAX_ORDERS + 1, actor)
        scope = "matching"
    else:
        ids = _ids_of(order_nos or [])
        scope = "selected"
    if not ids:
        raise ValidationFailed(say(NOTHING_SELECTED), field="orders", code="nothing_selected")
    if len(ids) > MAX_ORDERS:
        count = f"{MAX_ORDERS:,}+" if matching is not None else f"{len(ids):,}"
        raise ValidationFailed(say(TOO_MANY, limit=f"{MAX_ORDERS:,}", count=count), field="orders",
                               code="too_many_orders")
    job = BulkJob(public_id=_new_public_id(), action=action, params=params, stepped_up=bool(stepped_up),
                  status="awaiting_confirmation" if action in NEEDS_CONFIRMATION else "queued", total=len(ids),
                  done_count=0, refused_count=0, created_by_id=user.id, created_by_label=user.username,
                  created_ip=actor.ip, created_at=timekeeping.utc_now())
    db.session.add(job)
    db.session.flush()
    numbers = dict(db.session.execute(select(Order.id, Order.order_no).where(Order.id.in_(ids))).all())
    insert_rows(BulkJobItem.__table__, [{"job_id": job.id, "position": position, "order_id": order_id,
                                         "order_no": numbers[order_id], "outcome": "pending"}
                                        for position, order_id in enumerate(ids, 1)])
    audit.record(actor, "bulk.start", "bulk_job", job.public_id,
                 after={"bulk_action": action, "orders": len(ids), "scope": scope, "status": job.status, **params})
    if job.status == "queued":
        _send_after_commit(job)
    return job


def confirm(job: BulkJob, actor: Actor) -> BulkJob:
    """The asker confirmed the stated consequence: the job is queued (audited)."""
    if job.status != "awaiting_confirmation":
        raise ValidationFailed(say(NOT_WAITING, status=label(BULK_STATUS, job.status)),
                               code="not_awaiting_confirmation")
    if actor.id != job.created_by_id:
        raise NotFound(say(NOT_YOURS), code="not_found")
    job.status = "queued"
    audit.record(actor, "bulk.confirm", "bulk_job", job.public_id, before={"status": "awaiting_confirmation"},
                 after={"status": "queued"})
    _send_after_commit(job)
    return job


def discard(job: BulkJob, actor: Actor) -> BulkJob:
    """The asker did not confirm: nothing is done to any order (audited)."""
    if job.status != "awaiting_confirmation":
        raise ValidationFailed(say(NOT_WAITING, status=label(BULK_STATUS, job.status)),
                               code="not_awaiting_confirmation")
    job.status, job.finished_at = "discarded", timekeeping.utc_now()
    audit.record(actor, "bulk.discard", "bulk_job", job.public_id, before={"status": "awaiting_confirmation"},
                 after={"status": "discarded"})
    return job


def _send_after_commit(job: BulkJob) -> None:
    """Start the job once committed; without Redis the portal runs it right after (the send is skipped inline)."""
    dispatch.after_commit(RUN_JOB, job.id, queue=QUEUE, skip_inline=True, job_timeout=JOB_TIMEOUT)


def for_owner_or_404(public_id: str, user_id: int) -> BulkJob:
    """One of the user's own bulk jobs (another's is unreachable: not found)."""
    job = db.session.execute(select(BulkJob).where(BulkJob.public_id == str(public_id)[:24])).scalar_one_or_none()
    if job is None or job.created_by_id != user_id:
        raise NotFound(say(NOT_YOURS), code="not_found")
    return job


def own_jobs(user_id: int, limit: int = 20) -> list[BulkJob]:
    return list(db.session.execute(select(BulkJob).where(BulkJob.created_by_id == user_id)
                                   .order_by(BulkJob.id.desc()).limit(limit)).scalars())


def stock_released(job: BulkJob) -> tuple[int, int]:
    """What cancelling the job's orders would release now: (orders holding stock, units reserved for them)."""
    order_ids = select(BulkJobItem.order_id).where(BulkJobItem.job_id == job.id)
    orders, units = db.session.execute(
        select(func.count(func.distinct(Reservation.order_id)), func.coalesce(func.sum(Reservation.quantity), 0))
        .where(Reservation.order_id.in_(order_ids), Reservation.status == "active")).one()
    return int(orders), int(units)


# --- the job's steps ---------------------------------------------------------------------------------------

def claim(job_id: int, now: datetime | None = None) -> bool:
    """queued -> running by one conditional UPDATE: of two jobs sent for one bulk action, one does the work."""
    return db.session.execute(update(BulkJob).where(BulkJob.id == job_id, BulkJob.status == "queued")
                              .values(status="running", started_at=now or timekeeping.utc_now())).rowcount == 1


def _actor(job: BulkJob) -> Actor:
    """The asker as they are now: a role taken away meanwhile takes the permission away for the orders left."""
    user = db.session.get(StaffUser, job.created_by_id)
    role = user.role if user is not None and user.active else "nobody"
    return Actor(id=job.created_by_id, label=job.created_by_label, role=role, ip=job.created_ip)


def run(job_id: int, commit) -> BulkJob:
    """Work through the running job's pending orders a chunk at a time, committing results and progress through
    `commit` after each chunk; leaves the job done (not committed). Orders already handled (a job restarted after
    a worker died) are not done twice."""
    job = db.session.get(BulkJob, job_id)
    actor = _actor(job)
    context = _context(job, actor)
    while True:
        items = db.session.execute(select(BulkJobItem).where(BulkJobItem.job_id == job_id,
                                                             BulkJobItem.outcome == "pending")
                                   .order_by(BulkJobItem.position).limit(CHUNK)).scalars().all()
        if not items:
            break
        done = refused = 0
        for item in items:
            _one(job, item, actor, context)
            done += item.outcome in ("done", "held")
            refused += item.outcome == "refused"
        db.session.execute(update(BulkJob).where(BulkJob.id == job_id).values(
            done_count=BulkJob.done_count + done, refused_count=BulkJob.refused_count + refused))
        commit()
    job = db.session.get(BulkJob, job_id)
    if job.action == "export" and job.done_count:
        export = exports.request_export("orders", "csv", {"bulk": job.public_id}, actor)
        job.export_public_id = export.public_id
    job.status, job.finished_at = "done", timekeeping.utc_now()
    audit.record(actor, "bulk.finish", "bulk_job", job.public_id, before={"status": "running"},
                 after={"status": "done", "done": job.done_count, "refused": job.refused_count})
    return job


def fail(job_id: int, reason: str) -> None:
    job = db.session.get(BulkJob, job_id)
    if job is None or job.status not in ("queued", "running"):
        return
    job.status, job.error, job.finished_at = "failed", reason[:500], timekeeping.utc_now()
    audit.record(_actor(job), "bulk.failed", "bulk_job", job.public_id, after={"status": "failed", "error": job.error})


def _context(job: BulkJob, actor: Actor) -> dict:
    if job.action != "assign":
        return {}
    try:
        user, team = resolve(job.params.get("assignee"), job.params.get("team"))
    except ServiceError:
        user = team = None  # the assignee left meanwhile: every order is refused by the assignment itself
    return {"user": user, "team": team}


def _one(job: BulkJob, item: BulkJobItem, actor: Actor, context: dict) -> None:
    """One order through the single action's service call, in its own savepoint; the result kept on the item."""
    reason = (job.params or {}).get("reason")
    order = db.session.get(Order, item.order_id)
    item.status_before = order.status
    try:
        with db.session.begin_nested():
            if actor.role == "nobody":
                raise Forbidden(say(REFUSALS["account_inactive"]), code="account_inactive")
            if job.action == "hold":
                order_service.transition_order(order, OrderStatus.ON_HOLD, actor, reason)
            elif job.action == "release":
                order_service.release_hold(order, actor, reason)
            elif job.action == "cancel":
                if second_factor.transition_needs_step_up(order, OrderStatus.CANCELLED, actor.role, reason) \
                        and not job.stepped_up:
                    raise Forbidden(say(REFUSALS["step_up_required"]), code="step_up_required")
                order_service.transition_order(order, OrderStatus.CANCELLED, actor, reason)
            elif job.action == "assign":
                assign(order, actor, context.get("user"), context.get("team"))
            elif job.action == "print":
                pick_refusal(order)
            # export: every order is in the file, read as the asker's role may see it (the governed export)
            held = getattr(order, "approval_request", None)
    except ServiceError as refused:
        item.outcome, item.code, item.message = "refused", refused.code[:40], refused.message[:500]
    except StaleDataError:
        item.outcome, item.code, item.message = "refused", "order_changed", "the order changed while the job ran"
    else:
        item.outcome = "held" if held is not None else "done"
    order = db.session.get(Order, item.order_id)
    item.status_after = order.status
    item.finished_at = timekeeping.utc_now()


def pick_refusal(order: Order) -> None:
    """An order with something to pick: not yet shipped, cancelled or closed, and with a warehouse."""
    if order.status not in PICKABLE:
        raise ValidationFailed(say(REFUSALS["nothing_to_pick"], status=label(STATUS, order.status)),
                               code="nothing_to_pick")
    if order.warehouse_id is None:
        raise ValidationFailed(say(REFUSALS["no_warehouse"]), code="no_warehouse")


# --- results -----------------------------------------------------------------------------------------------

def items_of(job: BulkJob, outcome: str | None = None, limit: int | None = None) -> list[BulkJobItem]:
    query = select(BulkJobItem).where(BulkJobItem.job_id == job.id).order_by(BulkJobItem.position)
    if outcome:
        query = query.where(BulkJobItem.outcome == outcome)
    return list(db.session.execute(query.limit(limit) if limit else query).scalars())


def outcome_words(item: BulkJobItem) -> str:
    return label(BULK_OUTCOME, item.outcome)


def result_words(item: BulkJobItem, action: str) -> str:
    """Why an order was refused, in the reader's language (the service's own message when its code is new here)."""
    if item.outcome != "refused":
        return ""
    msgid = REFUSALS.get((action, item.code)) or REFUSALS.get(item.code)
    if msgid is None:
        return say(item.message or item.code or "")
    return say(msgid, status=label(STATUS, item.status_before or ""))


def results_csv(job: BulkJob) -> bytes:
    """One row per order: order number, result, reason, status before and after; in the reader's language."""
    from flask_babel import gettext as _

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([_("Order no."), _("Result"), _("Reason"), _("Status before"), _("Status after")])
    for item in items_of(job):
        writer.writerow([item.order_no, outcome_words(item), result_words(item, job.action),
                         label(STATUS, item.status_before) if item.status_before else "",
                         label(STATUS, item.status_after) if item.status_after else ""])
    return ("\ufeff" + out.getvalue()).encode("utf-8")  # with a BOM: Excel opens it as UTF-8


# --- pick lists ----------------------------------------------------------------------------------------------

def pick_lines(job: BulkJob) -> list[dict]:
    """The lines of the job's printed orders by bin, in walking order per warehouse: each line at the bin its SKU
    is picked from first (first expiry first out, then first received), or with no bin when none holds it."""
    order_ids = select(BulkJobItem.order_id).where(BulkJobItem.job_id == job.id, BulkJobItem.outcome == "done")
    lines = db.session.execute(
        select(Order.order_no, Order.warehouse_id, Warehouse.code.label("warehouse_code"), OrderLine.sku_id,
               Sku.code.label("sku_code"), Sku.name,
               OrderLine.quantity)
        .join(OrderLine, OrderLine.order_id == Order.id).join(Sku, Sku.id == OrderLine.sku_id)
        .join(Warehouse, Warehouse.id == Order.warehouse_id)
        .where(Order.id.in_(order_ids)).order_by(Order.order_no, OrderLine.id)).all()
    first_bin: dict[tuple[int, int], tuple[int, str]] = {}
    wanted = {(line.warehouse_id, line.sku_id) for line in lines}
    if wanted:
        for warehouse_id, sku_id, walk_order, code in db.session.execute(
                select(Lot.warehouse_id, Lot.sku_id, Bin.walk_order, Bin.code).join(Bin, Bin.id == Lot.bin_id)
                .where(Lot.sku_id.in_({sku for _w, sku in wanted}), Lot.quantity > Lot.allocated)
                .order_by(Lot.expires_on.is_(None), Lot.expires_on, Lot.received_at, Lot.id)).all():
            first_bin.setdefault((warehouse_id, sku_id), (walk_order, code))
    rows = []
    for line in lines:
        walk_order, bin_code = first_bin.get((line.warehouse_id, line.sku_id), (None, None))
        rows.append({"warehouse": line.warehouse_code, "bin": bin_code, "walk_order": walk_order, "sku": line.sku_code,
                     "name": line.name, "quantity": line.quantity, "order_no": line.order_no})
    rows.sort(key=lambda r: (r["warehouse"], r["walk_order"] is None, r["walk_order"] or 0, r["bin"] or "",
                             r["sku"], r["order_no"]))
    return rows


def status_words(job: BulkJob) -> str:
    return label(BULK_STATUS, job.status)


def action_name(action: str) -> str:
    return label(BULK_ACTION, action)
