"""Fulfilment: bins and lots in warehouses, shipments, waves and pick tasks, handheld devices and their scans,
carrier tracking events, and the alarms raised when a step takes too long."""
from sqlalchemy import (JSON, Boolean, CheckConstraint, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint,
                        text)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.extensions import db
from shared.models.types import UTCDateTime
from shared.timekeeping import utc_now


class Bin(db.Model):
    """A storage location in a warehouse; pick lists walk bins in `walk_order`."""

    __tablename__ = "bins"
    __table_args__ = (UniqueConstraint("warehouse_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    warehouse_id: Mapped[int] = mapped_column(ForeignKey("warehouses.id"))
    code: Mapped[str] = mapped_column(String(32))  # e.g. A-01-03
    walk_order: Mapped[int] = mapped_column(Integer, default=0)
    capacity: Mapped[int] = mapped_column(Integer, default=10_000)


class Lot(db.Model):
    """Units of one SKU received together into one bin; batch-tracked SKUs carry production and expiry dates.

    Picking takes the earliest expiry first, and the earliest receipt where there is no expiry."""

    __tablename__ = "lots"
    __table_args__ = (
        CheckConstraint("quantity >= 0", name="quantity_not_negative"),
        CheckConstraint("allocated >= 0 AND allocated <= quantity", name="allocated_within_quantity"),
        Index("ix_lots_sku_id_warehouse_id_expires_on", "sku_id", "warehouse_id", "expires_on", "received_at"),
        Index("ix_lots_warehouse_id_expires_on", "warehouse_id", "expires_on"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"))
    warehouse_id: Mapped[int] = mapped_column(ForeignKey("warehouses.id"))
    bin_id: Mapped[int] = mapped_column(ForeignKey("bins.id"))
    lot_no: Mapped[str] = mapped_column(String(40))
    produced_on = mapped_column(Date)
    expires_on = mapped_column(Date)
    received_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    quantity: Mapped[int] = mapped_column(Integer, default=0)  # on hand in this bin
    allocated: Mapped[int] = mapped_column(Integer, default=0)  # promised to released pick tasks

    sku = relationship("Sku", lazy="joined")
    bin = relationship("Bin", lazy="joined")


class Wave(db.Model):
    """Allocated orders of one warehouse and carrier before one cut-off, released to the floor together."""

    __tablename__ = "waves"
    __table_args__ = (Index("ix_waves_warehouse_id_status", "warehouse_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    warehouse_id: Mapped[int] = mapped_column(ForeignKey("warehouses.id"))
    carrier_code: Mapped[str] = mapped_column(String(8))
    cutoff_at = mapped_column(UTCDateTime, nullable=False)
    status: Mapped[str] = mapped_column(String(16), default="planned")  # planned, releasing, released, done
    order_count: Mapped[int] = mapped_column(Integer, default=0)
    released_count: Mapped[int] = mapped_column(Integer, default=0)  # progress of a release job
    task_count: Mapped[int] = mapped_column(Integer, default=0)
    short_count: Mapped[int] = mapped_column(Integer, default=0)  # orders no lot could cover (back to allocated)
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    released_at = mapped_column(UTCDateTime)

    warehouse = relationship("Warehouse", lazy="joined")


OPEN_SHIPMENTS_WHERE = "status IN ('allocated', 'waved', 'picking', 'picked', 'packed', 'shipped')"


class Shipment(db.Model):
    """One parcel of an order from one warehouse: allocation, wave, pick, pack, waybill, load, tracking."""

    __tablename__ = "shipments"
    __table_args__ = (
        # The board: open shipments only, oldest allocation first, ship_by carried (migration 0007).
        Index("ix_shipments_open_board", "status", "warehouse_id", "allocated_at", "id",
              postgresql_include=["ship_by"], postgresql_where=text(OPEN_SHIPMENTS_WHERE),
              sqlite_where=text(OPEN_SHIPMENTS_WHERE)),
        Index("ix_shipments_wave_id", "wave_id"),
        Index("ix_shipments_step_last_event_at", "tracking_step", "last_event_at"),
        Index("ix_shipments_carrier_code_shipped_at", "carrier_code", "shipped_at"),  # the carrier scorecard
        UniqueConstraint("waybill_no"),
        # An order is never allocated twice: one open shipment per order and warehouse, by the database (one in
        # all unless the merchant allows split shipments; the order's row lock and status do the rest).
        Index("uq_shipments_open_order", "order_id", "warehouse_id", unique=True,
              postgresql_where=text("status <> 'cancelled'"), sqlite_where=text("status <> 'cancelled'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    warehouse_id: Mapped[int] = mapped_column(ForeignKey("warehouses.id"))
    status: Mapped[str] = mapped_column(String(16), default="allocated")  # allocated, waved, picking, picked,
    #                                                                        packed, shipped, delivered, cancelled
    priority: Mapped[int] = mapped_column(Integer, default=0)
    ship_by = mapped_column(UTCDateTime)
    carrier_code: Mapped[str | None] = mapped_column(String(8))
    waybill_no: Mapped[str | None] = mapped_column(String(40))
    sort_code: Mapped[str | None] = mapped_column(String(40))
    label_html = mapped_column(Text)
    line_ids = mapped_column(JSON)  # the order lines this parcel carries when split; None: every line
    wave_id: Mapped[int | None] = mapped_column(ForeignKey("waves.id"))
    box_code: Mapped[str | None] = mapped_column(String(40))
    truck_code: Mapped[str | None] = mapped_column(String(40))
    allocated_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    picked_at = mapped_column(UTCDateTime)
    packed_at = mapped_column(UTCDateTime)
    shipped_at = mapped_column(UTCDateTime)
    delivered_at = mapped_column(UTCDateTime)
    tracking_step: Mapped[str | None] = mapped_column(String(20))
    tracking_flags: Mapped[str | None] = mapped_column(String(120))  # comma-separated exception flags
    last_event_at = mapped_column(UTCDateTime)
    stalled_at = mapped_column(UTCDateTime)
    # Whether the carrier reported a signed photo (签收图片, Kuaidi100 运单附件 files) at delivery: None where the
    # carrier reports nothing of the kind (then the parcel does not count for photo compliance).
    sign_photo: Mapped[bool | None] = mapped_column(Boolean)

    order = relationship("Order", lazy="joined")
    warehouse = relationship("Warehouse", lazy="joined")


class PickTask(db.Model):
    """Take `quantity` of a lot from its bin for a shipment; the pool hands tasks to handheld devices."""

    __tablename__ = "pick_tasks"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("picked >= 0 AND picked <= quantity", name="picked_within_quantity"),
        Index("ix_pick_tasks_wave_id_walk", "wave_id", "walk_order"),
        Index("ix_pick_tasks_shipment_id", "shipment_id"),
        Index("ix_pick_tasks_status_started_at", "status", "started_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    wave_id: Mapped[int] = mapped_column(ForeignKey("waves.id"))
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id"))
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"))
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"))
    bin_id: Mapped[int] = mapped_column(ForeignKey("bins.id"))
    walk_order: Mapped[int] = mapped_column(Integer, default=0)
    quantity: Mapped[int] = mapped_column(Integer)
    picked: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(12), default="open")  # open, picking, done
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id"))
    started_at = mapped_column(UTCDateTime)
    done_at = mapped_column(UTCDateTime)

    sku = relationship("Sku", lazy="joined")
    lot = relationship("Lot", lazy="joined")
    bin = relationship("Bin", lazy="joined")


class Device(db.Model):
    """A handheld scanner; it authenticates with its own token (stored as SHA-256)."""

    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(60), unique=True)
    warehouse_id: Mapped[int] = mapped_column(ForeignKey("warehouses.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    expires_at = mapped_column(UTCDateTime)  # a token stops working then; registering gives it a lifetime
    revoked_at = mapped_column(UTCDateTime)
    revoked_by: Mapped[str | None] = mapped_column(String(120))
    last_used_at = mapped_column(UTCDateTime)

    warehouse = relationship("Warehouse", lazy="joined")


class ScanEvent(db.Model):
    """Every scan, accepted or refused: who, with which device, where, when, and what it said."""

    __tablename__ = "scan_events"
    __table_args__ = (Index("ix_scan_events_occurred_at", "occurred_at"),
                      Index("ix_scan_events_shipment_id", "shipment_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    operator: Mapped[str] = mapped_column(String(60))
    station: Mapped[str | None] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(12))  # pick, pack, load
    shipment_id: Mapped[int | None] = mapped_column(ForeignKey("shipments.id"))
    payload = mapped_column(JSON, nullable=False)
    accepted: Mapped[bool] = mapped_column(Boolean)
    message: Mapped[str] = mapped_column(String(300))
    # A refusal's code and parameters (shared.services.scans.REFUSALS): the scan log reads them in its reader's
    # language; `message` keeps the English text the handheld was answered with.
    refusal: Mapped[str | None] = mapped_column(String(40))
    refusal_params = mapped_column(JSON)
    occurred_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)

    device = relationship("Device", lazy="joined")


class TrackingEvent(db.Model):
    """One carrier event for a parcel, kept as received (normalised step and flag beside the raw status)."""

    __tablename__ = "tracking_events"
    __table_args__ = (
        UniqueConstraint("shipment_id", "occurred_at", "source", "description_hash"),
        Index("ix_tracking_events_shipment_id_occurred_at", "shipment_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id"))
    occurred_at = mapped_column(UTCDateTime, nullable=False)
    source: Mapped[str] = mapped_column(String(12))
    raw_status: Mapped[str] = mapped_column(String(40))
    step: Mapped[str | None] = mapped_column(String(20))
    flag: Mapped[str | None] = mapped_column(String(20))
    description: Mapped[str] = mapped_column(String(500))
    description_hash: Mapped[str] = mapped_column(String(16))
    location: Mapped[str | None] = mapped_column(String(120))
    received_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)


class CarrierAttempt(db.Model):
    """A waybill request to a carrier and its answer: a refusal and the switch to a backup carrier show here."""

    __tablename__ = "carrier_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id"), index=True)
    carrier_code: Mapped[str] = mapped_column(String(8))
    outcome: Mapped[str] = mapped_column(String(12))  # issued, refused, unavailable
    message: Mapped[str | None] = mapped_column(String(300))
    occurred_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)


class FulfilmentAlarm(db.Model):
    """A step that took too long (not packed 4 h after confirmation, picked but not packed in 12 minutes, a
    stalled parcel), raised once, addressed to the role that must act, resolved when the step happens."""

    __tablename__ = "fulfilment_alarms"
    __table_args__ = (Index("ix_fulfilment_alarms_kind_resolved_at", "kind", "resolved_at"),
                      Index("ix_fulfilment_alarms_shipment_id", "shipment_id"),
                      Index("ix_fulfilment_alarms_order_id_kind", "order_id", "kind"))

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(30))  # not_packed_in_time, pick_not_packed, parcel_stalled, low_stock
    subject: Mapped[str | None] = mapped_column(String(80))  # what it is about when not an order, e.g. sku:TEA
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    shipment_id: Mapped[int | None] = mapped_column(ForeignKey("shipments.id"))
    role: Mapped[str] = mapped_column(String(20))
    message: Mapped[str] = mapped_column(String(500))
    raised_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    resolved_at = mapped_column(UTCDateTime)
    delivered: Mapped[bool] = mapped_column(Boolean, default=False)
    # Staff's handling of it (shared/services/alarms.py): seen by whom and when, and who is on it.
    acknowledged_at = mapped_column(UTCDateTime)
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    assigned_to_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))

    acknowledged_by = relationship("StaffUser", foreign_keys=[acknowledged_by_id])
    assigned_to = relationship("StaffUser", foreign_keys=[assigned_to_id])


class AlarmMute(db.Model):
    """Alarms of a kind (and of one subject or order, when `subject` is set) are not raised until `muted_until`."""

    __tablename__ = "alarm_mutes"
    __table_args__ = (Index("ix_alarm_mutes_kind_muted_until", "kind", "muted_until"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(30))
    subject: Mapped[str | None] = mapped_column(String(80))  # an alarm's subject or "order:<order_no>"; None: all
    muted_until = mapped_column(UTCDateTime, nullable=False)
    muted_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    reason: Mapped[str] = mapped_column(String(300))
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)



class StockTake(db.Model):
    """A count of one warehouse: counted figures per SKU, then a manager's approval before any adjustment."""

    # Not a column: set by a service that held a change for approval instead of making it (approvals.gate).
    approval_request = None
    __tablename__ = "stock_takes"

    id: Mapped[int] = mapped_column(primary_key=True)
    warehouse_id: Mapped[int] = mapped_column(ForeignKey("warehouses.id"))
    status: Mapped[str] = mapped_column(String(12), default="counting")  # counting, submitted, approved, rejected
    started_by: Mapped[str] = mapped_column(String(120))
    started_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    decided_by: Mapped[str | None] = mapped_column(String(120))
    decided_at = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(String(500))

    warehouse = relationship("Warehouse", lazy="joined")
    lines = relationship("StockTakeLine", order_by="StockTakeLine.id", back_populates="stock_take")


class StockTakeLine(db.Model):
    __tablename__ = "stock_take_lines"
    __table_args__ = (UniqueConstraint("stock_take_id", "sku_id"),
                      CheckConstraint("counted IS NULL OR counted >= 0", name="counted_not_negative"))

    id: Mapped[int] = mapped_column(primary_key=True)
    stock_take_id: Mapped[int] = mapped_column(ForeignKey("stock_takes.id"))
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"))
    expected: Mapped[int] = mapped_column(Integer)  # on hand when the shelf was counted (at start until then)
    counted: Mapped[int | None] = mapped_column(Integer)
    counted_by: Mapped[str | None] = mapped_column(String(120))

    sku = relationship("Sku", lazy="joined")
    stock_take = relationship("StockTake", back_populates="lines")

    @property
    def variance(self) -> int | None:
        return None if self.counted is None else self.counted - self.expected
