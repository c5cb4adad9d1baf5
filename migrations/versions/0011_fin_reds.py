"""The provider's own PDF of a red invoice (红字), kept like a blue part's; and how far each audit chain was last
verified (audit_verified), so the access report verifies only what was sealed since.

Revision ID: 0011_fin_reds
Revises: 0011_password_reset
"""
import sqlalchemy as sa
from alembic import op

revision = "0011_fin_reds"
down_revision = "0011_password_reset"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("red_letters") as batch:
        batch.add_column(sa.Column("pdf_url", sa.String(500), nullable=True))
        batch.add_column(sa.Column("provider_pdf", sa.LargeBinary(), nullable=True))
    op.create_table(
        "audit_verified",
        sa.Column("log", sa.String(16), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("mac", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("sig", sa.String(64), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("log"),
    )


def downgrade() -> None:
    op.drop_table("audit_verified")
    with op.batch_alter_table("red_letters") as batch:
        batch.drop_column("provider_pdf")
        batch.drop_column("pdf_url")
