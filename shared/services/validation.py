"""Checks for text that people and channels send: length, control characters, phone and email shape, codes
and usernames.

Codes (SKU, warehouse, bin, channel) are identifiers people type, print on labels and compare: each kind has
one documented character set (CODE_RULES, and docs/SECURITY.md), checked after NFKC, so a full-width
"ＴＥＡ" is the same code as "TEA" (and collides with it), while right-to-left overrides, zero-width
characters, spaces and markup are refused outright. Every service that takes a code calls `code()`.
"""
import re
import unicodedata

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


# kind -> (pattern after NFKC, maximum length, what a person is told)
CODE_RULES: dict[str, tuple[re.Pattern, int, str]] = {
    "sku": (re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*"), 64,
            "a SKU code uses letters A-Z, digits, '.', '_', '-' and '/', and starts with a letter or digit"),
    "warehouse": (re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*"), 32,
                  "a warehouse code uses letters A-Z, digits, '-' and '_', and starts with a letter or digit"),
    "bin": (re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*"), 32,
            "a bin code uses letters A-Z, digits, '.', '-' and '_', and starts with a letter or digit"),
    "channel": (re.compile(r"[A-Z]{2}"), 2, "a channel code is two letters A-Z"),
}


CODE_ERRORS = {"sku": "invalid_sku"}  # the API's error codes as they were before the rules were one


def code(value, field: str, kind: str) -> str:
    """A code of one kind, NFKC-normalised (channel codes upper-cased), or a clear refusal."""
    pattern, max_length, rule = CODE_RULES[kind]
    if value is not None and not isinstance(value, str):
        raise ValidationFailed(f"{field} must be text", field=field, code="invalid_type")
    normalised = unicodedata.normalize("NFKC", value or "").strip()
    if kind == "channel":
        normalised = normalised.upper()
    if not normalised:
        raise ValidationFailed(f"{field} is required", field=field, code="required")
    if len(normalised) > max_length:
        raise ValidationFailed(f"{field} is longer than {max_length} characters", field=field, code="too_long")
    if not pattern.fullmatch(normalised):
        raise ValidationFailed(rule, field=field, code=CODE_ERRORS.get(kind, "invalid"))
    return normalised


USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]*")


def username_key(value: str) -> str:
    """The form two usernames are compared in: NFKC, case-folded, NFKC again (Unicode's NFKC_Casefold idea)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value or "").casefold()).strip()


def username(value, field: str = "username") -> tuple[str, str]:
    """A new username as shown (NFKC) and its comparison key; letters a-z, digits, '.', '-' and '_'."""
    shown = unicodedata.normalize("NFKC", text(value, field, 64))
    key = username_key(shown)
    if not shown.isascii() or not USERNAME.fullmatch(key):
        raise ValidationFailed("a username uses letters, digits, '.', '-' and '_' only", field=field,
                               code="invalid_username")
    return shown, key
