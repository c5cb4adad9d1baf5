"""Stock per SKU and warehouse, reservations held by orders, and the append-only movement ledger."""
from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.extensions import db
from shared.models.audit import Sealed
from shared.models.types import UTCDateTime
from shared.timekeeping import utc_now


class StockLevel(db.Model):
    """available = on_hand - reserved - held; the database itself refuses any row where that is negative.

    `available` is the one definition of the figure: a number on a loaded row, the same SQL expression in a
    query (`StockLevel.available >= q`, `func.sum(StockLevel.available)`)."""

    __tablename__ = "stock_levels"
    __table_args__ = (
        UniqueConstraint("sku_id", "warehouse_id"),
        CheckConstraint("on_hand >= 0", name="on_hand_not_negative"),
        CheckConstraint("reserved >= 0", name="reserved_not_negative"),
        CheckConstraint("held >= 0", name="held_not_negative"),
        CheckConstraint("on_hand - reserved - held >= 0", name="available_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"))
    warehouse_id: Mapped[int] = mapped_column(ForeignKey("warehouses.id"), index=True)
    on_hand: Mapped[int] = mapped_column(Integer, default=0)
    reserved: Mapped[int] = mapped_column(Integer, default=0)
    held: Mapped[int] = mapped_column(Integer, default=0)
    updated_at = mapped_column(UTCDateTime, default=utc_now, onupdate=utc_now, nullable=False)

    sku = relationship("Sku")
    warehouse = relationship("Warehouse")

    @hybrid_property
    def available(self) -> int:
        return self.on_hand - self.reserved - self.held


RESERVATION_STATUSES = ("active", "released", "consumed")


class Reservation(db.Model):
    __tablename__ = "reservations"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        Index("ix_reservations_status_expires_at", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    order_line_id: Mapped[int] = mapped_column(ForeignKey("order_lines.id"))
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"))
    warehouse_id: Mapped[int] = mapped_column(ForeignKey("warehouses.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12), default="active")
    expires_at = mapped_column(UTCDateTime)
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    closed_at = mapped_column(UTCDateTime)

    sku = relationship("Sku")
    warehouse = relationship("Warehouse")


MOVEMENT_KINDS = ("receipt", "adjustment", "shipment", "return", "transfer_in", "transfer_out", "stocktake")


class StockMovement(Sealed, db.Model):
    """One row per change of on-hand stock; never updated or deleted (a trigger refuses it), sealed into a chain."""

    __tablename__ = "stock_movements"
    __table_args__ = (
        CheckConstraint("delta <> 0", name="delta_not_zero"),
        Index("ix_stock_movements_sku_id_warehouse_id", "sku_id", "warehouse_id", "id"),
        Index("ix_stock_movements_kind_id", "kind", "id"),  # the stock-operations page lists by kind
        Index("ix_stock_movements_warehouse_id_id", "warehouse_id", "id"),
        *Sealed.seal_indexes("stock_movements"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"))
    warehouse_id: Mapped[int] = mapped_column(ForeignKey("warehouses.id"))
    delta: Mapped[int] = mapped_column(Integer)
    on_hand_after: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(500))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)

    sku = relationship("Sku")
    warehouse = relationship("Warehouse")
