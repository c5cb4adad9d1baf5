"""Money is Decimal with two places; anything else is refused, never rounded silently."""
from decimal import Decimal, InvalidOperation

from shared.services.errors import ValidationFailed
from shared.services.validation import N_, say

# What a person reads when this module refuses: message codes, said in the reader's language (say).
INVALID_AMOUNT = N_("%(field)s must be an amount")
INVALID_AMOUNT_2 = N_("%(field)s must be a finite amount")
INVALID_AMOUNT_3 = N_("%(field)s has more than two decimals")
INVALID_AMOUNT_4 = N_("%(field)s must not be negative")
INVALID_AMOUNT_5 = N_("%(field)s is too large")
INVALID_AMOUNT_6 = N_("%(field)s must be an amount like 12.50")

CENT = Decimal("0.01")
MAX_AMOUNT = Decimal("9999999999.99")  # NUMERIC(12,2)


def parse_money(value, field: str, allow_negative: bool = False) -> Decimal:
    """Read an amount from a string or number; more than two decimals or a non-number is an error."""
    if isinstance(value, float):
        value = repr(value)
    if isinstance(value, bool) or value is None:
        raise ValidationFailed(say(INVALID_AMOUNT, field=field), field=field, code="invalid_amount")
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValidationFailed(say(INVALID_AMOUNT_6, field=field), field=field, code="invalid_amount")
    if not amount.is_finite():
        raise ValidationFailed(say(INVALID_AMOUNT_2, field=field), field=field, code="invalid_amount")
    if amount.as_tuple().exponent < -2:
        raise ValidationFailed(say(INVALID_AMOUNT_3, field=field), field=field, code="invalid_amount")
    if amount < 0 and not allow_negative:
        raise ValidationFailed(say(INVALID_AMOUNT_4, field=field), field=field, code="invalid_amount")
    if abs(amount) > MAX_AMOUNT:
        raise ValidationFailed(say(INVALID_AMOUNT_5, field=field), field=field, code="invalid_amount")
    return amount.quantize(CENT)


def format_money(amount: Decimal | None) -> str | None:
    """Money as it travels in JSON: a string with two decimals."""
    return None if amount is None else str(Decimal(amount).quantize(CENT))
