"""Purchasing (issue 15 item 4): suppliers and the SKUs they supply (lead time, safety stock, MOQ, pack size), and
the purchase suggestion runs, one line per SKU and warehouse with the figures and assumptions it was computed from."""
from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.extensions import db
from shared.models.types import UTCDateTime
from shared.timekeeping import utc_now


class Supplier(db.Model):
    """A supplier: where suggestions are mailed, its usual lead time (None: not known yet, nothing can be suggested
    for its SKUs) and its safety stock in days of sales."""

    __tablename__ = "suppliers"
    __table_args__ = (
        CheckConstraint("lead_time_days IS NULL OR lead_time_days > 0", name="lead_time_positive"),
        CheckConstraint("safety_days >= 0", name="safety_days_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    email: Mapped[str | None] = mapped_column(String(200))
    locale: Mapped[str] = mapped_column(String(8), default="zh_CN")  # the language of its mail and sheet
    lead_time_days: Mapped[int | None] = mapped_column(Integer)
    safety_days: Mapped[int] = mapped_column(Integer, default=7)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    updated_at = mapped_column(UTCDateTime, default=utc_now, onupdate=utc_now, nullable=False)

    skus = relationship("SupplierSku", back_populates="supplier", order_by="SupplierSku.id")


class SupplierSku(db.Model):
    """A SKU bought from a supplier (one supplier per SKU: the one suggestions go to), with what overrides the
    supplier's defaults: its own lead time, a safety stock in units instead of days; and how it must be ordered."""

    __tablename__ = "supplier_skus"
    __table_args__ = (
        UniqueConstraint("sku_id"),
        CheckConstraint("lead_time_days IS NULL OR lead_time_days > 0", name="lead_time_positive"),
        CheckConstraint("safety_units IS NULL OR safety_units >= 0", name="safety_units_not_negative"),
        CheckConstraint("moq >= 1", name="moq_positive"),
        CheckConstraint("pack_size >= 1", name="pack_size_positive"),
        Index("ix_supplier_skus_supplier_id", "supplier_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    supplier_id: Mapped[int] = mapped_column(ForeignKey("suppliers.id"))
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"))
    supplier_code: Mapped[str | None] = mapped_column(String(64))  # the supplier's own article number
    lead_time_days: Mapped[int | None] = mapped_column(Integer)
    safety_units: Mapped[int | None] = mapped_column(Integer)
    moq: Mapped[int] = mapped_column(Integer, default=1)
    pack_size: Mapped[int] = mapped_column(Integer, default=1)
    updated_at = mapped_column(UTCDateTime, default=utc_now, onupdate=utc_now, nullable=False)

    supplier = relationship("Supplier", back_populates="skus")
    sku = relationship("Sku")


class PurchaseRun(db.Model):
    """One computation of the suggestions: as of when, over which windows and weights, for which review period.
    `week` is the ISO week (merchant zone) of a scheduled run, unique: the weekly job runs once a week."""

    __tablename__ = "purchase_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    week: Mapped[str | None] = mapped_column(String(10), unique=True)  # "2026-W49" for the weekly run, else NULL
    as_of = mapped_column(UTCDateTime, nullable=False)
    weights: Mapped[str] = mapped_column(String(40))  # "4:0.5,8:0.3,12:0.2": weeks of the window: weight
    review_days: Mapped[int] = mapped_column(Integer)
    actor_label: Mapped[str] = mapped_column(String(120))
    line_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)

    lines = relationship("PurchaseSuggestion", back_populates="run", order_by="PurchaseSuggestion.id")


class PurchaseSuggestion(db.Model):
    """One SKU in one warehouse in one run: the sales it saw, the assumptions used, the stock position and the
    quantity suggested (0: nothing to order). `problem` names why nothing could be computed (no_lead_time)."""

    __tablename__ = "purchase_suggestions"
    __table_args__ = (
        Index("ix_purchase_suggestions_run_id_supplier_id", "run_id", "supplier_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("purchase_runs.id"))
    supplier_id: Mapped[int] = mapped_column(ForeignKey("suppliers.id"))
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"))
    warehouse_id: Mapped[int] = mapped_column(ForeignKey("warehouses.id"))
    sold_4w: Mapped[int] = mapped_column(Integer)
    sold_8w: Mapped[int] = mapped_column(Integer)
    sold_12w: Mapped[int] = mapped_column(Integer)
    velocity = mapped_column(Numeric(12, 3), nullable=False)  # units a day, weighted over the windows
    lead_time_days: Mapped[int | None] = mapped_column(Integer)
    safety_days: Mapped[int | None] = mapped_column(Integer)  # None when the safety stock is given in units
    safety_units: Mapped[int] = mapped_column(Integer)
    on_hand: Mapped[int] = mapped_column(Integer)
    reserved: Mapped[int] = mapped_column(Integer)
    held: Mapped[int] = mapped_column(Integer)
    inbound: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer)  # available (on hand - reserved - held) + inbound
    target: Mapped[int] = mapped_column(Integer)  # demand over lead time + review period, plus safety stock
    moq: Mapped[int] = mapped_column(Integer)
    pack_size: Mapped[int] = mapped_column(Integer)
    suggested: Mapped[int] = mapped_column(Integer)
    problem: Mapped[str | None] = mapped_column(String(20))

    run = relationship("PurchaseRun", back_populates="lines")
    supplier = relationship("Supplier")
    sku = relationship("Sku")
    warehouse = relationship("Warehouse")
