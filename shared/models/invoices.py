"""Invoices (issue 12): a request for one buyer's order(s), its parts (one per provider invoice) and their lines.
The figures come from shared/finance/invoice_math.py, the states from shared/finance/invoice_lifecycle.py."""
from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.extensions import db
from shared.models.types import EncryptedText, Money, UTCDateTime
from shared.timekeeping import utc_now


class InvoiceRequest(db.Model):
    """What was asked: the buyer (a snapshot of the profile as it was when asked; personal parts encrypted), the kind
    (normal 普票 / special 专票), our serial (unique, sent to the provider as its order number), the state."""

    __tablename__ = "invoice_requests"
    __table_args__ = (Index("ix_invoice_requests_status_id", "status", "id"),
                      Index("ix_invoice_requests_customer_id", "customer_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    serial: Mapped[str] = mapped_column(String(32), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    # The profile it was made from; the request keeps its own snapshot, so deleting the profile leaves it (SET NULL).
    profile_id: Mapped[int | None] = mapped_column(ForeignKey("invoice_profiles.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(8))  # normal, special
    status: Mapped[str] = mapped_column(String(16), default="requested")
    buyer_kind: Mapped[str] = mapped_column(String(16))
    buyer_name = mapped_column(EncryptedText, nullable=False)
    buyer_tax_id: Mapped[str | None] = mapped_column(String(20))
    buyer_address_phone = mapped_column(EncryptedText)
    buyer_bank_account = mapped_column(EncryptedText)
    buyer_email = mapped_column(EncryptedText)
    total_gross = mapped_column(Money, nullable=False)
    total_amount = mapped_column(Money, nullable=False)
    total_tax = mapped_column(Money, nullable=False)
    failure_reason: Mapped[str | None] = mapped_column(String(300))
    held_reason: Mapped[str | None] = mapped_column(String(300))  # e.g. over the credit line (超授信额度)
    requested_by: Mapped[str] = mapped_column(String(80))  # the actor's label
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    updated_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)

    orders = relationship("InvoiceRequestOrder", order_by="InvoiceRequestOrder.id", cascade="all, delete-orphan")
    parts = relationship("InvoicePart", order_by="InvoicePart.position", back_populates="request",
                         cascade="all, delete-orphan")


class InvoiceRequestOrder(db.Model):
    __tablename__ = "invoice_request_orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("invoice_requests.id"), index=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)

    order = relationship("Order")


class InvoicePart(db.Model):
    """One provider invoice of a request: its own serial (the request's serial + "-" + position), the 20-digit
    number once issued, its figures, the provider's links, the provider's PDF when it sent one, our rendered one."""

    __tablename__ = "invoice_parts"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("invoice_requests.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    serial: Mapped[str] = mapped_column(String(40), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    provider_serial: Mapped[str | None] = mapped_column(String(64))  # the provider's invoiceSerialNum
    number: Mapped[str | None] = mapped_column(String(20), unique=True)
    issued_at = mapped_column(UTCDateTime)
    total_gross = mapped_column(Money, nullable=False)
    total_amount = mapped_column(Money, nullable=False)
    total_tax = mapped_column(Money, nullable=False)
    total_in_words: Mapped[str] = mapped_column(String(80))
    pdf_url: Mapped[str | None] = mapped_column(String(500))
    ofd_url: Mapped[str | None] = mapped_column(String(500))
    xml_url: Mapped[str | None] = mapped_column(String(500))
    provider_pdf = mapped_column(LargeBinary)
    rendered_pdf = mapped_column(LargeBinary)
    failure_reason: Mapped[str | None] = mapped_column(String(300))
    provider_answers = mapped_column(JSON)  # the last answer, as received (a double answer is kept, not applied)

    request = relationship("InvoiceRequest", back_populates="parts")
    lines = relationship("InvoiceLineRow", order_by="InvoiceLineRow.position", cascade="all, delete-orphan")
    reds = relationship("RedLetter", order_by="RedLetter.id", back_populates="part")


class InvoiceLineRow(db.Model):
    __tablename__ = "invoice_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    part_id: Mapped[int] = mapped_column(ForeignKey("invoice_parts.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10))  # goods, discount, shipping
    name: Mapped[str] = mapped_column(String(300))
    tax_code: Mapped[str] = mapped_column(String(19))
    rate: Mapped[int] = mapped_column(Integer)
    tax_free: Mapped[str | None] = mapped_column(String(8))
    spec: Mapped[str] = mapped_column(String(100), default="")
    unit: Mapped[str] = mapped_column(String(16), default="")
    quantity: Mapped[str | None] = mapped_column(String(24))  # Decimal as text: quantities may be fractional
    unit_price: Mapped[str | None] = mapped_column(String(24))
    gross = mapped_column(Money, nullable=False)
    amount = mapped_column(Money, nullable=False)
    tax = mapped_column(Money, nullable=False)
    ref: Mapped[str] = mapped_column(Text, default="")


class RedLetter(db.Model):
    """A red-letter reversal (红字) of one issued blue part: the 红字确认单 (reason, full or partial, its negative
    figures and lines) the provider confirms, then the red invoice with its own 20-digit number, linked to the blue
    one by original_number. States in shared/finance/invoice_lifecycle.py (RED_LETTER)."""

    __tablename__ = "red_letters"

    id: Mapped[int] = mapped_column(primary_key=True)
    part_id: Mapped[int] = mapped_column(ForeignKey("invoice_parts.id"), index=True)
    serial: Mapped[str] = mapped_column(String(40), unique=True)  # ours, sent as the 确认单's billNo
    reason: Mapped[str] = mapped_column(String(16))  # return 销货退回, error 开票有误, stopped 服务中止, allowance 销售折让
    full: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="requested")
    confirmation_no: Mapped[str | None] = mapped_column(String(64))  # the provider's 确认单 id
    number: Mapped[str | None] = mapped_column(String(20), unique=True)  # the red invoice's own number
    original_number: Mapped[str] = mapped_column(String(20))  # the blue invoice reversed
    total_gross = mapped_column(Money, nullable=False)  # negative
    total_amount = mapped_column(Money, nullable=False)
    total_tax = mapped_column(Money, nullable=False)
    total_in_words: Mapped[str] = mapped_column(String(80))
    lines = mapped_column(JSON, nullable=False)  # [{"position" (the blue line's), "gross", "amount", "tax", ...}]
    failure_reason: Mapped[str | None] = mapped_column(String(300))
    requested_by: Mapped[str] = mapped_column(String(80))
    issued_at = mapped_column(UTCDateTime)
    pdf_url: Mapped[str | None] = mapped_column(String(500))  # the provider's link to its PDF of the red invoice
    provider_pdf = mapped_column(LargeBinary)  # the provider's own PDF when it sent one (served before ours)
    rendered_pdf = mapped_column(LargeBinary)
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    updated_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)

    part = relationship("InvoicePart", back_populates="reds")
