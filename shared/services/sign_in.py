"""Password sign-in with lockout, the same rules for staff and customers; every outcome is audited.

Two limits guard sign-in: a per-account lock (five failures lock that account for a while) and a per-address
limit on *failed* attempts of one site (successful sign-ins never count, and the staff portal and the customer
site count apart, so an office full of people signing in locks nobody out). The per-address counters live in
Redis when it is configured and fall back to memory when it is down: sign-in never depends on Redis.
"""
from datetime import timedelta

from flask import current_app

from shared.extensions import limiter

from shared.actors import Actor
from shared.security.passwords import DUMMY_HASH, hash_password, needs_rehash, verify_password
from shared.services import audit
from shared.timekeeping import utc_now


SITES = {"staff": "STAFF_SIGN_IN_LIMIT", "customer": "CUSTOMER_SIGN_IN_LIMIT"}
REFUSED_STATUS = 401  # the status a refused sign-in answers with: only these count against the address


def limit_failed_sign_ins(site: str):
    """The decorator for a sign-in view: POSTs from one address are refused once it has had too many
    *failed* attempts on this site; a successful or malformed attempt is not counted."""
    config_key = SITES[site]
    return limiter.limit(lambda: current_app.config.get(config_key) or current_app.config["SIGN_IN_LIMIT"],
                         methods=["POST"], scope=f"sign_in_failures:{site}",
                         deduct_when=lambda response: response.status_code == REFUSED_STATUS)


class SignInRefused(Exception):
    """A refused sign-in. `locked` is for the audit trail only: the person is told the same for every refusal,
    so the answer never tells whether an account exists or is locked."""

    def __init__(self, message: str, locked: bool = False):
        super().__init__(message)
        self.message, self.locked = message, locked


def refuse_unknown(password: str, message: str):
    """Do the work of a real check so that timing does not tell who has an account, then refuse."""
    verify_password(DUMMY_HASH, password or "")
    raise SignInRefused(message)


def check_password(account, password: str, actor: Actor, entity_type: str, entity_id, allowed: bool = True,
                   wrong_message: str = "wrong username or password") -> None:
    """Verify the password of a staff user or customer; five failures lock the account for a while.

    `account` has password_hash, failed_logins and locked_until. Events are named `<entity_type>.sign_in...`.
    """
    now = utc_now()
    prefix = "user" if entity_type == "staff_user" else entity_type
    if account.locked_until and account.locked_until > now:
        verify_password(DUMMY_HASH, password or "")  # the same work as any other answer: timing tells nothing
        audit.record(actor, f"{prefix}.sign_in_refused", entity_type, entity_id, reason="account locked")
        raise SignInRefused(wrong_message, locked=True)
    if not allowed or not verify_password(account.password_hash, password or ""):
        account.failed_logins = (account.failed_logins or 0) + 1
        after = {"failed_logins": account.failed_logins}
        if account.failed_logins >= current_app.config["LOGIN_MAX_FAILURES"]:
            account.locked_until = now + timedelta(minutes=current_app.config["LOGIN_LOCKOUT_MINUTES"])
            account.failed_logins = 0
            after["locked_until"] = account.locked_until
        audit.record(actor, f"{prefix}.sign_in_failed", entity_type, entity_id, after=after)
        raise SignInRefused(wrong_message)
    if needs_rehash(account.password_hash):
        account.password_hash = hash_password(password)
    account.failed_logins, account.locked_until = 0, None
    audit.record(actor, f"{prefix}.sign_in", entity_type, entity_id)
