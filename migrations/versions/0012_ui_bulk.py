"""Bulk work on the order list (issue 14 item 4): bulk jobs with their frozen set of orders and a result per order,
the order's assignee (a user and/or a team), and saved list filters per user.

Revision ID: 0012_ui_bulk
Revises: 0011_cs_self
"""
import sqlalchemy as sa
from alembic import op

revision = "0012_ui_bulk"
down_revision = "0011_cs_self"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "bulk_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(24), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("stepped_up", sa.Boolean(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done_count", sa.Integer(), nullable=False),
        sa.Column("refused_count", sa.Integer(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        sa.Column("created_by_label", sa.String(64), nullable=False),
        sa.Column("created_ip", sa.String(45), nullable=True),
        sa.Column("export_public_id", sa.String(24), nullable=True),
        sa.Column("error", sa.String(500), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("started_at", TZ, nullable=True),
        sa.Column("finished_at", TZ, nullable=True),
        sa.ForeignKeyConstraint(["created_by_id"], ["staff_users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("public_id"),
    )
    op.create_index("ix_bulk_jobs_created_by_id_created_at", "bulk_jobs", ["created_by_id", "created_at"])
    op.create_table(
        "bulk_job_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("order_no", sa.String(20), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("code", sa.String(40), nullable=True),
        sa.Column("message", sa.String(500), nullable=True),
        sa.Column("status_before", sa.String(20), nullable=True),
        sa.Column("status_after", sa.String(20), nullable=True),
        sa.Column("finished_at", TZ, nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["bulk_jobs.id"]),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id", "position"),
    )
    op.create_index("ix_bulk_job_items_order_id", "bulk_job_items", ["order_id"])
    op.create_table(
        "order_assignments",
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("assignee_id", sa.Integer(), nullable=True),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("assigned_at", TZ, nullable=False),
        sa.Column("assigned_by_label", sa.String(120), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"]),
        sa.ForeignKeyConstraint(["assignee_id"], ["staff_users.id"]),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"]),
        sa.PrimaryKeyConstraint("order_id"),
    )
    op.create_index("ix_order_assignments_assignee_id", "order_assignments", ["assignee_id"])
    op.create_index("ix_order_assignments_team_id", "order_assignments", ["team_id"])
    op.create_table(
        "saved_order_filters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(60), nullable=False),
        sa.Column("query", sa.JSON(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["staff_users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("owner_id", "name"),
    )


def downgrade() -> None:
    op.drop_table("saved_order_filters")
    op.drop_index("ix_order_assignments_team_id", table_name="order_assignments")
    op.drop_index("ix_order_assignments_assignee_id", table_name="order_assignments")
    op.drop_table("order_assignments")
    op.drop_index("ix_bulk_job_items_order_id", table_name="bulk_job_items")
    op.drop_table("bulk_job_items")
    op.drop_index("ix_bulk_jobs_created_by_id_created_at", table_name="bulk_jobs")
    op.drop_table("bulk_jobs")
