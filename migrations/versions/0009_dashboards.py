"""Manager dashboards (issue 11 item 9): the KPI targets as rows, seeded with the four defaults; the `kpi`
resource granted to the built-in roles that read dashboards (admin also edits the targets); an index on
orders.shipped_at for the per-day and per-week KPI queries.

Revision ID: 0009_dashboards
Revises: 0009_retention
"""
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0009_dashboards"
down_revision = "0009_retention"
branch_labels = None
depends_on = None

# Frozen here: the defaults of issue 11 item 9, and who gets the new resource.
TARGETS = {"sync_success": "99.50", "confirm_to_ship": "4.00", "stock_accuracy": "98.00", "tracking_coverage": "100.00"}
GRANTS = {"admin": ("view", "edit"), "ops_manager": ("view",), "auditor": ("view",)}


def upgrade() -> None:
    now = datetime.now(UTC)
    op.create_table(
        "kpi_targets",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("target", sa.Numeric(precision=7, scale=2), nullable=False),
        sa.Column("updated_by", sa.String(length=120), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_kpi_targets")),
    )
    op.create_index("ix_orders_shipped_at", "orders", ["shipped_at"], unique=False)
    targets = sa.table("kpi_targets", sa.column("code"), sa.column("target", sa.Numeric(7, 2)),
                       sa.column("updated_by"), sa.column("updated_at"))
    op.bulk_insert(targets, [{"code": code, "target": value, "updated_by": None, "updated_at": now}
                             for code, value in TARGETS.items()])
    bind = op.get_bind()
    existing = set(bind.execute(sa.text("SELECT code FROM staff_roles")).scalars())
    grants = sa.table("role_grants", sa.column("role_code"), sa.column("resource"), sa.column("action"))
    op.bulk_insert(grants, [{"role_code": code, "resource": "kpi", "action": action}
                            for code, actions in GRANTS.items() if code in existing for action in actions])
    bind.execute(sa.text("UPDATE permission_revision SET token = :token, changed_at = :now"),
                 {"token": uuid.uuid4().hex, "now": now})


def downgrade() -> None:
    bind = op.get_bind()
    bind.execute(sa.text("DELETE FROM role_grants WHERE resource = 'kpi'"))
    bind.execute(sa.text("UPDATE permission_revision SET token = :token, changed_at = :now"),
                 {"token": uuid.uuid4().hex, "now": datetime.now(UTC)})
    op.drop_index("ix_orders_shipped_at", table_name="orders")
    op.drop_table("kpi_targets")
