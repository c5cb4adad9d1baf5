"""Approvals as data (issue 11 items 2-3): rules with their steps, requests, step instances, decisions,
delegations; SKUs gain `custom_made`; the approver roles 客服组长, 财务总监, 仓储经理 and the default rules are seeded.

Revision ID: 0009_approvals
Revises: 0009_exceptions
"""
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0009_approvals"
down_revision = "0009_exceptions"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
# New roles copy the grants and field visibility of a built-in one, plus what approving needs (frozen here).
ROLES = {
    "cs_lead": ("客服组长", "Customer-service lead", "customer_service", {("approvals", "view"), ("approvals", "approve"),
                                                                        ("orders", "approve")}),
    "finance_director": ("财务总监", "Finance director", "finance", {("approvals", "view"), ("approvals", "approve")}),
    "warehouse_manager": ("仓储经理", "Warehouse manager", "warehouse", {("approvals", "view"),
                                                                     ("approvals", "approve"), ("stock", "approve")}),
}
# code: (operation, name_zh, name_en, conditions, priority, steps [(stage, kind, target, quorum)])
RULES = {
    "order_5k": ("order.create", "订单金额 ≥ 5,000 元", "Orders of 5,000.00 CNY or more",
                 {"min_amount": "5000.00", "currency": "CNY"}, 10, [(1, "role", "cs_lead", 1)]),
    "order_50k": ("order.create", "订单金额 ≥ 50,000 元", "Orders of 50,000.00 CNY or more",
                  {"min_amount": "50000.00", "currency": "CNY"}, 20,
                  [(1, "role", "cs_lead", 1), (2, "role", "finance_director", 1)]),
    "transfer": ("stock.transfer", "仓间调拨", "Cross-warehouse transfers", {}, 10,
                 [(1, "role", "warehouse_manager", 1), (1, "role", "customer_service", 1)]),
}


