"""Customer self-service (issue 13 items 3 and 6): requests before shipping (a cancel the warehouse answers), the
message thread per order, the customer notification outbox (mail and simulated SMS) and guests' one-time codes;
the exception center's `customer_service` category with its SLA, routing and canned replies.

Revision ID: 0011_cs_self
Revises: 0011_ui_history
"""
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0011_cs_self"
down_revision = "0011_ui_history"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
# A customer's message is answered by customer service; a cancel request by the warehouse that holds the goods.
ROUTES = {"customer_service": "customer_service", "cancel_request": "warehouse"}
SLA = {"customer_service": (30, 240, "business")}
CANNED = [
    ("customer_service", "looking_into_it", "您好，我们正在为您核实，稍后在此回复您。",
     "Hello, we are looking into it and will answer you here shortly."),
    ("customer_service", "cancel_declined_packed", "抱歉，您的包裹已打包出库，无法取消；签收后可申请退货。",
     "Sorry, your parcel is already packed and cannot be cancelled; you can ask for a return once it arrives."),
]


def upgrade() -> None:
    now = datetime.now(UTC)
    op.create_table(
        "customer_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("answer", sa.String(500), nullable=True),
        sa.Column("exception_id", sa.Integer(), nullable=True),
        sa.Column("requested_by", sa.String(80), nullable=False),
        sa.Column("decided_by", sa.String(80), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("decided_at", TZ, nullable=True),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_customer_requests_order_id_orders")),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"],
                                name=op.f("fk_customer_requests_customer_id_customers")),
        sa.ForeignKeyConstraint(["exception_id"], ["exceptions.id"],
                                name=op.f("fk_customer_requests_exception_id_exceptions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_requests")),
    )
    op.create_index("ix_customer_requests_order_id", "customer_requests", ["order_id"])
    op.create_table(
        "order_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("exception_id", sa.Integer(), nullable=True),
        sa.Column("author", sa.String(10), nullable=False),
        sa.Column("author_label", sa.String(120), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_order_messages_order_id_orders")),
        sa.ForeignKeyConstraint(["exception_id"], ["exceptions.id"],
                                name=op.f("fk_order_messages_exception_id_exceptions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_messages")),
    )
    op.create_index("ix_order_messages_order_id_id", "order_messages", ["order_id", "id"])
    op.create_table(
        "customer_notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("event", sa.String(40), nullable=False),
        sa.Column("params", sa.Text(), nullable=True),
        sa.Column("locale", sa.String(8), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(300), nullable=True),
        sa.Column("dedupe_key", sa.String(120), nullable=True),
        sa.Column("next_attempt_at", TZ, nullable=True),
        sa.Column("sent_at", TZ, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_customer_notifications_order_id_orders")),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"],
                                name=op.f("fk_customer_notifications_customer_id_customers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_notifications")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_customer_notifications_dedupe_key")),
    )
    op.create_index("ix_customer_notifications_status_next_attempt_at", "customer_notifications",
                    ["status", "next_attempt_at"])
    op.create_index("ix_customer_notifications_created_at_id", "customer_notifications", ["created_at", "id"])
    op.create_table(
        "guest_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("used_at", TZ, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_guest_codes_order_id_orders")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guest_codes")),
    )
    op.create_index("ix_guest_codes_order_id_created_at", "guest_codes", ["order_id", "created_at"])
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
    categories = sa.bindparam("categories", list(SLA), expanding=True)
    op.execute(sa.text("DELETE FROM exception_canned_replies WHERE category IN :categories").bindparams(categories))
    op.execute(sa.text("DELETE FROM exception_sla_targets WHERE category IN :categories").bindparams(categories))
    op.execute(sa.text("DELETE FROM exception_routes WHERE key IN :keys")
               .bindparams(sa.bindparam("keys", list(ROUTES), expanding=True)))
    for index, table in (("ix_guest_codes_order_id_created_at", "guest_codes"),
                         ("ix_customer_notifications_created_at_id", "customer_notifications"),
                         ("ix_customer_notifications_status_next_attempt_at", "customer_notifications"),
                         ("ix_order_messages_order_id_id", "order_messages"),
                         ("ix_customer_requests_order_id", "customer_requests")):
        op.drop_index(index, table_name=table)
    for table in ("guest_codes", "customer_notifications", "order_messages", "customer_requests"):
        op.drop_table(table)
