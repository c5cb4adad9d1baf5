"""Sales channels: the platforms and stores orders come from."""
from sqlalchemy import Boolean, CheckConstraint, Date, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.extensions import db
from shared.models.types import UTCDateTime
from shared.timekeeping import utc_now

CHANNEL_KINDS = ("taobao", "jd", "pinduoduo", "douyin", "wechat", "own_shop", "shopify", "woocommerce", "offline")
DIRECT_KINDS = ("own_shop", "offline", "wechat")


class Channel(db.Model):
    __tablename__ = "channels"
    __table_args__ = (CheckConstraint("length(code) = 2", name="code_two_letters"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(2), unique=True)
    name: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(20))
    timezone: Mapped[str] = mapped_column(String(40), default="Asia/Shanghai")
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)

    @property
    def is_direct(self) -> bool:
        """Direct channels (own shop, offline, mini program) may create orders through the API."""
        return self.kind in DIRECT_KINDS


class OrderNumberSequence(db.Model):
    """Daily counter per channel for internal order numbers, advanced by one atomic upsert."""

    __tablename__ = "order_number_sequences"

    channel_code: Mapped[str] = mapped_column(String(2), primary_key=True)
    local_date = mapped_column(Date, primary_key=True)
    last_value: Mapped[int] = mapped_column(Integer, default=0)
