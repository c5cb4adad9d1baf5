"""Bulk work on the order list: a bulk job with the frozen set of orders it acts on and a result per order; the
order's assignee; a user's saved list filters."""
from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.extensions import db
from shared.models.types import UTCDateTime
from shared.timekeeping import utc_now


class BulkJob(db.Model):
    """One bulk action on a set of orders frozen when it was asked for; its job works through them with progress.

    `public_id` is used in links; `id` never leaves the server. The items are the set, one row per order."""

    __tablename__ = "bulk_jobs"
    __table_args__ = (Index("ix_bulk_jobs_created_by_id_created_at", "created_by_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True)
    action: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(24))  # shared.services.bulk_actions STATUSES
    params = mapped_column(JSON, nullable=False)  # reason, assignee, team: what every order gets
    stepped_up: Mapped[bool] = mapped_column(Boolean, default=False)  # asked with a fresh second verification
    total: Mapped[int] = mapped_column(Integer, default=0)
    done_count: Mapped[int] = mapped_column(Integer, default=0)
    refused_count: Mapped[int] = mapped_column(Integer, default=0)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    created_by_label: Mapped[str] = mapped_column(String(64))
    created_ip: Mapped[str | None] = mapped_column(String(45))
    export_public_id: Mapped[str | None] = mapped_column(String(24))  # the governed export a bulk export asked for
    error: Mapped[str | None] = mapped_column(String(500))
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    started_at = mapped_column(UTCDateTime)
    finished_at = mapped_column(UTCDateTime)

    created_by = relationship("StaffUser")


class BulkJobItem(db.Model):
    """One order of a bulk job and what became of it: pending, done, held (for approval) or refused (why)."""

    __tablename__ = "bulk_job_items"
    __table_args__ = (UniqueConstraint("job_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("bulk_jobs.id"))
    position: Mapped[int] = mapped_column(Integer)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    order_no: Mapped[str] = mapped_column(String(20))
    outcome: Mapped[str] = mapped_column(String(16), default="pending")
    code: Mapped[str | None] = mapped_column(String(40))  # the refusal's code: its words are chosen when shown
    message: Mapped[str | None] = mapped_column(String(500))  # the service's own message, as it said it
    status_before: Mapped[str | None] = mapped_column(String(20))
    status_after: Mapped[str | None] = mapped_column(String(20))
    finished_at = mapped_column(UTCDateTime)


class OrderAssignment(db.Model):
    """Who works on an order: a staff user and/or a team (no row: nobody). Changed only through
    shared.services.order_assignment, audited."""

    __tablename__ = "order_assignments"

    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), primary_key=True)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"), index=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"), index=True)
    assigned_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    assigned_by_label: Mapped[str] = mapped_column(String(120))

    assignee = relationship("StaffUser")
    team = relationship("Team")


class SavedOrderFilter(db.Model):
    """A set of order-list filters a user saved under a name; private to that user."""

    __tablename__ = "saved_order_filters"
    __table_args__ = (UniqueConstraint("owner_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    name: Mapped[str] = mapped_column(String(60))
    query = mapped_column(JSON, nullable=False)  # {parameter: [values]}, never a personal value
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
