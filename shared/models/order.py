"""Orders and their lines. Lifecycle, payment and refund are separate fields."""
from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint, false, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.extensions import db
from shared.models.types import EncryptedText, Money, UTCDateTime
from shared.timekeeping import utc_now


OPEN_ORDERS_WHERE = "status IN ('pending_review', 'confirmed', 'allocated', 'picking', 'packed', 'on_hold')"


class Order(db.Model):
    # Not a column: set by a service that held a change for approval instead of making it (approvals.gate).
    approval_request = None
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("channel_id", "channel_order_id"),
        CheckConstraint("total >= 0", name="total_not_negative"),
        Index("ix_orders_placed_at_id", "placed_at", "id"),
        # Covering (PostgreSQL): a status filter with a channel or warehouse, and the list's capped count, read
        # the index only (migration 0007).
        Index("ix_orders_status_placed_at_id", "status", "placed_at", "id",
              postgresql_include=["channel_id", "warehouse_id"]),
        # Orders still being worked on, newest first: a filter by several open statuses reads one index in order.
        Index("ix_orders_open_placed_at_id", "placed_at", "id", postgresql_include=["status", "channel_id",
                                                                                   "warehouse_id"],
              postgresql_where=text(OPEN_ORDERS_WHERE), sqlite_where=text(OPEN_ORDERS_WHERE)),
        Index("ix_orders_channel_id_placed_at_id", "channel_id", "placed_at", "id"),
        Index("ix_orders_warehouse_id_placed_at_id", "warehouse_id", "placed_at", "id"),
        Index("ix_orders_updated_at_id", "updated_at", "id"),
        Index("ix_orders_total_id", "total", "id"),
        Index("ix_orders_status_updated_at", "status", "updated_at"),
        Index("ix_orders_channel_order_id", "channel_order_id"),
        Index("ix_orders_receiver_phone_index", "receiver_phone_index"),
        # the list's search by receiver name and by the phone's last four digits (shared/order_search.py)
        Index("ix_orders_receiver_name_index", "receiver_name_index"),
        Index("ix_orders_receiver_last4_index", "receiver_last4_index"),
        Index("ix_orders_customer_id_placed_at", "customer_id", "placed_at"),
        # reconciliation reads ids and platform statuses of a channel's window from this index alone
        Index("ix_orders_channel_id_platform_modified_at_cover", "channel_id", "platform_modified_at",
              postgresql_include=["channel_order_id", "platform_status"]),
        Index("ix_orders_channel_id_platform_buyer_key", "channel_id", "platform_buyer_key"),
        Index("ix_orders_shipped_at", "shipped_at"),  # the KPI board: orders shipped per day or week
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_no: Mapped[str] = mapped_column(String(20), unique=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    channel_order_id: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    warehouse_id: Mapped[int | None] = mapped_column(ForeignKey("warehouses.id"))
    status: Mapped[str] = mapped_column(String(20), default="pending_review")
    status_before_hold: Mapped[str | None] = mapped_column(String(20))
    hold_reason: Mapped[str | None] = mapped_column(String(500))
    cancel_reason: Mapped[str | None] = mapped_column(String(500))
    payment_status: Mapped[str] = mapped_column(String(20), default="unpaid")
    refund_status: Mapped[str] = mapped_column(String(20), default="none")
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    goods_total = mapped_column(Money, nullable=False)
    shipping_fee = mapped_column(Money, nullable=False)
    discount = mapped_column(Money, nullable=False)
    tax = mapped_column(Money, nullable=False, default=0, server_default="0")  # charged on top of the prices
    # Other charges the buyer pays (WooCommerce fee lines, a COD service fee, a Shopify tip).
    fees = mapped_column(Money, nullable=False, default=0, server_default="0")
    # The buyer pays the courier: unpaid until the cash is collected, shipped all the same (cash_on_delivery.py).
    cash_on_delivery: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())
    total = mapped_column(Money, nullable=False)
    receiver_name = mapped_column(EncryptedText, nullable=False)
    receiver_phone = mapped_column(EncryptedText, nullable=False)
    receiver_phone_index: Mapped[str] = mapped_column(String(64))
    # Keyed hashes (blind-index key) of the normalized receiver name and of the phone's last four digits, for the
    # list's search (customers.receiver_search_indexes); empty for a platform's masked receiver.
    receiver_name_index: Mapped[str | None] = mapped_column(String(64))
    receiver_last4_index: Mapped[str | None] = mapped_column(String(64))
    province: Mapped[str] = mapped_column(String(40))
    city: Mapped[str] = mapped_column(String(40))
    district: Mapped[str] = mapped_column(String(40))
    street = mapped_column(EncryptedText, nullable=False)
    postal_code: Mapped[str | None] = mapped_column(String(12))
    placed_at = mapped_column(UTCDateTime, nullable=False)
    paid_at = mapped_column(UTCDateTime)
    shipped_at = mapped_column(UTCDateTime)
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    updated_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    version: Mapped[int] = mapped_column(Integer, default=1)
    # What the platform last said, and as of when: an older update never overwrites a newer one.
    platform_status: Mapped[str | None] = mapped_column(String(64))
    platform_modified_at = mapped_column(UTCDateTime)
    # Buyer fields the platform sent as its own ciphertext (JSON: field → value as received), encrypted at rest
    # like all personal data; the receiver columns then hold the platform's masked forms. Plain text comes only
    # from the platform's decrypt API, when a person with full visibility reveals or a label needs it.
    platform_ciphertext = mapped_column(EncryptedText)
    # The platform's pseudonymous buyer/address key (OAID, JD desen_mobile, open_address_id), as given.
    platform_buyer_key: Mapped[str | None] = mapped_column(String(200))
    # Set by retention (shared/services/retention.py): the receiver's personal fields were dropped; the order, its
    # money and its history stay.
    anonymised_at = mapped_column(UTCDateTime)

    @property
    def platform_protected(self) -> bool:
        return self.platform_ciphertext is not None

    channel = relationship("Channel", lazy="joined")
    customer = relationship("Customer")
    warehouse = relationship("Warehouse")
    lines = relationship("OrderLine", back_populates="order", order_by="OrderLine.id")
    reservations = relationship("Reservation", order_by="Reservation.id", viewonly=True)

    __mapper_args__ = {"version_id_col": version}


class OrderLine(db.Model):
    __tablename__ = "order_lines"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price >= 0", name="unit_price_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price = mapped_column(Money, nullable=False)
    line_total = mapped_column(Money, nullable=False)

    order = relationship("Order", back_populates="lines")
    sku = relationship("Sku", lazy="joined")
