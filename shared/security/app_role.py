"""The PostgreSQL role the applications connect as: it may add to the chained logs and read them, never rewrite them.

The schema (and its triggers) belongs to the role that runs migrations; the app role owns nothing, so it can
neither disable a trigger nor TRUNCATE. On the three chained logs it may INSERT and SELECT, and UPDATE only
the seal columns (which the trigger lets it fill once, while they are empty).
"""
import re

CHAINED_TABLES = ("audit_events", "access_log", "stock_movements")
SEAL_COLUMNS = ("seq", "row_mac", "chain_mac", "key_id")
HEADS = "audit_seals"
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def app_role_sql(role: str, schema: str = "public") -> list[str]:
    """The GRANT/REVOKE statements that make `role` the app role of `schema` (both plain lower-case names)."""
    for name, value in (("role", role), ("schema", schema)):
        if not _NAME.match(value):
            raise ValueError(f"{name} must be a plain lower-case SQL name (letters, digits, _), not {value!r}")
    chained = ", ".join(f"{schema}.{t}" for t in CHAINED_TABLES)
    return [
        f"GRANT USAGE ON SCHEMA {schema} TO {role}",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}",
        # Chained rows: added, sealed once, and deleted only below the head's pruned floor (retention); the
        # append-only triggers refuse any other delete, and the floor moves only with the head's MAC.
        f"REVOKE UPDATE ON {chained}, {schema}.{HEADS} FROM {role}",
        f"REVOKE DELETE ON {schema}.{HEADS} FROM {role}",
        f"REVOKE INSERT ON {schema}.alembic_version FROM {role}",
        f"REVOKE UPDATE, DELETE ON {schema}.alembic_version FROM {role}",
        f"GRANT UPDATE ({', '.join(SEAL_COLUMNS)}) ON {chained} TO {role}",
        f"GRANT UPDATE (last_seq, last_mac, sealed_at, checkpoints, checkpoint_at, key_id, head_mac, pruned_seq, "
        f"pruned_mac) "
        f"ON {schema}.{HEADS} TO {role}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
        # Tables a later migration adds: the everyday rights, until this is run again after the upgrade.
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT USAGE, SELECT ON SEQUENCES TO {role}",
    ]
