"""Time buckets in the merchant's zone, computed by the database: one SQL expression per dialect.

A bucket is named by the text of its local start: `2026-12-03 14:00` (hour), `2026-12-03` (day), and the Monday
`2026-11-30` (week, ISO weeks start on Monday). PostgreSQL converts with the zone's own rules (`AT TIME ZONE`);
SQLite has no zone database, so the UTC offsets in force over the queried range are worked out here (zoneinfo) and
the expression shifts each stored UTC time by the offset of its segment (a CASE over the DST changes in the range).
"""
import re
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, literal_column
from sqlalchemy.sql import ColumnElement

from shared.timekeeping import as_utc

GRAINS = ("hour", "day", "week")
STEP = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(days=7)}
_ZONE_NAME = re.compile(r"[A-Za-z0-9_+\-/]{1,64}")
_PG_FORMAT = {"hour": "YYYY-MM-DD HH24:00", "day": "YYYY-MM-DD", "week": "YYYY-MM-DD"}


def _zone_literal(zone: str) -> ColumnElement:
    """The zone as an SQL string literal: a name zoneinfo knows, of the characters zone names are made of."""
    ZoneInfo(zone)  # unknown: raises
    if not _ZONE_NAME.fullmatch(zone):
        raise ValueError(f"unexpected time zone name {zone!r}")
    return literal_column(f"'{zone}'")


def offsets(zone: str, start: datetime, end: datetime) -> list[tuple[datetime | None, int]]:
    """The zone's UTC offset (minutes) over [start, end): [(from_utc, minutes)], the first from None (any time)."""
    local = ZoneInfo(zone)

    def minutes(moment: datetime) -> int:
        return int(moment.astimezone(local).utcoffset().total_seconds() // 60)

    start, end = as_utc(start), as_utc(end)
    segments: list[tuple[datetime | None, int]] = [(None, minutes(start))]
    moment = start
    while moment < end:
        following = min(moment + timedelta(hours=1), end)
        if minutes(following) != segments[-1][1]:
            low, high = moment, following  # the change is in (low, high]: narrow it to the minute
            while high - low > timedelta(minutes=1):
                middle = low + (high - low) / 2
                low, high = (middle, high) if minutes(middle) == segments[-1][1] else (low, middle)
            high = high.replace(second=0, microsecond=0)
            segments.append((high, minutes(high)))
        moment = following
    return segments


def _sqlite_local(column, zone: str, start: datetime, end: datetime):
    segments = offsets(zone, start, end)

    def shifted(minutes: int):
        return func.datetime(column, literal_column(f"'{minutes:+d} minutes'"))

    if len(segments) == 1:
        return shifted(segments[0][1])
    whens = [(column < literal_column(f"'{begins:%Y-%m-%d %H:%M:%S}'"), shifted(previous))
             for (begins, _), (_, previous) in zip(segments[1:], segments[:-1])]
    return case(*whens, else_=shifted(segments[-1][1]))


def bucket(column, grain: str, zone: str, dialect: str, start: datetime, end: datetime) -> ColumnElement:
    """The local bucket of `column` (a UTC timestamp) as text; `start`/`end` bound the rows queried (SQLite needs
    them for the offsets)."""
    if grain not in GRAINS:
        raise ValueError(f"unknown grain {grain!r}")
    if dialect == "postgresql":
        local = func.timezone(_zone_literal(zone), column)
        return func.to_char(func.date_trunc(literal_column(f"'{grain}'"), local),
                            literal_column(f"'{_PG_FORMAT[grain]}'"))
    _zone_literal(zone)
    local = _sqlite_local(column, zone, start, end)
    if grain == "hour":
        return func.strftime(literal_column("'%Y-%m-%d %H:00'"), local)
    if grain == "day":
        return func.date(local)
    return func.date(local, literal_column("'weekday 0'"), literal_column("'-6 days'"))


def label_of(moment: datetime, grain: str, zone: str) -> str:
    """The bucket name of one moment, as `bucket` names it in SQL (for the empty buckets and for tests)."""
    start = bucket_start(moment, grain, zone)
    return f"{start:%Y-%m-%d %H:00}" if grain == "hour" else f"{start:%Y-%m-%d}"


def bucket_start(moment: datetime, grain: str, zone: str) -> datetime:
    """The local start of the bucket that holds `moment` (aware, in the zone)."""
    local = as_utc(moment).astimezone(ZoneInfo(zone))
    if grain == "hour":
        return local.replace(minute=0, second=0, microsecond=0)
    day = datetime.combine(local.date(), time.min, ZoneInfo(zone))
    return day if grain == "day" else datetime.combine(local.date() - timedelta(days=local.weekday()), time.min,
                                                       ZoneInfo(zone))


def parse_label(label: str, grain: str, zone: str) -> tuple[datetime, datetime]:
    """A bucket's name back to its local [start, end) (aware): what a drill-down filters by."""
    local = ZoneInfo(zone)
    if grain == "hour":
        start = datetime.strptime(label, "%Y-%m-%d %H:00").replace(tzinfo=local)
        return start, start + STEP["hour"]
    day = date.fromisoformat(label)
    days = 7 if grain == "week" else 1
    return datetime.combine(day, time.min, local), datetime.combine(day + timedelta(days=days), time.min, local)


def labels_between(start: datetime, end: datetime, grain: str, zone: str) -> list[str]:
    """Every bucket name from the one holding `start` to the one holding the moment before `end`, in order."""
    names, cursor = [], bucket_start(start, grain, zone)
    local = ZoneInfo(zone)
    while cursor < end:
        names.append(label_of(cursor, grain, zone))
        if grain == "hour":  # step in UTC: an hour repeated or skipped by a DST change stays one bucket each
            cursor = (as_utc(cursor) + STEP["hour"]).astimezone(local)
        else:
            cursor = datetime.combine(cursor.date() + STEP[grain], time.min, local)
    return list(dict.fromkeys(names))
