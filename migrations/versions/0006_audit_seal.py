"""Keyed audit chains without a lock at commit: seal columns on audit events, access log and stock ledger;
one head row per chain; triggers that allow only the sealer's one-time fill and refuse TRUNCATE.

Audit events sealed before this revision keep their unkeyed sha256 chain (key id "sha256"), verified as it
was; the keyed chain continues from its last hash.

Revision ID: 0006_audit_seal
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa


revision = "0006_audit_seal"
down_revision = "0005"
branch_labels = None
depends_on = None

GENESIS = "0" * 64
CHAINED = ("audit_events", "access_log", "stock_movements")
SEAL_COLUMNS = ("seq", "row_mac", "chain_mac", "key_id")
LOG_NAMES = {"audit_events": "audit", "access_log": "access", "stock_movements": "stock"}


def _drop_old_guards(dialect: str) -> None:
    for table in CHAINED:
        if dialect == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")


def _create_guards(dialect: str) -> None:
    """Rows may be added, and their seal columns filled once while empty; nothing else, and no TRUNCATE."""
    if dialect == "postgresql":
        seal = "ARRAY[" + ", ".join(f"'{c}'" for c in SEAL_COLUMNS) + "]"
        op.execute(f"""
            CREATE OR REPLACE FUNCTION orderloom_seal_only() RETURNS trigger AS $$
            BEGIN
                IF TG_OP = 'UPDATE' AND OLD.seq IS NULL AND NEW.seq IS NOT NULL AND NEW.chain_mac IS NOT NULL
                   AND OLD.chain_mac IS NULL
                   AND (OLD.row_mac IS NULL OR NEW.row_mac IS NOT DISTINCT FROM OLD.row_mac)
                   AND (OLD.key_id IS NULL OR NEW.key_id IS NOT DISTINCT FROM OLD.key_id)
                   AND (to_jsonb(NEW) - {seal}::text[]) = (to_jsonb(OLD) - {seal}::text[]) THEN
                    RETURN NEW;
                END IF;
                RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
            END;
            $$ LANGUAGE plpgsql
        """)
        for table in CHAINED:
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                       f"FOR EACH ROW EXECUTE FUNCTION orderloom_seal_only()")
            op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                       f"FOR EACH STATEMENT EXECUTE FUNCTION orderloom_refuse_change()")
        return
    inspector = sa.inspect(op.get_bind())
    for table in CHAINED:
        content = [c["name"] for c in inspector.get_columns(table) if c["name"] not in SEAL_COLUMNS]
        unchanged = " AND ".join(f'NEW."{name}" IS OLD."{name}"' for name in content)
        op.execute(f"""
            CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table}
            WHEN NOT (OLD.seq IS NULL AND NEW.seq IS NOT NULL AND OLD.chain_mac IS NULL AND NEW.chain_mac IS NOT NULL
                      AND (OLD.row_mac IS NULL OR NEW.row_mac IS OLD.row_mac)
                      AND (OLD.key_id IS NULL OR NEW.key_id IS OLD.key_id) AND {unchanged})
            BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END
        """)
        op.execute(f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
                   f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END")


def _drop_guards(dialect: str) -> None:
    for table in CHAINED:
        if dialect == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS orderloom_seal_only()")


def _old_guards(dialect: str) -> None:
    """The guards of revision 0001, put back on downgrade."""
    for table in CHAINED:
        if dialect == "postgresql":
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                       f"FOR EACH ROW EXECUTE FUNCTION orderloom_refuse_change()")
        else:
            for verb in ("UPDATE", "DELETE"):
                op.execute(f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                           f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    _drop_old_guards(dialect)
    op.create_table(
        "audit_seals",
        sa.Column("log", sa.String(length=16), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("last_mac", sa.String(length=64), nullable=False),
        sa.Column("legacy_seq", sa.Integer(), nullable=False),
        sa.Column("checkpoints", sa.Integer(), nullable=False),
        sa.Column("sealed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("checkpoint_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("key_id", sa.String(length=16), nullable=True),
        sa.Column("head_mac", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("log", name=op.f("pk_audit_seals")),
    )
    head = op.get_bind().execute(sa.text("SELECT last_seq, last_hash FROM audit_chain_head WHERE id = 1")).first()
    last_seq, last_hash = (head[0], head[1]) if head else (0, GENESIS)
    seals = sa.table("audit_seals", *(sa.column(c) for c in ("log", "last_seq", "last_mac", "legacy_seq",
                                                               "checkpoints")))
    op.bulk_insert(seals, [
        {"log": "audit", "last_seq": last_seq, "last_mac": last_hash, "legacy_seq": last_seq, "checkpoints": 0},
        {"log": "access", "last_seq": 0, "last_mac": GENESIS, "legacy_seq": 0, "checkpoints": 0},
        {"log": "stock", "last_seq": 0, "last_mac": GENESIS, "legacy_seq": 0, "checkpoints": 0},
    ])

    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("row_mac", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("chain_mac", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("key_id", sa.String(length=16), nullable=True))
    op.execute("UPDATE audit_events SET chain_mac = hash, key_id = 'sha256'")
    op.drop_index("ix_audit_events_entity", table_name="audit_events")
    op.create_index("ix_audit_events_entity", "audit_events", ["entity_type", "entity_id", "id"])
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_constraint("uq_audit_events_seq", type_="unique")
        batch.alter_column("seq", existing_type=sa.Integer(), nullable=True)
        batch.drop_column("prev_hash")
        batch.drop_column("hash")
    for table in ("access_log", "stock_movements"):
        op.add_column(table, sa.Column("seq", sa.Integer(), nullable=True))
        op.add_column(table, sa.Column("row_mac", sa.String(length=64), nullable=True))
        op.add_column(table, sa.Column("chain_mac", sa.String(length=64), nullable=True))
        op.add_column(table, sa.Column("key_id", sa.String(length=16), nullable=True))
    for table in CHAINED:
        op.create_index(f"ix_{table}_seq", table, ["seq"], unique=True)
        op.create_index(f"ix_{table}_unsealed", table, ["id"], postgresql_where=sa.text("seq IS NULL"),
                        sqlite_where=sa.text("seq IS NULL"))
    op.drop_table("audit_chain_head")
    _create_guards(dialect)


def downgrade() -> None:
    """Back to the single-head sha256 chain. Keyed events stay, but the old `audit verify` cannot check them."""
    dialect = op.get_bind().dialect.name
    _drop_guards(dialect)
    head = op.get_bind().execute(sa.text("SELECT last_seq, last_mac FROM audit_seals WHERE log = 'audit'")).first()
    op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain_head")),
    )
    op.execute(sa.text("INSERT INTO audit_chain_head (id, last_seq, last_hash) VALUES (1, :seq, :mac)")
               .bindparams(seq=head[0] if head else 0, mac=head[1] if head else GENESIS))
    for table in CHAINED:
        op.drop_index(f"ix_{table}_unsealed", table_name=table)
        op.drop_index(f"ix_{table}_seq", table_name=table)
    for table in ("access_log", "stock_movements"):
        with op.batch_alter_table(table) as batch:
            for column in ("key_id", "chain_mac", "row_mac", "seq"):
                batch.drop_column(column)
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=False, server_default=""))
        batch.add_column(sa.Column("hash", sa.String(length=64), nullable=False, server_default=""))
    op.execute("UPDATE audit_events SET hash = COALESCE(chain_mac, ''), seq = COALESCE(seq, -id)")
    op.drop_index("ix_audit_events_entity", table_name="audit_events")
    op.create_index("ix_audit_events_entity", "audit_events", ["entity_type", "entity_id", "seq"])
    with op.batch_alter_table("audit_events") as batch:
        batch.alter_column("seq", existing_type=sa.Integer(), nullable=False)
        batch.create_unique_constraint("uq_audit_events_seq", ["seq"])
        batch.drop_column("key_id")
        batch.drop_column("chain_mac")
        batch.drop_column("row_mac")
    op.drop_table("audit_seals")
    _old_guards(dialect)
