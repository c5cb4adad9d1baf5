"""Manager dashboards: the KPI targets, rows an admin edits (shared.services.kpis names the KPIs themselves)."""
from sqlalchemy import Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.extensions import db
from shared.models.types import UTCDateTime
from shared.timekeeping import utc_now


class KpiTarget(db.Model):
    """One KPI's target: a percentage (0-100) or a number of hours, compared the KPI's way (at least / at most)."""

    __tablename__ = "kpi_targets"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    target = mapped_column(Numeric(7, 2, asdecimal=True), nullable=False)
    updated_by: Mapped[str | None] = mapped_column(String(120))
    updated_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
