"""UTC-aware time: parsing what callers send, converting for display."""
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from shared.services.errors import ValidationFailed
from shared.services.validation import N_, say

# What a person reads when this module refuses: message codes, said in the reader's language (say).
NO_OFFSET = N_("%(field)s has no time zone offset")
OUT_OF_RANGE = N_("%(field)s is out of range")
NOT_ISO = N_("%(field)s is not an ISO 8601 timestamp")


def utc_now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def parse_aware(value: str | datetime, field: str) -> datetime:
    """Parse ISO 8601 with an offset into UTC; a timestamp without a zone is refused, never guessed."""
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValidationFailed(say(NOT_ISO, field=field), field=field, code="invalid_timestamp")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValidationFailed(say(NO_OFFSET, field=field), field=field, code="naive_timestamp")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+08:00 is before year 1 in UTC
        raise ValidationFailed(say(OUT_OF_RANGE, field=field), field=field, code="invalid_timestamp") from None


def as_utc(value: datetime | None) -> datetime | None:
    """Attach UTC to a value read back from a database that drops the zone (SQLite)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def local_date(moment: datetime, zone: str) -> date:
    """The calendar date of a moment in the given zone (e.g. the merchant's)."""
    return as_utc(moment).astimezone(ZoneInfo(zone)).date()


def to_zone(moment: datetime | None, zone: str) -> datetime | None:
    """Convert a stored UTC moment to a viewer's zone for display."""
    if moment is None:
        return None
    return as_utc(moment).astimezone(ZoneInfo(zone))


def merchant_zone() -> str:
    """The merchant's zone (MERCHANT_TIMEZONE), Asia/Shanghai outside an app."""
    from flask import current_app, has_app_context

    return current_app.config["MERCHANT_TIMEZONE"] if has_app_context() else "Asia/Shanghai"


def merchant_time_text(moment: datetime, fmt: str = "%Y-%m-%d %H:%M", zone: str | None = None) -> str:
    """A moment as stored text (alarm messages, robot lines): in the merchant's zone, the zone named."""
    zone = zone or merchant_zone()
    return f"{to_zone(moment, zone).strftime(fmt)} ({zone})"
