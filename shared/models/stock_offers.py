"""Out-of-stock choices (issue 15 item 5): which customer tiers are priority, the settings of the offers (transfer
days, the pre-order coupon rule, whether the customer sees them), the SKUs that stand in for others, the inbound
receipts expected, and the offers made to a waiting order."""
from sqlalchemy import (Boolean, CheckConstraint, Date, ForeignKey, Index, Integer, Numeric, String,
                        UniqueConstraint)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.extensions import db
from shared.models.types import Money, UTCDateTime
from shared.timekeeping import utc_now


class CustomerTier(db.Model):
    """A customer tier as data (customers.tier names one): a priority tier's orders wait with offers instead of
    being refused when out of stock; `offers_on_site` shows those offers to the customer on the customer site."""

    __tablename__ = "customer_tiers"

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(40))
    name_en: Mapped[str] = mapped_column(String(40))
    priority: Mapped[bool] = mapped_column(Boolean, default=False)
    offers_on_site: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)


class StockOfferSettings(db.Model):
    """The one row (id 1) of how offers are computed: a transfer's extra days (handling days plus one day per
    `transfer_km_per_day` km between the warehouses) and the pre-order coupon rule (percent of the line, or a fixed
    amount no larger than the line; none when `coupon_kind` is empty)."""

    __tablename__ = "stock_offer_settings"
    __table_args__ = (CheckConstraint("coupon_kind IN ('percent', 'fixed') OR coupon_kind IS NULL",
                                      name="coupon_kind_known"),
                      CheckConstraint("transfer_km_per_day > 0", name="km_per_day_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    transfer_handling_days: Mapped[int] = mapped_column(Integer, default=1)
    transfer_km_per_day: Mapped[int] = mapped_column(Integer, default=500)
    coupon_kind: Mapped[str | None] = mapped_column(String(8))
    coupon_value = mapped_column(Numeric(12, 2), nullable=False, default=0)
    updated_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)


class SkuSubstitute(db.Model):
    """A SKU that may stand in for another when it is out of stock, at its own unit price (in `currency`)."""

    __tablename__ = "sku_substitutes"
    __table_args__ = (UniqueConstraint("sku_id", "substitute_id"),
                      CheckConstraint("sku_id <> substitute_id", name="substitute_not_itself"))

    id: Mapped[int] = mapped_column(primary_key=True)
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"), index=True)
    substitute_id: Mapped[int] = mapped_column(ForeignKey("skus.id"))
    unit_price = mapped_column(Money, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    rank: Mapped[int] = mapped_column(Integer, default=0)  # lower first

    sku = relationship("Sku", foreign_keys=[sku_id])
    substitute = relationship("Sku", foreign_keys=[substitute_id], lazy="joined")


class ExpectedReceipt(db.Model):
    """An inbound receipt expected (a purchase or transfer on its way): SKU, warehouse, date, quantity, and how many
    of its units pre-orders already promised (never more than the quantity)."""

    __tablename__ = "expected_receipts"
    __table_args__ = (CheckConstraint("quantity > 0", name="receipt_quantity_positive"),
                      CheckConstraint("promised >= 0 AND promised <= quantity", name="promised_within_quantity"),
                      Index("ix_expected_receipts_sku_id_expected_on", "sku_id", "expected_on"))

    id: Mapped[int] = mapped_column(primary_key=True)
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"))
    warehouse_id: Mapped[int] = mapped_column(ForeignKey("warehouses.id"))
    expected_on = mapped_column(Date, nullable=False)
    quantity: Mapped[int] = mapped_column(Integer)
    promised: Mapped[int] = mapped_column(Integer, default=0)
    reference: Mapped[str | None] = mapped_column(String(64))  # the supplier's ASN or PO number
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)

    sku = relationship("Sku")
    warehouse = relationship("Warehouse")


class StockOffer(db.Model):
    """One choice offered for one short line of a waiting order: a transfer (units from another warehouse to the
    shipping one, with the extra days), a pre-order on an expected receipt (its date, a coupon), or a substitute
    SKU (its price difference per unit). open → accepted | stale (the stock came anyway) | withdrawn (another
    choice was taken)."""

    __tablename__ = "stock_offers"
    __table_args__ = (CheckConstraint("kind IN ('transfer', 'pre_order', 'substitute')", name="offer_kind_known"),
                      Index("ix_stock_offers_order_id_status", "order_id", "status"))

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    order_line_id: Mapped[int] = mapped_column(ForeignKey("order_lines.id"))
    exception_id: Mapped[int | None] = mapped_column(ForeignKey("exceptions.id"), index=True)
    kind: Mapped[str] = mapped_column(String(12))
    status: Mapped[str] = mapped_column(String(12), default="open")
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"))  # the line's SKU, or the substitute
    quantity: Mapped[int] = mapped_column(Integer)  # units transferred, pre-ordered or substituted
    from_warehouse_id: Mapped[int | None] = mapped_column(ForeignKey("warehouses.id"))
    to_warehouse_id: Mapped[int | None] = mapped_column(ForeignKey("warehouses.id"))
    extra_days: Mapped[int | None] = mapped_column(Integer)
    receipt_id: Mapped[int | None] = mapped_column(ForeignKey("expected_receipts.id"))
    expected_on = mapped_column(Date)
    coupon = mapped_column(Money)  # the pre-order's coupon, off the order
    unit_price = mapped_column(Money)  # the substitute's
    price_difference = mapped_column(Money)  # per unit: the substitute's price less the line's (may be negative)
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    decided_at = mapped_column(UTCDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(120))
    note: Mapped[str | None] = mapped_column(String(300))

    order = relationship("Order")
    line = relationship("OrderLine")
    sku = relationship("Sku", lazy="joined")
    from_warehouse = relationship("Warehouse", foreign_keys=[from_warehouse_id])
    to_warehouse = relationship("Warehouse", foreign_keys=[to_warehouse_id])
