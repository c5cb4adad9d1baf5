"""Roles as data: the role rows, their grants (role x resource x action) and field visibility, the revision token
every process checks its copy of the table against; teams with leads; the business-hours calendar.

The six built-in roles are seeded with the table as it stood in code before this revision (frozen here).

Revision ID: 0009_roles_teams
Revises: 0008_reconcile_window_index
"""
import os
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0009_roles_teams"
down_revision = "0008_reconcile_window_index"
branch_labels = None
depends_on = None

ACTIONS = {"v": "view", "e": "edit", "a": "approve", "d": "delete"}
VISIBILITY = {"f": "full", "m": "masked", "h": "hidden"}
# code: (name_zh, name_en, second factor at sign-in, grants, field visibility)
BUILTIN = {
    "admin": ("管理员", "Administrator", True, {r: "vead" for r in (
        "dashboard", "orders", "order_review", "stock", "catalog", "customers", "users", "audit", "access_log",
        "channels", "webhooks", "fulfilment", "payments", "holds", "roles", "approvals", "exceptions", "exports",
        "retention")}, "fffff"),
    "ops_manager": ("运营经理", "Operations manager", False, {
        "dashboard": "v", "orders": "vea", "order_review": "e", "stock": "vea", "catalog": "ve", "customers": "v",
        "audit": "v", "channels": "ve", "webhooks": "ve", "fulfilment": "ve", "payments": "e", "holds": "a",
        "roles": "v", "approvals": "vea", "exceptions": "vea", "exports": "ve"}, "ffffm"),
    "customer_service": ("客服", "Customer service", False, {
        "dashboard": "v", "orders": "ve", "order_review": "e", "stock": "v", "customers": "v", "channels": "v",
        "fulfilment": "v", "holds": "a", "approvals": "va", "exceptions": "ve"}, "mmmmh"),
    "warehouse": ("仓库人员", "Warehouse staff", False, {
        "dashboard": "v", "orders": "ve", "stock": "ve", "catalog": "v", "fulfilment": "ve", "approvals": "va",
        "exceptions": "ve"}, "fffhh"),
    "finance": ("财务", "Finance", True, {
        "dashboard": "v", "orders": "v", "stock": "v", "channels": "v", "payments": "e", "approvals": "va",
        "exceptions": "ve", "exports": "ve"}, "mmmmm"),
    "auditor": ("审计", "Auditor", True, {
        "dashboard": "v", "orders": "v", "stock": "v", "audit": "v", "access_log": "v", "channels": "v",
        "webhooks": "v", "fulfilment": "v", "roles": "v", "approvals": "v", "exceptions": "v", "exports": "ve",
        "retention": "v"}, "hhhhh"),
}
FIELDS = ("name", "phone", "address", "email", "id_number")
WORKDAY = [["09:00", "18:00"]]


