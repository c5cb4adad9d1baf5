"""Password sign-in with lockout, the same rules for staff and customers; every outcome is audited."""
from datetime import timedelta

from flask import current_app

from shared.actors import Actor
from shared.security.passwords import DUMMY_HASH, hash_password, needs_rehash, verify_password
from shared.services import audit
from shared.timekeeping import utc_now


class SignInRefused(Exception):
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
        audit.record(actor, f"{prefix}.sign_in_refused", entity_type, entity_id, reason="account locked")
        raise SignInRefused("this account is locked after repeated failures; try again later", locked=True)
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
