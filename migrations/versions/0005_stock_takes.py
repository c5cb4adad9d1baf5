"""Stock-takes (counted figures per SKU, a manager's approval before any adjustment); what an alarm is about.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 00:27:12.383727
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('stock_takes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('warehouse_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('started_by', sa.String(length=120), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_by', sa.String(length=120), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.ForeignKeyConstraint(['warehouse_id'], ['warehouses.id'], name=op.f('fk_stock_takes_warehouse_id_warehouses')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stock_takes'))
    )
    op.create_table('stock_take_lines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('stock_take_id', sa.Integer(), nullable=False),
    sa.Column('sku_id', sa.Integer(), nullable=False),
    sa.Column('expected', sa.Integer(), nullable=False),
    sa.Column('counted', sa.Integer(), nullable=True),
    sa.Column('counted_by', sa.String(length=120), nullable=True),
    sa.CheckConstraint('counted IS NULL OR counted >= 0', name=op.f('ck_stock_take_lines_counted_not_negative')),
    sa.ForeignKeyConstraint(['sku_id'], ['skus.id'], name=op.f('fk_stock_take_lines_sku_id_skus')),
    sa.ForeignKeyConstraint(['stock_take_id'], ['stock_takes.id'], name=op.f('fk_stock_take_lines_stock_take_id_stock_takes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stock_take_lines')),
    sa.UniqueConstraint('stock_take_id', 'sku_id', name=op.f('uq_stock_take_lines_stock_take_id_sku_id'))
    )
    with op.batch_alter_table('fulfilment_alarms', schema=None) as batch_op:
        batch_op.add_column(sa.Column('subject', sa.String(length=80), nullable=True))
    with op.batch_alter_table('stock_movements', schema=None) as batch_op:
        batch_op.create_index('ix_stock_movements_kind_id', ['kind', 'id'], unique=False)
        batch_op.create_index('ix_stock_movements_warehouse_id_id', ['warehouse_id', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('stock_movements', schema=None) as batch_op:
        batch_op.drop_index('ix_stock_movements_warehouse_id_id')
        batch_op.drop_index('ix_stock_movements_kind_id')
    with op.batch_alter_table('fulfilment_alarms', schema=None) as batch_op:
        batch_op.drop_column('subject')
    op.drop_table('stock_take_lines')
    op.drop_table('stock_takes')
