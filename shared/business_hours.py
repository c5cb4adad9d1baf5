"""Business time: when the merchant's staff are at work, and clocks that only run then.

A calendar is a week of working intervals in the merchant's zone (Monday–Friday 09:00–18:00 seeded) and days that
differ: a public holiday has no hours, a 调休 make-up Saturday has a workday's. `add(start, duration)` is the moment a
clock started at `start` reaches `duration` of business time; `between(a, b)` is how much business time lies between
two moments. Approvals (a step idle for two business hours) and exception SLAs that count business hours use these;
a clock that counts calendar time uses plain arithmetic (`Calendar.always()`).
"""
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

MAX_DAYS = 3660  # ten years without a working minute is a calendar error: refuse rather than loop


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    if (hours, minutes) == ("24", "00"):
        return time.max
    return time(int(hours), int(minutes))


@dataclass(frozen=True)
class Calendar:
    zone: str
    week: dict[int, tuple[tuple[time, time], ...]]  # ISO weekday → intervals
    days: dict[date, tuple[tuple[time, time], ...]] = field(default_factory=dict)
    continuous: bool = False  # every minute counts (a calendar-time SLA)

    @classmethod
    def from_data(cls, zone: str, week: dict, days: dict | None = None) -> "Calendar":
        """From stored JSON: {"1": [["09:00", "18:00"]], ...} and {date: [[...]]} (a holiday: [])."""
        def intervals(items) -> tuple[tuple[time, time], ...]:
            parsed = tuple(sorted((_clock(a), _clock(b)) for a, b in items))
            for start, end in parsed:
                if end <= start:
                    raise ValueError(f"an interval must end after it starts: {start}–{end}")
            return parsed
        ZoneInfo(zone)
        return cls(zone, {int(day): intervals(items) for day, items in week.items()},
                   {day: intervals(items) for day, items in (days or {}).items()})

    @classmethod
    def always(cls) -> "Calendar":
        return cls("UTC", {}, continuous=True)

    def intervals_on(self, day: date) -> tuple[tuple[time, time], ...]:
        if day in self.days:
            return self.days[day]
        return self.week.get(day.isoweekday(), ())

    def _spans(self, start: datetime):
        """Working spans (aware datetimes) from `start` on, in order, the first one clipped to start."""
        zone = ZoneInfo(self.zone)
        local = start.astimezone(zone)
        day = local.date()
        for offset in range(MAX_DAYS):
            current = day + timedelta(days=offset)
            for begin, end in self.intervals_on(current):
                span_start = datetime.combine(current, begin, zone)
                span_end = (datetime.combine(current + timedelta(days=1), time(0), zone) if end == time.max
                            else datetime.combine(current, end, zone))
                if span_end <= start:
                    continue
                yield max(span_start, start), span_end
        raise ValueError("the calendar has no working time in ten years")

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """When a business clock started at `start` has run for `duration`."""
        if self.continuous:
            return start + duration
        remaining = duration
        for span_start, span_end in self._spans(start):
            length = span_end - span_start
            if remaining <= length:
                return (span_start + remaining).astimezone(start.tzinfo)
            remaining -= length
        raise AssertionError("unreachable")

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Business time from `start` to `end` (zero when end is not after start)."""
        if end <= start:
            return timedelta(0)
        if self.continuous:
            return end - start
        total = timedelta(0)
        for span_start, span_end in self._spans(start):
            if span_start >= end:
                break
            total += min(span_end, end) - span_start
        return total


def load(code: str = "default") -> Calendar:
    """The stored calendar `code` (seeded: `default`)."""
    from sqlalchemy import select

    from shared.extensions import db
    from shared.models import BusinessCalendar

    row = db.session.execute(select(BusinessCalendar).where(BusinessCalendar.code == code)).scalar_one_or_none()
    if row is None:
        raise LookupError(f"no business calendar {code!r}")
    return Calendar.from_data(row.zone, row.week, {day.day: day.hours for day in row.days})
