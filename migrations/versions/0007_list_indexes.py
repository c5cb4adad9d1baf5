"""Partial covering indexes for the orders list and the fulfilment board at a million orders.

- `ix_shipments_open_board`: open shipments only (delivered and cancelled ones, most of the table after a
  while, are not in it), keyed as the board reads them (status, warehouse, oldest allocation first, id) and
  carrying ship_by, so the per-step counts, the overdue counts and the oldest-first pages are index-only scans.
  It replaces `ix_shipments_status_warehouse_id_allocated_at` and `ix_shipments_status_ship_by`: every query
  that filters shipments by status asks for open steps or `shipped` (board, waves, allocation, alarms,
  tracking), all inside this index's predicate.
- `ix_orders_status_placed_at_id` becomes covering (channel_id, warehouse_id included): a status filter with a
  channel or warehouse filter, and the capped count of the list, read the index only.
- `ix_orders_open_placed_at_id`: orders still being worked on, newest first, with their status, channel and
  warehouse: a filter by several open statuses (picking or packed) reads one index in page order.

Revision ID: 0007_list_indexes
Revises: 0006_accounts
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = "0007_list_indexes"
down_revision = "0006_accounts"
branch_labels = None
depends_on = None

OPEN_SHIPMENTS = "status IN ('allocated', 'waved', 'picking', 'picked', 'packed', 'shipped')"
OPEN_ORDERS = "status IN ('pending_review', 'confirmed', 'allocated', 'picking', 'packed', 'on_hold')"


def upgrade() -> None:
    op.create_index("ix_shipments_open_board", "shipments", ["status", "warehouse_id", "allocated_at", "id"],
                    postgresql_include=["ship_by"], postgresql_where=sa.text(OPEN_SHIPMENTS),
                    sqlite_where=sa.text(OPEN_SHIPMENTS))
    op.drop_index("ix_shipments_status_warehouse_id_allocated_at", table_name="shipments")
    op.drop_index("ix_shipments_status_ship_by", table_name="shipments")
    op.create_index("ix_orders_open_placed_at_id", "orders", ["placed_at", "id"],
                    postgresql_include=["status", "channel_id", "warehouse_id"],
                    postgresql_where=sa.text(OPEN_ORDERS), sqlite_where=sa.text(OPEN_ORDERS))
    if op.get_bind().dialect.name == "postgresql":  # SQLite has no INCLUDE: its index stays as it was
        op.create_index("ix_orders_status_placed_at_id_cover", "orders", ["status", "placed_at", "id"],
                        postgresql_include=["channel_id", "warehouse_id"])
        op.drop_index("ix_orders_status_placed_at_id", table_name="orders")
        op.execute("ALTER INDEX ix_orders_status_placed_at_id_cover RENAME TO ix_orders_status_placed_at_id")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_index("ix_orders_status_placed_at_id_plain", "orders", ["status", "placed_at", "id"])
        op.drop_index("ix_orders_status_placed_at_id", table_name="orders")
        op.execute("ALTER INDEX ix_orders_status_placed_at_id_plain RENAME TO ix_orders_status_placed_at_id")
    op.drop_index("ix_orders_open_placed_at_id", table_name="orders")
    op.create_index("ix_shipments_status_ship_by", "shipments", ["status", "ship_by"])
    op.create_index("ix_shipments_status_warehouse_id_allocated_at", "shipments",
                    ["status", "warehouse_id", "allocated_at"])
    op.drop_index("ix_shipments_open_board", table_name="shipments")
