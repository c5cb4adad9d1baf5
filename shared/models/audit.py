"""Audit events and the access log of personal-data reveals: append-only logs, each sealed into a keyed chain.

A row is written without a place in its chain (seq NULL) and a keyed MAC of its content (row_mac); the
sealer (shared/services/sealing.py) later gives it the next sequence number and a chain MAC. The same
columns make the stock ledger (StockMovement) a chained log too.
"""
from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from shared.extensions import db
from shared.models.types import UTCDateTime
from shared.timekeeping import utc_now

SEAL_COLUMNS = ("seq", "row_mac", "chain_mac", "key_id")


class Sealed:
    """The seal columns of a chained log: filled once by the sealer, never changed after (a trigger refuses it)."""

    seq: Mapped[int | None] = mapped_column(Integer)  # place in the chain, from 1; NULL until sealed
    row_mac: Mapped[str | None] = mapped_column(String(64))  # HMAC of the content, written with the row
    chain_mac: Mapped[str | None] = mapped_column(String(64))  # HMAC of (previous chain MAC, seq, id, row_mac)
    key_id: Mapped[str | None] = mapped_column(String(16))  # which audit key made the MACs

    @staticmethod
    def seal_indexes(table: str) -> tuple:
        """A unique index on seq (no fork of the chain) and a partial one that finds the unsealed rows fast."""
        unsealed = text("seq IS NULL")
        return (Index(f"ix_{table}_seq", "seq", unique=True),
                Index(f"ix_{table}_unsealed", "id", postgresql_where=unsealed, sqlite_where=unsealed))


class AuditEvent(Sealed, db.Model):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_entity", "entity_type", "entity_id", "id"),  # history in commit order
                      *Sealed.seal_indexes("audit_events"))

    id: Mapped[int] = mapped_column(primary_key=True)
    occurred_at = mapped_column(UTCDateTime, default=utc_now, nullable=False, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"), index=True)
    actor_label: Mapped[str] = mapped_column(String(120))
    ip: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64), index=True)
    entity_type: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[str] = mapped_column(String(64))
    before = mapped_column(JSON)
    after = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text)


class AccessLogEntry(Sealed, db.Model):
    __tablename__ = "access_log"
    __table_args__ = Sealed.seal_indexes("access_log")

    id: Mapped[int] = mapped_column(primary_key=True)
    occurred_at = mapped_column(UTCDateTime, default=utc_now, nullable=False, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"), index=True)
    actor_label: Mapped[str] = mapped_column(String(120))
    ip: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    entity_type: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[str] = mapped_column(String(64))
    fields: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(16))  # portal, api, export


class AuditSeal(db.Model):
    """The head of one chained log ("audit", "access", "stock"): written by the sealer only, itself MACed.

    The sealers of one log exclude each other on this row; the commit path never touches it.
    """

    __tablename__ = "audit_seals"

    log: Mapped[str] = mapped_column(String(16), primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    last_mac: Mapped[str] = mapped_column(String(64))
    legacy_seq: Mapped[int] = mapped_column(Integer, default=0)  # audit events chained by the unkeyed sha256 of old
    checkpoints: Mapped[int] = mapped_column(Integer, default=0)  # how many were written to the checkpoint file
    sealed_at = mapped_column(UTCDateTime)
    checkpoint_at = mapped_column(UTCDateTime)
    key_id: Mapped[str | None] = mapped_column(String(16))
    head_mac: Mapped[str | None] = mapped_column(String(64))  # HMAC of the fields above; NULL only when new
    # Retention: rows #1..pruned_seq were archived to a file and deleted; the chain goes on from pruned_mac.
    pruned_seq: Mapped[int] = mapped_column(Integer, default=0, server_default="0", nullable=False)
    pruned_mac: Mapped[str | None] = mapped_column(String(64))


class AuditVerified(db.Model):
    """How far a chained log was last verified in full (shared/services/sealing.py `verify_log(since=...)`): the
    sequence number and chain MAC reached, MACed with the audit key (`sig`) so a row written without the key is not
    trusted. A later verify need walk only the rows sealed after it."""

    __tablename__ = "audit_verified"

    log: Mapped[str] = mapped_column(String(16), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    mac: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(16))
    sig: Mapped[str] = mapped_column(String(64))
    verified_at = mapped_column(UTCDateTime, nullable=False)
