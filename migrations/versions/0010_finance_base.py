"""Finance foundation (issue 12): invoice profiles (发票抬头), tax data on SKUs, and the `invoices` resource granted to
the built-in roles that work with money (admin and finance edit; auditor and ops manager view).

Revision ID: 0010_finance_base
Revises: 0009_dashboards
"""
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0010_finance_base"
down_revision = "0009_dashboards"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
GRANTS = {"admin": ("view", "edit"), "finance": ("view", "edit"), "finance_director": ("view", "edit"),
          "ops_manager": ("view",), "auditor": ("view",)}
SKU_COLUMNS = (("tax_code", sa.String(19)), ("tax_short_name", sa.String(40)), ("tax_rate", sa.Integer()),
               ("tax_free", sa.String(8)), ("tax_unit", sa.String(16)))


def _new_revision(bind, now) -> None:
    bind.execute(sa.text("UPDATE permission_revision SET token = :token, changed_at = :now"),
                 {"token": uuid.uuid4().hex, "now": now})


def upgrade() -> None:
    now = datetime.now(UTC)
    op.create_table(
        "invoice_profiles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("tax_id", sa.String(20), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("bank", sa.Text(), nullable=True),
        sa.Column("account", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(16), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name=op.f("fk_invoice_profiles_customer_id_customers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_profiles")),
    )
    op.create_index("ix_invoice_profiles_customer_id", "invoice_profiles", ["customer_id"])
    with op.batch_alter_table("skus") as batch:
        for name, kind in SKU_COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))
    bind = op.get_bind()
    existing = set(bind.execute(sa.text("SELECT code FROM staff_roles")).scalars())
    grants = sa.table("role_grants", sa.column("role_code"), sa.column("resource"), sa.column("action"))
    op.bulk_insert(grants, [{"role_code": code, "resource": "invoices", "action": action}
                            for code, actions in GRANTS.items() if code in existing for action in actions])
    _new_revision(bind, now)


def downgrade() -> None:
    bind = op.get_bind()
    bind.execute(sa.text("DELETE FROM role_grants WHERE resource = 'invoices'"))
    _new_revision(bind, datetime.now(UTC))
    with op.batch_alter_table("skus") as batch:
        for name, _kind in reversed(SKU_COLUMNS):
            batch.drop_column(name)
    op.drop_index("ix_invoice_profiles_customer_id", table_name="invoice_profiles")
    op.drop_table("invoice_profiles")
