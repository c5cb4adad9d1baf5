"""Money is Decimal with two places; anything else is refused, never rounded silently."""
from decimal import Decimal, InvalidOperation

from shared.services.errors import ValidationFailed
from shared.services.validation import N_, say

# What a person reads when this module refuses: message codes, said in the reader's language (say).
NOT_AN_AMOUNT = N_("%(field)s must be an amount")
NOT_FINITE = N_("%(field)s must be a finite amount")
TOO_MANY_DECIMALS = N_("%(field)s has more than two decimals")
NEGATIVE = N_("%(field)s must not be negative")
TOO_LARGE = N_("%(field)s is too large")
NOT_LIKE_AN_AMOUNT = N_("%(field)s must be an amount like 12.50")

CENT = Decimal("0.01")
MAX_AMOUNT = Decimal("9999999999.99")  # NUMERIC(12,2)


def parse_money(value, field: str, allow_negative: bool = False) -> Decimal:
    """Read an amount from a string or number; more than two decimals or a non-number is an error."""
    if isinstance(value, float):
        value = repr(value)
    if isinstance(value, bool) or value is None:
        raise ValidationFailed(say(NOT_AN_AMOUNT, field=field), field=field, code="invalid_amount")
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValidationFailed(say(NOT_LIKE_AN_AMOUNT, field=field), field=field, code="invalid_amount")
    if not amount.is_finite():
        raise ValidationFailed(say(NOT_FINITE, field=field), field=field, code="invalid_amount")
    if amount.as_tuple().exponent < -2:
        raise ValidationFailed(say(TOO_MANY_DECIMALS, field=field), field=field, code="invalid_amount")
    if amount < 0 and not allow_negative:
        raise ValidationFailed(say(NEGATIVE, field=field), field=field, code="invalid_amount")
    if abs(amount) > MAX_AMOUNT:
        raise ValidationFailed(say(TOO_LARGE, field=field), field=field, code="invalid_amount")
    return amount.quantize(CENT)


def format_money(amount: Decimal | None) -> str | None:
    """Money as it travels in JSON: a string with two decimals."""
    return None if amount is None else str(Decimal(amount).quantize(CENT))
