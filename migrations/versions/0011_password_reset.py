"""A password reset by an administrator forces a change at the next sign-in (issue 14 item 5).

Revision ID: 0011_password_reset
Revises: 0010_red_letters
"""
import sqlalchemy as sa
from alembic import op

revision = "0011_password_reset"
down_revision = "0010_red_letters"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("staff_users") as batch:
        batch.add_column(sa.Column("must_change_password", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("staff_users") as batch:
        batch.drop_column("must_change_password")
