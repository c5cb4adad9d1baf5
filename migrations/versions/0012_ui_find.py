"""What staff expect to find (issue 14 item 5): receiver-name and last-four search indexes on orders (backfilled in
sets), order notes and tags, customer notes, and alarms that can be acknowledged, assigned and muted.

Revision ID: 0012_ui_find
Revises: 0012_payment_api_url
"""
import sqlalchemy as sa
from alembic import op

revision = "0012_ui_find"
down_revision = "0012_payment_api_url"
branch_labels = None
depends_on = None

BATCH = 1000


def _key_ring() -> None:
    """The app's key ring when the CLI already installed it, else the one the environment configures."""
    from shared.config import load_config
    from shared.security import crypto

    try:
        crypto.blind_index("probe", "x")
    except RuntimeError:
        config = load_config()
        crypto.configure(config["DATA_KEYS"], config["BLIND_INDEX_KEY"])


def _backfill() -> None:
    """Orders' search indexes computed from their (decrypted) receiver, BATCH orders per read and per UPDATE."""
    from shared.security import crypto
    from shared.services.customers import receiver_search_indexes

    _key_ring()
    connection = op.get_bind()
    orders = sa.table("orders", sa.column("id"), sa.column("receiver_name"), sa.column("receiver_phone"),
                      sa.column("platform_ciphertext"), sa.column("anonymised_at"),
                      sa.column("receiver_name_index"), sa.column("receiver_last4_index"))
    last_id = 0
    while rows := connection.execute(
            sa.select(orders.c.id, orders.c.receiver_name, orders.c.receiver_phone)
            .where(orders.c.id > last_id, orders.c.platform_ciphertext.is_(None), orders.c.anonymised_at.is_(None))
            .order_by(orders.c.id).limit(BATCH)).all():
        values = []
        for row in rows:
            name = crypto.decrypt(row.receiver_name) if row.receiver_name else ""
            phone = crypto.decrypt(row.receiver_phone) if row.receiver_phone else ""
            values.append({"row_id": row.id, **receiver_search_indexes(name, phone, None)})
        connection.execute(orders.update().where(orders.c.id == sa.bindparam("row_id"))
                           .values(receiver_name_index=sa.bindparam("receiver_name_index"),
                                   receiver_last4_index=sa.bindparam("receiver_last4_index")), values)
        last_id = rows[-1].id


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("receiver_name_index", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("receiver_last4_index", sa.String(length=64), nullable=True))
        batch.create_index("ix_orders_receiver_name_index", ["receiver_name_index"])
        batch.create_index("ix_orders_receiver_last4_index", ["receiver_last4_index"])
    _backfill()
    op.create_table(
        "order_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("body", sa.String(length=1000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_order_notes_order_id_orders")),
        sa.ForeignKeyConstraint(["author_id"], ["staff_users.id"], name=op.f("fk_order_notes_author_id_staff_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_notes")),
    )
    op.create_index("ix_order_notes_order_id_id", "order_notes", ["order_id", "id"])
    op.create_table(
        "order_tags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=30), nullable=False),
        sa.Column("added_by_id", sa.Integer(), nullable=True),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_order_tags_order_id_orders")),
        sa.ForeignKeyConstraint(["added_by_id"], ["staff_users.id"],
                                name=op.f("fk_order_tags_added_by_id_staff_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_tags")),
        sa.UniqueConstraint("order_id", "tag", name=op.f("uq_order_tags_order_id_tag")),
    )
    op.create_index("ix_order_tags_tag_order_id", "order_tags", ["tag", "order_id"])
    op.create_table(
        "customer_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("body", sa.String(length=1000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"],
                                name=op.f("fk_customer_notes_customer_id_customers")),
        sa.ForeignKeyConstraint(["author_id"], ["staff_users.id"],
                                name=op.f("fk_customer_notes_author_id_staff_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_notes")),
    )
    op.create_index("ix_customer_notes_customer_id_id", "customer_notes", ["customer_id", "id"])
    for table in ("fulfilment_alarms", "sync_alerts"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True))
            batch.add_column(sa.Column("acknowledged_by_id", sa.Integer(), nullable=True))
            batch.add_column(sa.Column("assigned_to_id", sa.Integer(), nullable=True))
            batch.create_foreign_key(op.f(f"fk_{table}_acknowledged_by_id_staff_users"), "staff_users",
                                     ["acknowledged_by_id"], ["id"])
            batch.create_foreign_key(op.f(f"fk_{table}_assigned_to_id_staff_users"), "staff_users",
                                     ["assigned_to_id"], ["id"])
    op.create_table(
        "alarm_mutes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("subject", sa.String(length=80), nullable=True),
        sa.Column("muted_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("muted_by_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["muted_by_id"], ["staff_users.id"],
                                name=op.f("fk_alarm_mutes_muted_by_id_staff_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarm_mutes")),
    )
    op.create_index("ix_alarm_mutes_kind_muted_until", "alarm_mutes", ["kind", "muted_until"])


def downgrade() -> None:
    op.drop_index("ix_alarm_mutes_kind_muted_until", table_name="alarm_mutes")
    op.drop_table("alarm_mutes")
    for table in ("sync_alerts", "fulfilment_alarms"):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(op.f(f"fk_{table}_assigned_to_id_staff_users"), type_="foreignkey")
            batch.drop_constraint(op.f(f"fk_{table}_acknowledged_by_id_staff_users"), type_="foreignkey")
            batch.drop_column("assigned_to_id")
            batch.drop_column("acknowledged_by_id")
            batch.drop_column("acknowledged_at")
    op.drop_index("ix_customer_notes_customer_id_id", table_name="customer_notes")
    op.drop_table("customer_notes")
    op.drop_index("ix_order_tags_tag_order_id", table_name="order_tags")
    op.drop_table("order_tags")
    op.drop_index("ix_order_notes_order_id_id", table_name="order_notes")
    op.drop_table("order_notes")
    with op.batch_alter_table("orders") as batch:
        batch.drop_index("ix_orders_receiver_last4_index")
        batch.drop_index("ix_orders_receiver_name_index")
        batch.drop_column("receiver_last4_index")
        batch.drop_column("receiver_name_index")
