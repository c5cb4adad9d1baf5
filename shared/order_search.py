"""Finding orders: filters and keyset pagination that stay fast at millions of rows (no OFFSET, no COUNT)."""
import base64
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import literal, or_, select, tuple_
from sqlalchemy.orm import selectinload

from shared import order_numbers
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


def encode_cursor(value, order_id: int) -> str:
    if isinstance(value, datetime):
        value = {"t": value.isoformat()}
    elif isinstance(value, Decimal):
        value = {"d": str(value)}
    raw = json.dumps([value, order_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


MAX_CURSOR_LENGTH = 512
MAX_ID = 2 ** 63 - 1  # BIGINT: a larger id would overflow in the database, not just match nothing


def decode_cursor(cursor: str, expect: type | None = None):
    """(value, id) of a cursor made by encode_cursor; anything else, crafted or truncated, is a 422 on `cursor`.

    `expect`: the type the value must have (datetime or Decimal), so a cursor of one sort cannot be used with
    another (a number compared with a timestamp fails in the database, not here)."""
    try:
        if not isinstance(cursor, str) or len(cursor) > MAX_CURSOR_LENGTH:
            raise ValueError
        value, order_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if isinstance(value, dict) and "t" in value:
            value = datetime.fromisoformat(value["t"])
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError  # encode_cursor writes aware times only
            value.astimezone(UTC)  # out of range once in UTC (year 1 or 9999): OverflowError
        elif isinstance(value, dict) and "d" in value:
            value = Decimal(value["d"])
            if not value.is_finite() or abs(value) >= 10 ** 12:
                raise ValueError
        if isinstance(order_id, bool) or not isinstance(order_id, int) or not 0 <= order_id <= MAX_ID:
            raise ValueError
        if expect is not None and not isinstance(value, expect):
            raise ValueError
        return value, order_id
    except (ValueError, TypeError, OverflowError, RecursionError):
        raise ValidationFailed("the cursor is not valid", field="cursor", code="invalid_cursor") from None


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
    if cursor:
        value, last_id = decode_cursor(cursor, Decimal if column.type.python_type is Decimal else datetime)
        # A row-value comparison walks the (column, id) index directly on PostgreSQL and SQLite.
        position = tuple_(column, Order.id)
        boundary = tuple_(literal(value, column.type), literal(last_id, Order.id.type))
        query = query.where(position < boundary if descending else position > boundary)
    query = query.order_by(column.desc() if descending else column.asc(),
                           Order.id.desc() if descending else Order.id.asc()).limit(limit + 1)
    rows = db.session.execute(query).scalars().all()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor(getattr(last, column.key), last.id)
    return rows, next_cursor
