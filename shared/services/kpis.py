"""The managers' KPI board: four figures against targets kept as rows, each with its trend per day or week.

Each KPI is one grouped query over its source, bucketed in the merchant's zone (shared.time_buckets), giving a
numerator and a denominator per bucket; the current value is the same ratio over the whole window shown.

- sync_success: channel inbox items finished in the bucket (processed_at) that ended `done`, of those that
  ended done, review or dead (as shared/services/sync_health.py counts a day's success rate). Target: at least.
- confirm_to_ship: orders shipped in the bucket (Order.shipped_at): the mean hours from the first moment the
  order became confirmed (the first audit event of the order whose `after.status` is confirmed: manual review,
  auto-review of a paid order, a released hold) to shipped. Target: at most.
- stock_accuracy: lines counted (counted not NULL) in stock-takes started in the bucket that were submitted or
  approved (a rejected count was not trusted; one still counting is not finished), without variance
  (counted = expected), of the lines counted. Target: at least.
- tracking_coverage: orders shipped in the bucket whose (not cancelled) shipments have at least one tracking
  event, of the orders shipped. Target: at least (100%).
"""
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from sqlalchemy import case, exists, extract, func, literal_column, select

from shared import time_buckets
from shared.database import without_jit
from shared.actors import Actor
from shared.extensions import db
from shared.models import AuditEvent, InboxItem, KpiTarget, Order, Shipment, StockTake, StockTakeLine, TrackingEvent
from shared.services import audit
from shared.services.errors import NotFound, ValidationFailed
from shared.services.validation import N_, say
from shared.timekeeping import utc_now


@dataclass(frozen=True)
class Kpi:
    code: str
    unit: str  # percent or hours
    better: str  # at_least or at_most


KPIS = {k.code: k for k in (Kpi("sync_success", "percent", "at_least"), Kpi("confirm_to_ship", "hours", "at_most"),
                            Kpi("stock_accuracy", "percent", "at_least"),
                            Kpi("tracking_coverage", "percent", "at_least"))}
PERIODS = {"week": (8, 52), "day": (14, 92)}  # grain: (default count, most allowed)
MAX_HOURS = Decimal("720")
FINISHED_INBOX = ("done", "review", "dead")
COUNTED_TAKES = ("submitted", "approved")

UNKNOWN_KPI = N_("no KPI %(code)s")
BAD_PERCENT = N_("a percentage target is a number from 0 to 100")
BAD_HOURS = N_("a target in hours is a number greater than 0 and at most 720")
BAD_GRAIN = N_("the trend is per day or per week")
BAD_PERIODS = N_("the number of periods is a whole number from 2 to %(most)s")
TWO_PLACES = Decimal("0.01")


def get_target(code: str) -> KpiTarget:
    row = db.session.get(KpiTarget, code) if code in KPIS else None
    if row is None:
        raise NotFound(say(UNKNOWN_KPI, code=str(code)[:40]), field="code")
    return row


def targets() -> dict[str, KpiTarget]:
    return {row.code: row for row in db.session.execute(select(KpiTarget)).scalars()}


def _target_value(kpi: Kpi, raw) -> Decimal:
    try:
        value = Decimal(str(raw).strip().rstrip("%").strip())
    except (InvalidOperation, ValueError):
        value = None
    if kpi.unit == "percent":
        if value is None or not value.is_finite() or not Decimal(0) <= value <= Decimal(100):
            raise ValidationFailed(say(BAD_PERCENT), field="target", code="invalid_target")
    elif value is None or not value.is_finite() or not Decimal(0) < value <= MAX_HOURS:
        raise ValidationFailed(say(BAD_HOURS), field="target", code="invalid_target")
    return value.quantize(TWO_PLACES, rounding=ROUND_HALF_UP)


def set_target(code: str, raw, actor: Actor) -> KpiTarget:
    """Change one KPI's target (a percentage from 0 to 100, or hours in (0, 720]); audited with before and after."""
    row = get_target(code)
    value = _target_value(KPIS[code], raw)
    before = {"target": str(row.target)}
    row.target, row.updated_by, row.updated_at = value, actor.label, utc_now()
    db.session.flush()
    audit.record(actor, "kpi.target", "kpi_target", code, before=before, after={"target": str(value)})
    return row


