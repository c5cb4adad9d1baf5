"""Payments (issue 12 item 8): provider accounts per direct channel (keys encrypted), the payment-notification
inbox, recorded payments (one per provider transaction), and the daily bill reconciliations with their mismatches.

Revision ID: 0010_payments
Revises: 0010_finance_base
"""
import sqlalchemy as sa
from alembic import op

revision = "0010_payments"
down_revision = "0010_finance_base"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
MONEY = sa.Numeric(12, 2)


def _fk(table: str, column: str, target: str):
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"))


def upgrade() -> None:
    op.create_table(
        "payment_accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(12), nullable=False),
        sa.Column("merchant_id", sa.String(32), nullable=True),
        sa.Column("app_id", sa.String(32), nullable=True),
        sa.Column("api_v3_key", sa.Text(), nullable=True),
        sa.Column("provider_public_key", sa.Text(), nullable=True),
        sa.Column("platform_serial", sa.String(64), nullable=True),
        sa.Column("bill_url", sa.String(300), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        _fk("payment_accounts", "channel_id", "channels"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_accounts")),
        sa.UniqueConstraint("channel_id", "provider", name=op.f("uq_payment_accounts_channel_id_provider")),
    )
    op.create_table(
        "payment_notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(12), nullable=False),
        sa.Column("received_at", TZ, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("times_received", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error_code", sa.String(40), nullable=True),
        sa.Column("last_error", sa.String(1000), nullable=True),
        sa.Column("next_attempt_at", TZ, nullable=True),
        sa.Column("claimed_at", TZ, nullable=True),
        sa.Column("processed_at", TZ, nullable=True),
        sa.Column("payload_purged_at", TZ, nullable=True),
        sa.Column("outcome", sa.String(40), nullable=True),
        sa.Column("out_trade_no", sa.String(64), nullable=True),
        sa.Column("transaction_id", sa.String(64), nullable=True),
        sa.Column("amount", MONEY, nullable=True),
        sa.Column("order_id", sa.Integer(), nullable=True),
        _fk("payment_notices", "account_id", "payment_accounts"),
        _fk("payment_notices", "order_id", "orders"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_notices")),
        sa.UniqueConstraint("account_id", "content_hash", name=op.f("uq_payment_notices_account_id_content_hash")),
    )
    op.create_index("ix_payment_notices_status_next_attempt_at", "payment_notices", ["status", "next_attempt_at"])
    op.create_index("ix_payment_notices_out_trade_no", "payment_notices", ["out_trade_no"])
    op.create_table(
        "payments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(12), nullable=False),
        sa.Column("transaction_id", sa.String(64), nullable=False),
        sa.Column("out_trade_no", sa.String(64), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("paid_at", TZ, nullable=False),
        sa.Column("notice_id", sa.Integer(), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        _fk("payments", "account_id", "payment_accounts"),
        _fk("payments", "order_id", "orders"),
        _fk("payments", "notice_id", "payment_notices"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("provider", "transaction_id", name=op.f("uq_payments_provider_transaction_id")),
    )
    op.create_index("ix_payments_order_id", "payments", ["order_id"])
    op.create_index("ix_payments_account_id_paid_at", "payments", ["account_id", "paid_at"])
    op.create_table(
        "payment_reconciliations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(12), nullable=False),
        sa.Column("bill_date", sa.Date(), nullable=False),
        sa.Column("source", sa.String(12), nullable=False),
        sa.Column("filename", sa.String(200), nullable=True),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("finished_at", TZ, nullable=True),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("error", sa.String(1000), nullable=True),
        sa.Column("started_by", sa.String(80), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in (
            "bill_rows", "matched", "paid_not_recorded", "recorded_not_paid", "amount_mismatch", "refund_mismatch",
            "malformed")),
        _fk("payment_reconciliations", "account_id", "payment_accounts"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_reconciliations")),
    )
    op.create_index("ix_payment_reconciliations_account_id_bill_date", "payment_reconciliations",
                    ["account_id", "bill_date"])
    op.create_table(
        "payment_mismatches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reconciliation_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=True),
        sa.Column("out_trade_no", sa.String(64), nullable=True),
        sa.Column("transaction_id", sa.String(64), nullable=True),
        sa.Column("bill_amount", MONEY, nullable=True),
        sa.Column("our_amount", MONEY, nullable=True),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.Column("order_no", sa.String(20), nullable=True),
        sa.Column("detail", sa.String(300), nullable=True),
        _fk("payment_mismatches", "reconciliation_id", "payment_reconciliations"),
        _fk("payment_mismatches", "order_id", "orders"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_mismatches")),
    )
    op.create_index("ix_payment_mismatches_reconciliation_id", "payment_mismatches", ["reconciliation_id"])


def downgrade() -> None:
    op.drop_index("ix_payment_mismatches_reconciliation_id", table_name="payment_mismatches")
    op.drop_table("payment_mismatches")
    op.drop_index("ix_payment_reconciliations_account_id_bill_date", table_name="payment_reconciliations")
    op.drop_table("payment_reconciliations")
    op.drop_index("ix_payments_account_id_paid_at", table_name="payments")
    op.drop_index("ix_payments_order_id", table_name="payments")
    op.drop_table("payments")
    op.drop_index("ix_payment_notices_out_trade_no", table_name="payment_notices")
    op.drop_index("ix_payment_notices_status_next_attempt_at", table_name="payment_notices")
    op.drop_table("payment_notices")
    op.drop_table("payment_accounts")
