"""Invoices (issue 12): invoice requests (a buyer's snapshot, kind, our serial, state), their parts (one per provider
invoice: number, figures, links, PDFs) and lines.

Revision ID: 0010_invoices
Revises: 0010_payments
"""
import sqlalchemy as sa
from alembic import op

revision = "0010_invoices"
down_revision = "0010_payments"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
MONEY = sa.Numeric(precision=12, scale=2)


def upgrade() -> None:
    op.create_table(
        "invoice_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("serial", sa.String(32), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("profile_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("buyer_kind", sa.String(16), nullable=False),
        sa.Column("buyer_name", sa.Text(), nullable=False),
        sa.Column("buyer_tax_id", sa.String(20), nullable=True),
        sa.Column("buyer_address_phone", sa.Text(), nullable=True),
        sa.Column("buyer_bank_account", sa.Text(), nullable=True),
        sa.Column("buyer_email", sa.Text(), nullable=True),
        sa.Column("total_gross", MONEY, nullable=False),
        sa.Column("total_amount", MONEY, nullable=False),
        sa.Column("total_tax", MONEY, nullable=False),
        sa.Column("failure_reason", sa.String(300), nullable=True),
        sa.Column("held_reason", sa.String(300), nullable=True),
        sa.Column("requested_by", sa.String(80), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"],
                                name=op.f("fk_invoice_requests_customer_id_customers")),
        sa.ForeignKeyConstraint(["profile_id"], ["invoice_profiles.id"], ondelete="SET NULL",
                                name=op.f("fk_invoice_requests_profile_id_invoice_profiles")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_requests")),
        sa.UniqueConstraint("serial", name=op.f("uq_invoice_requests_serial")),
    )
    op.create_index("ix_invoice_requests_status_id", "invoice_requests", ["status", "id"])
    op.create_index("ix_invoice_requests_customer_id", "invoice_requests", ["customer_id"])
    op.create_table(
        "invoice_request_orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["invoice_requests.id"],
                                name=op.f("fk_invoice_request_orders_request_id_invoice_requests")),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_invoice_request_orders_order_id_orders")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_request_orders")),
    )
    op.create_index(op.f("ix_invoice_request_orders_request_id"), "invoice_request_orders", ["request_id"])
    op.create_index(op.f("ix_invoice_request_orders_order_id"), "invoice_request_orders", ["order_id"])
    op.create_table(
        "invoice_parts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("serial", sa.String(40), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("provider_serial", sa.String(64), nullable=True),
        sa.Column("number", sa.String(20), nullable=True),
        sa.Column("issued_at", TZ, nullable=True),
        sa.Column("total_gross", MONEY, nullable=False),
        sa.Column("total_amount", MONEY, nullable=False),
        sa.Column("total_tax", MONEY, nullable=False),
        sa.Column("total_in_words", sa.String(80), nullable=False),
        sa.Column("pdf_url", sa.String(500), nullable=True),
        sa.Column("ofd_url", sa.String(500), nullable=True),
        sa.Column("xml_url", sa.String(500), nullable=True),
        sa.Column("provider_pdf", sa.LargeBinary(), nullable=True),
        sa.Column("rendered_pdf", sa.LargeBinary(), nullable=True),
        sa.Column("failure_reason", sa.String(300), nullable=True),
        sa.Column("provider_answers", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["request_id"], ["invoice_requests.id"],
                                name=op.f("fk_invoice_parts_request_id_invoice_requests")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_parts")),
        sa.UniqueConstraint("serial", name=op.f("uq_invoice_parts_serial")),
        sa.UniqueConstraint("number", name=op.f("uq_invoice_parts_number")),
    )
    op.create_index(op.f("ix_invoice_parts_request_id"), "invoice_parts", ["request_id"])
    op.create_table(
        "invoice_lines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("part_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("tax_code", sa.String(19), nullable=False),
        sa.Column("rate", sa.Integer(), nullable=False),
        sa.Column("tax_free", sa.String(8), nullable=True),
        sa.Column("spec", sa.String(100), nullable=False),
        sa.Column("unit", sa.String(16), nullable=False),
        sa.Column("quantity", sa.String(24), nullable=True),
        sa.Column("unit_price", sa.String(24), nullable=True),
        sa.Column("gross", MONEY, nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("tax", MONEY, nullable=False),
        sa.Column("ref", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["part_id"], ["invoice_parts.id"], name=op.f("fk_invoice_lines_part_id_invoice_parts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_lines")),
    )
    op.create_index(op.f("ix_invoice_lines_part_id"), "invoice_lines", ["part_id"])


def downgrade() -> None:
    op.drop_table("invoice_lines")
    op.drop_table("invoice_parts")
    op.drop_table("invoice_request_orders")
    op.drop_table("invoice_requests")
