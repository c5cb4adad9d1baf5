"""Tax ids of invoice buyers: the 统一社会信用代码 (USCC) of GB 32100-2015, and the older taxpayer numbers.

A USCC is 18 characters over `0-9A-HJ-NPQRTUWXY` (no I, O, S, V, Z). The first character is the registering
authority: 1-9, A (军队), N (农业: rural collective economic organisations) and Y (其他) are all issued. The last
is a check character: each of the first 17 characters counts as its position in the alphabet, weighted
1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28 (3^i mod 31); the check is 31 − (Σ mod 31), and
31 is written '0'.

We check it ourselves rather than through python-stdnum: `stdnum.cn.uscc` (2.2) requires the first eight
characters to be digits, so it refuses every valid code issued by the A, N and Y authorities
(tests/test_tax_ids.py shows one).

A legacy taxpayer number (纳税人识别号 before the USCC: 15 characters from the organisation code, 17-20 from a
resident id) is 15-20 digits or upper-case letters, and has no check we can verify. Where a profile kind accepts
one is the service's rule (shared/services/invoice_profiles.py); an 18-character value is always checked as a
USCC, so a mistyped USCC is never taken for a legacy number.

Normalisation is removing spaces (ASCII, full-width U+3000 and other white space) and upper-casing, nothing else:
a leading zero is part of the number, and a value is stored and compared exactly as normalised here.
"""
import re

from shared.services.errors import ValidationFailed
from shared.services.validation import N_, say

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
FIRST_CHARACTERS = "123456789ANY"
USCC_LENGTH = 18
LEGACY_LENGTHS = range(15, 21)
_LEGACY = re.compile(r"[0-9A-Z]{15,20}")
_SPACES = re.compile(r"\s+")  # str patterns match Unicode white space: U+3000, U+00A0, tabs ...

WRONG_LENGTH = N_("A unified social credit code has 18 characters; this one has %(length)s.")
WRONG_CHARACTER = N_("The character %(character)s is not used in a unified social credit code "
                     "(it has no I, O, S, V or Z).")
WRONG_FIRST = N_("A unified social credit code cannot begin with %(character)s.")
WRONG_CHECK = N_("The last character of this unified social credit code does not match the others: "
                 "please check it for a typing mistake.")
WRONG_LEGACY = N_("A tax id is an 18-character unified social credit code, or an older taxpayer number "
                  "of 15 to 20 digits and capital letters.")
USCC_ONLY = N_("This type of buyer needs its 18-character unified social credit code.")


def normalise(value: str | None) -> str:
    """The tax id as stored: white space removed, upper-cased. Nothing else changes (leading zeros stay)."""
    return _SPACES.sub("", value or "").upper()


def check_character(first17: str) -> str:
    """The GB 32100 check character of the first 17 characters (all from ALPHABET)."""
    total = sum(ALPHABET.index(character) * weight for character, weight in zip(first17, WEIGHTS))
    return ALPHABET[(31 - total % 31) % 31]  # 31 − 0 = 31 is written '0'


def uscc_problem(code: str) -> str | None:
    """Why `code` (normalised) is not a valid USCC, in the reader's language; None when it is."""
    if len(code) != USCC_LENGTH:
        return say(WRONG_LENGTH, length=len(code))
    for character in code:
        if character not in ALPHABET:
            return say(WRONG_CHARACTER, character=character)
    if code[0] not in FIRST_CHARACTERS:
        return say(WRONG_FIRST, character=code[0])
    if check_character(code[:17]) != code[17]:
        return say(WRONG_CHECK)
    return None


def is_uscc(value: str | None) -> bool:
    code = normalise(value)
    return uscc_problem(code) is None


def is_legacy_number(value: str | None) -> bool:
    """15-20 digits or capital letters, not 18 long (an 18-character id must be a valid USCC)."""
    code = normalise(value)
    return len(code) != USCC_LENGTH and _LEGACY.fullmatch(code) is not None


def validate(value, field: str = "tax_id", legacy_allowed: bool = False) -> str:
    """The normalised tax id, or ValidationFailed(field, code="invalid_tax_id") saying what is wrong."""
    code = normalise(value if isinstance(value, str) else None)
    if not code:
        raise ValidationFailed(say(WRONG_LENGTH, length=0), field=field, code="invalid_tax_id")
    if legacy_allowed and len(code) != USCC_LENGTH:
        if _LEGACY.fullmatch(code):
            return code
        raise ValidationFailed(say(WRONG_LEGACY), field=field, code="invalid_tax_id")
    if not legacy_allowed and len(code) in LEGACY_LENGTHS and len(code) != USCC_LENGTH and _LEGACY.fullmatch(code):
        raise ValidationFailed(say(USCC_ONLY), field=field, code="invalid_tax_id")
    problem = uscc_problem(code)
    if problem:
        raise ValidationFailed(problem, field=field, code="invalid_tax_id")
    return code
