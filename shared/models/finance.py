"""Finance: invoice profiles (发票抬头) of customers. The rules (tax ids, GBK byte limits, who may ask for 专票) live
in shared/finance/; the invoices themselves in shared/models/invoices.py."""
from sqlalchemy import Boolean, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.extensions import db
from shared.models.types import EncryptedText, UTCDateTime
from shared.timekeeping import utc_now

PROFILE_KINDS = ("enterprise", "institution", "individual", "other")  # 企业 / 机关事业单位 / 个人 / 其他


class InvoiceProfile(db.Model):
    """A buyer an invoice can be made out to: the customer keeps theirs on the customer site, staff keep B2B
    buyers' (created_by "staff"). What may be personal (an individual's name, phone, address, bank account, email)
    is encrypted; the tax id is kept exactly as typed (spaces removed, upper-cased), never otherwise changed."""

    __tablename__ = "invoice_profiles"
    __table_args__ = (Index("ix_invoice_profiles_customer_id", "customer_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    kind: Mapped[str] = mapped_column(String(16))
    name = mapped_column(EncryptedText, nullable=False)
    tax_id: Mapped[str | None] = mapped_column(String(20))
    address = mapped_column(EncryptedText)
    phone = mapped_column(EncryptedText)
    bank = mapped_column(EncryptedText)
    account = mapped_column(EncryptedText)
    email = mapped_column(EncryptedText)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(String(16), default="customer")  # customer, staff
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    updated_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
