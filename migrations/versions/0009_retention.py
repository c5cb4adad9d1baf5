"""Retention (issue 11 item 8): periods per data class, legal holds, anonymised/purged markers, and a pruned floor
on each audit chain head. The append-only guards now let a row go only once the head's floor covers it: the
retention job archives rows to a signed file, moves the floor (a MACed head change), then deletes below it.

Revision ID: 0009_retention
Revises: 0009_approvals
"""
import sqlalchemy as sa
from alembic import op

revision = "0009_retention"
down_revision = "0009_approvals"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
CHAINED = {"audit_events": "audit", "access_log": "access", "stock_movements": "stock"}
SEAL = ("seq", "row_mac", "chain_mac", "key_id")


def _pg_guard(pruning: bool) -> str:
    seal = "ARRAY[" + ", ".join(f"'{c}'" for c in SEAL) + "]"
    below_floor = """
        IF TG_OP = 'DELETE' AND OLD.seq IS NOT NULL AND OLD.seq <= (
            SELECT pruned_seq FROM audit_seals WHERE log = CASE TG_TABLE_NAME WHEN 'audit_events' THEN 'audit'
                WHEN 'access_log' THEN 'access' ELSE 'stock' END) THEN
            RETURN OLD;
        END IF;""" if pruning else ""
    return f"""
        CREATE OR REPLACE FUNCTION orderloom_seal_only() RETURNS trigger AS $$
        BEGIN
            IF TG_OP = 'UPDATE' AND OLD.seq IS NULL AND NEW.seq IS NOT NULL AND NEW.chain_mac IS NOT NULL
               AND OLD.chain_mac IS NULL
               AND (OLD.row_mac IS NULL OR NEW.row_mac IS NOT DISTINCT FROM OLD.row_mac)
               AND (OLD.key_id IS NULL OR NEW.key_id IS NOT DISTINCT FROM OLD.key_id)
               AND (to_jsonb(NEW) - {seal}::text[]) = (to_jsonb(OLD) - {seal}::text[]) THEN
                RETURN NEW;
            END IF;{below_floor}
            RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
        END;
        $$ LANGUAGE plpgsql
    """


def _sqlite_delete_guards(pruning: bool) -> None:
    for table, log in CHAINED.items():
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
        when = (f"WHEN NOT (OLD.seq IS NOT NULL AND OLD.seq <= (SELECT pruned_seq FROM audit_seals WHERE log = '{log}'))"
                if pruning else "")
        op.execute(f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} {when} "
                   f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END")


def upgrade() -> None:
    op.create_table(
        "retention_policies",
        sa.Column("data_class", sa.String(32), primary_key=True),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("updated_by_id", sa.Integer(), sa.ForeignKey("staff_users.id")),
    )
    op.create_table(
        "legal_holds",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("entity_type", sa.String(16), nullable=False),
        sa.Column("entity_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("placed_by_id", sa.Integer(), sa.ForeignKey("staff_users.id")),
        sa.Column("placed_at", TZ, nullable=False),
        sa.Column("released_at", TZ),
        sa.Column("released_by_id", sa.Integer(), sa.ForeignKey("staff_users.id")),
        sa.Column("release_reason", sa.Text()),
    )
    op.create_index("ix_legal_holds_active", "legal_holds", ["entity_type", "entity_id"],
                    postgresql_where=sa.text("released_at IS NULL"), sqlite_where=sa.text("released_at IS NULL"))
    for table in ("orders", "customers"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("anonymised_at", TZ))
    for table in ("inbox_items", "tracking_pushes"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("payload_purged_at", TZ))
    with op.batch_alter_table("audit_seals") as batch:
        batch.add_column(sa.Column("pruned_seq", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("pruned_mac", sa.String(64)))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_pg_guard(pruning=True))
    else:
        _sqlite_delete_guards(pruning=True)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_pg_guard(pruning=False))
    else:
        _sqlite_delete_guards(pruning=False)
    with op.batch_alter_table("audit_seals") as batch:
        batch.drop_column("pruned_mac")
        batch.drop_column("pruned_seq")
    for table in ("inbox_items", "tracking_pushes"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("payload_purged_at")
    for table in ("orders", "customers"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("anonymised_at")
    op.drop_index("ix_legal_holds_active", table_name="legal_holds")
    op.drop_table("legal_holds")
    op.drop_table("retention_policies")
