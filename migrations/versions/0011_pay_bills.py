"""Bills through the providers' signed APIs (issue: pay_bills): a payment account keeps the merchant's own API
private key (encrypted, like the API v3 key) and, for WeChat Pay, the serial of the merchant API certificate.

Revision ID: 0011_pay_bills
Revises: 0010_red_letters
"""
import sqlalchemy as sa
from alembic import op

revision = "0011_pay_bills"
down_revision = "0010_red_letters"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("payment_accounts") as table:
        table.add_column(sa.Column("merchant_private_key", sa.Text(), nullable=True))
        table.add_column(sa.Column("merchant_serial", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("payment_accounts") as table:
        table.drop_column("merchant_serial")
        table.drop_column("merchant_private_key")
