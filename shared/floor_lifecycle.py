"""The warehouse floor's lifecycles, declared as data like the order's (shared/lifecycle.py): shipments (parcels),
waves and pick tasks. Every change of their status goes through `move` (one row) or `sources` (the states a set-based
UPDATE may take rows from), so no status is ever assigned around the table."""
from dataclasses import dataclass

from shared.services.errors import Conflict


@dataclass(frozen=True)
class Lifecycle:
    name: str
    states: tuple[str, ...]
    transitions: frozenset[tuple[str, str]]
    initial: str

    def __post_init__(self):
        unknown = {state for pair in self.transitions for state in pair} - set(self.states)
        assert not unknown, f"{self.name}: undeclared states {unknown}"

    def allowed(self, source: str, target: str) -> bool:
        return (source, target) in self.transitions

    def sources(self, target: str) -> tuple[str, ...]:
        """The states a row may come from to reach `target`: the WHERE of a set-based status UPDATE."""
        return tuple(state for state in self.states if (state, target) in self.transitions)

    def move(self, row, target: str) -> None:
        """Set `row.status` to `target`, or refuse (409) when the table has no such transition."""
        if not self.allowed(row.status, target):
            raise Conflict(f"a {self.name} that is {row.status} cannot become {target}",
                           code=f"invalid_{self.name}_transition")
        row.status = target


def _pairs(*chains: tuple[str, ...]) -> frozenset[tuple[str, str]]:
    return frozenset((a, b) for chain in chains for a, b in zip(chain, chain[1:]))


# A parcel: allocated to a warehouse, put on a wave, picked into, packed with a waybill, loaded, delivered. A wave
# release that finds no lot for it puts it back in the pool (waved -> allocated); a cancelled order cancels every
# parcel still in the warehouse.
OPEN_SHIPMENT_STATES = ("allocated", "waved", "picking", "picked", "packed")
SHIPMENT = Lifecycle(
    "shipment",
    states=(*OPEN_SHIPMENT_STATES, "shipped", "delivered", "cancelled"),
    transitions=_pairs(OPEN_SHIPMENT_STATES + ("shipped", "delivered"), ("waved", "allocated"))
    | {(state, "cancelled") for state in OPEN_SHIPMENT_STATES},
    initial="allocated",
)

# A wave: planned, released in committed chunks (a release killed halfway stays `releasing` and may resume).
WAVE = Lifecycle(
    "wave",
    states=("planned", "releasing", "released", "done"),
    transitions=_pairs(("planned", "releasing", "released", "done"), ("releasing", "releasing")),
    initial="planned",
)

# A pick task: one line's units from one lot; partly picked tasks stay `picking` until the last unit.
PICK_TASK = Lifecycle(
    "pick_task",
    states=("open", "picking", "done"),
    transitions=_pairs(("open", "picking", "done"), ("open", "done"), ("picking", "picking")),
    initial="open",
)
