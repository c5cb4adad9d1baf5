"""The reconciliation window's index covers what reconciliation reads: PostgreSQL answers "which ids, with which
platform status, did this channel change since T" from the index alone (an index-only scan once the table is
vacuumed) instead of reading every order row of the window (the order rows are wide: ciphertext columns).

Revision ID: 0008_reconcile_window_index
Revises: 0007_list_indexes
"""
from alembic import op

revision = "0008_reconcile_window_index"
down_revision = "0007_list_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_orders_channel_id_platform_modified_at", table_name="orders")
    op.create_index("ix_orders_channel_id_platform_modified_at_cover", "orders", ["channel_id", "platform_modified_at"],
                    postgresql_include=["channel_order_id", "platform_status"])


def downgrade() -> None:
    op.drop_index("ix_orders_channel_id_platform_modified_at_cover", table_name="orders")
    op.create_index("ix_orders_channel_id_platform_modified_at", "orders", ["channel_id", "platform_modified_at"])
