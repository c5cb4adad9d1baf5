"""The merchant's business-hours calendar: weekly hours, plus days that differ (holidays, 调休 make-up workdays)."""
from datetime import date

from sqlalchemy import JSON, Date, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.extensions import db
from shared.models.types import UTCDateTime
from shared.timekeeping import utc_now


class BusinessCalendar(db.Model):
    """`week` maps ISO weekday ("1" Monday … "7" Sunday) to a list of ["09:00", "18:00"] intervals in `zone`."""

    __tablename__ = "business_calendars"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    zone: Mapped[str] = mapped_column(String(40))
    week: Mapped[dict] = mapped_column(JSON)
    updated_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)

    days = relationship("BusinessCalendarDay", order_by="BusinessCalendarDay.day", cascade="all, delete-orphan")


class BusinessCalendarDay(db.Model):
    """A day that differs from the week: a holiday (no hours) or a working day with its own hours."""

    __tablename__ = "business_calendar_days"

    calendar_id: Mapped[int] = mapped_column(ForeignKey("business_calendars.id", ondelete="CASCADE"),
                                             primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    hours: Mapped[list] = mapped_column(JSON)  # [] for a holiday
    note: Mapped[str] = mapped_column(String(60), default="")
