"""Checks for text that people and channels send: length, control characters, phone and email shape, codes
and usernames.

Codes (SKU, warehouse, bin, channel) are identifiers people type, print on labels and compare: each kind has
one documented character set (CODE_RULES, and docs/SECURITY.md), checked after NFKC, so a full-width
"ＴＥＡ" is the same code as "TEA" (and collides with it), while right-to-left overrides, zero-width
characters, spaces and markup are refused outright. Every service that takes a code calls `code()`.
"""
import re
import unicodedata
from decimal import Decimal

from shared.services.errors import ValidationFailed

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


def text(value, field: str, max_length: int, required: bool = True) -> str | None:
    """A trimmed string of bounded length. HTML and SQL are stored as typed and escaped when shown."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ValidationFailed(say(REQUIRED, field=field), field=field, code="required")
        return None
    if not isinstance(value, str):
        raise ValidationFailed(say(MUST_BE_TEXT, field=field), field=field, code="invalid_type")
    value = value.strip()
    if len(value) > max_length:
        raise ValidationFailed(say(TOO_LONG, field=field, limit=max_length), field=field, code="too_long")
    if _CONTROL.search(value):
        raise ValidationFailed(say(HAS_CONTROL, field=field), field=field, code="invalid_characters")
    return value


def phone(value, field: str) -> str:
    raw = text(value, field, 32)
    digits = re.sub(r"[\s\-()]", "", raw)
    if not re.fullmatch(r"\+?\d{6,20}", digits):
        raise ValidationFailed(say(NOT_A_PHONE, field=field), field=field, code="invalid_phone")
    return digits


def email(value, field: str) -> str | None:
    raw = text(value, field, 254, required=False)
    if raw is not None and not _EMAIL.match(raw):
        raise ValidationFailed(say(NOT_AN_EMAIL, field=field), field=field, code="invalid_email")
    return raw.lower() if raw else None


def mapping(value, field: str) -> dict:
    if not isinstance(value, dict):
        raise ValidationFailed(say(MUST_BE_OBJECT, field=field), field=field, code="invalid_type")
    return value


# --- JSON bodies and query parameters: types checked before any field is used ----------------------------------

def N_(msgid: str) -> str:
    """Mark a message for translation where it is defined; it is translated when said (see say)."""
    return msgid


def say(msgid: str, **params) -> str:
    """A message in the request's language; outside a request (workers, the CLI) in English."""
    from flask import has_request_context

    if has_request_context():
        from flask_babel import gettext

        return gettext(msgid, **params)
    return msgid % params if params else msgid


# What each kind of JSON value is called in an error message. Numbers arrive as int or Decimal (the API parses
# floats as Decimal); whether a number is whole, positive or in range is the service's rule, not the type's.
KINDS = {
    "text": N_("text"), "integer": N_("a number"), "id": N_("a whole number"),
    "money": N_("an amount (text such as \"12.50\", or a number)"),
    "boolean": N_("true or false"), "object": N_("an object"), "list": N_("a list"),
}
# The code a wrong type is refused with: numbers keep the code their own rules use (the API's documented codes).
KIND_CODES = {"integer": "invalid_quantity", "money": "invalid_amount"}
MAX_LIST_ITEMS = 500
MUST_BE = N_("%(field)s must be %(kind)s")
HAS_CONTROL = N_("%(field)s contains control characters")
TOO_LONG = N_("%(field)s is longer than %(limit)s characters")
TOO_MANY = N_("%(field)s has more than %(limit)s items")
NOT_WHOLE = N_("%(field)s must be a whole number")
OUT_OF_RANGE = N_("%(field)s must be between %(low)s and %(high)s")
MUST_BE_TEXT = N_("%(field)s must be text")
MUST_BE_OBJECT = N_("%(field)s must be an object")
REQUIRED = N_("%(field)s is required")
NOT_A_PHONE = N_("%(field)s is not a phone number: give digits only, e.g. 13812345678")
NOT_AN_EMAIL = N_("%(field)s is not an email address, e.g. name@example.com")
INVALID_USERNAME = N_("A username uses letters, digits, '.', '-' and '_' only")


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value) -> bool:
    return _whole(value) or isinstance(value, Decimal)


# What each kind of check_types accepts: built once, one test per value (not every kind's test per value).
_KIND_TESTS = {"text": lambda value: isinstance(value, str), "integer": _number, "id": _whole,
               "money": lambda value: _number(value) or isinstance(value, str),
               "boolean": lambda value: isinstance(value, bool), "object": lambda value: isinstance(value, dict),
               "list": lambda value: isinstance(value, list)}


def _is_kind(value, kind: str) -> bool:
    return _KIND_TESTS[kind](value)


