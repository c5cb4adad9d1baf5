"""After-sales requests (issue 13 items 1 and 7): requests, their lines and photos, the merchant's reasons (seeded in
Chinese and English) and return windows (the default row: 7 days after delivery, 七天无理由); the `after_sales`
resource granted to the built-in roles; the exception category `after_sales` with its SLA targets, route and canned
replies.

Revision ID: 0011_as_core
Revises: 0011_cs_parcel
"""
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0011_as_core"
down_revision = "0011_cs_parcel"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
MONEY = sa.Numeric(precision=12, scale=2)
# Frozen here: the reasons offered at first (the merchant edits them), in the order shown.
REASONS = [
    ("no_reason_7_days", "七天无理由退换", "Changed my mind (7-day no-reason return)"),
    ("damaged", "商品破损", "Arrived damaged"),
    ("quality", "质量问题", "Quality problem"),
    ("not_as_described", "与描述不符", "Not as described"),
    ("wrong_item", "发错货", "Wrong item sent"),
    ("missing_item", "少件/漏发", "Item missing from the parcel"),
    ("wrong_size", "尺码/规格不合适", "Wrong size or variant"),
    ("not_received", "未收到货", "Parcel not received"),
]
DEFAULT_RETURN_DAYS = 7
# Who gets the new resource (roles made at run time get it through the role editor). Receiving and inspecting are the
# floor's (`fulfilment` edit); deciding and refunding `after_sales` approve; the rest of the work `after_sales` edit.
GRANTS = {"admin": ("view", "edit", "approve", "delete"), "ops_manager": ("view", "edit", "approve"),
          "customer_service": ("view", "edit", "approve"), "cs_lead": ("view", "edit", "approve"),
          "warehouse": ("view",), "warehouse_manager": ("view",), "finance": ("view",),
          "finance_director": ("view",), "auditor": ("view",)}
CANNED = [
    ("after_sales", "refund_on_the_way", "您的退款已处理，将按原支付方式退回。",
     "Your refund has been processed and goes back the way you paid."),
    ("after_sales", "waiting_for_parcel", "我们正在等待退货包裹，收到后24小时内完成验货。",
     "We are waiting for the returned parcel and inspect it within 24 hours of its arrival."),
]


def _bump_permissions(bind, now) -> None:
    bind.execute(sa.text("UPDATE permission_revision SET token = :token, changed_at = :now"),
                 {"token": uuid.uuid4().hex, "now": now})


