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


def test_the_bill_address_folds_into_the_one_api_address(live_apps):
    """0012: an address kept only in bill_url becomes the account's api_url; an api_url already set stays."""
    from sqlalchemy import text

    from shared.extensions import db
    from shared.models import Channel
    from shared.models.payments import PaymentAccount

    with live_apps.core.app_context():
        channel = Channel(code="OS", name="官网商城", kind="own_shop")
        db.session.add(channel)
        db.session.flush()
        db.session.add_all([PaymentAccount(channel_id=channel.id, provider="wechatpay", active=True),
                            PaymentAccount(channel_id=channel.id, provider="alipay", active=True,
                                           api_url="https://gateway.example/gateway.do")])
        db.session.commit()
        db.engine.dispose()
    config = alembic_config(live_apps.url)
    command.downgrade(config, "0011_pay_refunds")
    engine = create_engine(live_apps.url)
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE payment_accounts SET bill_url = 'https://api.example/wechatpay' "
                                    "WHERE provider = 'wechatpay'"))
            connection.execute(text("UPDATE payment_accounts SET bill_url = 'https://other.example/bill' "
                                    "WHERE provider = 'alipay'"))
    finally:
        engine.dispose()
    command.upgrade(config, "head")
    engine = create_engine(live_apps.url)
    try:
        with engine.connect() as connection:
            rows = dict(connection.execute(text("SELECT provider, api_url FROM payment_accounts")).all())
        assert rows == {"wechatpay": "https://api.example/wechatpay", "alipay": "https://gateway.example/gateway.do"}
        assert "bill_url" not in {column["name"] for column in inspect(engine).get_columns("payment_accounts")}
    finally:
        engine.dispose()
