"""Indexes for sorting orders by total and for finding stuck orders by status and last change.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Sorting the order list by total read all rows without it (measured: p95 267 ms at 200,000 orders).
    op.create_index("ix_orders_total_id", "orders", ["total", "id"])
    # The dashboard's "stuck for 4 hours" count filters open statuses by updated_at.
    op.create_index("ix_orders_status_updated_at", "orders", ["status", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_orders_status_updated_at", table_name="orders")
    op.drop_index("ix_orders_total_id", table_name="orders")
