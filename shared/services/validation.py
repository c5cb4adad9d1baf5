"""Checks for text that people and channels send: length, control characters, phone and email shape."""
import re

from shared.services.errors import ValidationFailed

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


def text(value, field: str, max_length: int, required: bool = True) -> str | None:
    """A trimmed string of bounded length. HTML and SQL are stored as typed and escaped when shown."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ValidationFailed(f"{field} is required", field=field, code="required")
        return None
    if not isinstance(value, str):
        raise ValidationFailed(f"{field} must be text", field=field, code="invalid_type")
    value = value.strip()
    if len(value) > max_length:
        raise ValidationFailed(f"{field} is longer than {max_length} characters", field=field, code="too_long")
    if _CONTROL.search(value):
        raise ValidationFailed(f"{field} contains control characters", field=field, code="invalid_characters")
    return value


def phone(value, field: str) -> str:
    raw = text(value, field, 32)
    digits = re.sub(r"[\s\-()]", "", raw)
    if not re.fullmatch(r"\+?\d{6,20}", digits):
        raise ValidationFailed(f"{field} is not a phone number", field=field, code="invalid_phone")
    return digits


def email(value, field: str) -> str | None:
    raw = text(value, field, 254, required=False)
    if raw is not None and not _EMAIL.match(raw):
        raise ValidationFailed(f"{field} is not an email address", field=field, code="invalid_email")
    return raw.lower() if raw else None


def mapping(value, field: str) -> dict:
    if not isinstance(value, dict):
        raise ValidationFailed(f"{field} must be an object", field=field, code="invalid_type")
    return value
