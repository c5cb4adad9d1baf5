"""Finding orders: filters and keyset pagination that stay fast at millions of rows (no OFFSET, no COUNT)."""
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from shared import order_numbers, paging
from shared.extensions import db
from shared.lifecycle import OrderStatus
from shared.models import Channel, Order, Warehouse
from shared.security import crypto
from shared.services.errors import ValidationFailed
from shared.timekeeping import parse_aware

SORTS = {
    "placed_desc": (Order.placed_at, True), "placed_asc": (Order.placed_at, False),
    "total_desc": (Order.total, True), "total_asc": (Order.total, False),
    "updated_desc": (Order.updated_at, True), "updated_asc": (Order.updated_at, False),
}
MAX_LIMIT = 200
EARLIEST_DATE, LATEST_DATE = date(1970, 1, 1), date(9998, 12, 31)


@dataclass
class OrderFilters:
    statuses: list[str] = field(default_factory=list)
    channel: str | None = None
    warehouse: str | None = None
    date_from: date | None = None  # merchant-local calendar dates, inclusive
    date_to: date | None = None
    updated_since: datetime | None = None
    q: str | None = None
    sort: str = "placed_desc"


def parse_filters(args, zone: str) -> OrderFilters:
    """Read filters from query parameters; anything malformed is a clear error, not an empty page."""
    statuses = [s for s in args.getlist("status") if s] if hasattr(args, "getlist") else []
    for status in statuses:
        if status not in OrderStatus.__members__.values():
            raise ValidationFailed(f"unknown status {status!r}", field="status", code="unknown_status")
    sort = args.get("sort") or "placed_desc"
    if sort not in SORTS:
        raise ValidationFailed(f"unknown sort {sort!r}", field="sort")
    filters = OrderFilters(statuses=statuses, channel=(args.get("channel") or "").strip().upper() or None,
                           warehouse=(args.get("warehouse") or "").strip() or None, q=(args.get("q") or "").strip()
                           or None, sort=sort)
    for name in ("date_from", "date_to"):
        raw = args.get(name)
        if raw:
            try:
                day = date.fromisoformat(raw)
                if not EARLIEST_DATE <= day <= LATEST_DATE:  # the next day and the zone shift must stay in range
                    raise ValueError
                setattr(filters, name, day)
            except (ValueError, TypeError):
                raise ValidationFailed(f"{name} must be a date like 2026-11-21", field=name, code="invalid_date")
    if args.get("updated_since"):
        filters.updated_since = parse_aware(args.get("updated_since"), "updated_since")
    if filters.q and len(filters.q) > 64:
        raise ValidationFailed("search text is too long", field="q")
    return filters


def _search_condition(q: str):
    """Order number, channel order id, or a phone number (through its blind index)."""
    upper = q.upper()
    if order_numbers.PATTERN.match(upper):
        return Order.order_no == order_numbers.validate(upper)
    digits = re.sub(r"[\s\-+]", "", q)
    conditions = [Order.channel_order_id == q]
    if digits.isdigit() and 7 <= len(digits) <= 20:
        conditions.append(Order.receiver_phone_index == crypto.blind_index("phone", digits))
    return or_(*conditions)


def search_orders(filters: OrderFilters, zone: str, cursor: str | None = None, limit: int = 50):
    """One page of orders and the cursor of the next page (None on the last)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    column, descending = SORTS[filters.sort]
    query = select(Order).options(selectinload(Order.warehouse))
    if filters.statuses:
        query = query.where(Order.status.in_(filters.statuses))
    if filters.channel:
        channel_id = db.session.execute(select(Channel.id).where(Channel.code == filters.channel)).scalar()
        query = query.where(Order.channel_id == (channel_id or -1))
    if filters.warehouse:
        warehouse_id = db.session.execute(select(Warehouse.id).where(Warehouse.code == filters.warehouse)).scalar()
        query = query.where(Order.warehouse_id == (warehouse_id or -1))
    local = ZoneInfo(zone)
    if filters.date_from:
        query = query.where(Order.placed_at >= datetime.combine(filters.date_from, time.min, local))
    if filters.date_to:
        query = query.where(Order.placed_at < datetime.combine(filters.date_to + timedelta(days=1), time.min, local))
    if filters.updated_since:
        query = query.where(Order.updated_at >= filters.updated_since)
    if filters.q:
        query = query.where(_search_condition(filters.q))
    return paging.page(db.session, query, column, Order.id, cursor, limit, descending)
