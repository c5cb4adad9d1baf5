"""The state cube: orders placed in a range counted over three dimensions the manager picks, in SQL.

Dimensions: time (hour, day, week of placed_at, in the merchant's zone), place (warehouse, the receiver's city,
carrier of the order's shipments, team owning the order's exceptions) and state (lifecycle status, exception
category). The first two are the heatmap's rows and columns; the third is a facet: one of its values (or all)
narrows the heatmap, and the facet's own counts are its selector. A heatmap is one grouped query (COUNT DISTINCT
when a shipment or exception join can repeat an order) and the selector another, never a query per cell.

An order with several shipments (carriers) or exceptions (categories, teams) counts once in each cell it falls in;
one with none falls in the "none" cell (`NONE`), which the orders list can filter by too (shared.order_search).
"""
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, literal_column, select

from shared import time_buckets
from shared.database import without_jit
from shared.extensions import db
from shared.lifecycle import OrderStatus
from shared.models import ExceptionCase, Order, Shipment, Team, Warehouse
from shared.order_search import NONE
from shared.services.errors import ValidationFailed
from shared.services.validation import N_, say

TIME, PLACE, STATE = "time", "place", "state"
DIMENSIONS = {"hour": TIME, "day": TIME, "week": TIME, "warehouse": PLACE, "city": PLACE, "carrier": PLACE,
              "team": PLACE, "status": STATE, "exception_category": STATE}
DEFAULT = ("day", "warehouse", "status")
MAX_DAYS = 366
MAX_HOUR_DAYS = 14  # an hour axis over a longer range is wider than anyone reads
STATUS_ORDER = {status.value: number for number, status in enumerate(OrderStatus)}

UNKNOWN_DIMENSION = N_("unknown dimension %(name)s: choose from time (hour, day, week), place (warehouse, city, "
                       "carrier, team) and state (status, exception category)")
SAME_DIMENSION = N_("each dimension may be chosen once: %(name)s is chosen twice")
TWO_TIMES = N_("choose at most one time dimension (hour, day or week)")
BAD_DATE = N_("%(field)s must be a date like 2026-11-21")
END_BEFORE_START = N_("the range ends before it starts")
RANGE_TOO_LONG = N_("the range is at most %(days)s days")
HOUR_RANGE_TOO_LONG = N_("an hour dimension covers at most %(days)s days")
BAD_FACET_VALUE = N_("the facet value is too long")
BAD_TIME_FACET = N_("a time facet value is a bucket such as 2026-11-23 (a day or the Monday of a week) or "
                    "2026-11-23 14:00 (an hour)")


@dataclass
class CubeRequest:
    rows: str
    columns: str
    facet: str
    date_from: date
    date_to: date  # inclusive, merchant-local dates
    facet_value: str | None = None  # None: every value of the facet
    zone: str = "Asia/Shanghai"

    @property
    def start(self) -> datetime:
        return datetime.combine(self.date_from, time.min, ZoneInfo(self.zone))

    @property
    def end(self) -> datetime:
        return datetime.combine(self.date_to + timedelta(days=1), time.min, ZoneInfo(self.zone))


@dataclass
class Cube:
    request: CubeRequest
    row_values: list = field(default_factory=list)
    column_values: list = field(default_factory=list)
    cells: dict = field(default_factory=dict)  # (row value, column value) -> orders
    facet_counts: list = field(default_factory=list)  # [(facet value, orders)]
    peak: int = 0


def _date(raw, name: str, default: date) -> date:
    if raw in (None, ""):
        return default
    try:
        return date.fromisoformat(str(raw))
    except ValueError:
        raise ValidationFailed(say(BAD_DATE, field=name), field=name, code="invalid_date") from None


def parse_request(args, zone: str, today: date) -> CubeRequest:
    """The cube asked for: three different known dimensions (one time at most) and a range that makes sense."""
    names = [(args.get(key) or default).strip() for key, default in zip(("rows", "columns", "facet"), DEFAULT)]
    for key, name in zip(("rows", "columns", "facet"), names):
        if name not in DIMENSIONS:
            raise ValidationFailed(say(UNKNOWN_DIMENSION, name=name[:40]), field=key, code="unknown_dimension")
    for number, name in enumerate(names):
        if name in names[:number]:
            raise ValidationFailed(say(SAME_DIMENSION, name=name), field=("rows", "columns", "facet")[number],
                                   code="same_dimension")
    if sum(DIMENSIONS[name] == TIME for name in names) > 1:
        raise ValidationFailed(say(TWO_TIMES), field="columns", code="two_time_dimensions")
    date_to = _date(args.get("date_to"), "date_to", today)
    date_from = _date(args.get("date_from"), "date_from", date_to - timedelta(days=6))
    if date_to < date_from:
        raise ValidationFailed(say(END_BEFORE_START), field="date_to", code="range_end_before_start")
    days = (date_to - date_from).days + 1
    if days > MAX_DAYS:
        raise ValidationFailed(say(RANGE_TOO_LONG, days=MAX_DAYS), field="date_from", code="range_too_long")
    if "hour" in names and days > MAX_HOUR_DAYS:
        raise ValidationFailed(say(HOUR_RANGE_TOO_LONG, days=MAX_HOUR_DAYS), field="date_from",
                               code="range_too_long")
    facet_value = args.get("facet_value")
    if facet_value is not None and len(facet_value) > 64:
        raise ValidationFailed(say(BAD_FACET_VALUE), field="facet_value")
    if facet_value and DIMENSIONS[names[2]] == TIME:
        try:
            time_buckets.parse_label(facet_value, names[2], zone)
        except ValueError:
            raise ValidationFailed(say(BAD_TIME_FACET), field="facet_value", code="invalid_facet_value") from None
    return CubeRequest(rows=names[0], columns=names[1], facet=names[2], date_from=date_from, date_to=date_to,
                       facet_value=facet_value or None, zone=zone)


