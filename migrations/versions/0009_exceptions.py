"""The exception center: exceptions with owner team, state, SLA clocks and history; routing rules, SLA targets and
canned replies as data, seeded with defaults (a rule may name a team that does not exist yet: its exceptions stay
unrouted, shown to managers, until the team is made).

Revision ID: 0009_exceptions
Revises: 0009_exports
"""
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0009_exceptions"
down_revision = "0009_exports"
branch_labels = None
depends_on = None

# category or kind → team code (a kind's rule wins over its category's)
ROUTES = {"payment": "finance", "logistics": "customer_service", "product_stock": "warehouse",
          "account_risk": "customer_service", "late_packing": "warehouse", "carrier_refused": "warehouse"}
# category: (first response minutes, resolve minutes, clock)
SLA = {"payment": (15, 120, "calendar"), "logistics": (240, 1440, "calendar"),
       "product_stock": (240, 1440, "business"), "account_risk": (60, 480, "business")}
CANNED = [
    ("payment", "checking_payment", "已联系平台核实付款状态，核实后会同步订单。",
     "We asked the platform to confirm the payment and will update the order once it is confirmed."),
    ("payment", "payment_confirmed", "平台已确认付款，订单已按已付款处理。",
     "The platform confirmed the payment; the order is now treated as paid."),
    ("logistics", "asked_carrier", "已联系承运商查询包裹，预计24小时内回复。",
     "We asked the carrier about the parcel and expect an answer within 24 hours."),
    ("logistics", "reshipped", "已为客户补发，原包裹退回后入库。",
     "A replacement was sent; the original parcel is restocked when it comes back."),
    ("product_stock", "restocked", "已补货并重新分配库存。", "Stock was replenished and the order allocated again."),
    ("product_stock", "mapping_fixed", "已补充SKU映射并重放入站消息。",
     "The SKU mapping was added and the inbound message replayed."),
    ("account_risk", "verified_buyer", "已与买家核实，订单正常。", "We checked with the buyer; the order is genuine."),
    ("account_risk", "cancelled_duplicate", "确认为重复下单，已取消多余订单。",
     "Confirmed as a duplicate; the extra order was cancelled."),
]


def upgrade() -> None:
    now = datetime.now(UTC)
    op.create_table(
        "exceptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("category", sa.String(length=20), nullable=False),
        sa.Column("dedupe_key", sa.String(length=120), nullable=False),
        sa.Column("live_key", sa.String(length=120), nullable=True),
        sa.Column("summary", sa.String(length=300), nullable=False),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.Column("sku_id", sa.Integer(), nullable=True),
        sa.Column("shipment_id", sa.Integer(), nullable=True),
        sa.Column("buyer_index", sa.String(length=64), nullable=True),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("assignee_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        sa.Column("recurrence_of_id", sa.Integer(), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sla_clock", sa.String(length=10), nullable=False),
        sa.Column("first_response_minutes", sa.Integer(), nullable=False),
        sa.Column("resolve_minutes", sa.Integer(), nullable=False),
        sa.Column("first_response_due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolve_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("warn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paused_seconds", sa.Integer(), nullable=False),
        sa.Column("paused_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_responded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("warned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalated_to_id", sa.Integer(), nullable=True),
        sa.Column("breached", sa.Boolean(), nullable=False),
        sa.Column("breached_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolve_seconds", sa.Integer(), nullable=True),
        sa.Column("resolution", sa.String(length=1000), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_exceptions_order_id_orders")),
        sa.ForeignKeyConstraint(["sku_id"], ["skus.id"], name=op.f("fk_exceptions_sku_id_skus")),
        sa.ForeignKeyConstraint(["shipment_id"], ["shipments.id"], name=op.f("fk_exceptions_shipment_id_shipments")),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], name=op.f("fk_exceptions_team_id_teams")),
        sa.ForeignKeyConstraint(["assignee_id"], ["staff_users.id"],
                                name=op.f("fk_exceptions_assignee_id_staff_users")),
        sa.ForeignKeyConstraint(["escalated_to_id"], ["staff_users.id"],
                                name=op.f("fk_exceptions_escalated_to_id_staff_users")),
        sa.ForeignKeyConstraint(["recurrence_of_id"], ["exceptions.id"],
                                name=op.f("fk_exceptions_recurrence_of_id_exceptions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exceptions")),
        sa.UniqueConstraint("live_key", name=op.f("uq_exceptions_live_key")),
    )
    for name, columns in (("ix_exceptions_status_resolve_due_at", ["status", "resolve_due_at"]),
                          ("ix_exceptions_opened_at_id", ["opened_at", "id"]),
                          ("ix_exceptions_dedupe_key", ["dedupe_key"]), ("ix_exceptions_order_id", ["order_id"]),
                          ("ix_exceptions_sku_id", ["sku_id"]), ("ix_exceptions_buyer_index", ["buyer_index"]),
                          ("ix_exceptions_team_id_status", ["team_id", "status"]),
                          ("ix_exceptions_assignee_id_status", ["assignee_id", "status"])):
        op.create_index(name, "exceptions", columns, unique=False)
    op.create_table(
        "exception_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("exception_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("from_status", sa.String(length=20), nullable=True),
        sa.Column("to_status", sa.String(length=20), nullable=True),
        sa.Column("actor_label", sa.String(length=120), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["exception_id"], ["exceptions.id"],
                                name=op.f("fk_exception_events_exception_id_exceptions"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exception_events")),
    )
    op.create_index(op.f("ix_exception_events_exception_id"), "exception_events", ["exception_id"], unique=False)
    op.create_table(
        "exception_routes",
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("team_code", sa.String(length=32), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_exception_routes")),
    )
    op.create_table(
        "exception_sla_targets",
        sa.Column("category", sa.String(length=20), nullable=False),
        sa.Column("first_response_minutes", sa.Integer(), nullable=False),
        sa.Column("resolve_minutes", sa.Integer(), nullable=False),
        sa.Column("clock", sa.String(length=10), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("category", name=op.f("pk_exception_sla_targets")),
    )
    op.create_table(
        "exception_canned_replies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=20), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("text_zh", sa.String(length=1000), nullable=False),
        sa.Column("text_en", sa.String(length=1000), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exception_canned_replies")),
        sa.UniqueConstraint("category", "code", name=op.f("uq_exception_canned_replies_category_code")),
    )
    op.bulk_insert(sa.table("exception_routes", sa.column("key"), sa.column("team_code"), sa.column("updated_at")),
                   [{"key": key, "team_code": team, "updated_at": now} for key, team in ROUTES.items()])
    op.bulk_insert(sa.table("exception_sla_targets", *(sa.column(c) for c in (
        "category", "first_response_minutes", "resolve_minutes", "clock", "updated_at"))),
        [{"category": category, "first_response_minutes": first, "resolve_minutes": resolve, "clock": clock,
          "updated_at": now} for category, (first, resolve, clock) in SLA.items()])
    op.bulk_insert(sa.table("exception_canned_replies", *(sa.column(c) for c in (
        "category", "code", "text_zh", "text_en", "updated_at"))),
        [{"category": category, "code": code, "text_zh": zh, "text_en": en, "updated_at": now}
         for category, code, zh, en in CANNED])


def downgrade() -> None:
    for table in ("exception_canned_replies", "exception_sla_targets", "exception_routes", "exception_events",
                  "exceptions"):
        op.drop_table(table)
