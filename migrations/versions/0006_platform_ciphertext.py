"""Platform-encrypted buyer data: the ciphertext as received, and the platform's buyer key on orders and customers.

Revision ID: 0006_platform_ciphertext
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa


revision = "0006_platform_ciphertext"
down_revision = "0006_inbox_topics"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("platform_ciphertext", sa.Text(), nullable=True))
        batch.add_column(sa.Column("platform_buyer_key", sa.String(length=200), nullable=True))
        batch.create_index("ix_orders_channel_id_platform_buyer_key", ["channel_id", "platform_buyer_key"])
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("platform_buyer_key", sa.String(length=220), nullable=True))
        batch.create_index(batch.f("ix_customers_platform_buyer_key"), ["platform_buyer_key"])


def downgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.drop_index(batch.f("ix_customers_platform_buyer_key"))
        batch.drop_column("platform_buyer_key")
    with op.batch_alter_table("orders") as batch:
        batch.drop_index("ix_orders_channel_id_platform_buyer_key")
        batch.drop_column("platform_buyer_key")
        batch.drop_column("platform_ciphertext")