def _expression(name: str, request: CubeRequest, dialect: str):
    if DIMENSIONS[name] == TIME:
        return time_buckets.bucket(Order.placed_at, name, request.zone, dialect, request.start, request.end)
    return {"warehouse": Warehouse.code, "city": Order.city, "carrier": Shipment.carrier_code, "team": Team.code,
            "status": Order.status, "exception_category": ExceptionCase.category}[name]


def _base(names: list[str], request: CubeRequest):
    """Orders placed in the range, joined to what the dimensions read (outer joins: an order without stays)."""
    query = select().select_from(Order)
    if "warehouse" in names:
        query = query.outerjoin(Warehouse, Warehouse.id == Order.warehouse_id)
    if "carrier" in names:
        query = query.outerjoin(Shipment, and_(Shipment.order_id == Order.id, Shipment.status != "cancelled"))
    if "team" in names or "exception_category" in names:
        query = query.outerjoin(ExceptionCase, ExceptionCase.order_id == Order.id)
    if "team" in names:
        query = query.outerjoin(Team, Team.id == ExceptionCase.team_id)
    return query.where(Order.placed_at >= request.start, Order.placed_at < request.end)


def _counted(names: list[str]):
    repeats = {"carrier", "team", "exception_category"} & set(names)
    return func.count(func.distinct(Order.id)) if repeats else func.count()


def _sort_key(name: str):
    def key(value):
        if value is None:
            return (2, 0, "")
        if name == "status":
            return (0, STATUS_ORDER.get(value, 99), value)
        return (0, 0, str(value))
    return key


def _axis(name: str, seen: set, request: CubeRequest) -> list:
    """An axis's values in order: every bucket of the range for time (an empty hour or day shows as a gap), else
    the values that hold orders."""
    if DIMENSIONS[name] == TIME and seen:
        return time_buckets.labels_between(request.start, request.end, name, request.zone)
    return sorted(seen, key=_sort_key(name))


def _narrowed(query, request: CubeRequest, dialect: str):
    if request.facet_value is None:
        return query
    expression = _expression(request.facet, request, dialect)
    return query.where(expression.is_(None) if request.facet_value == NONE else expression == request.facet_value)


def compute(request: CubeRequest, dialect: str | None = None) -> Cube:
    """The heatmap (rows x columns, narrowed to the facet value) and the facet's counts: two grouped queries."""
    dialect = dialect or db.session.get_bind().dialect.name
    every = [request.rows, request.columns, request.facet]
    row_expr, column_expr = (_expression(name, request, dialect) for name in (request.rows, request.columns))
    heat = _narrowed(_base(every if request.facet_value is not None else every[:2], request), request, dialect)
    heat = (heat.add_columns(row_expr.label("d0"), column_expr.label("d1"),
                             _counted(every if request.facet_value is not None else every[:2]).label("n"))
            .group_by(literal_column("d0"), literal_column("d1")))
    cube = Cube(request=request)
    without_jit(db.session)
    for row, column, count in db.session.execute(heat).all():
        cube.cells[(row, column)] = count
    facet_expr = _expression(request.facet, request, dialect)
    facets = (_base([request.facet], request).add_columns(facet_expr.label("d0"), _counted([request.facet]))
              .group_by(literal_column("d0")))
    cube.facet_counts = sorted(((value, count) for value, count in db.session.execute(facets).all()),
                               key=lambda pair: _sort_key(request.facet)(pair[0]))
    cube.row_values, cube.column_values = (_axis(name, {cell[side] for cell in cube.cells}, request)
                                           for side, name in enumerate((request.rows, request.columns)))
    cube.peak = max(cube.cells.values(), default=0)
    return cube


def drill_down(request: CubeRequest, values: dict[str, str | None]) -> dict[str, str]:
    """The orders list's query arguments for the orders of one cell: the range (narrowed to a time bucket) and
    each dimension's value (`NONE` for the orders without one)."""
    start, end = request.start, request.end
    args: dict[str, str] = {}
    for name, value in values.items():
        if DIMENSIONS[name] == TIME:
            bucket_start, bucket_end = time_buckets.parse_label(value, name, request.zone)
            start, end = max(start, bucket_start), min(end, bucket_end)
        elif name == "exception_category":
            args["exception_category"] = value if value is not None else NONE
        else:
            args[name] = value if value is not None else NONE
    args["placed_from"], args["placed_to"] = start.isoformat(), end.isoformat()
    return args
