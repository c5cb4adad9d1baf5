"""Accounts and limits: normalised unique usernames, session generations, device token lifetimes, the hourly
roll-up of refused webhook requests, and per-order guest look-up locks.

Revision ID: 0006_accounts
Revises: 0006_inbox_topics
"""
import unicodedata
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision = "0006_accounts"
down_revision = "0006_mapping_keys"
branch_labels = None
depends_on = None

DEVICE_DAYS = 90  # devices registered before token lifetimes existed get this long from the upgrade on


def _key(username: str) -> str:
    """The same rule as shared.services.validation.username_key, frozen here as it was when written."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", username).casefold())


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("staff_users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("username_key", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("session_generation", sa.Integer(), nullable=False, server_default="0"))
    taken: set[str] = set()
    for user_id, username in bind.execute(sa.text("SELECT id, username FROM staff_users ORDER BY id")).all():
        key = _key(username)[:64]
        if key in taken:
            # Two accounts that differ only by case or width: the older keeps the name, the newer must be renamed
            # by an admin before it can sign in again (its key cannot match what anyone types).
            key = f"{key[:50]}#duplicate-{user_id}"
        taken.add(key)
        bind.execute(sa.text("UPDATE staff_users SET username_key = :key WHERE id = :id"), {"key": key, "id": user_id})
    with op.batch_alter_table("staff_users", schema=None) as batch_op:
        batch_op.alter_column("username_key", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_staff_users_username_key"), ["username_key"])
        batch_op.alter_column("session_generation", server_default=None)

    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("session_generation", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.alter_column("session_generation", server_default=None)

    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("revoked_by", sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
    expires = datetime.now(UTC) + timedelta(days=DEVICE_DAYS)
    if bind.dialect.name == "sqlite":
        expires = expires.replace(tzinfo=None)
    bind.execute(sa.text("UPDATE devices SET expires_at = :expires WHERE expires_at IS NULL"), {"expires": expires})

    op.create_table(
        "webhook_rejection_rollups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("channel_code", sa.String(length=40), nullable=False),
        sa.Column("remote_addr", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_rejection_rollups")),
        sa.UniqueConstraint("hour", "channel_code", "remote_addr", "reason",
                            name=op.f("uq_webhook_rejection_rollups_hour_channel_code_remote_addr_reason")),
    )
    with op.batch_alter_table("webhook_rejection_rollups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_webhook_rejection_rollups_hour"), ["hour"], unique=False)
    with op.batch_alter_table("webhook_rejections", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_rejections_remote_addr_received_at", ["remote_addr", "received_at"],
                              unique=False)

    op.create_table(
        "guest_lookup_locks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_guest_lookup_locks_order_id_orders")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guest_lookup_locks")),
        sa.UniqueConstraint("order_id", name=op.f("uq_guest_lookup_locks_order_id")),
    )


def downgrade() -> None:
    op.drop_table("guest_lookup_locks")
    with op.batch_alter_table("webhook_rejections", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_rejections_remote_addr_received_at")
    with op.batch_alter_table("webhook_rejection_rollups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_rejection_rollups_hour"))
    op.drop_table("webhook_rejection_rollups")
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_column("last_used_at")
        batch_op.drop_column("revoked_by")
        batch_op.drop_column("revoked_at")
        batch_op.drop_column("expires_at")
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_column("session_generation")
    with op.batch_alter_table("staff_users", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_staff_users_username_key"), type_="unique")
        batch_op.drop_column("session_generation")
        batch_op.drop_column("username_key")
