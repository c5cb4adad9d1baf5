"""Scan refusals keep their code and parameters (issue 14 item 2), so the scan log reads them in its reader's language.

Revision ID: 0011_ui_history
Revises: 0011_as_core
"""
import sqlalchemy as sa
from alembic import op

revision = "0011_ui_history"
down_revision = "0011_as_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("scan_events") as batch:
        batch.add_column(sa.Column("refusal", sa.String(40), nullable=True))
        batch.add_column(sa.Column("refusal_params", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("scan_events") as batch:
        batch.drop_column("refusal_params")
        batch.drop_column("refusal")
