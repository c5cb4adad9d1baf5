"""Governed exports: the export requests (kind, filters, format, personal or not, who asked, state, progress, the
encrypted file and its SHA-256, link expiry and purge times) and each download of them.

Revision ID: 0009_exports
Revises: 0009_second_factor
"""
import sqlalchemy as sa
from alembic import op

revision = "0009_exports"
down_revision = "0009_second_factor"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "export_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=24), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("filters", sa.JSON(), nullable=False),
        sa.Column("personal", sa.Boolean(), nullable=False),
        sa.Column("requested_by_id", sa.Integer(), nullable=False),
        sa.Column("requested_by_label", sa.String(length=64), nullable=False),
        sa.Column("requested_by_name", sa.String(length=120), nullable=False),
        sa.Column("requested_role", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("clearance", sa.String(length=16), nullable=True),
        sa.Column("clearance_ref", sa.String(length=120), nullable=True),
        sa.Column("cleared_by_label", sa.String(length=120), nullable=True),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("progress_done", sa.Integer(), nullable=False),
        sa.Column("progress_total", sa.Integer(), nullable=True),
        sa.Column("row_count", sa.Integer(), nullable=True),
        sa.Column("revealed_fields", sa.String(length=120), nullable=True),
        sa.Column("filename", sa.String(length=200), nullable=True),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.Column("content_bytes", sa.Integer(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("download_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("purge_after", sa.DateTime(timezone=True), nullable=True),
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["requested_by_id"], ["staff_users.id"],
                                name=op.f("fk_export_requests_requested_by_id_staff_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_export_requests")),
        sa.UniqueConstraint("public_id", name=op.f("uq_export_requests_public_id")),
    )
    with op.batch_alter_table("export_requests", schema=None) as batch_op:
        batch_op.create_index("ix_export_requests_requested_by_id_created_at", ["requested_by_id", "created_at"],
                              unique=False)
        batch_op.create_index("ix_export_requests_status_purge_after", ["status", "purge_after"], unique=False)

    op.create_table(
        "export_downloads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("export_id", sa.Integer(), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("actor_label", sa.String(length=120), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("downloaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["actor_id"], ["staff_users.id"],
                                name=op.f("fk_export_downloads_actor_id_staff_users")),
        sa.ForeignKeyConstraint(["export_id"], ["export_requests.id"],
                                name=op.f("fk_export_downloads_export_id_export_requests")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_export_downloads")),
    )
    with op.batch_alter_table("export_downloads", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_export_downloads_export_id"), ["export_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("export_downloads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_export_downloads_export_id"))
    op.drop_table("export_downloads")
    with op.batch_alter_table("export_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_export_requests_status_purge_after")
        batch_op.drop_index("ix_export_requests_requested_by_id_created_at")
    op.drop_table("export_requests")
