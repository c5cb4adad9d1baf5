"""Customers and their saved addresses; personal data is encrypted, phone and email found by blind index."""
from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.extensions import db
from shared.models.types import EncryptedText, UTCDateTime
from shared.timekeeping import utc_now


class Customer(db.Model):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name = mapped_column(EncryptedText, nullable=False)
    phone = mapped_column(EncryptedText, nullable=False)
    phone_index: Mapped[str] = mapped_column(String(64), index=True)
    email = mapped_column(EncryptedText)
    email_index: Mapped[str | None] = mapped_column(String(64), unique=True)
    id_number = mapped_column(EncryptedText)
    # "<platform>:<key>" for a buyer known only by the platform's pseudonymous key (OAID, open_address_id...);
    # phone_index then holds the keyed hash of it, so orders of one buyer find one customer without plain text.
    platform_buyer_key: Mapped[str | None] = mapped_column(String(220), index=True)
    tier: Mapped[str] = mapped_column(String(16), default="standard")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until = mapped_column(UTCDateTime)
    locale: Mapped[str] = mapped_column(String(8), default="zh_CN")
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    session_generation: Mapped[int] = mapped_column(Integer, default=0)  # raised to end every session
    anonymised_at = mapped_column(UTCDateTime)  # retention dropped the personal fields and closed the account

    addresses = relationship("CustomerAddress", back_populates="customer", order_by="CustomerAddress.id")

    # Flask-Login protocol for the customer site.
    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        return f"customer:{self.id}"


class CustomerAddress(db.Model):
    __tablename__ = "customer_addresses"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    receiver = mapped_column(EncryptedText, nullable=False)
    phone = mapped_column(EncryptedText, nullable=False)
    province: Mapped[str] = mapped_column(String(40))
    city: Mapped[str] = mapped_column(String(40))
    district: Mapped[str] = mapped_column(String(40))
    street = mapped_column(EncryptedText, nullable=False)
    postal_code: Mapped[str | None] = mapped_column(String(12))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)

    customer = relationship("Customer", back_populates="addresses")


class GuestLookupLock(db.Model):
    """Wrong last-four tries at one order's guest look-up: five within the window lock it for an hour, from
    every address at once (a per-address limit alone lets many addresses guess one order)."""

    __tablename__ = "guest_lookup_locks"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), unique=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at = mapped_column(UTCDateTime, nullable=False)
    locked_until = mapped_column(UTCDateTime)
