"""The exception's lifecycle, declared as data like the order's and the floor's: which moves exist, which need a
comment (a resolution note, why it was reopened), and in which states the SLA clock stands still.

open → assigned → in_progress ↔ waiting_customer / waiting_platform (clock paused) → resolved → closed; a resolved or
closed exception is reopened (within 7 days of its resolution; a later re-raise is a new exception) and worked
again from `reopened`. closed → in_progress is not a move: reopen first.
"""
from dataclasses import dataclass

from shared.floor_lifecycle import Lifecycle

WORKING = ("open", "assigned", "in_progress", "reopened")
WAITING = ("waiting_customer", "waiting_platform")
DONE = ("resolved", "closed")
STATES = (*WORKING, *WAITING, *DONE)


@dataclass(frozen=True)
class ExceptionLifecycle(Lifecycle):
    needs_comment: frozenset[str] = frozenset()  # targets that need a comment (or canned reply)
    paused: frozenset[str] = frozenset()  # states in which the SLA clocks do not run
    responses: frozenset[str] = frozenset()  # targets that count as the first response

    def targets(self, source: str) -> list[str]:
        """The moves a person may offer from `source` (the portal's buttons), in the table's order."""
        return [state for state in self.states if (source, state) in self.transitions]


EXCEPTION = ExceptionLifecycle(
    "exception",
    states=STATES,
    transitions=frozenset({
        ("open", "assigned"), ("open", "in_progress"), ("open", "resolved"),
        ("assigned", "assigned"), ("assigned", "in_progress"), ("assigned", "resolved"),
        ("reopened", "assigned"), ("reopened", "in_progress"), ("reopened", "resolved"),
        ("in_progress", "waiting_customer"), ("in_progress", "waiting_platform"), ("in_progress", "resolved"),
        ("waiting_customer", "in_progress"), ("waiting_platform", "in_progress"),
        ("waiting_customer", "waiting_platform"), ("waiting_platform", "waiting_customer"),
        ("waiting_customer", "resolved"), ("waiting_platform", "resolved"),
        ("resolved", "closed"), ("resolved", "reopened"), ("closed", "reopened"),
    }),
    initial="open",
    needs_comment=frozenset({"resolved", "reopened", "waiting_customer", "waiting_platform"}),
    paused=frozenset({*WAITING, *DONE}),
    responses=frozenset({"in_progress", "waiting_customer", "waiting_platform", "resolved"}),
)
