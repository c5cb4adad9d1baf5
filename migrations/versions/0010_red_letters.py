"""Red-letter reversals (红字, issue 12 item 5): a 红字确认单 per reversal of an issued blue part, then its red invoice.

Revision ID: 0010_red_letters
Revises: 0010_invoices
"""
import sqlalchemy as sa
from alembic import op

revision = "0010_red_letters"
down_revision = "0010_invoices"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
MONEY = sa.Numeric(precision=12, scale=2)


def upgrade() -> None:
    op.create_table(
        "red_letters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("part_id", sa.Integer(), nullable=False),
        sa.Column("serial", sa.String(40), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("full", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("confirmation_no", sa.String(64), nullable=True),
        sa.Column("number", sa.String(20), nullable=True),
        sa.Column("original_number", sa.String(20), nullable=False),
        sa.Column("total_gross", MONEY, nullable=False),
        sa.Column("total_amount", MONEY, nullable=False),
        sa.Column("total_tax", MONEY, nullable=False),
        sa.Column("total_in_words", sa.String(80), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("failure_reason", sa.String(300), nullable=True),
        sa.Column("requested_by", sa.String(80), nullable=False),
        sa.Column("issued_at", TZ, nullable=True),
        sa.Column("rendered_pdf", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["part_id"], ["invoice_parts.id"], name=op.f("fk_red_letters_part_id_invoice_parts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_red_letters")),
        sa.UniqueConstraint("serial", name=op.f("uq_red_letters_serial")),
        sa.UniqueConstraint("number", name=op.f("uq_red_letters_number")),
    )
    op.create_index(op.f("ix_red_letters_part_id"), "red_letters", ["part_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_red_letters_part_id"), table_name="red_letters")
    op.drop_table("red_letters")
