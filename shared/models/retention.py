"""Retention: the period per data class an admin set (the defaults and legal bounds live in
shared/services/retention.py) and legal holds that stop purging of one order or one customer."""
from sqlalchemy import ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from shared.extensions import db
from shared.models.types import UTCDateTime
from shared.timekeeping import utc_now

ACTIVE_HOLD = "released_at IS NULL"


class RetentionPolicy(db.Model):
    """One data class's period in days, where an admin changed it from the default."""

    __tablename__ = "retention_policies"

    data_class: Mapped[str] = mapped_column(String(32), primary_key=True)
    days: Mapped[int] = mapped_column(Integer)
    updated_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))


class LegalHold(db.Model):
    """A hold on an order or a customer (a dispute, a court or tax request): nothing of it is anonymised or purged
    while the hold is active. Released holds stay, with who released them and why."""

    __tablename__ = "legal_holds"
    __table_args__ = (Index("ix_legal_holds_active", "entity_type", "entity_id",
                            postgresql_where=text(ACTIVE_HOLD), sqlite_where=text(ACTIVE_HOLD)),)

    id: Mapped[int] = mapped_column(primary_key=True)
    entity_type: Mapped[str] = mapped_column(String(16))  # order, customer
    entity_id: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    placed_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    placed_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    released_at = mapped_column(UTCDateTime)
    released_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    release_reason: Mapped[str | None] = mapped_column(Text)
