"""Fulfilment: bins, lots, waves, shipments, pick tasks, devices, scans, tracking, carrier attempts, alarms.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 23:59:15.390421
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('bins',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('warehouse_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('walk_order', sa.Integer(), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['warehouse_id'], ['warehouses.id'], name=op.f('fk_bins_warehouse_id_warehouses')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bins')),
    sa.UniqueConstraint('warehouse_id', 'code', name=op.f('uq_bins_warehouse_id_code'))
    )
    op.create_table('devices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.Column('warehouse_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['warehouse_id'], ['warehouses.id'], name=op.f('fk_devices_warehouse_id_warehouses')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_devices')),
    sa.UniqueConstraint('name', name=op.f('uq_devices_name')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_devices_token_hash'))
    )
    op.create_table('waves',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('warehouse_id', sa.Integer(), nullable=False),
    sa.Column('carrier_code', sa.String(length=8), nullable=False),
    sa.Column('cutoff_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('order_count', sa.Integer(), nullable=False),
    sa.Column('released_count', sa.Integer(), nullable=False),
    sa.Column('task_count', sa.Integer(), nullable=False),
    sa.Column('short_count', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('released_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['warehouse_id'], ['warehouses.id'], name=op.f('fk_waves_warehouse_id_warehouses')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_waves'))
    )
    with op.batch_alter_table('waves', schema=None) as batch_op:
        batch_op.create_index('ix_waves_warehouse_id_status', ['warehouse_id', 'status'], unique=False)

    op.create_table('lots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sku_id', sa.Integer(), nullable=False),
    sa.Column('warehouse_id', sa.Integer(), nullable=False),
    sa.Column('bin_id', sa.Integer(), nullable=False),
    sa.Column('lot_no', sa.String(length=40), nullable=False),
    sa.Column('produced_on', sa.Date(), nullable=True),
    sa.Column('expires_on', sa.Date(), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('allocated', sa.Integer(), nullable=False),
    sa.CheckConstraint('allocated >= 0 AND allocated <= quantity', name=op.f('ck_lots_allocated_within_quantity')),
    sa.CheckConstraint('quantity >= 0', name=op.f('ck_lots_quantity_not_negative')),
    sa.ForeignKeyConstraint(['bin_id'], ['bins.id'], name=op.f('fk_lots_bin_id_bins')),
    sa.ForeignKeyConstraint(['sku_id'], ['skus.id'], name=op.f('fk_lots_sku_id_skus')),
    sa.ForeignKeyConstraint(['warehouse_id'], ['warehouses.id'], name=op.f('fk_lots_warehouse_id_warehouses')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lots'))
    )
    with op.batch_alter_table('lots', schema=None) as batch_op:
        batch_op.create_index('ix_lots_sku_id_warehouse_id_expires_on', ['sku_id', 'warehouse_id', 'expires_on', 'received_at'], unique=False)
        batch_op.create_index('ix_lots_warehouse_id_expires_on', ['warehouse_id', 'expires_on'], unique=False)

    op.create_table('shipments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('warehouse_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('ship_by', sa.DateTime(timezone=True), nullable=True),
    sa.Column('carrier_code', sa.String(length=8), nullable=True),
    sa.Column('waybill_no', sa.String(length=40), nullable=True),
    sa.Column('sort_code', sa.String(length=40), nullable=True),
    sa.Column('label_html', sa.Text(), nullable=True),
    sa.Column('line_ids', sa.JSON(), nullable=True),
    sa.Column('wave_id', sa.Integer(), nullable=True),
    sa.Column('box_code', sa.String(length=40), nullable=True),
    sa.Column('truck_code', sa.String(length=40), nullable=True),
    sa.Column('allocated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('picked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('packed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('shipped_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('tracking_step', sa.String(length=20), nullable=True),
    sa.Column('tracking_flags', sa.String(length=120), nullable=True),
    sa.Column('last_event_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('stalled_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_shipments_order_id_orders')),
    sa.ForeignKeyConstraint(['warehouse_id'], ['warehouses.id'], name=op.f('fk_shipments_warehouse_id_warehouses')),
    sa.ForeignKeyConstraint(['wave_id'], ['waves.id'], name=op.f('fk_shipments_wave_id_waves')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shipments')),
    sa.UniqueConstraint('waybill_no', name=op.f('uq_shipments_waybill_no'))
    )
    with op.batch_alter_table('shipments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shipments_order_id'), ['order_id'], unique=False)
        batch_op.create_index('ix_shipments_status_warehouse_id_allocated_at', ['status', 'warehouse_id', 'allocated_at'], unique=False)
        batch_op.create_index('ix_shipments_step_last_event_at', ['tracking_step', 'last_event_at'], unique=False)
        batch_op.create_index('ix_shipments_wave_id', ['wave_id'], unique=False)
        batch_op.create_index('ix_shipments_status_ship_by', ['status', 'ship_by'], unique=False)
        batch_op.create_index('ix_shipments_carrier_code_shipped_at', ['carrier_code', 'shipped_at'], unique=False)
        batch_op.create_index('uq_shipments_open_order', ['order_id', 'warehouse_id'], unique=True,
                              postgresql_where=sa.text("status <> 'cancelled'"),
                              sqlite_where=sa.text("status <> 'cancelled'"))

    op.create_table('carrier_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('shipment_id', sa.Integer(), nullable=False),
    sa.Column('carrier_code', sa.String(length=8), nullable=False),
    sa.Column('outcome', sa.String(length=12), nullable=False),
    sa.Column('message', sa.String(length=300), nullable=True),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['shipment_id'], ['shipments.id'], name=op.f('fk_carrier_attempts_shipment_id_shipments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_carrier_attempts'))
    )
    with op.batch_alter_table('carrier_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_carrier_attempts_shipment_id'), ['shipment_id'], unique=False)

    op.create_table('fulfilment_alarms',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=True),
    sa.Column('shipment_id', sa.Integer(), nullable=True),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('message', sa.String(length=500), nullable=False),
    sa.Column('raised_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('delivered', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_fulfilment_alarms_order_id_orders')),
    sa.ForeignKeyConstraint(['shipment_id'], ['shipments.id'], name=op.f('fk_fulfilment_alarms_shipment_id_shipments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fulfilment_alarms'))
    )
    with op.batch_alter_table('fulfilment_alarms', schema=None) as batch_op:
        batch_op.create_index('ix_fulfilment_alarms_kind_resolved_at', ['kind', 'resolved_at'], unique=False)
        batch_op.create_index('ix_fulfilment_alarms_shipment_id', ['shipment_id'], unique=False)

    op.create_table('pick_tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('wave_id', sa.Integer(), nullable=False),
    sa.Column('shipment_id', sa.Integer(), nullable=False),
    sa.Column('sku_id', sa.Integer(), nullable=False),
    sa.Column('lot_id', sa.Integer(), nullable=False),
    sa.Column('bin_id', sa.Integer(), nullable=False),
    sa.Column('walk_order', sa.Integer(), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('picked', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('picked >= 0 AND picked <= quantity', name=op.f('ck_pick_tasks_picked_within_quantity')),
    sa.CheckConstraint('quantity > 0', name=op.f('ck_pick_tasks_quantity_positive')),
    sa.ForeignKeyConstraint(['bin_id'], ['bins.id'], name=op.f('fk_pick_tasks_bin_id_bins')),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_pick_tasks_device_id_devices')),
    sa.ForeignKeyConstraint(['lot_id'], ['lots.id'], name=op.f('fk_pick_tasks_lot_id_lots')),
    sa.ForeignKeyConstraint(['shipment_id'], ['shipments.id'], name=op.f('fk_pick_tasks_shipment_id_shipments')),
    sa.ForeignKeyConstraint(['sku_id'], ['skus.id'], name=op.f('fk_pick_tasks_sku_id_skus')),
    sa.ForeignKeyConstraint(['wave_id'], ['waves.id'], name=op.f('fk_pick_tasks_wave_id_waves')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pick_tasks'))
    )
    with op.batch_alter_table('pick_tasks', schema=None) as batch_op:
        batch_op.create_index('ix_pick_tasks_shipment_id', ['shipment_id'], unique=False)
        batch_op.create_index('ix_pick_tasks_status_started_at', ['status', 'started_at'], unique=False)
        batch_op.create_index('ix_pick_tasks_wave_id_walk', ['wave_id', 'walk_order'], unique=False)

    op.create_table('scan_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('operator', sa.String(length=60), nullable=False),
    sa.Column('station', sa.String(length=40), nullable=True),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('shipment_id', sa.Integer(), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('accepted', sa.Boolean(), nullable=False),
    sa.Column('message', sa.String(length=300), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_scan_events_device_id_devices')),
    sa.ForeignKeyConstraint(['shipment_id'], ['shipments.id'], name=op.f('fk_scan_events_shipment_id_shipments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scan_events'))
    )
    with op.batch_alter_table('scan_events', schema=None) as batch_op:
        batch_op.create_index('ix_scan_events_occurred_at', ['occurred_at'], unique=False)
        batch_op.create_index('ix_scan_events_shipment_id', ['shipment_id'], unique=False)

    op.create_table('tracking_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('shipment_id', sa.Integer(), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=12), nullable=False),
    sa.Column('raw_status', sa.String(length=40), nullable=False),
    sa.Column('step', sa.String(length=20), nullable=True),
    sa.Column('flag', sa.String(length=20), nullable=True),
    sa.Column('description', sa.String(length=500), nullable=False),
    sa.Column('description_hash', sa.String(length=16), nullable=False),
    sa.Column('location', sa.String(length=120), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['shipment_id'], ['shipments.id'], name=op.f('fk_tracking_events_shipment_id_shipments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tracking_events')),
    sa.UniqueConstraint('shipment_id', 'occurred_at', 'source', 'description_hash', name=op.f('uq_tracking_events_shipment_id_occurred_at_source_description_hash'))
    )
    with op.batch_alter_table('tracking_events', schema=None) as batch_op:
        batch_op.create_index('ix_tracking_events_shipment_id_occurred_at', ['shipment_id', 'occurred_at'], unique=False)

    with op.batch_alter_table('skus', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cold_chain', sa.Boolean(), server_default='0', nullable=False))

    with op.batch_alter_table('warehouses', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cold_chain', sa.Boolean(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('carriers', sa.String(length=100), server_default='SF,YTO', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('warehouses', schema=None) as batch_op:
        batch_op.drop_column('carriers')
        batch_op.drop_column('cold_chain')

    with op.batch_alter_table('skus', schema=None) as batch_op:
        batch_op.drop_column('cold_chain')

    with op.batch_alter_table('tracking_events', schema=None) as batch_op:
        batch_op.drop_index('ix_tracking_events_shipment_id_occurred_at')

    op.drop_table('tracking_events')
    with op.batch_alter_table('scan_events', schema=None) as batch_op:
        batch_op.drop_index('ix_scan_events_shipment_id')
        batch_op.drop_index('ix_scan_events_occurred_at')

    op.drop_table('scan_events')
    with op.batch_alter_table('pick_tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_pick_tasks_wave_id_walk')
        batch_op.drop_index('ix_pick_tasks_status_started_at')
        batch_op.drop_index('ix_pick_tasks_shipment_id')

    op.drop_table('pick_tasks')
    with op.batch_alter_table('fulfilment_alarms', schema=None) as batch_op:
        batch_op.drop_index('ix_fulfilment_alarms_shipment_id')
        batch_op.drop_index('ix_fulfilment_alarms_kind_resolved_at')

    op.drop_table('fulfilment_alarms')
    with op.batch_alter_table('carrier_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_carrier_attempts_shipment_id'))

    op.drop_table('carrier_attempts')
    with op.batch_alter_table('shipments', schema=None) as batch_op:
        batch_op.drop_index('uq_shipments_open_order')
        batch_op.drop_index('ix_shipments_carrier_code_shipped_at')
        batch_op.drop_index('ix_shipments_status_ship_by')
        batch_op.drop_index('ix_shipments_wave_id')
        batch_op.drop_index('ix_shipments_step_last_event_at')
        batch_op.drop_index('ix_shipments_status_warehouse_id_allocated_at')
        batch_op.drop_index(batch_op.f('ix_shipments_order_id'))

    op.drop_table('shipments')
    with op.batch_alter_table('lots', schema=None) as batch_op:
        batch_op.drop_index('ix_lots_warehouse_id_expires_on')
        batch_op.drop_index('ix_lots_sku_id_warehouse_id_expires_on')

    op.drop_table('lots')
    with op.batch_alter_table('waves', schema=None) as batch_op:
        batch_op.drop_index('ix_waves_warehouse_id_status')

    op.drop_table('waves')
    op.drop_table('devices')
    op.drop_table('bins')