def check_types(data, schema: dict, path: str = "") -> dict:
    """Check every field of a JSON object named in `schema` has the right type; the one helper for API bodies.

    `schema` maps a field to a kind ("text", "integer", "id", "money", "boolean", "object", "list"), to a nested schema
    (an object), or to a one-element list holding the schema of each item. Missing and null fields pass (whether
    a field is required is the service's rule, with its own message); fields not named are ignored. Text is also
    refused when it holds control characters (a NUL byte fails in PostgreSQL, not here). The first wrong field
    is a 422 naming it, e.g. `lines[2].quantity`, so nothing is changed.
    """
    if not isinstance(data, dict):
        raise ValidationFailed(say(MUST_BE, field=path or "body", kind=say(KINDS["object"])),
                               field=path or "body", code="invalid_type")
    for name, spec in schema.items():
        value = data.get(name)
        if value is None:
            continue
        field = f"{path}.{name}" if path else name
        if isinstance(spec, dict):
            check_types(value, spec, field)
        elif isinstance(spec, list):
            if not isinstance(value, list):
                raise ValidationFailed(say(MUST_BE, field=field, kind=say(KINDS["list"])),
                                       field=field, code="invalid_type")
            if len(value) > MAX_LIST_ITEMS:
                raise ValidationFailed(say(TOO_MANY, field=field,
                                           limit=MAX_LIST_ITEMS), field=field, code="too_many")
            for index, item in enumerate(value):
                if isinstance(spec[0], dict):
                    check_types(item, spec[0], f"{field}[{index}]")
                else:
                    _check_value(item, spec[0], f"{field}[{index}]")
        else:
            _check_value(value, spec, field)
    return data


def _check_value(value, kind: str, field: str) -> None:
    if not _is_kind(value, kind):
        raise ValidationFailed(say(MUST_BE, field=field, kind=say(KINDS[kind])),
                               field=field, code=KIND_CODES.get(kind, "invalid_type"))
    if isinstance(value, str) and _CONTROL.search(value):
        raise ValidationFailed(say(HAS_CONTROL, field=field), field=field,
                               code="invalid_characters")


def parameter(value, field: str, max_length: int = 200) -> str | None:
    """A query or path parameter: None when absent, else text of bounded length without control characters."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationFailed(say(MUST_BE, field=field, kind=say(KINDS["text"])),
                               field=field, code="invalid_type")
    if len(value) > max_length:
        raise ValidationFailed(say(TOO_LONG, field=field, limit=max_length),
                               field=field, code="too_long")
    if _CONTROL.search(value):
        raise ValidationFailed(say(HAS_CONTROL, field=field), field=field,
                               code="invalid_characters")
    return value


def whole_number(value, field: str, low: int, high: int, default: int) -> int:
    """A query parameter that must be a whole number from `low` to `high` (e.g. a page size)."""
    if value is None or value == "":
        return default
    if not (isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 9):
        raise ValidationFailed(say(NOT_WHOLE, field=field), field=field,
                               code=f"invalid_{field}")
    if not low <= int(value) <= high:
        raise ValidationFailed(say(OUT_OF_RANGE, field=field, low=low, high=high),
                               field=field, code="invalid")
    return int(value)


# --- codes and usernames: one character set per kind, after NFKC ---------------------------------------------

# kind -> (pattern after NFKC, maximum length, what a person is told: a message code)
CODE_RULES: dict[str, tuple[re.Pattern, int, str]] = {
    "sku": (re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*"), 64,
            N_("A SKU code uses letters A-Z, digits, '.', '_', '-' and '/', and starts with a letter or digit")),
    "warehouse": (re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*"), 32,
                  N_("A warehouse code uses letters A-Z, digits, '-' and '_', and starts with a letter or digit")),
    "bin": (re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*"), 32,
            N_("A bin code uses letters A-Z, digits, '.', '-' and '_', and starts with a letter or digit")),
    "channel": (re.compile(r"[A-Z]{2}"), 2, N_("A channel code is two letters A-Z, e.g. TM")),
    "supplier": (re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*"), 32,
                 N_("A supplier code uses letters A-Z, digits, '-' and '_', and starts with a letter or digit")),
}


# The API's error codes as they were before the rules were one.
CODE_ERRORS = {"sku": "invalid_sku", "channel": "invalid_channel_code", "bin": "invalid_bin"}


def code(value, field: str, kind: str) -> str:
    """A code of one kind, NFKC-normalised (channel codes upper-cased), or a clear refusal."""
    pattern, max_length, rule = CODE_RULES[kind]
    if value is not None and not isinstance(value, str):
        raise ValidationFailed(say(MUST_BE_TEXT, field=field), field=field, code="invalid_type")
    normalised = unicodedata.normalize("NFKC", value or "").strip()
    if kind == "channel":
        normalised = normalised.upper()
    if not normalised:
        raise ValidationFailed(say(REQUIRED, field=field), field=field, code="required")
    if len(normalised) > max_length and kind != "channel":  # a channel code's length is part of its rule
        raise ValidationFailed(say(TOO_LONG, field=field, limit=max_length), field=field, code="too_long")
    if not pattern.fullmatch(normalised):
        raise ValidationFailed(say(rule), field=field, code=CODE_ERRORS.get(kind, "invalid"))
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
        raise ValidationFailed(say(INVALID_USERNAME), field=field,
                               code="invalid_username")
    return shown, key
