"""Refunds of orders (shared.services.refunds): the refunds asked for here, and what the payment accounts need to
call the providers' refund APIs (the merchant's API private key, its certificate serial, the API address).

Revision ID: 0011_pay_refunds
Revises: 0011_fin_reds
"""
import sqlalchemy as sa
from alembic import op

revision = "0011_pay_refunds"
down_revision = "0011_fin_reds"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
MONEY = sa.Numeric(precision=12, scale=2)


def upgrade() -> None:
    with op.batch_alter_table("payment_accounts") as batch:
        batch.add_column(sa.Column("merchant_private_key", sa.Text(), nullable=True))
        batch.add_column(sa.Column("merchant_serial", sa.String(64), nullable=True))
        batch.add_column(sa.Column("api_url", sa.String(300), nullable=True))
    op.create_table(
        "order_refunds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("out_refund_no", sa.String(64), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("provider", sa.String(12), nullable=True),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("provider_refund_id", sa.String(64), nullable=True),
        sa.Column("goods_returned", sa.Boolean(), nullable=False),
        sa.Column("after_sale_id", sa.Integer(), nullable=True),
        sa.Column("lines", sa.JSON(), nullable=True),
        sa.Column("approval_request_id", sa.Integer(), nullable=True),
        sa.Column("platform_refund_id", sa.Integer(), nullable=True),
        sa.Column("error_code", sa.String(60), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("requested_by", sa.String(80), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("completed_at", TZ, nullable=True),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_order_refunds_order_id_orders")),
        sa.ForeignKeyConstraint(["account_id"], ["payment_accounts.id"],
                                name=op.f("fk_order_refunds_account_id_payment_accounts")),
        sa.ForeignKeyConstraint(["approval_request_id"], ["approval_requests.id"],
                                name=op.f("fk_order_refunds_approval_request_id_approval_requests")),
        sa.ForeignKeyConstraint(["platform_refund_id"], ["platform_refunds.id"],
                                name=op.f("fk_order_refunds_platform_refund_id_platform_refunds")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_refunds")),
        sa.UniqueConstraint("out_refund_no", name=op.f("uq_order_refunds_out_refund_no")),
    )
    op.create_index(op.f("ix_order_refunds_order_id"), "order_refunds", ["order_id"])
    op.create_index("ix_order_refunds_status_updated_at", "order_refunds", ["status", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_order_refunds_status_updated_at", table_name="order_refunds")
    op.drop_index(op.f("ix_order_refunds_order_id"), table_name="order_refunds")
    op.drop_table("order_refunds")
    with op.batch_alter_table("payment_accounts") as batch:
        batch.drop_column("api_url")
        batch.drop_column("merchant_serial")
        batch.drop_column("merchant_private_key")
