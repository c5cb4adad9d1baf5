"""What the button of each lifecycle move says: a verb (挂起, 解除挂起, 取消订单), never the state it leads to.

One table for every state machine shown with buttons (orders, exceptions, after-sales), keyed by the machine and the
move's target as the lifecycle modules declare them (shared.lifecycle, shared.exception_lifecycle,
shared.after_sales_lifecycle); tests/test_action_verbs.py checks that every declared move has its verb here.
"""
from flask_babel import lazy_gettext as _l

from shared.labels import EXCEPTION_MOVE

# The order lifecycle: its targets, and `release_hold` (releasing a hold returns the order to where it was, so its
# target is not a fixed state).
ORDER = {
    "confirmed": _l("Confirm order"), "allocated": _l("Allocate stock"), "picking": _l("Start picking"),
    "packed": _l("Mark packed"), "shipped": _l("Mark shipped"), "completed": _l("Complete order"),
    "closed": _l("Close order"), "cancelled": _l("Cancel order"), "on_hold": _l("Hold"),
    "release_hold": _l("Release hold"),
}
AFTER_SALE = {
    "approved": _l("Approve the request"), "declined": _l("Decline the request"),
    "awaiting_return": _l("Arrange the return"), "received": _l("Mark the goods received"),
    "inspected": _l("Record the inspection"), "refunded": _l("Refund the customer"),
    "replaced": _l("Send the replacement"), "resent": _l("Resend the goods"), "closed": _l("Close the request"),
    "cancelled": _l("Cancel the request"),
}
VERBS = {"order": ORDER, "exception": EXCEPTION_MOVE, "after_sale": AFTER_SALE}


def verb(machine: str, target: str) -> str:
    """The button's verb for a move of `machine` to `target` (the code itself when a move has none, so a missing
    entry shows, and the test catches it)."""
    text = VERBS.get(machine, {}).get(target)
    return str(text) if text is not None else target
