"""The order lifecycle, declared as data: states, allowed transitions, who may fire each, and guards."""
from dataclasses import dataclass, field
from enum import StrEnum

from shared.security.permissions import SYSTEM_ROLE, Role


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
OPS = frozenset({Role.ADMIN, Role.OPS_MANAGER})
SERVICE = OPS | {Role.CUSTOMER_SERVICE}
FLOOR = OPS | {Role.WAREHOUSE}
SYSTEM = SYSTEM_ROLE  # jobs and channel sync act as the system


@dataclass(frozen=True)
class Transition:
    source: OrderStatus
    target: OrderStatus
    roles: frozenset
    guards: tuple[str, ...] = ()
    needs_reason: bool = False
    effects: tuple[str, ...] = field(default=())


# Guards and effects are named here and implemented in shared.services.orders, one function each.
TRANSITIONS: tuple[Transition, ...] = (
    Transition(S.PENDING_REVIEW, S.CONFIRMED, SERVICE | {SYSTEM}, guards=("has_lines",)),
    Transition(S.CONFIRMED, S.ALLOCATED, FLOOR | {SYSTEM}, guards=("is_paid", "stock_reserved")),
    Transition(S.ALLOCATED, S.PICKING, FLOOR | {SYSTEM}),
    Transition(S.PICKING, S.PACKED, FLOOR | {SYSTEM}),
    Transition(S.PACKED, S.SHIPPED, FLOOR | {SYSTEM}, effects=("consume_stock",)),
    Transition(S.SHIPPED, S.COMPLETED, OPS | {SYSTEM}),
    Transition(S.COMPLETED, S.CLOSED, OPS | {SYSTEM}, needs_reason=True),
    *(
        Transition(src, S.CANCELLED, SERVICE | {SYSTEM}, needs_reason=True, effects=("release_stock",))
        for src in (S.PENDING_REVIEW, S.CONFIRMED, S.ALLOCATED, S.ON_HOLD)
    ),
    # Once picking has started, only managers may cancel: the goods must go back to the shelf.
    *(
        Transition(src, S.CANCELLED, OPS | {SYSTEM}, needs_reason=True, effects=("release_stock",))
        for src in (S.PICKING, S.PACKED)
    ),
    Transition(S.CANCELLED, S.CLOSED, OPS | {SYSTEM}, needs_reason=True),
    *(
        Transition(src, S.ON_HOLD, SERVICE | {Role.WAREHOUSE, SYSTEM}, needs_reason=True)
        for src in (S.PENDING_REVIEW, S.CONFIRMED, S.ALLOCATED, S.PICKING, S.PACKED)
    ),
)

# Releasing a hold returns the order to where it was; its target is dynamic, so who may is the permission
# table's `holds` / approve entry (shared.security.permissions), not a transition here.

_BY_PAIR = {(t.source, t.target): t for t in TRANSITIONS}


def find_transition(source: str, target: str) -> Transition | None:
    try:
        return _BY_PAIR.get((OrderStatus(source), OrderStatus(target)))
    except ValueError:
        return None


def transitions_from(source: str) -> list[Transition]:
    return [t for t in TRANSITIONS if t.source == source]


def role_may_fire(transition: Transition, role: str) -> bool:
    return role in transition.roles


OPEN_STATUSES = (S.PENDING_REVIEW, S.CONFIRMED, S.ALLOCATED, S.PICKING, S.PACKED, S.ON_HOLD)
TIMELINE = (S.PENDING_REVIEW, S.CONFIRMED, S.ALLOCATED, S.PICKING, S.PACKED, S.SHIPPED, S.COMPLETED)
