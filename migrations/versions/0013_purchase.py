"""Purchase suggestions (issue 15 item 4): suppliers and the SKUs they supply (lead time, safety stock in days or
units, MOQ, pack size), the weekly suggestion runs and their lines; the `purchasing` resource granted to the built-in
roles (buying is the operations manager's and the warehouse manager's; the others may read the report).

Revision ID: 0013_purchase
Revises: 0012_ui_find
"""
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0013_purchase"
down_revision = "0013_as_ship"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
# Who gets the new resource (roles made at run time get it through the role editor): view the report and the
# suppliers; edit suppliers, their SKUs, and compute and mail the suggestions.
GRANTS = {"admin": ("view", "edit", "approve", "delete"), "ops_manager": ("view", "edit"),
          "warehouse_manager": ("view", "edit"), "warehouse": ("view",), "finance": ("view",),
          "finance_director": ("view",), "auditor": ("view",)}


def _bump_permissions(bind, now) -> None:
    bind.execute(sa.text("UPDATE permission_revision SET token = :token, changed_at = :now"),
                 {"token": uuid.uuid4().hex, "now": now})


def upgrade() -> None:
    op.create_table("purchase_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("week", sa.String(length=10), nullable=True),
        sa.Column("as_of", TZ, nullable=False),
        sa.Column("weights", sa.String(length=40), nullable=False),
        sa.Column("review_days", sa.Integer(), nullable=False),
        sa.Column("actor_label", sa.String(length=120), nullable=False),
        sa.Column("line_count", sa.Integer(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purchase_runs")),
        sa.UniqueConstraint("week", name=op.f("uq_purchase_runs_week"))
    )
    op.create_table("suppliers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("email", sa.String(length=200), nullable=True),
        sa.Column("locale", sa.String(length=8), nullable=False),
        sa.Column("lead_time_days", sa.Integer(), nullable=True),
        sa.Column("safety_days", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.CheckConstraint("lead_time_days IS NULL OR lead_time_days > 0", name=op.f("ck_suppliers_lead_time_positive")),
        sa.CheckConstraint("safety_days >= 0", name=op.f("ck_suppliers_safety_days_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppliers")),
        sa.UniqueConstraint("code", name=op.f("uq_suppliers_code"))
    )
    op.create_table("purchase_suggestions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("supplier_id", sa.Integer(), nullable=False),
        sa.Column("sku_id", sa.Integer(), nullable=False),
        sa.Column("warehouse_id", sa.Integer(), nullable=False),
        sa.Column("sold_4w", sa.Integer(), nullable=False),
        sa.Column("sold_8w", sa.Integer(), nullable=False),
        sa.Column("sold_12w", sa.Integer(), nullable=False),
        sa.Column("velocity", sa.Numeric(precision=12, scale=3), nullable=False),
        sa.Column("lead_time_days", sa.Integer(), nullable=True),
        sa.Column("safety_days", sa.Integer(), nullable=True),
        sa.Column("safety_units", sa.Integer(), nullable=False),
        sa.Column("on_hand", sa.Integer(), nullable=False),
        sa.Column("reserved", sa.Integer(), nullable=False),
        sa.Column("held", sa.Integer(), nullable=False),
        sa.Column("inbound", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("target", sa.Integer(), nullable=False),
        sa.Column("moq", sa.Integer(), nullable=False),
        sa.Column("pack_size", sa.Integer(), nullable=False),
        sa.Column("suggested", sa.Integer(), nullable=False),
        sa.Column("problem", sa.String(length=20), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["purchase_runs.id"], name=op.f("fk_purchase_suggestions_run_id_purchase_runs")),
        sa.ForeignKeyConstraint(["sku_id"], ["skus.id"], name=op.f("fk_purchase_suggestions_sku_id_skus")),
        sa.ForeignKeyConstraint(["supplier_id"], ["suppliers.id"], name=op.f("fk_purchase_suggestions_supplier_id_suppliers")),
        sa.ForeignKeyConstraint(["warehouse_id"], ["warehouses.id"], name=op.f("fk_purchase_suggestions_warehouse_id_warehouses")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purchase_suggestions"))
    )
    op.create_index("ix_purchase_suggestions_run_id_supplier_id", "purchase_suggestions", ["run_id", "supplier_id"], unique=False)
    op.create_table("supplier_skus",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("supplier_id", sa.Integer(), nullable=False),
        sa.Column("sku_id", sa.Integer(), nullable=False),
        sa.Column("supplier_code", sa.String(length=64), nullable=True),
        sa.Column("lead_time_days", sa.Integer(), nullable=True),
        sa.Column("safety_units", sa.Integer(), nullable=True),
        sa.Column("moq", sa.Integer(), nullable=False),
        sa.Column("pack_size", sa.Integer(), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.CheckConstraint("lead_time_days IS NULL OR lead_time_days > 0", name=op.f("ck_supplier_skus_lead_time_positive")),
        sa.CheckConstraint("moq >= 1", name=op.f("ck_supplier_skus_moq_positive")),
        sa.CheckConstraint("pack_size >= 1", name=op.f("ck_supplier_skus_pack_size_positive")),
        sa.CheckConstraint("safety_units IS NULL OR safety_units >= 0", name=op.f("ck_supplier_skus_safety_units_not_negative")),
        sa.ForeignKeyConstraint(["sku_id"], ["skus.id"], name=op.f("fk_supplier_skus_sku_id_skus")),
        sa.ForeignKeyConstraint(["supplier_id"], ["suppliers.id"], name=op.f("fk_supplier_skus_supplier_id_suppliers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_supplier_skus")),
        sa.UniqueConstraint("sku_id", name=op.f("uq_supplier_skus_sku_id"))
    )
    op.create_index("ix_supplier_skus_supplier_id", "supplier_skus", ["supplier_id"], unique=False)

    bind = op.get_bind()
    present = set(bind.execute(sa.text("SELECT code FROM staff_roles")).scalars())
    grants = sa.table("role_grants", sa.column("role_code"), sa.column("resource"), sa.column("action"))
    op.bulk_insert(grants, [{"role_code": code, "resource": "purchasing", "action": action}
                            for code, actions in GRANTS.items() if code in present for action in actions])
    _bump_permissions(bind, datetime.now(UTC))


def downgrade() -> None:
    bind = op.get_bind()
    bind.execute(sa.text("DELETE FROM role_grants WHERE resource = 'purchasing'"))
    _bump_permissions(bind, datetime.now(UTC))
    for table in ("purchase_suggestions", "supplier_skus", "purchase_runs", "suppliers"):
        op.drop_table(table)
