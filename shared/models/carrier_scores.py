"""Carrier credibility (issue 15 item 2): the scoring rules as one row of data (weights, minimum parcels per route,
the de-weighting line, the load threshold), the monthly scores per carrier and route (and carrier-wide), and each
carrier's standing: de-weighted or not, with the score and reason that decided it."""
from datetime import date
from decimal import Decimal

from sqlalchemy import Boolean, Date, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.extensions import db
from shared.models.types import UTCDateTime
from shared.timekeeping import utc_now


class CarrierScoreRules(db.Model):
    """The one row (id 1) of scoring rules, edited in the portal (audited). Weights sum to 1."""

    __tablename__ = "carrier_score_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    on_time_weight: Mapped[Decimal] = mapped_column(Numeric(4, 3))
    stall_weight: Mapped[Decimal] = mapped_column(Numeric(4, 3))
    photo_weight: Mapped[Decimal] = mapped_column(Numeric(4, 3))
    response_weight: Mapped[Decimal] = mapped_column(Numeric(4, 3))
    min_route_parcels: Mapped[int] = mapped_column(Integer)  # fewer on a route: the carrier-wide score applies
    deweight_below: Mapped[Decimal] = mapped_column(Numeric(5, 2))  # a carrier-wide score under this: de-weighted
    load_threshold: Mapped[Decimal] = mapped_column(Numeric(4, 3))  # reported load at or over this: skipped
    response_target_hours: Mapped[int] = mapped_column(Integer)  # a complaint settled within this counts as answered
    updated_by: Mapped[str] = mapped_column(String(120))
    updated_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)


class CarrierScore(db.Model):
    """One carrier's month on one route (origin province → destination province) or carrier-wide (both ANY): the
    counts behind each part of the score, and the score (0–100) itself."""

    __tablename__ = "carrier_scores"

    month: Mapped[date] = mapped_column(Date, primary_key=True)  # the first day of the month
    carrier_code: Mapped[str] = mapped_column(String(8), primary_key=True)
    origin_province: Mapped[str] = mapped_column(String(40), primary_key=True)
    destination_province: Mapped[str] = mapped_column(String(40), primary_key=True)
    parcels: Mapped[int] = mapped_column(Integer)  # shipped in the month
    judged: Mapped[int] = mapped_column(Integer)  # delivered, or past the on-time limit
    on_time: Mapped[int] = mapped_column(Integer)
    stalled: Mapped[int] = mapped_column(Integer)
    photo_reported: Mapped[int] = mapped_column(Integer)  # delivered parcels the carrier reported a photo state for
    photo_signed: Mapped[int] = mapped_column(Integer)  # ... of which with a signed photo
    complaints: Mapped[int] = mapped_column(Integer)
    complaints_answered: Mapped[int] = mapped_column(Integer)  # settled within the response target
    score: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    computed_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)


class CarrierStanding(db.Model):
    """Whether routing and waybill choice de-weight a carrier, since when, and why (the score of which month)."""

    __tablename__ = "carrier_standings"

    carrier_code: Mapped[str] = mapped_column(String(8), primary_key=True)
    deweighted: Mapped[bool] = mapped_column(Boolean, default=False)
    score: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    month: Mapped[date | None] = mapped_column(Date)
    reason: Mapped[str | None] = mapped_column(String(300))
    changed_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