def upgrade() -> None:
    now = datetime.now(UTC)
    op.create_table(
        "after_sales",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("requested_by", sa.String(80), nullable=False),
        sa.Column("via", sa.String(12), nullable=False),
        sa.Column("decline_reason", sa.String(500), nullable=True),
        sa.Column("cancel_reason", sa.String(500), nullable=True),
        sa.Column("close_reason", sa.String(500), nullable=True),
        sa.Column("return_method", sa.String(12), nullable=True),
        sa.Column("pickup_at", TZ, nullable=True),
        sa.Column("return_address", sa.String(300), nullable=True),
        sa.Column("refund_amount", MONEY, nullable=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("decided_at", TZ, nullable=True),
        sa.Column("received_at", TZ, nullable=True),
        sa.Column("inspected_at", TZ, nullable=True),
        sa.Column("refunded_at", TZ, nullable=True),
        sa.Column("closed_at", TZ, nullable=True),
        sa.Column("due_at", TZ, nullable=True),
        sa.Column("overdue_state", sa.String(20), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_after_sales_order_id_orders")),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name=op.f("fk_after_sales_customer_id_customers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_after_sales")),
    )
    op.create_index("ix_after_sales_order_id", "after_sales", ["order_id"])
    op.create_index("ix_after_sales_customer_id", "after_sales", ["customer_id"])
    op.create_index("ix_after_sales_status_due_at", "after_sales", ["status", "due_at"])
    op.create_index("ix_after_sales_created_at_id", "after_sales", ["created_at", "id"])
    op.create_table(
        "after_sale_lines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("after_sale_id", sa.Integer(), nullable=False),
        sa.Column("order_line_id", sa.Integer(), nullable=False),
        sa.Column("sku_id", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("reason_code", sa.String(32), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=True),
        sa.Column("restocked", sa.Boolean(), nullable=True),
        sa.Column("inspection_note", sa.String(500), nullable=True),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_after_sale_lines_quantity_positive")),
        sa.ForeignKeyConstraint(["after_sale_id"], ["after_sales.id"],
                                name=op.f("fk_after_sale_lines_after_sale_id_after_sales")),
        sa.ForeignKeyConstraint(["order_line_id"], ["order_lines.id"],
                                name=op.f("fk_after_sale_lines_order_line_id_order_lines")),
        sa.ForeignKeyConstraint(["sku_id"], ["skus.id"], name=op.f("fk_after_sale_lines_sku_id_skus")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_after_sale_lines")),
        sa.UniqueConstraint("after_sale_id", "sku_id", name=op.f("uq_after_sale_lines_after_sale_id_sku_id")),
    )
    op.create_index(op.f("ix_after_sale_lines_after_sale_id"), "after_sale_lines", ["after_sale_id"])
    op.create_table(
        "after_sale_photos",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("after_sale_id", sa.Integer(), nullable=False),
        sa.Column("content_type", sa.String(20), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["after_sale_id"], ["after_sales.id"],
                                name=op.f("fk_after_sale_photos_after_sale_id_after_sales")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_after_sale_photos")),
    )
    op.create_index(op.f("ix_after_sale_photos_after_sale_id"), "after_sale_photos", ["after_sale_id"])
    reasons = op.create_table(
        "after_sale_reasons",
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("label_zh", sa.String(60), nullable=False),
        sa.Column("label_en", sa.String(80), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_after_sale_reasons")),
    )
    policies = op.create_table(
        "after_sale_policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=True),
        sa.Column("sku_id", sa.Integer(), nullable=True),
        sa.Column("return_days", sa.Integer(), nullable=False),
        sa.Column("final_sale", sa.Boolean(), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.CheckConstraint("return_days >= 0", name=op.f("ck_after_sale_policies_return_days_not_negative")),
        sa.ForeignKeyConstraint(["channel_id"], ["channels.id"],
                                name=op.f("fk_after_sale_policies_channel_id_channels")),
        sa.ForeignKeyConstraint(["sku_id"], ["skus.id"], name=op.f("fk_after_sale_policies_sku_id_skus")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_after_sale_policies")),
        sa.UniqueConstraint("channel_id", "sku_id", name=op.f("uq_after_sale_policies_channel_id_sku_id")),
    )
    op.bulk_insert(reasons, [{"code": code, "label_zh": zh, "label_en": en, "position": index, "active": True,
                              "updated_at": now} for index, (code, zh, en) in enumerate(REASONS)])
    op.bulk_insert(policies, [{"channel_id": None, "sku_id": None, "return_days": DEFAULT_RETURN_DAYS,
                               "final_sale": False, "updated_at": now}])
    bind = op.get_bind()
    present = set(bind.execute(sa.text("SELECT code FROM staff_roles")).scalars())
    grants = sa.table("role_grants", sa.column("role_code"), sa.column("resource"), sa.column("action"))
    op.bulk_insert(grants, [{"role_code": code, "resource": "after_sales", "action": action}
                            for code, actions in GRANTS.items() if code in present for action in actions])
    _bump_permissions(bind, now)
    op.bulk_insert(sa.table("exception_routes", sa.column("key"), sa.column("team_code"), sa.column("updated_at")),
                   [{"key": "after_sales", "team_code": "customer_service", "updated_at": now}])
    op.bulk_insert(sa.table("exception_sla_targets", *(sa.column(c) for c in (
        "category", "first_response_minutes", "resolve_minutes", "clock", "updated_at"))),
        [{"category": "after_sales", "first_response_minutes": 60, "resolve_minutes": 480, "clock": "business",
          "updated_at": now}])
    op.bulk_insert(sa.table("exception_canned_replies", *(sa.column(c) for c in (
        "category", "code", "text_zh", "text_en", "updated_at"))),
        [{"category": category, "code": code, "text_zh": zh, "text_en": en, "updated_at": now}
         for category, code, zh, en in CANNED])


def downgrade() -> None:
    bind = op.get_bind()
    bind.execute(sa.text("DELETE FROM exception_canned_replies WHERE category = 'after_sales'"))
    bind.execute(sa.text("DELETE FROM exception_sla_targets WHERE category = 'after_sales'"))
    bind.execute(sa.text("DELETE FROM exception_routes WHERE key = 'after_sales'"))
    bind.execute(sa.text("DELETE FROM role_grants WHERE resource = 'after_sales'"))
    _bump_permissions(bind, datetime.now(UTC))
    for table in ("after_sale_policies", "after_sale_reasons", "after_sale_photos", "after_sale_lines",
                  "after_sales"):
        op.drop_table(table)
