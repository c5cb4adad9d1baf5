"""What staff add to an order or a customer: notes (free text, escaped on output) and tags (a small vocabulary)."""
from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.extensions import db
from shared.models.types import UTCDateTime
from shared.timekeeping import utc_now


class OrderNote(db.Model):
    __tablename__ = "order_notes"
    __table_args__ = (Index("ix_order_notes_order_id_id", "order_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    body: Mapped[str] = mapped_column(String(1000))
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)

    author = relationship("StaffUser")


class OrderTag(db.Model):
    __tablename__ = "order_tags"
    __table_args__ = (UniqueConstraint("order_id", "tag"), Index("ix_order_tags_tag_order_id", "tag", "order_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    tag: Mapped[str] = mapped_column(String(30))
    added_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    added_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)


class CustomerNote(db.Model):
    __tablename__ = "customer_notes"
    __table_args__ = (Index("ix_customer_notes_customer_id_id", "customer_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    body: Mapped[str] = mapped_column(String(1000))
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)

    author = relationship("StaffUser")
