"""After-sales requests (售后): one request per customer ask on one order, its lines (which SKU, how many, why), the
photos the customer sent, and the merchant-edited data that rules them: the reasons offered and the return windows
per channel and SKU. The states are shared/after_sales_lifecycle.py; every change is shared/services/after_sales.py."""
from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.extensions import db
from shared.models.types import EncryptedBlob, Money, UTCDateTime
from shared.timekeeping import utc_now


class AfterSale(db.Model):
    """One after-sales request: its type (refund_only, return_refund, exchange, resend), state and the answers given
    on the way (decline reason, how the goods come back, the refund recorded)."""

    __tablename__ = "after_sales"
    __table_args__ = (
        Index("ix_after_sales_order_id", "order_id"),
        Index("ix_after_sales_customer_id", "customer_id"),
        Index("ix_after_sales_status_due_at", "status", "due_at"),
        Index("ix_after_sales_created_at_id", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    type: Mapped[str] = mapped_column(String(16))  # shared.after_sales_lifecycle.TYPES
    status: Mapped[str] = mapped_column(String(20), default="requested")
    requested_by: Mapped[str] = mapped_column(String(80))  # the actor label: customer:<id> or a staff username
    via: Mapped[str] = mapped_column(String(12))  # customer (their site) or staff (on the customer's behalf)
    decline_reason: Mapped[str | None] = mapped_column(String(500))
    cancel_reason: Mapped[str | None] = mapped_column(String(500))
    close_reason: Mapped[str | None] = mapped_column(String(500))
    # How the goods come back (awaiting_return): pickup (上门取件, at pickup_at), drop_off (to return_address), none.
    return_method: Mapped[str | None] = mapped_column(String(12))
    pickup_at = mapped_column(UTCDateTime)
    return_address: Mapped[str | None] = mapped_column(String(300))
    refund_amount = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    updated_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    decided_at = mapped_column(UTCDateTime)
    received_at = mapped_column(UTCDateTime)
    inspected_at = mapped_column(UTCDateTime)
    refunded_at = mapped_column(UTCDateTime)
    closed_at = mapped_column(UTCDateTime)
    # The merchant's side of the current state is due then (None: the customer's turn, or finished); the state whose
    # due time passed and was raised as an exception, so the check raises each state's breach once.
    due_at = mapped_column(UTCDateTime)
    overdue_state: Mapped[str | None] = mapped_column(String(20))
    # The goods sent out again (exchange → replaced, resend → resent): a zero-price order of the after-sales channel
    # that the floor allocates, picks, packs and ships like any other; one per request.
    replacement_order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), unique=True)
    version: Mapped[int] = mapped_column(Integer, default=1)

    order = relationship("Order", foreign_keys=[order_id])
    replacement = relationship("Order", foreign_keys=[replacement_order_id])
    lines = relationship("AfterSaleLine", back_populates="after_sale", order_by="AfterSaleLine.id")
    photos = relationship("AfterSalePhoto", order_by="AfterSalePhoto.id", viewonly=True)

    __mapper_args__ = {"version_id_col": version}


class AfterSaleLine(db.Model):
    """One SKU of the order in a request: how many, why, and what the inspection found."""

    __tablename__ = "after_sale_lines"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),
                      UniqueConstraint("after_sale_id", "sku_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    after_sale_id: Mapped[int] = mapped_column(ForeignKey("after_sales.id"), index=True)
    order_line_id: Mapped[int] = mapped_column(ForeignKey("order_lines.id"))
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    reason_code: Mapped[str] = mapped_column(String(32))
    passed: Mapped[bool | None] = mapped_column(Boolean)  # None until inspected
    restocked: Mapped[bool | None] = mapped_column(Boolean)
    inspection_note: Mapped[str | None] = mapped_column(String(500))

    after_sale = relationship("AfterSale", back_populates="lines")
    sku = relationship("Sku", lazy="joined")


class AfterSalePhoto(db.Model):
    """A photo the customer sent with the request (JPEG, PNG or WebP by its bytes, at most 5 MB), encrypted at rest
    like every file that may show personal data (a label, a face)."""

    __tablename__ = "after_sale_photos"

    id: Mapped[int] = mapped_column(primary_key=True)
    after_sale_id: Mapped[int] = mapped_column(ForeignKey("after_sales.id"), index=True)
    content_type: Mapped[str] = mapped_column(String(20))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    data = mapped_column(EncryptedBlob, nullable=False)
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)


class AfterSaleReason(db.Model):
    """A reason the customer may give (七天无理由, 商品破损, ...), in both languages; the merchant edits the list."""

    __tablename__ = "after_sale_reasons"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    label_zh: Mapped[str] = mapped_column(String(60))
    label_en: Mapped[str] = mapped_column(String(80))
    position: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)


class AfterSalePolicy(db.Model):
    """The return window in days after delivery, and whether the goods are final sale, for a channel and/or a SKU
    (None: any). The most specific row wins: channel and SKU, then SKU, then channel, then the default row."""

    __tablename__ = "after_sale_policies"
    __table_args__ = (CheckConstraint("return_days >= 0", name="return_days_not_negative"),
                      UniqueConstraint("channel_id", "sku_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id"))
    sku_id: Mapped[int | None] = mapped_column(ForeignKey("skus.id"))
    return_days: Mapped[int] = mapped_column(Integer)
    final_sale: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)

    channel = relationship("Channel")
    sku = relationship("Sku")
