"""Column types shared by the models: aware UTC timestamps, money, encrypted personal data."""
from datetime import UTC, datetime

from sqlalchemy import DateTime, LargeBinary, Numeric, Text
from sqlalchemy.types import TypeDecorator

from shared.security import crypto


class UTCDateTime(TypeDecorator):
    """Timestamps stored in UTC and always returned timezone-aware; naive values are refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: Orderloom stores UTC-aware time only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Money = Numeric(12, 2, asdecimal=True)


class EncryptedText(TypeDecorator):
    """Personal data encrypted at rest with the configured key ring (newest key first)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else crypto.encrypt(value)

    def process_result_value(self, value, dialect):
        return None if value is None else crypto.decrypt(value)


class EncryptedBlob(TypeDecorator):
    """A file encrypted at rest with the same key ring (it may hold personal data, e.g. an export)."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else crypto.encrypt_bytes(bytes(value))

    def process_result_value(self, value, dialect):
        return None if value is None else crypto.decrypt_bytes(bytes(value))


def utc(value: datetime) -> datetime:
    return value.astimezone(UTC)
