"""What is sold (SKUs) and where it is kept (warehouses)."""
from sqlalchemy import Boolean, CheckConstraint, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.extensions import db
from shared.models.types import UTCDateTime
from shared.timekeeping import utc_now


class Sku(db.Model):
    __tablename__ = "skus"
    __table_args__ = (CheckConstraint("safety_stock >= 0", name="safety_stock_not_negative"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    safety_stock: Mapped[int] = mapped_column(Integer, default=0)
    batch_tracked: Mapped[bool] = mapped_column(Boolean, default=False)
    cold_chain: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")  # ships cold only
    # Made to the buyer's order (定制): an order containing one may need approval (approval rules' condition).
    custom_made: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    # Tax data for invoices (issue 12): the 19-digit 税收分类编码, the short category name printed as
    # *类别简称*商品名, the rate in percent (13, 9, 6, 3, 1, 0), or a tax-free flag (exempt 免税 / untaxed 不征税,
    # rate 0), and the unit (计量单位). An order whose SKUs lack them cannot be invoiced (shared/finance/).
    tax_code: Mapped[str | None] = mapped_column(String(19))
    tax_short_name: Mapped[str | None] = mapped_column(String(40))
    tax_rate: Mapped[int | None] = mapped_column(Integer)
    tax_free: Mapped[str | None] = mapped_column(String(8))
    tax_unit: Mapped[str | None] = mapped_column(String(16))


class Warehouse(db.Model):
    __tablename__ = "warehouses"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    province: Mapped[str] = mapped_column(String(40))
    city: Mapped[str] = mapped_column(String(40))
    cold_chain: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")  # can keep and ship cold
    carriers: Mapped[str] = mapped_column(String(100), default="SF,YTO", server_default="SF,YTO")  # first, backups
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
