"""Keyset paging, the one way long lists are paged: `(sort column, id)` row-value comparisons, never OFFSET.

A cursor is the sort value and id of the last row shown, base64url JSON; a page is read forward after a cursor
(`page`) or backward before one (`window` with `back=`), both from the same index in the same number of rows.

A cursor that does not decode, or whose value is not of the sort column's kind (a number where a time is sorted,
a time without a zone), is refused with 422 `invalid_cursor` before any query runs.
"""
import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import and_, bindparam, literal, tuple_

from shared.services.errors import ValidationFailed
from shared.services.validation import N_, say

# What a person reads when this module refuses: message codes, said in the reader's language (say).
INVALID_CURSOR = N_("The cursor is not valid")

MAX_CURSOR_LENGTH = 512
MAX_ID = 2 ** 63 - 1  # BIGINT: a larger id would overflow in the database, not just match nothing


def encode_cursor(value, row_id: int) -> str:
    if isinstance(value, datetime):
        value = {"t": value.isoformat()}
    elif isinstance(value, Decimal):
        value = {"d": str(value)}
    raw = json.dumps([value, row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _invalid() -> ValidationFailed:
    return ValidationFailed(say(INVALID_CURSOR), field="cursor", code="invalid_cursor")


def decode_cursor(cursor: str):
    """(value, id) of a cursor; ValidationFailed for anything that is not one of ours."""
    if not isinstance(cursor, str) or len(cursor) > MAX_CURSOR_LENGTH:
        raise _invalid()
    try:
        value, row_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if isinstance(value, dict) and "t" in value:
            value = datetime.fromisoformat(value["t"])
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError  # encode_cursor writes aware times only
            value.astimezone(UTC)  # out of range once in UTC (year 1 or 9999): OverflowError
        elif isinstance(value, dict) and "d" in value:
            value = Decimal(value["d"])
            if not value.is_finite() or abs(value) >= 10 ** 12:
                raise ValueError
        if isinstance(row_id, bool) or not isinstance(row_id, int) or not 0 <= row_id <= MAX_ID:
            raise ValueError
        return value, row_id
    except (ValueError, TypeError, OverflowError, InvalidOperation, binascii.Error, UnicodeDecodeError,
            RecursionError):
        raise _invalid() from None


def _fits(value, column) -> bool:
    """Whether a decoded cursor value can be compared with the sort column."""
    column_type = column.type
    column_type = getattr(column_type, "impl_instance", column_type)  # a TypeDecorator: the type it stores as
    try:
        kind = column_type.python_type
    except NotImplementedError:
        kind = str
    if kind is datetime:
        return isinstance(value, datetime) and value.tzinfo is not None
    if kind is Decimal:
        return isinstance(value, Decimal) and value.is_finite()
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def after(cursor: str | None, column, id_column, descending: bool = False, bound_column: bool = False):
    """The condition that continues a list ordered by (column, id) after the cursor's row; None without a cursor.

    `bound_column` adds a plain bound on the sort column, so an index on that column alone can start at the
    cursor (used where the id is not part of the index)."""
    if not cursor:
        return None
    value, last_id = _checked(cursor, column)
    return _condition(column, id_column, literal(value, column.type), literal(last_id, id_column.type), descending,
                      bound_column)


def _checked(cursor: str, column):
    value, last_id = decode_cursor(cursor)
    if not _fits(value, column):
        raise _invalid()
    return value, last_id


def _condition(column, id_column, value, last_id, descending: bool, bound_column: bool):
    position = tuple_(column, id_column)
    boundary = tuple_(value, last_id)
    condition = position < boundary if descending else position > boundary
    if bound_column:
        return and_(column <= value if descending else column >= value, condition)
    return condition


def after_bound(column, id_column, descending: bool = False, bound_column: bool = False):
    """`after`'s condition with bind parameters (`cursor_value`, `cursor_id`) where the cursor's values go: for a
    statement built once and run many times with `cursor_params(cursor, column)`."""
    return _condition(column, id_column, bindparam("cursor_value", type_=column.type),
                      bindparam("cursor_id", type_=id_column.type), descending, bound_column)


def cursor_params(cursor: str, column) -> dict:
    """The bind parameters of `after_bound` for a cursor; refused like `after` refuses it."""
    value, last_id = _checked(cursor, column)
    return {"cursor_value": value, "cursor_id": last_id}


def ordered(query, column, id_column, descending: bool = False):
    return query.order_by(column.desc() if descending else column.asc(),
                          id_column.desc() if descending else id_column.asc())


def next_cursor(rows: list, limit: int, value_of) -> tuple[list, str | None]:
    """Cut a fetched `limit + 1` rows to the page and say where the next page starts (None on the last)."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    value, row_id = value_of(rows[-1])
    return rows, encode_cursor(value, row_id)


def page(session, query, column, id_column, cursor: str | None, limit: int, descending: bool = False,
         bound_column: bool = False) -> tuple[list, str | None]:
    """One page of `query` (scalars) ordered by (column, id) after the cursor, and the next page's cursor."""
    condition = after(cursor, column, id_column, descending, bound_column)
    if condition is not None:
        query = query.where(condition)
    rows = session.execute(ordered(query, column, id_column, descending).limit(limit + 1)).scalars().all()
    return next_cursor(rows, limit, lambda row: (getattr(row, column.key), getattr(row, id_column.key)))


def before(cursor: str | None, column, id_column, descending: bool = False):
    """The condition of the rows shown before the cursor's row in a list ordered by (column, id); None without one."""
    return after(cursor, column, id_column, not descending)


@dataclass
class Window:
    """One page, the cursor that reads the page after it and the one that reads the page before it (None at an end)."""

    rows: list
    next_cursor: str | None
    prev_cursor: str | None


def window(session, query, column, id_column, cursor: str | None = None, limit: int = 50, descending: bool = False,
           back: str | None = None, scalars: bool = True, value_of=None) -> Window:
    """A page of `query` ordered by (column, id): after `cursor`, or, with `back`, the page just before that row.

    A backward page is read in the reverse order from the same index (so it costs what a forward page costs) and
    turned round; paging forward then back returns exactly the rows seen before. `scalars=False` pages a query of
    named columns (rows), whose values are read by the column keys; `value_of(row)` overrides that."""
    if value_of is None:
        value_of = lambda row: (getattr(row, column.key), getattr(row, id_column.key))  # noqa: E731
    backward = bool(back)
    condition = before(back, column, id_column, descending) if backward else after(cursor, column, id_column,
                                                                                    descending)
    if condition is not None:
        query = query.where(condition)
    result = session.execute(ordered(query, column, id_column, descending != backward).limit(limit + 1))
    rows = result.scalars().all() if scalars else result.all()
    more = len(rows) > limit
    rows = rows[:limit]
    if backward:
        rows.reverse()
        prev = encode_cursor(*value_of(rows[0])) if more and rows else None
        following = encode_cursor(*value_of(rows[-1])) if rows else None
        return Window(rows, following, prev)
    following = encode_cursor(*value_of(rows[-1])) if more else None
    prev = encode_cursor(*value_of(rows[0])) if cursor and rows else None
    return Window(rows, following, prev)
