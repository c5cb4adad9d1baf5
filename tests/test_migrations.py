"""The Alembic migrations make exactly the schema the models describe, on both databases, and undo cleanly."""
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

import shared.models  # noqa: F401
from shared.database import alembic_config
from shared.extensions import Base


def test_migrated_schema_matches_the_models(live_apps):
    engine = create_engine(live_apps.url)
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert differences == []
    finally:
        engine.dispose()


def test_downgrade_to_base_and_up_again(live_apps):
    config = alembic_config(live_apps.url)
    command.downgrade(config, "base")
    engine = create_engine(live_apps.url)
    try:
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()
    command.upgrade(config, "head")
