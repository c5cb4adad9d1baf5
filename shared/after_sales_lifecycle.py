"""The after-sales request's lifecycle (售后), declared as data like the order's: every move, which request types take
it, which cell of the permission table fires it, whether the customer may fire it themselves, whether it needs a
reason, and the guards and effects (named here, implemented once in shared.services.after_sales).

    requested → approved | declined (the reason is shown to the customer)
    return_refund, exchange:  approved → awaiting_return (pickup booked, drop-off at the return address, or none)
                              → received → inspected (pass/fail per line, restocked or not)
                              → refunded (return_refund) | replaced (exchange) → closed;
                              inspected → closed with a reason when nothing passed (no refund, nothing sent)
                              replaced: the lines that passed go out again as a replacement order
    refund_only:              approved → refunded → closed (nothing comes back)
    resend (补寄):             approved → resent → closed (nothing comes back; every line goes out again as a
                              replacement order)
    cancelled: by the customer (or staff for them) from requested, approved or awaiting_return, i.e. before received.

Customer service decides and refunds (`after_sales` approve) and does the rest of the paperwork (`after_sales` edit);
the warehouse receives and inspects (`fulfilment` edit, the floor's cell of the order lifecycle); the system may fire
every move.
"""
from dataclasses import dataclass

from shared.security.permissions import SYSTEM_ROLE, can

TYPES = ("refund_only", "return_refund", "exchange", "resend")
STATES = ("requested", "approved", "declined", "awaiting_return", "received", "inspected", "refunded", "replaced",
          "resent", "closed", "cancelled")
INITIAL = "requested"
FINAL = ("declined", "closed", "cancelled")
# A request in one of these still claims its quantities: what it asks for cannot be asked for again.
RELEASED = ("declined", "cancelled")
RETURN_METHODS = ("pickup", "drop_off", "none")

DECIDE = ("after_sales", "approve")
WORK = ("after_sales", "edit")
FLOOR = ("fulfilment", "edit")

ALL = frozenset(TYPES)
RETURNS = frozenset({"return_refund", "exchange"})  # the goods come back to the warehouse


@dataclass(frozen=True)
class Move:
    source: str
    target: str
    types: frozenset[str]
    permission: tuple[str, str]
    customer: bool = False  # the customer may fire it on their own request
    needs_reason: bool = False
    guards: tuple[str, ...] = ()
    effects: tuple[str, ...] = ()


MOVES: tuple[Move, ...] = (
    Move("requested", "approved", ALL, DECIDE),
    Move("requested", "declined", ALL, DECIDE, needs_reason=True),
    Move("approved", "awaiting_return", RETURNS, WORK, customer=True, effects=("book_return",)),
    Move("awaiting_return", "received", RETURNS, FLOOR),
    Move("received", "inspected", RETURNS, FLOOR, effects=("inspect",)),
    Move("inspected", "refunded", frozenset({"return_refund"}), DECIDE, guards=("some_passed",), effects=("refund",)),
    Move("inspected", "replaced", frozenset({"exchange"}), WORK, guards=("some_passed",),
         effects=("send_replacement",)),
    Move("inspected", "closed", RETURNS, WORK, needs_reason=True, guards=("none_passed",)),
    Move("approved", "refunded", frozenset({"refund_only"}), DECIDE, effects=("refund",)),
    Move("approved", "resent", frozenset({"resend"}), WORK, effects=("send_replacement",)),
    Move("refunded", "closed", frozenset({"refund_only", "return_refund"}), WORK),
    Move("replaced", "closed", frozenset({"exchange"}), WORK),
    Move("resent", "closed", frozenset({"resend"}), WORK),
    Move("requested", "cancelled", ALL, WORK, customer=True),
    Move("approved", "cancelled", ALL, WORK, customer=True),
    Move("awaiting_return", "cancelled", RETURNS, WORK, customer=True),
)

_BY_PAIR = {(m.source, m.target): m for m in MOVES}
assert not {s for m in MOVES for s in (m.source, m.target)} - set(STATES), "undeclared after-sales state"


def find_move(kind: str, source: str, target: str) -> Move | None:
    """The move from `source` to `target` for a request of this type, or None when the table has none."""
    move = _BY_PAIR.get((source, target))
    return move if move is not None and kind in move.types else None


def moves_from(kind: str, source: str) -> list[Move]:
    return [m for m in MOVES if m.source == source and kind in m.types]


def may_fire(move: Move, role: str) -> bool:
    """Whether a staff role, the customer (role `customer`) or the system may fire this move."""
    if role == SYSTEM_ROLE:
        return True
    if role == "customer":
        return move.customer
    return can(role, *move.permission)


def path(kind: str) -> tuple[str, ...]:
    """The states a request of this type passes through when all goes well (the customer's progress bar)."""
    if kind in RETURNS:
        middle = ("awaiting_return", "received", "inspected", "refunded" if kind == "return_refund" else "replaced")
    else:
        middle = ("refunded",) if kind == "refund_only" else ("resent",)
    return ("requested", "approved", *middle, "closed")
