"""Customer self-service (issue 13 items 3 and 6): requests before shipping, the per-order message thread with
customer service, the customer notification outbox (mail and simulated SMS), and guests' one-time codes."""
from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.extensions import db
from shared.models.types import EncryptedText, UTCDateTime
from shared.timekeeping import utc_now


class CustomerRequest(db.Model):
    """A customer's request on an order that the warehouse answers (a cancel once stock is allocated): pending,
    then approved (the order cancelled) or declined with the reason the customer reads. The exception it raised
    carries the SLA the warehouse answers within."""

    __tablename__ = "customer_requests"
    __table_args__ = (Index("ix_customer_requests_order_id", "order_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))  # None: a guest with a code
    kind: Mapped[str] = mapped_column(String(20))  # cancel
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending, approved, declined
    reason: Mapped[str | None] = mapped_column(String(500))  # the customer's
    answer: Mapped[str | None] = mapped_column(String(500))  # staff's reason when declined
    exception_id: Mapped[int | None] = mapped_column(ForeignKey("exceptions.id"))
    requested_by: Mapped[str] = mapped_column(String(80))
    decided_by: Mapped[str | None] = mapped_column(String(80))
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    decided_at = mapped_column(UTCDateTime)

    order = relationship("Order")


class OrderMessage(db.Model):
    """One message of an order's thread with customer service; the body is encrypted at rest (customers write
    addresses and phone numbers into messages)."""

    __tablename__ = "order_messages"
    __table_args__ = (Index("ix_order_messages_order_id_id", "order_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    exception_id: Mapped[int | None] = mapped_column(ForeignKey("exceptions.id"))
    author: Mapped[str] = mapped_column(String(10))  # customer or staff
    author_label: Mapped[str] = mapped_column(String(120))
    body = mapped_column(EncryptedText, nullable=False)
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)


class CustomerNotification(db.Model):
    """The customer notification outbox: one row per message to send (email, or a simulated SMS), rendered from
    its message code and parameters in the customer's language when sent; queued → sent | failed, retried by the
    job with a growing pause. `dedupe_key` makes an event notified once (a parcel delivered twice mails once)."""

    __tablename__ = "customer_notifications"
    __table_args__ = (Index("ix_customer_notifications_status_next_attempt_at", "status", "next_attempt_at"),
                      Index("ix_customer_notifications_created_at_id", "created_at", "id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    channel: Mapped[str] = mapped_column(String(8))  # email or sms
    recipient = mapped_column(EncryptedText, nullable=False)
    event: Mapped[str] = mapped_column(String(40))
    params = mapped_column(EncryptedText)  # JSON; encrypted: a guest code travels in it
    locale: Mapped[str] = mapped_column(String(8), default="zh_CN")
    status: Mapped[str] = mapped_column(String(10), default="queued")  # queued, sent, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(300))
    dedupe_key: Mapped[str | None] = mapped_column(String(120), unique=True)
    next_attempt_at = mapped_column(UTCDateTime)
    sent_at = mapped_column(UTCDateTime)
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)


class GuestCode(db.Model):
    """A one-time code a guest asked for to act on an order: 6 digits, only its keyed hash kept, 10 minutes,
    5 tries, used once."""

    __tablename__ = "guest_codes"
    __table_args__ = (Index("ix_guest_codes_order_id_created_at", "order_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    channel: Mapped[str] = mapped_column(String(8))  # email or sms
    code_hash: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    expires_at = mapped_column(UTCDateTime, nullable=False)
    used_at = mapped_column(UTCDateTime)
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
