"""The order lifecycle, declared as data: states, allowed transitions, who may fire each, and guards.

Who may fire a transition is a cell of the permission table (resource, action), so a role made at run time gets
its moves from its grants like the built-in ones; the system (jobs, channel sync) may fire every transition.
"""
from dataclasses import dataclass, field
from enum import StrEnum

from shared.security.permissions import SYSTEM_ROLE, can


class OrderStatus(StrEnum):
    PENDING_REVIEW = "pending_review"
    CONFIRMED = "confirmed"
    ALLOCATED = "allocated"
    PICKING = "picking"
    PACKED = "packed"
    SHIPPED = "shipped"
    COMPLETED = "completed"
    ON_HOLD = "on_hold"
    CANCELLED = "cancelled"
    CLOSED = "closed"


S = OrderStatus
# Managers close, complete and cancel after picking; customer service reviews (confirms, cancels early); the floor
# moves an order through the warehouse; anyone who may edit orders may put one on hold.
OPS = ("orders", "approve")
SERVICE = ("order_review", "edit")
FLOOR = ("fulfilment", "edit")
HOLD = ("orders", "edit")


@dataclass(frozen=True)
class Transition:
    source: OrderStatus
    target: OrderStatus
    permission: tuple[str, str]
    guards: tuple[str, ...] = ()
    needs_reason: bool = False
    effects: tuple[str, ...] = field(default=())


# Guards and effects are named here and implemented in shared.services.orders, one function each.
TRANSITIONS: tuple[Transition, ...] = (
    Transition(S.PENDING_REVIEW, S.CONFIRMED, SERVICE, guards=("has_lines",)),
    Transition(S.CONFIRMED, S.ALLOCATED, FLOOR, guards=("is_paid", "stock_reserved")),
    Transition(S.ALLOCATED, S.PICKING, FLOOR),
    Transition(S.PICKING, S.PACKED, FLOOR),
    Transition(S.PACKED, S.SHIPPED, FLOOR, effects=("consume_stock",)),
    Transition(S.SHIPPED, S.COMPLETED, OPS),
    Transition(S.COMPLETED, S.CLOSED, OPS, needs_reason=True),
    *(
        Transition(src, S.CANCELLED, SERVICE, needs_reason=True, effects=("release_stock",))
        for src in (S.PENDING_REVIEW, S.CONFIRMED, S.ALLOCATED, S.ON_HOLD)
    ),
    # Once picking has started, only managers may cancel: the goods must go back to the shelf.
    *(
        Transition(src, S.CANCELLED, OPS, needs_reason=True, effects=("release_stock",))
        for src in (S.PICKING, S.PACKED)
    ),
    Transition(S.CANCELLED, S.CLOSED, OPS, needs_reason=True),
    *(
        Transition(src, S.ON_HOLD, HOLD, needs_reason=True)
        for src in (S.PENDING_REVIEW, S.CONFIRMED, S.ALLOCATED, S.PICKING, S.PACKED)
    ),
)

# Releasing a hold returns the order to where it was; its target is dynamic, so who may is the permission
# table's `holds` / approve entry (shared.security.permissions), not a transition here. It needs no reason: the hold's
# reason is what is being resolved (an optional note is kept in the audit row).
RELEASE_HOLD_NEEDS_REASON = False

_BY_PAIR = {(t.source, t.target): t for t in TRANSITIONS}


def find_transition(source: str, target: str) -> Transition | None:
    try:
        return _BY_PAIR.get((OrderStatus(source), OrderStatus(target)))
    except ValueError:
        return None


def transitions_from(source: str) -> list[Transition]:
    return [t for t in TRANSITIONS if t.source == source]


def may_fire(transition: Transition, role: str) -> bool:
    """Whether a role (or the system) may fire this transition."""
    return role == SYSTEM_ROLE or can(role, *transition.permission)


OPEN_STATUSES = (S.PENDING_REVIEW, S.CONFIRMED, S.ALLOCATED, S.PICKING, S.PACKED, S.ON_HOLD)
TIMELINE = (S.PENDING_REVIEW, S.CONFIRMED, S.ALLOCATED, S.PICKING, S.PACKED, S.SHIPPED, S.COMPLETED)
