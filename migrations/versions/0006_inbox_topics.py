"""Webhook topics in the inbox, platform refunds applied once each, and the carrier tracking-push inbox.

Revision ID: 0006_inbox_topics
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa


revision = "0006_inbox_topics"
down_revision = "0006_audit_seal"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbox_items") as batch:
        batch.add_column(sa.Column("topic", sa.String(length=64), nullable=True))
    op.create_table(
        "platform_refunds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("platform_refund_id", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("refunded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("inbox_item_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["channel_id"], ["channels.id"], name=op.f("fk_platform_refunds_channel_id_channels")),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_platform_refunds_order_id_orders")),
        sa.ForeignKeyConstraint(["inbox_item_id"], ["inbox_items.id"],
                                name=op.f("fk_platform_refunds_inbox_item_id_inbox_items")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platform_refunds")),
        sa.UniqueConstraint("channel_id", "platform_refund_id",
                            name=op.f("uq_platform_refunds_channel_id_platform_refund_id")),
    )
    op.create_index(op.f("ix_platform_refunds_order_id"), "platform_refunds", ["order_id"])
    op.create_table(
        "tracking_pushes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=12), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("times_received", sa.Integer(), nullable=False),
        sa.Column("waybill_no", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error_code", sa.String(length=40), nullable=True),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=40), nullable=True),
        sa.Column("events_stored", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracking_pushes")),
        sa.UniqueConstraint("source", "content_hash", name=op.f("uq_tracking_pushes_source_content_hash")),
    )
    op.create_index("ix_tracking_pushes_status_next_attempt_at", "tracking_pushes", ["status", "next_attempt_at"])
    op.create_index("ix_tracking_pushes_waybill_no", "tracking_pushes", ["waybill_no"])


def downgrade() -> None:
    op.drop_index("ix_tracking_pushes_waybill_no", table_name="tracking_pushes")
    op.drop_index("ix_tracking_pushes_status_next_attempt_at", table_name="tracking_pushes")
    op.drop_table("tracking_pushes")
    op.drop_index(op.f("ix_platform_refunds_order_id"), table_name="platform_refunds")
    op.drop_table("platform_refunds")
    with op.batch_alter_table("inbox_items") as batch:
        batch.drop_column("topic")
