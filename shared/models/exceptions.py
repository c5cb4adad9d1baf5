"""The exception center: everything that needs a person, with its owner team, state, SLA clocks and history; the
routing rules, SLA targets and canned replies that configure it are rows too."""
from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.extensions import db
from shared.models.types import UTCDateTime
from shared.timekeeping import utc_now


class ExceptionCase(db.Model):
    """One problem that needs a person. `dedupe_key` names the problem (e.g. `parcel_stalled:shipment:12`);
    `live_key` holds it on the newest exception of that key only (unique), so a problem is raised once and a
    re-raise finds the exception to reopen; an exception superseded by a new one (after 7 days) lets it go."""

    __tablename__ = "exceptions"
    __table_args__ = (
        Index("ix_exceptions_status_resolve_due_at", "status", "resolve_due_at"),
        Index("ix_exceptions_opened_at_id", "opened_at", "id"),
        Index("ix_exceptions_dedupe_key", "dedupe_key"),
        Index("ix_exceptions_order_id", "order_id"),
        Index("ix_exceptions_sku_id", "sku_id"),
        Index("ix_exceptions_buyer_index", "buyer_index"),
        Index("ix_exceptions_team_id_status", "team_id", "status"),
        Index("ix_exceptions_assignee_id_status", "assignee_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))  # shared.services.exceptions.KINDS
    category: Mapped[str] = mapped_column(String(20))  # payment, logistics, product_stock, account_risk
    dedupe_key: Mapped[str] = mapped_column(String(120))
    live_key: Mapped[str | None] = mapped_column(String(120), unique=True)
    summary: Mapped[str] = mapped_column(String(300))
    details = mapped_column(JSON)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    sku_id: Mapped[int | None] = mapped_column(ForeignKey("skus.id"))
    shipment_id: Mapped[int | None] = mapped_column(ForeignKey("shipments.id"))
    buyer_index: Mapped[str | None] = mapped_column(String(64))  # the order's receiver phone blind index
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"))  # None: unrouted, shown to managers
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    status: Mapped[str] = mapped_column(String(20), default="open")
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    recurrence_of_id: Mapped[int | None] = mapped_column(ForeignKey("exceptions.id"))  # same order/SKU/buyer < 30 d
    opened_at = mapped_column(UTCDateTime, nullable=False)
    occurred_at = mapped_column(UTCDateTime, nullable=False)  # when the detector last saw the problem happen
    # SLA: targets copied from the category's row when raised, the clock kind, and the moments they fall due.
    sla_clock: Mapped[str] = mapped_column(String(10), default="calendar")  # business or calendar
    first_response_minutes: Mapped[int] = mapped_column(Integer)
    resolve_minutes: Mapped[int] = mapped_column(Integer)
    first_response_due_at = mapped_column(UTCDateTime, nullable=False)
    resolve_due_at = mapped_column(UTCDateTime)  # None while the clock is paused
    warn_at = mapped_column(UTCDateTime)  # 80% of the resolve target (None while paused)
    paused_seconds: Mapped[int] = mapped_column(Integer, default=0)  # clock time (business or calendar) paused
    paused_since = mapped_column(UTCDateTime)
    first_responded_at = mapped_column(UTCDateTime)
    warned_at = mapped_column(UTCDateTime)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)  # 1: the team lead, 2: the lead's superior
    escalated_at = mapped_column(UTCDateTime)
    escalated_to_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    breached: Mapped[bool] = mapped_column(Boolean, default=False)  # stays once set
    breached_at = mapped_column(UTCDateTime)
    resolved_at = mapped_column(UTCDateTime)
    resolve_seconds: Mapped[int | None] = mapped_column(Integer)  # opened → resolved, calendar time
    resolution: Mapped[str | None] = mapped_column(String(1000))
    closed_at = mapped_column(UTCDateTime)
    updated_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)

    order = relationship("Order")
    sku = relationship("Sku")
    team = relationship("Team")
    assignee = relationship("StaffUser", foreign_keys=[assignee_id])
    escalated_to = relationship("StaffUser", foreign_keys=[escalated_to_id])
    events = relationship("ExceptionEvent", order_by="ExceptionEvent.id", viewonly=True)


class ExceptionEvent(db.Model):
    """The history of one exception: raised, assigned, moved (with its comment), reopened, warned, escalated."""

    __tablename__ = "exception_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    exception_id: Mapped[int] = mapped_column(ForeignKey("exceptions.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # raised, assigned, transition, reopened, warned, escalated, ...
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str | None] = mapped_column(String(20))
    actor_label: Mapped[str] = mapped_column(String(120))
    comment = mapped_column(Text)
    occurred_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)


class ExceptionRoute(db.Model):
    """Routing as data: exceptions of a category (or one kind, which wins over its category) go to a team,
    named by code so a rule may point at a team the demo or an admin makes later."""

    __tablename__ = "exception_routes"

    key: Mapped[str] = mapped_column(String(40), primary_key=True)  # a category or a kind
    team_code: Mapped[str] = mapped_column(String(32))
    updated_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)


class ExceptionSlaTarget(db.Model):
    """A category's SLA: first response and resolution, counted in business hours or calendar time."""

    __tablename__ = "exception_sla_targets"

    category: Mapped[str] = mapped_column(String(20), primary_key=True)
    first_response_minutes: Mapped[int] = mapped_column(Integer)
    resolve_minutes: Mapped[int] = mapped_column(Integer)
    clock: Mapped[str] = mapped_column(String(10))  # business or calendar
    updated_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)


class CannedReply(db.Model):
    """A ready answer for a category, in both languages, picked when working an exception."""

    __tablename__ = "exception_canned_replies"
    __table_args__ = (UniqueConstraint("category", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    category: Mapped[str] = mapped_column(String(20))
    code: Mapped[str] = mapped_column(String(40))
    text_zh: Mapped[str] = mapped_column(String(1000))
    text_en: Mapped[str] = mapped_column(String(1000))
    updated_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
