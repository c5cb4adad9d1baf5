"""Audit events: appended with the action, and chained by hash at commit so that tampering shows."""
import hashlib
import json
from datetime import datetime
from decimal import Decimal

from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from shared import pending
from shared.actors import Actor
from shared.extensions import db
from shared.models import AccessLogEntry, AuditChainHead, AuditEvent
from shared.timekeeping import utc_now

GENESIS = "0" * 64
_PENDING = "orderloom_pending_audit"


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


def record(actor: Actor, action: str, entity_type: str, entity_id, before: dict | None = None,
           after: dict | None = None, reason: str | None = None) -> AuditEvent:
    """Add an audit event to the current transaction; its place in the chain is fixed at commit."""
    audit_event = AuditEvent(
        occurred_at=utc_now(), actor_id=actor.id, actor_label=actor.label, ip=actor.ip, action=action,
        entity_type=entity_type, entity_id=str(entity_id), before=_plain(before), after=_plain(after),
        reason=reason, seq=None, prev_hash="", hash="",
    )
    pending.add(db.session(), _PENDING, audit_event)
    return audit_event


def log_access(actor: Actor, action: str, entity_type: str, entity_id, fields: list[str], channel: str) -> None:
    """Write who saw which personal fields of what, and through which door."""
    db.session.add(AccessLogEntry(
        occurred_at=utc_now(), actor_id=actor.id, actor_label=actor.label, ip=actor.ip, action=action,
        entity_type=entity_type, entity_id=str(entity_id), fields=",".join(sorted(fields)), channel=channel,
    ))


def event_hash(prev_hash: str, audit_event: AuditEvent) -> str:
    payload = {
        "seq": audit_event.seq, "occurred_at": audit_event.occurred_at.isoformat(), "actor_id": audit_event.actor_id,
        "actor_label": audit_event.actor_label, "ip": audit_event.ip, "action": audit_event.action,
        "entity_type": audit_event.entity_type, "entity_id": audit_event.entity_id, "before": audit_event.before,
        "after": audit_event.after, "reason": audit_event.reason,
    }
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


@event.listens_for(Session, "before_commit")
def _seal_pending_events(session: Session) -> None:
    """Lock the chain head, number and hash this transaction's events, and write them.

    Sealing at commit keeps the head row locked for the shortest possible time, so concurrent
    transactions queue on it only for their commit, not for their whole work.
    """
    if session.in_nested_transaction():
        return  # SQLAlchemy fires this when a savepoint is released too; the chain is sealed at the real commit
    events = pending.take(session, _PENDING)
    if not events:
        return
    head = session.execute(
        select(AuditChainHead).where(AuditChainHead.id == 1).with_for_update()
    ).scalar_one()
    seq, prev = head.last_seq, head.last_hash
    for audit_event in events:
        seq += 1
        audit_event.seq = seq
        audit_event.prev_hash = prev
        audit_event.hash = prev = event_hash(prev, audit_event)
        session.add(audit_event)
    session.execute(update(AuditChainHead).where(AuditChainHead.id == 1).values(last_seq=seq, last_hash=prev))
    session.flush()


def verify_chain(batch: int = 5000) -> tuple[bool, int, str | None]:
    """Walk the chain in order; return (intact, events checked, description of the first break)."""
    prev, expected_seq, checked = GENESIS, 1, 0
    while True:
        rows = db.session.execute(
            select(AuditEvent).where(AuditEvent.seq >= expected_seq).order_by(AuditEvent.seq).limit(batch)
        ).scalars().all()
        if not rows:
            break
        for row in rows:
            if row.seq != expected_seq:
                return False, checked, f"event #{expected_seq} is missing"
            if row.prev_hash != prev or event_hash(prev, row) != row.hash:
                return False, checked, f"event #{row.seq} (id {row.id}, {row.action}) does not match its hash"
            prev, expected_seq, checked = row.hash, expected_seq + 1, checked + 1
        db.session.expunge_all()
    head = db.session.get(AuditChainHead, 1)
    if head is not None and (head.last_seq != checked or head.last_hash != prev):
        return False, checked, f"the chain ends at #{checked} but the head says #{head.last_seq}"
    return True, checked, None
