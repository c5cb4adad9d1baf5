"""Parcels seen from the customer's side (issue 13 items 2 and 5): transit-time estimates learned from the merchant's
own deliveries, the courier a carrier names for a parcel, each warehouse's return address, and return pickups
(上门取件) booked with a carrier, with the return parcel's tracking events."""
from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.extensions import db
from shared.models.types import EncryptedText, UTCDateTime
from shared.timekeeping import utc_now

ANY = "*"  # origin and destination of a carrier-wide estimate


class TransitEstimate(db.Model):
    """Shipped → delivered times of one carrier on one route (origin province → destination province), or carrier-wide
    (both `*`), over the recent window: how many deliveries, their median and 90th percentile, in seconds. Written
    by the periodic refresh in sets; read by the order page (one row by primary key)."""

    __tablename__ = "transit_estimates"

    carrier_code: Mapped[str] = mapped_column(String(8), primary_key=True)
    origin_province: Mapped[str] = mapped_column(String(40), primary_key=True)
    destination_province: Mapped[str] = mapped_column(String(40), primary_key=True)
    deliveries: Mapped[int] = mapped_column(Integer)
    median_seconds: Mapped[int] = mapped_column(Integer)
    p90_seconds: Mapped[int] = mapped_column(Integer)
    computed_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)


class ParcelCourier(db.Model):
    """The courier a carrier named for a parcel (Kuaidi100 `courierInfo`): the pickup and the delivery courier, the
    phones encrypted like any personal data."""

    __tablename__ = "parcel_couriers"

    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id"), primary_key=True)
    pickup_name: Mapped[str | None] = mapped_column(String(60))
    pickup_phone = mapped_column(EncryptedText)
    delivery_name: Mapped[str | None] = mapped_column(String(60))
    delivery_phone = mapped_column(EncryptedText)
    source: Mapped[str] = mapped_column(String(12))
    seen_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)


class WarehouseReturnAddress(db.Model):
    """Where returns to a warehouse go: the receiver a return e-waybill names (the merchant's, not a buyer's)."""

    __tablename__ = "warehouse_return_addresses"

    warehouse_id: Mapped[int] = mapped_column(ForeignKey("warehouses.id"), primary_key=True)
    receiver: Mapped[str] = mapped_column(String(60))
    phone: Mapped[str] = mapped_column(String(32))
    province: Mapped[str] = mapped_column(String(40))
    city: Mapped[str] = mapped_column(String(40))
    district: Mapped[str] = mapped_column(String(40))
    street: Mapped[str] = mapped_column(String(200))
    updated_by: Mapped[str] = mapped_column(String(120))
    updated_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)

    warehouse = relationship("Warehouse", lazy="joined")


class ReturnPickup(db.Model):
    """A return parcel collected at the customer's door (上门取件): booked with a carrier for a time slot, its return
    e-waybill (the customer as sender, the warehouse's return address as receiver), the courier the carrier
    assigned, and its tracking like any parcel. `after_sale_id` links the after-sales request (an integer for now;
    the after-sales tables are another module's)."""

    __tablename__ = "return_pickups"
    __table_args__ = (
        UniqueConstraint("serial"),
        UniqueConstraint("waybill_no"),
        Index("ix_return_pickups_order_id", "order_id"),
        Index("ix_return_pickups_after_sale_id", "after_sale_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    serial: Mapped[str] = mapped_column(String(32))  # our order code for the carrier (thirdOrderId): idempotency
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    after_sale_id: Mapped[int | None] = mapped_column(Integer)
    warehouse_id: Mapped[int] = mapped_column(ForeignKey("warehouses.id"))
    carrier_code: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), default="booked")  # booked, collected, in_transit, received,
    #                                                                     cancelled
    task_id: Mapped[str | None] = mapped_column(String(64))
    provider_order_id: Mapped[str | None] = mapped_column(String(64))
    waybill_no: Mapped[str | None] = mapped_column(String(40))
    slot_start = mapped_column(UTCDateTime, nullable=False)
    slot_end = mapped_column(UTCDateTime, nullable=False)
    sender_name = mapped_column(EncryptedText, nullable=False)
    sender_phone = mapped_column(EncryptedText, nullable=False)
    sender_province: Mapped[str] = mapped_column(String(40))
    sender_city: Mapped[str] = mapped_column(String(40))
    sender_district: Mapped[str] = mapped_column(String(40))
    sender_street = mapped_column(EncryptedText, nullable=False)
    lines_summary: Mapped[str] = mapped_column(String(300))
    courier_name: Mapped[str | None] = mapped_column(String(60))
    courier_phone = mapped_column(EncryptedText)
    tracking_step: Mapped[str | None] = mapped_column(String(20))
    tracking_flags: Mapped[str | None] = mapped_column(String(120))
    last_event_at = mapped_column(UTCDateTime)
    received_at = mapped_column(UTCDateTime)
    cancelled_at = mapped_column(UTCDateTime)
    cancel_reason: Mapped[str | None] = mapped_column(String(200))
    created_by: Mapped[str] = mapped_column(String(120))
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    updated_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)

    order = relationship("Order", lazy="joined")
    warehouse = relationship("Warehouse", lazy="joined")


class ReturnPickupEvent(db.Model):
    """One carrier event of a return parcel, kept as received (the same shape as a shipment's tracking events)."""

    __tablename__ = "return_pickup_events"
    __table_args__ = (UniqueConstraint("pickup_id", "occurred_at", "source", "description_hash",
                                       name="uq_return_pickup_events_event"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    pickup_id: Mapped[int] = mapped_column(ForeignKey("return_pickups.id"))
    occurred_at = mapped_column(UTCDateTime, nullable=False)
    source: Mapped[str] = mapped_column(String(12))
    raw_status: Mapped[str] = mapped_column(String(40))
    step: Mapped[str | None] = mapped_column(String(20))
    flag: Mapped[str | None] = mapped_column(String(20))
    description: Mapped[str] = mapped_column(String(500))
    description_hash: Mapped[str] = mapped_column(String(16))
    location: Mapped[str | None] = mapped_column(String(120))
    received_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
