"""One provider API address per payment account: `api_url` serves refunds and bill downloads alike (the bills go
through the providers' signed APIs at the same address as refunds), so `bill_url` goes. An address kept only in
`bill_url` is copied into an empty `api_url` first, so no account loses it.

Downgrading brings `bill_url` back empty: at the revision before this one it named the old plain bill file address,
which an API address is not, and an empty one only means the daily job does not download (nothing is guessed).

Revision ID: 0012_payment_api_url
Revises: 0012_ui_bulk
"""
import sqlalchemy as sa
from alembic import op

revision = "0012_payment_api_url"
down_revision = "0012_ui_bulk"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE payment_accounts SET api_url = bill_url "
               "WHERE (api_url IS NULL OR api_url = '') AND bill_url IS NOT NULL AND bill_url <> ''")
    with op.batch_alter_table("payment_accounts") as batch:
        batch.drop_column("bill_url")


def downgrade() -> None:
    with op.batch_alter_table("payment_accounts") as batch:
        batch.add_column(sa.Column("bill_url", sa.String(300), nullable=True))
