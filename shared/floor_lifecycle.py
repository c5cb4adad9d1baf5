"""The warehouse floor's lifecycles, declared as data like the order's (shared/lifecycle.py): shipments (parcels),
waves and pick tasks. Every change of their status goes through `move` (one row) or `move_set` (a set of rows, one
UPDATE), so no status is ever assigned around the table."""
from dataclasses import dataclass, field

from sqlalchemy import update
from sqlalchemy.orm.attributes import set_committed_value

from shared import sets
from shared.services.errors import Conflict
from shared.services.validation import N_, say

# What a person reads when this module refuses: message codes, said in the reader's language (say).
CANNOT_BECOME = N_("A %(name)s that is %(status)s cannot become %(target)s")
CHANGED_MEANWHILE = N_("The %(name)s changed meanwhile; it was not moved to %(target)s: reload and try again")
SOME_REFUSED = N_("%(refused)s of %(total)s cannot move, so none was moved: %(first)s")

SET_CHUNK = 5000  # ids per UPDATE (SQLite binds at most 32,766 values in one statement)


@dataclass
class SetMove:
    """What `move_set` did: the ids moved, and for every id left where it was, why."""
    moved: list[int] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)


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
            raise Conflict(say(CANNOT_BECOME, name=self.name, status=row.status, target=target),
                           code=f"invalid_{self.name}_transition")
        row.status = target

    def move_set(self, model, rows, target: str, values: dict | None = None, refuse: bool = False) -> SetMove:
        """Move many rows of `model` to `target` with one UPDATE (per 5,000 ids), the set form of `move`.

        `rows` are (id, status as the caller read it). Each row's state is checked against the table first: a row
        whose move is not declared is skipped with the reason, or, with `refuse`, the whole set is refused (409)
        before anything is written. The UPDATE takes rows only from a declared source state, so a row another
        transaction moved meanwhile stays as it is and is reported skipped too (with `refuse`: refused, and the
        caller's transaction must roll back, as after any service error). `values` are further columns set on
        every moved row (plain values). Rows of `model` already loaded in the session are brought up to date
        without a flush."""
        from shared.extensions import db

        if target not in self.states:
            raise ValueError(f"{self.name}: {target!r} is not a declared state")
        result, wanted = SetMove(), []
        for row_id, status in rows:
            if self.allowed(status, target):
                wanted.append(row_id)
            else:
                result.skipped[row_id] = say(CANNOT_BECOME, name=self.name, status=status, target=target)
        if refuse and result.skipped:
            first = next(iter(result.skipped.values()))
            raise Conflict(say(SOME_REFUSED, refused=len(result.skipped), total=len(result.skipped) + len(wanted),
                               first=first),
                           code=f"invalid_{self.name}_transition")
        table, changes = model.__table__, {"status": target, **(values or {})}
        for start in range(0, len(wanted), SET_CHUNK):
            chunk = wanted[start:start + SET_CHUNK]
            moved = db.session.execute(
                update(table).where(sets.among(table.c.id, chunk), table.c.status.in_(self.sources(target)))
                .values(changes).returning(table.c.id)).scalars().all()
            result.moved += moved
            gone = set(chunk) - set(moved)
            result.skipped.update({row_id: say(CHANGED_MEANWHILE, name=self.name, target=target)
                                   for row_id in chunk if row_id in gone})
        if refuse and result.skipped:
            raise Conflict(say(SOME_REFUSED, refused=len(result.skipped), total=len(wanted),
                               first=next(iter(result.skipped.values()))),
                           code=f"invalid_{self.name}_transition")
        moved = set(result.moved)
        for obj in list(db.session.identity_map.values()):
            if isinstance(obj, model) and obj.id in moved:
                for key, value in changes.items():
                    set_committed_value(obj, key, value)
        return result


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
