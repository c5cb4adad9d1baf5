"""The status timeline a customer sees: the lifecycle in their words, with the time each step was reached.

Times come from the order's audit events (create, transitions, hold releases), which record the status after
each change; a step passed without an event (e.g. an imported order) shows as done without a time.
"""
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from shared.extensions import db
from shared.labels import CUSTOMER_STATUS, label
from shared.lifecycle import TIMELINE, OrderStatus
from shared.models import AuditEvent, Order

S = OrderStatus
STATUS_ACTIONS = ("order.create", "order.transition", "order.release_hold")
# Allocation and picking are one step for a customer: both read "Being prepared".
STEPS: tuple[tuple[OrderStatus, ...], ...] = (
    (S.PENDING_REVIEW,), (S.CONFIRMED,), (S.ALLOCATED, S.PICKING), (S.PACKED,), (S.SHIPPED,), (S.COMPLETED,),
)
assert [code for step in STEPS for code in step] == list(TIMELINE), "STEPS must follow shared.lifecycle.TIMELINE"


@dataclass
class Step:
    code: str
    label: str
    at: datetime | None
    state: str  # done, current, todo, stopped (not reached before a cancellation)


@dataclass
class Timeline:
    steps: list[Step] = field(default_factory=list)
    interruption: str | None = None  # on_hold or cancelled
    interrupted_at: datetime | None = None


def status_times(order: Order) -> tuple[dict[str, datetime], dict[str, datetime]]:
    """When the order first and last reached each status, from its audit events in chain order."""
    rows = db.session.execute(
        select(AuditEvent.occurred_at, AuditEvent.after)
        .where(AuditEvent.entity_type == "order", AuditEvent.entity_id == order.order_no,
               AuditEvent.action.in_(STATUS_ACTIONS))
        .order_by(AuditEvent.id)
    ).all()
    first: dict[str, datetime] = {}
    last: dict[str, datetime] = {}
    for occurred_at, after in rows:
        status = (after or {}).get("status")
        if status:
            first.setdefault(status, occurred_at)
            last[status] = occurred_at
    return first, last


def _step_index(status: str | None) -> int | None:
    for index, codes in enumerate(STEPS):
        if status in codes:
            return index
    return None


def _step_time(first: dict[str, datetime], codes) -> datetime | None:
    times = [first[code] for code in codes if code in first]
    return min(times) if times else None


def order_timeline(order: Order) -> Timeline:
    """The steps with their times and states, and whether the order is paused or cancelled."""
    first, last = status_times(order)
    timeline = Timeline()
    status = order.status
    if status == S.CLOSED:
        status = S.COMPLETED if S.COMPLETED in first or S.CANCELLED not in first else S.CANCELLED
    if status == S.ON_HOLD:
        timeline.interruption, timeline.interrupted_at = S.ON_HOLD.value, last.get(S.ON_HOLD)
        current = _step_index(order.status_before_hold)
    elif status == S.CANCELLED:
        timeline.interruption, timeline.interrupted_at = S.CANCELLED.value, last.get(S.CANCELLED)
        current = None
    else:
        current = _step_index(status)
    for index, codes in enumerate(STEPS):
        at = _step_time(first, codes)
        if current is None:
            state = "done" if at else "stopped"
        elif index < current:
            state = "done"
        elif index == current:
            state = "current"
        else:
            state, at = "todo", None
        timeline.steps.append(Step(code=codes[0].value, label=label(CUSTOMER_STATUS, codes[0].value), at=at,
                                   state=state))
    return timeline
