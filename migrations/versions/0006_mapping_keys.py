"""SKU mappings keyed by merchant code, platform variant id or platform product id; order fees and cash on delivery.

Revision ID: 0006_mapping_keys
Revises: 0005
Create Date: 2026-12-02 06:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006_mapping_keys'
down_revision = '0006_first_day'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('channel_sku_mappings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('key_kind', sa.String(length=10), server_default='code', nullable=False))
        batch_op.drop_constraint('uq_channel_sku_mappings_channel_id_channel_sku', type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_channel_sku_mappings_channel_id_key_kind_channel_sku'),
                                          ['channel_id', 'key_kind', 'channel_sku'])
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fees', sa.Numeric(precision=12, scale=2), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('cash_on_delivery', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('cash_on_delivery')
        batch_op.drop_column('fees')
    op.execute("DELETE FROM channel_sku_mappings WHERE key_kind <> 'code'")
    with op.batch_alter_table('channel_sku_mappings', schema=None) as batch_op:
        batch_op.drop_constraint('uq_channel_sku_mappings_channel_id_key_kind_channel_sku', type_='unique')
        batch_op.create_unique_constraint('uq_channel_sku_mappings_channel_id_channel_sku',
                                          ['channel_id', 'channel_sku'])
        batch_op.drop_column('key_kind')