def upgrade() -> None:
    now = datetime.now(UTC)
    op.create_table(
        "staff_roles",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name_zh", sa.String(length=60), nullable=False),
        sa.Column("name_en", sa.String(length=60), nullable=False),
        sa.Column("builtin", sa.Boolean(), nullable=False),
        sa.Column("second_factor", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_staff_roles")),
    )
    op.create_table(
        "role_grants",
        sa.Column("role_code", sa.String(length=32), nullable=False),
        sa.Column("resource", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["role_code"], ["staff_roles.code"], name=op.f("fk_role_grants_role_code_staff_roles"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("role_code", "resource", "action", name=op.f("pk_role_grants")),
    )
    op.create_table(
        "role_field_visibility",
        sa.Column("role_code", sa.String(length=32), nullable=False),
        sa.Column("field", sa.String(length=32), nullable=False),
        sa.Column("visibility", sa.String(length=8), nullable=False),
        sa.ForeignKeyConstraint(["role_code"], ["staff_roles.code"],
                                name=op.f("fk_role_field_visibility_role_code_staff_roles"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("role_code", "field", name=op.f("pk_role_field_visibility")),
    )
    op.create_table(
        "permission_revision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_permission_revision")),
    )
    op.create_table(
        "teams",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name_zh", sa.String(length=60), nullable=False),
        sa.Column("name_en", sa.String(length=60), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=True),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["lead_id"], ["staff_users.id"], name="fk_teams_lead"),
        sa.ForeignKeyConstraint(["parent_id"], ["teams.id"], name=op.f("fk_teams_parent_id_teams")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_teams")),
        sa.UniqueConstraint("code", name=op.f("uq_teams_code")),
    )
    op.create_table(
        "business_calendars",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("zone", sa.String(length=40), nullable=False),
        sa.Column("week", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_business_calendars")),
        sa.UniqueConstraint("code", name=op.f("uq_business_calendars_code")),
    )
    op.create_table(
        "business_calendar_days",
        sa.Column("calendar_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("hours", sa.JSON(), nullable=False),
        sa.Column("note", sa.String(length=60), nullable=False),
        sa.ForeignKeyConstraint(["calendar_id"], ["business_calendars.id"],
                                name=op.f("fk_business_calendar_days_calendar_id_business_calendars"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("calendar_id", "day", name=op.f("pk_business_calendar_days")),
    )

    roles = sa.table("staff_roles", *(sa.column(c) for c in ("code", "name_zh", "name_en", "builtin",
                                                              "second_factor", "created_at")))
    grants = sa.table("role_grants", sa.column("role_code"), sa.column("resource"), sa.column("action"))
    fields = sa.table("role_field_visibility", sa.column("role_code"), sa.column("field"), sa.column("visibility"))
    op.bulk_insert(roles, [{"code": code, "name_zh": zh, "name_en": en, "builtin": True, "second_factor": factor,
                            "created_at": now} for code, (zh, en, factor, _g, _f) in BUILTIN.items()])
    op.bulk_insert(grants, [{"role_code": code, "resource": resource, "action": ACTIONS[letter]}
                            for code, (_zh, _en, _factor, by, _f) in BUILTIN.items()
                            for resource, letters in by.items() for letter in letters])
    op.bulk_insert(fields, [{"role_code": code, "field": field, "visibility": VISIBILITY[letter]}
                            for code, (*_rest, seen) in BUILTIN.items() for field, letter in zip(FIELDS, seen)])
    op.bulk_insert(sa.table("permission_revision", sa.column("id"), sa.column("token"), sa.column("changed_at")),
                   [{"id": 1, "token": uuid.uuid4().hex, "changed_at": now}])
    op.bulk_insert(sa.table("business_calendars", sa.column("id"), sa.column("code"), sa.column("zone"),
                            sa.column("week", sa.JSON()), sa.column("updated_at")),
                   [{"id": 1, "code": "default", "zone": os.environ.get("ORDERLOOM_TIMEZONE", "Asia/Shanghai"),
                     "week": {str(day): (WORKDAY if day <= 5 else []) for day in range(1, 8)}, "updated_at": now}])

    bind = op.get_bind()
    unknown = bind.execute(sa.text("SELECT DISTINCT role FROM staff_users")).scalars().all()
    for code in set(unknown) - set(BUILTIN):  # a role nobody seeded (typed by hand): keep it, with no power
        op.bulk_insert(roles, [{"code": code, "name_zh": code, "name_en": code, "builtin": False,
                                "second_factor": False, "created_at": now}])
    with op.batch_alter_table("staff_users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("team_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_staff_users_team_id"), ["team_id"], unique=False)
        batch_op.create_foreign_key(batch_op.f("fk_staff_users_team_id_teams"), "teams", ["team_id"], ["id"])
        batch_op.create_foreign_key(batch_op.f("fk_staff_users_role_staff_roles"), "staff_roles", ["role"], ["code"])


def downgrade() -> None:
    with op.batch_alter_table("staff_users", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_staff_users_role_staff_roles"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_staff_users_team_id_teams"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_staff_users_team_id"))
        batch_op.drop_column("team_id")
    for table in ("business_calendar_days", "business_calendars", "teams", "permission_revision",
                  "role_field_visibility", "role_grants", "staff_roles"):
        op.drop_table(table)