def window(grain: str, periods, now: datetime, zone: str) -> tuple[datetime, datetime, list[str]]:
    """The last `periods` days or weeks up to now (the current one included): UTC start, end and bucket names."""
    if grain not in PERIODS:
        raise ValidationFailed(say(BAD_GRAIN), field="grain", code="invalid_grain")
    most = PERIODS[grain][1]
    try:
        count = int(periods) if periods not in (None, "") else PERIODS[grain][0]
    except (TypeError, ValueError):
        count = -1
    if not 2 <= count <= most:
        raise ValidationFailed(say(BAD_PERIODS, most=most), field="periods", code="invalid_periods")
    current = time_buckets.bucket_start(now, grain, zone)
    days = count - 1 if grain == "day" else 7 * (count - 1)
    first = datetime.combine(current.date() - timedelta(days=days), time.min, ZoneInfo(zone))
    end = now
    return first, end, time_buckets.labels_between(first, end, grain, zone)


def _seconds_between(later, earlier, dialect: str):
    if dialect == "postgresql":
        return extract("epoch", later - earlier)
    return (func.julianday(later) - func.julianday(earlier)) * 86400


def _ratio_rows(code: str, grain: str, zone: str, start: datetime, end: datetime, dialect: str):
    """(bucket, numerator, denominator) per bucket for one KPI: one grouped query."""
    def bucketed(column):
        return time_buckets.bucket(column, grain, zone, dialect, start, end).label("bucket")

    if code == "sync_success":
        query = (select(bucketed(InboxItem.processed_at), func.sum(case((InboxItem.status == "done", 1), else_=0)),
                        func.count())
                 .where(InboxItem.processed_at >= start, InboxItem.processed_at < end,
                        InboxItem.status.in_(FINISHED_INBOX)))
    elif code == "confirm_to_ship":
        confirmed = (select(func.min(AuditEvent.occurred_at))
                     .where(AuditEvent.entity_type == "order", AuditEvent.entity_id == Order.order_no,
                            AuditEvent.after["status"].as_string() == "confirmed")
                     .correlate(Order).scalar_subquery())
        shipped = (select(Order.shipped_at.label("shipped_at"), confirmed.label("confirmed_at"))
                   .where(Order.shipped_at >= start, Order.shipped_at < end).subquery())
        query = (select(bucketed(shipped.c.shipped_at),
                        func.sum(_seconds_between(shipped.c.shipped_at, shipped.c.confirmed_at, dialect)),
                        func.count())
                 .select_from(shipped).where(shipped.c.confirmed_at.is_not(None)))
    elif code == "stock_accuracy":
        query = (select(bucketed(StockTake.started_at),
                        func.sum(case((StockTakeLine.counted == StockTakeLine.expected, 1), else_=0)), func.count())
                 .join(StockTakeLine, StockTakeLine.stock_take_id == StockTake.id)
                 .where(StockTake.started_at >= start, StockTake.started_at < end,
                        StockTake.status.in_(COUNTED_TAKES), StockTakeLine.counted.is_not(None)))
    else:  # tracking_coverage
        tracked = exists().where(Shipment.order_id == Order.id, Shipment.status != "cancelled",
                                 exists().where(TrackingEvent.shipment_id == Shipment.id))
        query = (select(bucketed(Order.shipped_at), func.sum(case((tracked, 1), else_=0)), func.count())
                 .where(Order.shipped_at >= start, Order.shipped_at < end))
    return db.session.execute(query.group_by(literal_column("bucket"))).all()


def _value(kpi: Kpi, numerator, denominator) -> Decimal | None:
    if not denominator:
        return None
    if kpi.unit == "hours":
        return (Decimal(str(numerator)) / Decimal(3600) / Decimal(denominator)).quantize(TWO_PLACES, ROUND_HALF_UP)
    return (Decimal(int(numerator)) * 100 / Decimal(denominator)).quantize(TWO_PLACES, ROUND_HALF_UP)


def met(kpi: Kpi, value: Decimal | None, target: Decimal) -> bool | None:
    """Whether a value meets the target the KPI's way; None without data."""
    if value is None:
        return None
    return value >= target if kpi.better == "at_least" else value <= target


