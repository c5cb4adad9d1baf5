"""Audit events and access-log rows: appended with the action, MACed with the audit key, chained later by the sealer.

The commit path takes no lock: a transaction's events are written at commit in one multi-row INSERT, each with
an HMAC of its content but no place in the chain; `shared.services.sealing` numbers and chains them (a job
every second, and `audit verify`). Readers see personal values in before/after only as their role may.
"""
import json
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal

from sqlalchemy import event, insert
from sqlalchemy.orm import Session

from shared import pending
from shared.actors import Actor
from shared.database import send_rows
from shared.extensions import db
from shared.models import AccessLogEntry, AuditEvent
from shared.security.permissions import Visibility, visibility
from shared.services import sealing
from shared.timekeeping import utc_now

GENESIS = sealing.GENESIS
_PENDING = "orderloom_pending_audit"
INSERT_CHUNK = 1000  # rows per multi-row INSERT (SQLite allows 32,766 bound values per statement)
_INSERT_EVENTS = insert(AuditEvent.__table__)


def _plain(value):
    """JSON-safe form of snapshot values: Decimal and datetime become strings."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _as_stored(value):
    """The value exactly as it comes back from a JSON column (keys as strings, tuples as lists), so its MAC holds."""
    return None if value is None else json.loads(json.dumps(_plain(value), ensure_ascii=False))


def record(actor: Actor, action: str, entity_type: str, entity_id, before: dict | None = None,
           after: dict | None = None, reason: str | None = None) -> dict:
    """Add an audit event to the current transaction: written at commit (dropped on rollback), sealed after."""
    return record_many(actor, action, entity_type, [(entity_id, before, after)], reason)[0]


def record_many(actor: Actor, action: str, entity_type: str, entries: list[tuple],
                reason: str | None = None) -> list[dict]:
    """`record` for a set of entities changed together: `entries` are (entity_id, before, after); one parameter
    set each, written at commit in the one INSERT of every event of the transaction. Returns the events."""
    now, session = utc_now(), db.session()
    common = {"occurred_at": now, "actor_id": actor.id, "actor_label": actor.label, "ip": actor.ip, "action": action,
              "entity_type": entity_type, "reason": reason}
    events = [{**common, "entity_id": str(entity_id), "before": _as_stored(before), "after": _as_stored(after)}
              for entity_id, before, after in entries]
    for values in events:
        pending.add(session, _PENDING, values)
    return events


def log_access(actor: Actor, action: str, entity_type: str, entity_id, fields: list[str], channel: str) -> None:
    """Write who saw which personal fields of what, and through which door (MACed now, chained by the sealer)."""
    values = {"occurred_at": utc_now(), "actor_id": actor.id, "actor_label": actor.label, "ip": actor.ip,
              "action": action, "entity_type": entity_type, "entity_id": str(entity_id),
              "fields": ",".join(sorted(fields)), "channel": channel}
    db.session.add(AccessLogEntry(**sealing.stamp(sealing.LOGS["access"], values)))


_discarding = 0  # > 0 inside `events_discarded()`


@contextmanager
def events_discarded():
    """DIAGNOSTIC ONLY (benchmarks): inside, every process-wide commit drops its audit events instead of writing
    them, to measure what writing them costs. Never used by the application."""
    global _discarding
    _discarding += 1
    try:
        yield
    finally:
        _discarding -= 1


@event.listens_for(Session, "before_commit")
def _seal_pending_events(session: Session) -> None:
    """Write this transaction's audit events, each with its row MAC, in one executemany; no lock is taken."""
    if session.in_nested_transaction():
        return  # SQLAlchemy fires this when a savepoint is released too; events are written at the real commit
    write_pending(session)


def write_pending(session: Session | None = None) -> None:
    """Write the events recorded so far in this transaction now instead of at commit (dropped all the same if it
    rolls back): for a hot path that wants nothing but its contended UPDATEs between here and the COMMIT."""
    session = session if session is not None else db.session()
    events = pending.take(session, _PENDING)
    if not events or _discarding:
        return
    session.flush()  # the rows an event names (a new staff user, say) go first
    chained = sealing.LOGS["audit"]
    rows = [sealing.stamp(chained, dict(values)) for values in events]
    # One statement built once (compiled once per process, not once per commit as a .values(rows) statement was),
    # sent as one multi-row INSERT for a few events, as an executemany for many (shared.database.send_rows).
    for start in range(0, len(rows), INSERT_CHUNK):
        send_rows(session.connection(), _INSERT_EVENTS, rows[start:start + INSERT_CHUNK])


def verify_chain() -> tuple[bool, int, str | None]:
    """Seal what is waiting, then verify the audit-event chain: (intact, events checked, the first problem).

    Sealing happens in the caller's transaction: commit to keep it. `sealing.verify_all` checks every log.
    """
    sealing.seal_all(commit=db.session.flush, logs=("audit",))
    report = sealing.verify_all(logs=("audit",))[0]
    return report.intact, report.checked, None if report.intact else str(report.problem)


# Which keys of an event's before/after hold which personal field. "name" is a person's name only on the
# entities that belong to a person; elsewhere (a SKU, a warehouse) it is a thing's name.
PERSONAL_KEYS = {"phone": "phone", "receiver_phone": "phone", "customer_phone": "phone", "mobile": "phone",
                 "receiver": "name", "receiver_name": "name", "customer_name": "name",
                 "address": "address", "street": "address", "shipping_address": "address",
                 "email": "email", "id_number": "id_number"}
PERSON_ENTITIES = {"order", "customer", "customer_address", "invoice_profile", "after_sale"}
HIDDEN = "[hidden]"


def visible_values(values, entity_type: str, role: str):
    """Before/after as a reader of `role` may see them: a field hidden to the role shows as [hidden], whatever
    the event stored (masked copies included)."""
    if not isinstance(values, dict):
        return values
    shown = {}
    for key, value in values.items():
        field = PERSONAL_KEYS.get(key) or ("name" if key == "name" and entity_type in PERSON_ENTITIES else None)
        if field is not None and value not in (None, "") and visibility(role, field) is Visibility.HIDDEN:
            shown[key] = HIDDEN
        elif isinstance(value, dict):
            shown[key] = visible_values(value, entity_type, role)
        else:
            shown[key] = value
    return shown
