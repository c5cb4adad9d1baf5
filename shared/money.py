"""Money is Decimal with two places; anything else is refused, never rounded silently."""
from decimal import Decimal, InvalidOperation

from shared.services.errors import ValidationFailed

CENT = Decimal("0.01")
MAX_AMOUNT = Decimal("9999999999.99")  # NUMERIC(12,2)


def parse_money(value, field: str, allow_negative: bool = False) -> Decimal:
    """Read an amount from a string or number; more than two decimals or a non-number is an error."""
    if isinstance(value, float):
        value = repr(value)
    if isinstance(value, bool) or value is None:
        raise ValidationFailed(f"{field} must be an amount", field=field, code="invalid_amount")
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValidationFailed(f"{field} must be an amount like 12.50", field=field, code="invalid_amount")
    if not amount.is_finite():
        raise ValidationFailed(f"{field} must be a finite amount", field=field, code="invalid_amount")
    if amount.as_tuple().exponent < -2:
        raise ValidationFailed(f"{field} has more than two decimals", field=field, code="invalid_amount")
    if amount < 0 and not allow_negative:
        raise ValidationFailed(f"{field} must not be negative", field=field, code="invalid_amount")
    if abs(amount) > MAX_AMOUNT:
        raise ValidationFailed(f"{field} is too large", field=field, code="invalid_amount")
    return amount.quantize(CENT)


def format_money(amount: Decimal | None) -> str | None:
    """Money as it travels in JSON: a string with two decimals."""
    return None if amount is None else str(Decimal(amount).quantize(CENT))