def upgrade() -> None:
    now = datetime.now(UTC)
    op.create_table(
        "approval_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("operation", sa.String(length=40), nullable=False),
        sa.Column("name_zh", sa.String(length=80), nullable=False),
        sa.Column("name_en", sa.String(length=80), nullable=False),
        sa.Column("conditions", sa.JSON(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("stall_minutes", sa.Integer(), nullable=False),
        sa.Column("calendar", sa.String(length=32), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval_rules")),
        sa.UniqueConstraint("code", name=op.f("uq_approval_rules_code")),
    )
    op.create_index(op.f("ix_approval_rules_operation"), "approval_rules", ["operation"], unique=False)
    op.create_table(
        "approval_rule_steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=True),
        sa.Column("quorum", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["rule_id"], ["approval_rules.id"],
                                name=op.f("fk_approval_rule_steps_rule_id_approval_rules"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval_rule_steps")),
    )
    op.create_index(op.f("ix_approval_rule_steps_rule_id"), "approval_rule_steps", ["rule_id"], unique=False)
    op.create_table(
        "approval_delegations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("delegate_id", sa.Integer(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["delegate_id"], ["staff_users.id"],
                                name=op.f("fk_approval_delegations_delegate_id_staff_users")),
        sa.ForeignKeyConstraint(["user_id"], ["staff_users.id"], name=op.f("fk_approval_delegations_user_id_staff_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval_delegations")),
    )
    op.create_index(op.f("ix_approval_delegations_delegate_id"), "approval_delegations", ["delegate_id"], unique=False)
    op.create_index(op.f("ix_approval_delegations_user_id"), "approval_delegations", ["user_id"], unique=False)
    op.create_table(
        "approval_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("operation", sa.String(length=40), nullable=False),
        sa.Column("entity_type", sa.String(length=32), nullable=False),
        sa.Column("entity_id", sa.String(length=64), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("previous_id", sa.Integer(), nullable=True),
        sa.Column("rule_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("requester_id", sa.Integer(), nullable=False),
        sa.Column("summary", sa.String(length=200), nullable=False),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("guarded_fields", sa.JSON(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("closed_at", TZ, nullable=True),
        sa.ForeignKeyConstraint(["previous_id"], ["approval_requests.id"],
                                name=op.f("fk_approval_requests_previous_id_approval_requests")),
        sa.ForeignKeyConstraint(["requester_id"], ["staff_users.id"],
                                name=op.f("fk_approval_requests_requester_id_staff_users")),
        sa.ForeignKeyConstraint(["rule_id"], ["approval_rules.id"],
                                name=op.f("fk_approval_requests_rule_id_approval_rules"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval_requests")),
    )
    op.create_index("ix_approval_requests_entity", "approval_requests", ["entity_type", "entity_id"], unique=False)
    op.create_index(op.f("ix_approval_requests_requester_id"), "approval_requests", ["requester_id"], unique=False)
    op.create_index(op.f("ix_approval_requests_state"), "approval_requests", ["state"], unique=False)
    op.create_table(
        "approval_steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=True),
        sa.Column("quorum", sa.Integer(), nullable=False),
        sa.Column("candidates", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("activated_at", TZ, nullable=True),
        sa.Column("due_at", TZ, nullable=True),
        sa.Column("stalled", sa.Boolean(), nullable=False),
        sa.Column("stalled_at", TZ, nullable=True),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("closed_at", TZ, nullable=True),
        sa.ForeignKeyConstraint(["request_id"], ["approval_requests.id"],
                                name=op.f("fk_approval_steps_request_id_approval_requests")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval_steps")),
    )
    op.create_index(op.f("ix_approval_steps_due_at"), "approval_steps", ["due_at"], unique=False)
    op.create_index(op.f("ix_approval_steps_request_id"), "approval_steps", ["request_id"], unique=False)
    op.create_index(op.f("ix_approval_steps_state"), "approval_steps", ["state"], unique=False)
    op.create_table(
        "approval_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("on_behalf_of_id", sa.Integer(), nullable=True),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("decided_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["on_behalf_of_id"], ["staff_users.id"],
                                name=op.f("fk_approval_decisions_on_behalf_of_id_staff_users")),
        sa.ForeignKeyConstraint(["request_id"], ["approval_requests.id"],
                                name=op.f("fk_approval_decisions_request_id_approval_requests")),
        sa.ForeignKeyConstraint(["step_id"], ["approval_steps.id"],
                                name=op.f("fk_approval_decisions_step_id_approval_steps")),
        sa.ForeignKeyConstraint(["user_id"], ["staff_users.id"], name=op.f("fk_approval_decisions_user_id_staff_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval_decisions")),
    )
    op.create_index(op.f("ix_approval_decisions_request_id"), "approval_decisions", ["request_id"], unique=False)
    op.create_index(op.f("ix_approval_decisions_step_id"), "approval_decisions", ["step_id"], unique=False)
    with op.batch_alter_table("skus", schema=None) as batch_op:
        batch_op.add_column(sa.Column("custom_made", sa.Boolean(), server_default="0", nullable=False))

    bind = op.get_bind()
    roles = sa.table("staff_roles", *(sa.column(c) for c in ("code", "name_zh", "name_en", "builtin",
                                                              "second_factor", "created_at")))
    grants = sa.table("role_grants", sa.column("role_code"), sa.column("resource"), sa.column("action"))
    fields = sa.table("role_field_visibility", sa.column("role_code"), sa.column("field"), sa.column("visibility"))
    existing = set(bind.execute(sa.text("SELECT code FROM staff_roles")).scalars())
    for code, (zh, en, like, extra) in ROLES.items():
        if code in existing:  # made by hand before this revision: kept as it is
            continue
        # Approvers sign in with their second factor (issue 11 item 4).
        op.bulk_insert(roles, [{"code": code, "name_zh": zh, "name_en": en, "builtin": False, "second_factor": True,
                                "created_at": now}])
        cells = {tuple(row) for row in bind.execute(
            sa.text("SELECT resource, action FROM role_grants WHERE role_code = :code"), {"code": like})} | extra
        op.bulk_insert(grants, [{"role_code": code, "resource": r, "action": a} for r, a in sorted(cells)])
        seen = bind.execute(sa.text("SELECT field, visibility FROM role_field_visibility WHERE role_code = :code"),
                            {"code": like}).all()
        if seen:
            op.bulk_insert(fields, [{"role_code": code, "field": f, "visibility": v} for f, v in seen])
    bind.execute(sa.text("UPDATE permission_revision SET token = :token, changed_at = :now"),
                 {"token": uuid.uuid4().hex, "now": now})

    rules = sa.table("approval_rules", *(sa.column(c) for c in (
        "id", "code", "operation", "name_zh", "name_en", "priority", "active", "stall_minutes", "calendar",
        "created_at", "updated_at")), sa.column("conditions", sa.JSON()))
    steps = sa.table("approval_rule_steps", *(sa.column(c) for c in ("rule_id", "stage", "kind", "target", "quorum")))
    for number, (code, (operation, zh, en, conditions, priority, rule_steps)) in enumerate(RULES.items(), start=1):
        op.bulk_insert(rules, [{"id": number, "code": code, "operation": operation, "name_zh": zh, "name_en": en,
                                "conditions": conditions, "priority": priority, "active": True, "stall_minutes": 120,
                                "calendar": "default", "created_at": now, "updated_at": now}])
        op.bulk_insert(steps, [{"rule_id": number, "stage": stage, "kind": kind, "target": target, "quorum": quorum}
                               for stage, kind, target, quorum in rule_steps])
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text("SELECT setval(pg_get_serial_sequence('approval_rules', 'id'), "
                             "(SELECT MAX(id) FROM approval_rules))"))


def downgrade() -> None:
    with op.batch_alter_table("skus", schema=None) as batch_op:
        batch_op.drop_column("custom_made")
    for index, table in (("ix_approval_decisions_step_id", "approval_decisions"),
                         ("ix_approval_decisions_request_id", "approval_decisions")):
        op.drop_index(index, table_name=table)
    op.drop_table("approval_decisions")
    for index in ("ix_approval_steps_state", "ix_approval_steps_request_id", "ix_approval_steps_due_at"):
        op.drop_index(index, table_name="approval_steps")
    op.drop_table("approval_steps")
    for index in ("ix_approval_requests_state", "ix_approval_requests_requester_id", "ix_approval_requests_entity"):
        op.drop_index(index, table_name="approval_requests")
    op.drop_table("approval_requests")
    op.drop_index("ix_approval_delegations_user_id", table_name="approval_delegations")
    op.drop_index("ix_approval_delegations_delegate_id", table_name="approval_delegations")
    op.drop_table("approval_delegations")
    op.drop_index("ix_approval_rule_steps_rule_id", table_name="approval_rule_steps")
    op.drop_table("approval_rule_steps")
    op.drop_index("ix_approval_rules_operation", table_name="approval_rules")
    op.drop_table("approval_rules")
    bind = op.get_bind()
    for code in ROLES:  # the seeded approver roles go when nobody holds them
        if not bind.execute(sa.text("SELECT 1 FROM staff_users WHERE role = :code"), {"code": code}).first():
            bind.execute(sa.text("DELETE FROM role_field_visibility WHERE role_code = :code"), {"code": code})
            bind.execute(sa.text("DELETE FROM role_grants WHERE role_code = :code"), {"code": code})
            bind.execute(sa.text("DELETE FROM staff_roles WHERE code = :code"), {"code": code})
