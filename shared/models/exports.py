"""Governed exports: one row per export asked for (its file, watermark identity, state and limits) and one per
download of it."""
from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from shared.extensions import db
from shared.models.types import EncryptedBlob, UTCDateTime
from shared.timekeeping import utc_now


class ExportRequest(db.Model):
    """An export: who asked for which rows in which format, how far the job got, and the file it made.

    `public_id` is the random id printed in the file's watermark and used in links; `id` never leaves the server.
    The file is kept encrypted (it may hold personal data) until it is purged, 7 days after it was made.
    """

    __tablename__ = "export_requests"
    __table_args__ = (
        Index("ix_export_requests_requested_by_id_created_at", "requested_by_id", "created_at"),
        Index("ix_export_requests_status_purge_after", "status", "purge_after"),
    )
    approval_request = None  # set (not stored) when an approval rule held the export (shared.services.approvals.gate)

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    format: Mapped[str] = mapped_column(String(8))
    filters = mapped_column(JSON, nullable=False)
    personal: Mapped[bool] = mapped_column(Boolean, default=False)
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    # As they were when asked: the watermark names the exporter even if the account is renamed later.
    requested_by_label: Mapped[str] = mapped_column(String(64))
    requested_by_name: Mapped[str] = mapped_column(String(120))
    requested_role: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(24))  # shared/floor_lifecycle.py EXPORT
    clearance: Mapped[str | None] = mapped_column(String(16))  # "step_up" or "approval"
    clearance_ref: Mapped[str | None] = mapped_column(String(120))
    cleared_by_label: Mapped[str | None] = mapped_column(String(120))
    cleared_at = mapped_column(UTCDateTime)
    progress_done: Mapped[int] = mapped_column(Integer, default=0)
    progress_total: Mapped[int | None] = mapped_column(Integer)
    row_count: Mapped[int | None] = mapped_column(Integer)
    revealed_fields: Mapped[str | None] = mapped_column(String(120))  # personal fields written in full, comma list
    filename: Mapped[str | None] = mapped_column(String(200))
    content = deferred(mapped_column(EncryptedBlob))
    content_bytes: Mapped[int | None] = mapped_column(Integer)
    sha256: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(String(500))
    download_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    started_at = mapped_column(UTCDateTime)
    finished_at = mapped_column(UTCDateTime)
    expires_at = mapped_column(UTCDateTime)  # the download link: finished + 24 h
    purge_after = mapped_column(UTCDateTime)  # the file: finished (or failed) + 7 days
    purged_at = mapped_column(UTCDateTime)

    requested_by = relationship("StaffUser")


class ExportDownload(db.Model):
    """One download of an export's file: who, from where, when (also written to the access log)."""

    __tablename__ = "export_downloads"

    id: Mapped[int] = mapped_column(primary_key=True)
    export_id: Mapped[int] = mapped_column(ForeignKey("export_requests.id"), index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    actor_label: Mapped[str] = mapped_column(String(120))
    ip: Mapped[str | None] = mapped_column(String(64))
    downloaded_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