def board(grain: str = "week", periods=None, now: datetime | None = None, zone: str = "Asia/Shanghai",
          dialect: str | None = None) -> dict:
    """Every KPI: target, value over the window, met or not, and its value per bucket (oldest first)."""
    now = now or utc_now()
    dialect = dialect or db.session.get_bind().dialect.name
    start, end, names = window(grain, periods, now, zone)
    without_jit(db.session)
    stored = targets()
    rows = []
    for code, kpi in KPIS.items():
        per_bucket = {name: (num or 0, den or 0) for name, num, den in _ratio_rows(code, grain, zone, start, end,
                                                                                  dialect)}
        target = stored[code].target if code in stored else None
        numerator = sum((Decimal(str(n)) for n, _ in per_bucket.values()), Decimal(0))
        denominator = sum(d for _, d in per_bucket.values())
        value = _value(kpi, numerator, denominator)
        trend = []
        for name in names:
            num, den = per_bucket.get(name, (0, 0))
            bucket_value = _value(kpi, num, den)
            trend.append({"bucket": name, "value": bucket_value, "count": den,
                          "met": met(kpi, bucket_value, target) if target is not None else None})
        rows.append({"kpi": kpi, "code": code, "target": target, "value": value, "count": denominator,
                     "met": met(kpi, value, target) if target is not None else None, "trend": trend})
    return {"grain": grain, "start": start, "end": end, "buckets": names, "kpis": rows}


# --- the dashboard's date range and daily trends -------------------------------------------------------------------

RANGE_MOST_DAYS = 92
RANGE_DEFAULT_DAYS = 7
BAD_DAY = N_("%(field)s must be a date like 2026-12-04")
BAD_RANGE = N_("the range ends before it starts, or is longer than %(most)s days")
# The dashboard's daily series: what is counted, by the moment the order reached it.
TREND_SERIES = {"placed": Order.placed_at, "paid": Order.paid_at, "shipped": Order.shipped_at}


@dataclass
class DateRange:
    first: date  # merchant-local calendar days, both included
    last: date
    start: datetime  # the UTC moments [start, end) they cover
    end: datetime


def date_range(date_from, date_to, zone: str, now: datetime | None = None) -> DateRange:
    """The dashboard's range from two local dates (either may be empty: the last RANGE_DEFAULT_DAYS days up to
    today); a malformed date or a range past RANGE_MOST_DAYS is a clear error."""
    today = (now or utc_now()).astimezone(ZoneInfo(zone)).date()
    days = {}
    for field, raw in (("date_from", date_from), ("date_to", date_to)):
        if raw in (None, ""):
            days[field] = None
            continue
        try:
            days[field] = date.fromisoformat(str(raw))
        except ValueError:
            raise ValidationFailed(say(BAD_DAY, field=field), field=field, code="invalid_date") from None
    last = days["date_to"] or (today if days["date_from"] is None
                               else min(today, days["date_from"] + timedelta(days=RANGE_DEFAULT_DAYS - 1)))
    first = days["date_from"] or last - timedelta(days=RANGE_DEFAULT_DAYS - 1)
    if last < first or (last - first).days >= RANGE_MOST_DAYS:
        raise ValidationFailed(say(BAD_RANGE, most=RANGE_MOST_DAYS), field="date_to", code="invalid_range")
    local = ZoneInfo(zone)
    return DateRange(first, last, datetime.combine(first, time.min, local),
                     datetime.combine(last + timedelta(days=1), time.min, local))


def daily_trend(series: str, span: DateRange, zone: str) -> list[tuple[str, int]]:
    """(local day, count) for every day of the range, empty days as 0: one grouped query in the database."""
    column = TREND_SERIES[series]
    dialect = db.session.get_bind().dialect.name
    day = time_buckets.bucket(column, "day", zone, dialect, span.start, span.end).label("bucket")
    counted = dict(db.session.execute(select(day, func.count()).where(column >= span.start, column < span.end)
                                      .group_by(literal_column("bucket"))).all())
    return [(label, int(counted.get(label, 0))) for label in time_buckets.labels_between(span.start, span.end, "day",
                                                                                         zone)]
