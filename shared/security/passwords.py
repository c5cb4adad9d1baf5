"""Password hashing with Argon2id (argon2-cffi), the current OWASP recommendation, and the password policy.

The policy (ASVS 2.1, NIST SP 800-63B 5.1.1.2): at least 12 characters, at most 256, not one of the commonly
used passwords in shared/data/common-passwords.txt.gz, and not the account's own name. No composition rules:
length and a block list do more than "one digit, one symbol".
"""
import gzip
import unicodedata
from functools import lru_cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from shared.services.validation import N_, say

_hasher = PasswordHasher()

MIN_LENGTH = 12
MAX_LENGTH = 256
# 20,000 common passwords (Royce Williams' list, as shipped by Django in django/contrib/auth/, BSD licence).
COMMON_PASSWORDS = Path(__file__).resolve().parent.parent / "data" / "common-passwords.txt.gz"


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    with gzip.open(COMMON_PASSWORDS, "rt", encoding="utf-8") as lines:
        return frozenset(line.strip().casefold() for line in lines if line.strip())


TOO_SHORT = N_("The password must have at least %(length)s characters")
TOO_LONG = N_("The password is too long")
TOO_COMMON = N_("The password is one of the most commonly used passwords; choose another")
FROM_NAME = N_("The password must not be the username or built from it")


def policy_problem(password, account_name: str | None = None) -> str | None:
    """Why a new password is refused, in the reader's language (a message code), or None when it is acceptable."""
    if not isinstance(password, str) or len(password) < MIN_LENGTH:
        return say(TOO_SHORT, length=MIN_LENGTH)
    if len(password) > MAX_LENGTH:
        return say(TOO_LONG)
    folded = unicodedata.normalize("NFKC", password).casefold()
    if folded in common_passwords():
        return say(TOO_COMMON)
    if account_name:
        name = unicodedata.normalize("NFKC", account_name).casefold()
        local = name.split("@", 1)[0]
        # The name itself, or the name with a little around it ("alice2026!!"), is what gets guessed first.
        for candidate in {name, local}:
            if len(candidate) >= 3 and len(folded.replace(candidate, "")) < 8:
                return say(FROM_NAME)
    return None


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


# Run one verification against a fixed hash when the user is unknown, so timing does not tell who exists.
DUMMY_HASH = _hasher.hash("orderloom-timing-equaliser")
