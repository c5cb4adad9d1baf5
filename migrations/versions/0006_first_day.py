"""Open alarms are looked up by order: an index for the anti-join that finds late orders without one.

Revision ID: 0006_first_day
Revises: 0005
Create Date: 2026-12-02 06:20:00
"""
from alembic import op

revision = "0006_first_day"
down_revision = "0006_platform_ciphertext"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("fulfilment_alarms", schema=None) as batch_op:
        batch_op.create_index("ix_fulfilment_alarms_order_id_kind", ["order_id", "kind"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("fulfilment_alarms", schema=None) as batch_op:
        batch_op.drop_index("ix_fulfilment_alarms_order_id_kind")
