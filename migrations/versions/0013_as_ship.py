"""Replacements of after-sales requests (issue 13): an exchange moved to `replaced` and a re-send moved to `resent`
send the goods out again as a replacement order (zero price, on the after-sales channel), linked here from the
request; unique, so one request never has two replacements.

Revision ID: 0013_as_ship
Revises: 0012_ui_find
"""
import sqlalchemy as sa
from alembic import op

revision = "0013_as_ship"
down_revision = "0012_ui_find"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("after_sales") as batch:
        batch.add_column(sa.Column("replacement_order_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f("fk_after_sales_replacement_order_id_orders"), "orders",
                                 ["replacement_order_id"], ["id"])
        batch.create_unique_constraint(op.f("uq_after_sales_replacement_order_id"), ["replacement_order_id"])


def downgrade() -> None:
    with op.batch_alter_table("after_sales") as batch:
        batch.drop_constraint(op.f("uq_after_sales_replacement_order_id"), type_="unique")
        batch.drop_constraint(op.f("fk_after_sales_replacement_order_id_orders"), type_="foreignkey")
        batch.drop_column("replacement_order_id")
