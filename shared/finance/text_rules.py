"""What the tax system accepts in the text of an invoice buyer: lengths in GBK bytes, characters it refuses.

The limits are counted the way the provider counts them, in bytes of the GBK encoding (a Chinese character is 2
bytes, an ASCII letter 1): the name at most 100 bytes and without `<` or `>`; the address and the phone together
at most 100; the bank and the account together at most 100. A character GBK cannot encode (an emoji, a rare
character of CJK Extension B) cannot be put on the invoice at all, so it is refused with the character named.
"""
import re

from shared.services.errors import ValidationFailed
from shared.services.validation import N_, say

NAME_LIMIT = 100
ADDRESS_PHONE_LIMIT = 100
BANK_ACCOUNT_LIMIT = 100
FORBIDDEN_IN_NAME = "<>"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

NOT_GBK = N_("The character %(character)s cannot be printed on an invoice (the tax system uses GBK): "
             "please write it another way.")
CONTROL = N_("This text contains control characters.")
FORBIDDEN = N_("The invoice name may not contain %(character)s.")
OVER = N_("This is %(length)s bytes long; an invoice allows at most %(limit)s (a Chinese character counts 2).")
OVER_TOGETHER = N_("%(first)s and %(second)s together are %(length)s bytes long; an invoice allows at most "
                   "%(limit)s (a Chinese character counts 2).")
# How the joint limits name their parts in a message (said in the reader's language).
PART_NAMES = {"address": N_("Address"), "phone": N_("Phone"), "bank": N_("Bank"), "account": N_("Account")}


def gbk_length(value: str, field: str) -> int:
    """The length of `value` in GBK bytes; a character GBK cannot encode is refused, naming it."""
    if _CONTROL.search(value):
        raise ValidationFailed(say(CONTROL), field=field, code="invalid_characters")
    try:
        return len(value.encode("gbk"))
    except UnicodeEncodeError as refused:
        character = value[refused.start]
        raise ValidationFailed(say(NOT_GBK, character=character), field=field, code="unsupported_character") from None


def check_length(value: str, field: str, limit: int) -> int:
    length = gbk_length(value, field)
    if length > limit:
        raise ValidationFailed(say(OVER, length=length, limit=limit), field=field, code="too_long")
    return length


def invoice_name(value: str, field: str = "name") -> str:
    """The buyer's name as it may be printed: ≤ 100 GBK bytes, no `<` or `>`."""
    for character in FORBIDDEN_IN_NAME:
        if character in value:
            raise ValidationFailed(say(FORBIDDEN, character=character), field=field, code="forbidden_character")
    check_length(value, field, NAME_LIMIT)
    return value


def pair(first: tuple[str, str], second: tuple[str, str], limit: int) -> None:
    """Two parts printed on one line of the invoice ((field, value) each, "" when empty): each alone and both
    together within `limit` GBK bytes. The joint overflow is reported on the first field."""
    (first_field, first_value), (second_field, second_value) = first, second
    total = check_length(first_value, first_field, limit) + check_length(second_value, second_field, limit)
    if total > limit:
        raise ValidationFailed(say(OVER_TOGETHER, first=say(PART_NAMES[first_field]),
                                   second=say(PART_NAMES[second_field]), length=total, limit=limit),
                               field=first_field, code="too_long")


def address_and_phone(address: str, phone: str) -> None:
    pair(("address", address), ("phone", phone), ADDRESS_PHONE_LIMIT)


def bank_and_account(bank: str, account: str) -> None:
    pair(("bank", bank), ("account", account), BANK_ACCOUNT_LIMIT)
