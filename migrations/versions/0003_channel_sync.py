"""Channel sync: connections, inbox, status and SKU mappings, sync runs, alerts, reconciliation, outbox.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 23:01:00.434128
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('webhook_rejections',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel_code', sa.String(length=40), nullable=False),
    sa.Column('reason', sa.String(length=40), nullable=False),
    sa.Column('detail', sa.String(length=300), nullable=True),
    sa.Column('remote_addr', sa.String(length=64), nullable=True),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_rejections'))
    )
    with op.batch_alter_table('webhook_rejections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_rejections_received_at'), ['received_at'], unique=False)

    op.create_table('webhook_subscriptions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('url', sa.String(length=500), nullable=False),
    sa.Column('secret', sa.Text(), nullable=False),
    sa.Column('events', sa.String(length=200), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_subscriptions'))
    )
    op.create_table('channel_connections',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('base_url', sa.String(length=300), nullable=True),
    sa.Column('app_key', sa.String(length=120), nullable=True),
    sa.Column('app_secret', sa.Text(), nullable=True),
    sa.Column('access_token', sa.Text(), nullable=True),
    sa.Column('webhook_secret', sa.Text(), nullable=True),
    sa.Column('poll_minutes', sa.Integer(), nullable=False),
    sa.Column('overlap_seconds', sa.Integer(), nullable=False),
    sa.Column('polling_enabled', sa.Boolean(), nullable=False),
    sa.Column('watermark', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_poll_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_success_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.String(length=1000), nullable=True),
    sa.Column('consecutive_failures', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_channel_connections_channel_id_channels')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_channel_connections')),
    sa.UniqueConstraint('channel_id', name=op.f('uq_channel_connections_channel_id'))
    )
    op.create_table('channel_sku_mappings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('channel_sku', sa.String(length=64), nullable=False),
    sa.Column('sku_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_channel_sku_mappings_channel_id_channels')),
    sa.ForeignKeyConstraint(['sku_id'], ['skus.id'], name=op.f('fk_channel_sku_mappings_sku_id_skus')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_channel_sku_mappings')),
    sa.UniqueConstraint('channel_id', 'channel_sku', name=op.f('uq_channel_sku_mappings_channel_id_channel_sku'))
    )
    with op.batch_alter_table('channel_sku_mappings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_channel_sku_mappings_sku_id'), ['sku_id'], unique=False)

    op.create_table('channel_status_mappings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('platform_status', sa.String(length=64), nullable=False),
    sa.Column('lifecycle', sa.String(length=20), nullable=False),
    sa.Column('payment_status', sa.String(length=20), nullable=True),
    sa.Column('refund_status', sa.String(length=20), nullable=True),
    sa.Column('note', sa.String(length=200), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_channel_status_mappings_channel_id_channels')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_channel_status_mappings')),
    sa.UniqueConstraint('channel_id', 'platform_status', name=op.f('uq_channel_status_mappings_channel_id_platform_status'))
    )
    op.create_table('reconciliation_reports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('window_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('window_end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.String(length=1000), nullable=True),
    sa.Column('channel_count', sa.Integer(), nullable=False),
    sa.Column('local_count', sa.Integer(), nullable=False),
    sa.Column('missing_here', sa.Integer(), nullable=False),
    sa.Column('missing_there', sa.Integer(), nullable=False),
    sa.Column('mismatched', sa.Integer(), nullable=False),
    sa.Column('refetched', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_reconciliation_reports_channel_id_channels')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reconciliation_reports'))
    )
    with op.batch_alter_table('reconciliation_reports', schema=None) as batch_op:
        batch_op.create_index('ix_reconciliation_reports_channel_id_started_at', ['channel_id', 'started_at'], unique=False)

    op.create_table('sync_alerts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.Column('message', sa.String(length=1000), nullable=False),
    sa.Column('raised_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('delivered', sa.Boolean(), nullable=False),
    sa.Column('delivery_error', sa.String(length=500), nullable=True),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_sync_alerts_channel_id_channels')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_alerts'))
    )
    with op.batch_alter_table('sync_alerts', schema=None) as batch_op:
        batch_op.create_index('ix_sync_alerts_channel_id_kind_resolved_at', ['channel_id', 'kind', 'resolved_at'], unique=False)

    op.create_table('sync_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('window_start', sa.DateTime(timezone=True), nullable=True),
    sa.Column('window_end', sa.DateTime(timezone=True), nullable=True),
    sa.Column('pages', sa.Integer(), nullable=False),
    sa.Column('fetched', sa.Integer(), nullable=False),
    sa.Column('stored', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.String(length=1000), nullable=True),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_sync_runs_channel_id_channels')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_runs'))
    )
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.create_index('ix_sync_runs_channel_id_started_at', ['channel_id', 'started_at'], unique=False)

    op.create_table('inbox_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('times_received', sa.Integer(), nullable=False),
    sa.Column('external_id', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error_code', sa.String(length=40), nullable=True),
    sa.Column('last_error', sa.String(length=1000), nullable=True),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('platform_modified_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=40), nullable=True),
    sa.Column('visible_delay_ms', sa.Integer(), nullable=True),
    sa.Column('order_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_inbox_items_channel_id_channels')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_inbox_items_order_id_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbox_items')),
    sa.UniqueConstraint('channel_id', 'content_hash', name=op.f('uq_inbox_items_channel_id_content_hash'))
    )
    with op.batch_alter_table('inbox_items', schema=None) as batch_op:
        batch_op.create_index('ix_inbox_items_channel_id_external_id', ['channel_id', 'external_id'], unique=False)
        batch_op.create_index('ix_inbox_items_channel_id_processed_at', ['channel_id', 'processed_at'], unique=False)
        batch_op.create_index('ix_inbox_items_channel_id_received_at', ['channel_id', 'received_at'], unique=False)
        batch_op.create_index('ix_inbox_items_status_next_attempt_at', ['status', 'next_attempt_at'], unique=False)

    op.create_table('outbox_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('event_type', sa.String(length=40), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('fanned_out', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_outbox_events_order_id_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox_events')),
    sa.UniqueConstraint('event_id', name=op.f('uq_outbox_events_event_id'))
    )
    with op.batch_alter_table('outbox_events', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_events_fanned_out_id', ['fanned_out', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_events_order_id'), ['order_id'], unique=False)

    op.create_table('reconciliation_differences',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('report_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('channel_order_id', sa.String(length=64), nullable=False),
    sa.Column('platform_status', sa.String(length=64), nullable=True),
    sa.Column('expected_status', sa.String(length=20), nullable=True),
    sa.Column('local_status', sa.String(length=20), nullable=True),
    sa.Column('order_no', sa.String(length=20), nullable=True),
    sa.ForeignKeyConstraint(['report_id'], ['reconciliation_reports.id'], name=op.f('fk_reconciliation_differences_report_id_reconciliation_reports')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reconciliation_differences'))
    )
    with op.batch_alter_table('reconciliation_differences', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reconciliation_differences_report_id'), ['report_id'], unique=False)

    op.create_table('webhook_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('outbox_event_id', sa.Integer(), nullable=False),
    sa.Column('subscription_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_status_code', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('last_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('duration_ms', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['outbox_event_id'], ['outbox_events.id'], name=op.f('fk_webhook_deliveries_outbox_event_id_outbox_events')),
    sa.ForeignKeyConstraint(['subscription_id'], ['webhook_subscriptions.id'], name=op.f('fk_webhook_deliveries_subscription_id_webhook_subscriptions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries')),
    sa.UniqueConstraint('outbox_event_id', 'subscription_id', name=op.f('uq_webhook_deliveries_outbox_event_id_subscription_id'))
    )
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_deliveries_status_next_attempt_at', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_webhook_deliveries_subscription_id'), ['subscription_id'], unique=False)

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('platform_status', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('tax', sa.Numeric(precision=12, scale=2), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('platform_modified_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_orders_channel_id_platform_modified_at', ['channel_id', 'platform_modified_at'],
                              unique=False)



def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_channel_id_platform_modified_at')
        batch_op.drop_column('platform_modified_at')
        batch_op.drop_column('platform_status')
        batch_op.drop_column('tax')

    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_deliveries_subscription_id'))
        batch_op.drop_index('ix_webhook_deliveries_status_next_attempt_at')

    op.drop_table('webhook_deliveries')
    with op.batch_alter_table('reconciliation_differences', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reconciliation_differences_report_id'))

    op.drop_table('reconciliation_differences')
    with op.batch_alter_table('outbox_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_events_order_id'))
        batch_op.drop_index('ix_outbox_events_fanned_out_id')

    op.drop_table('outbox_events')
    with op.batch_alter_table('inbox_items', schema=None) as batch_op:
        batch_op.drop_index('ix_inbox_items_status_next_attempt_at')
        batch_op.drop_index('ix_inbox_items_channel_id_received_at')
        batch_op.drop_index('ix_inbox_items_channel_id_processed_at')
        batch_op.drop_index('ix_inbox_items_channel_id_external_id')

    op.drop_table('inbox_items')
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_sync_runs_channel_id_started_at')

    op.drop_table('sync_runs')
    with op.batch_alter_table('sync_alerts', schema=None) as batch_op:
        batch_op.drop_index('ix_sync_alerts_channel_id_kind_resolved_at')

    op.drop_table('sync_alerts')
    with op.batch_alter_table('reconciliation_reports', schema=None) as batch_op:
        batch_op.drop_index('ix_reconciliation_reports_channel_id_started_at')

    op.drop_table('reconciliation_reports')
    op.drop_table('channel_status_mappings')
    with op.batch_alter_table('channel_sku_mappings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_channel_sku_mappings_sku_id'))

    op.drop_table('channel_sku_mappings')
    op.drop_table('channel_connections')
    op.drop_table('webhook_subscriptions')
    with op.batch_alter_table('webhook_rejections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_rejections_received_at'))

    op.drop_table('webhook_rejections')
