"""Staff users: creation, sign-in with lockout, sessions, roles, and API tokens."""
import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import bindparam, func, select, update

from shared.actors import Actor
from shared.extensions import db
from shared.models import ApiToken, PermissionRevision, StaffUser
from shared.models.staff import StaffLogin
from shared.security import sessions
from shared.security.passwords import hash_password, policy_problem, verify_password
from shared.security import role_table
from shared.services import audit, roles
from shared.services import validation as check
from shared.services.errors import Conflict, Forbidden, NotFound, ValidationFailed
from shared.services.validation import N_, say
from shared.services.sign_in import check_password, refuse_unknown
from shared.timekeeping import utc_now

LOCALES = ("zh_CN", "en")
TOKEN_PREFIX = "olt_"
TEMPORARY_PASSWORD_BYTES = 12  # 16 URL-safe characters: over the policy's minimum, never a common password
NOT_OWN_RESET = N_("Change your own password on your account page; a reset is for someone else's account")
WRONG_CURRENT = N_("The current password is wrong")
SAME_PASSWORD = N_("The new password must differ from the current one")
UNKNOWN_ROLE = N_("Unknown role \"%(role)s\"; the roles are: %(roles)s")
NO_USER = N_("No user \"%(username)s\"")
UNKNOWN_LANGUAGE = N_("Unknown language \"%(locale)s\"")
USER_EXISTS = N_("The user \"%(username)s\" exists already")
NOT_YOURSELF = N_("You cannot deactivate your own account")
TRY_IT_LIFETIME = N_("A try-it token lives 1 to %(limit)s minutes")
TOO_MANY_TOKENS = N_("%(username)s already has %(ceiling)s live API tokens; revoke one first")


def _role(value: str) -> str:
    known = role_table.current().roles
    if value not in known:
        raise ValidationFailed(say(UNKNOWN_ROLE, role=str(value)[:40], roles=", ".join(sorted(known))), field="role",
                               code="unknown_role")
    return value


def _password(value: str, username: str) -> str:
    problem = policy_problem(value, username)
    if problem:
        raise ValidationFailed(problem, field="password", code="weak_password")
    return value


def _by_name(username: str):
    return select(StaffUser).where(StaffUser.username_key == check.username_key(username)[:64])


def get_user(username: str) -> StaffUser:
    user = db.session.execute(_by_name(username or "")).scalar_one_or_none()
    if user is None:
        raise NotFound(say(NO_USER, username=str(username)[:60]), field="username", code="unknown_user")
    return user


def create_user(username: str, password: str, role: str, actor: Actor, display_name: str | None = None,
                locale: str = "zh_CN") -> StaffUser:
    username, key = check.username(username)
    role, password = _role(role), _password(password, username)
    if locale not in LOCALES:
        raise ValidationFailed(say(UNKNOWN_LANGUAGE, locale=str(locale)[:20]), field="locale")
    if db.session.execute(select(StaffUser.id).where(StaffUser.username_key == key)).first():
        # "Victim", "victim" and "ｖｉｃｔｉｍ" are one name: nobody can open a look-alike of an account.
        raise Conflict(say(USER_EXISTS, username=username), field="username", code="duplicate_username")
    user = StaffUser(username=username, username_key=key, password_hash=hash_password(password), role=role,
                     display_name=check.text(display_name, "display_name", 120, False) or username, locale=locale,
                     active=True, failed_logins=0, session_generation=0)
    db.session.add(user)
    db.session.flush()
    audit.record(actor, "user.create", "staff_user", user.username, after={"role": role, "active": True})
    return user


def authenticate(username: str, password: str, ip: str | None) -> StaffUser:
    """Check a sign-in; repeated failures lock the account for a while, and every outcome is audited."""
    user = db.session.execute(_by_name((username or "")[:200])).scalar_one_or_none()
    if user is None:
        refuse_unknown(password, "wrong username or password")
    actor = Actor(id=user.id, label=user.username, role=user.role, ip=ip)
    check_password(user, password, actor, "staff_user", user.username, allowed=user.active)
    user.last_login_at = utc_now()
    return user


def update_user(user: StaffUser, actor: Actor, role: str | None = None, active: bool | None = None,
                locale: str | None = None, display_name: str | None = None) -> StaffUser:
    before = {"role": user.role, "active": user.active, "locale": user.locale, "display_name": user.display_name}
    user.approval_request = None
    if role is not None and role != user.role:
        from shared.services import approvals

        held = approvals.gate("user.role_change", user.username, {"role": role, "from_role": user.role},
                              {"role": _role(role)}, actor, summary=f"{user.username}: {user.role} → {role}")
        if held is not None:  # nothing of this edit is made until the role change is approved
            user.approval_request = held
            return user
    with roles.keeping_admins():  # nobody may take the last admin's power away, the admin included
        if role is not None:
            user.role = _role(role)
        if active is not None:
            if not active and user.id == actor.id:
                raise Conflict(say(NOT_YOURSELF), field="active")
            user.active = bool(active)
    if locale is not None:
        if locale not in LOCALES:
            raise ValidationFailed(say(UNKNOWN_LANGUAGE, locale=str(locale)[:20]), field="locale")
        user.locale = locale
    if display_name is not None:
        user.display_name = check.text(display_name, "display_name", 120)
    after = {"role": user.role, "active": user.active, "locale": user.locale, "display_name": user.display_name}
    if after != before:
        if after["role"] != before["role"] or not after["active"]:
            sessions.end_all(user)  # a session keeps no power its account no longer has
            after["sessions_ended"] = True
        db.session.flush()
        audit.record(actor, "user.update", "staff_user", user.username, before=before, after=after)
    return user


def unlock_user(user: StaffUser, actor: Actor) -> None:
    user.failed_logins, user.locked_until = 0, None
    audit.record(actor, "user.unlock", "staff_user", user.username)


def set_password(user: StaffUser, password: str, actor: Actor) -> None:
    """A new password; every session of the user ends (whoever knew the old one is signed out)."""
    user.password_hash = hash_password(_password(password, user.username))
    sessions.end_all(user)
    audit.record(actor, "user.set_password", "staff_user", user.username, after={"sessions_ended": True})


def reset_password(user: StaffUser, actor: Actor) -> str:
    """An administrator resets someone else's password (forgotten, or an account to take back): a temporary
    password, returned once to be handed over and never stored in clear; every session and API token of the user
    ends, a lock from failed sign-ins is lifted, and the portal opens only the password change until the user has
    chosen their own (must_change_password)."""
    if actor.id == user.id:
        raise Forbidden(say(NOT_OWN_RESET), field="user", code="own_password_reset")
    temporary = secrets.token_urlsafe(TEMPORARY_PASSWORD_BYTES)
    user.password_hash = hash_password(temporary)
    user.must_change_password = True
    user.failed_logins, user.locked_until = 0, None
    sessions.end_all(user)
    revoked = revoke_tokens(user, actor)
    audit.record(actor, "user.password_reset", "staff_user", user.username,
                 after={"must_change_password": True, "sessions_ended": True, "tokens_revoked": revoked})
    return temporary


def change_own_password(user: StaffUser, current: str, new: str, actor: Actor) -> None:
    """A user chooses a new password, proving the current one (a temporary one after a reset): refused with
    nothing changed when the current password is wrong, the new one is the same or fails the policy. Every other
    session of the user ends; the caller starts this browser's session again."""
    if not verify_password(user.password_hash, current or ""):
        raise ValidationFailed(say(WRONG_CURRENT), field="current_password", code="wrong_password")
    if current == new:
        raise ValidationFailed(say(SAME_PASSWORD), field="new_password", code="same_password")
    user.password_hash = hash_password(_password(new, user.username))
    was_forced = bool(user.must_change_password)
    user.must_change_password = False
    sessions.end_all(user)
    audit.record(actor, "user.password_changed", "staff_user", user.username,
                 after={"after_reset": was_forced, "sessions_ended": True})


def end_sessions(user: StaffUser, actor: Actor, reason: str = "sign_out_everywhere") -> None:
    """End every session of the user at once, wherever its cookie is (sign-out, or an admin's decision)."""
    sessions.end_all(user)
    audit.record(actor, f"user.{reason}", "staff_user", user.username,
                 after={"session_generation": user.session_generation})


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def active_token_count(user: StaffUser) -> int:
    return db.session.execute(select(func.count(ApiToken.id)).where(
        ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None), ApiToken.expires_at > utc_now())).scalar_one()


def issue_token(user: StaffUser, actor: Actor, days: int | None = None) -> str:
    """Create an API token for a user; only its hash is stored, the token is returned once.

    A user holds at most API_TOKENS_PER_USER live tokens: a leaked account cannot mint tokens without end."""
    token, _record = _new_token(user, actor, timedelta(days=days or current_app.config["API_TOKEN_DAYS"]))
    return token


# A token for trying calls on the portal's API page: the user's own, for minutes, never more.
TRY_IT_MAX_MINUTES = 30


def issue_try_it_token(user: StaffUser, actor: Actor, minutes: int) -> tuple[str, ApiToken]:
    """A short-lived API token of `user` (the API page's try-it form); the token and its row, the token once.

    It counts against the same ceiling of live tokens as any other, and is audited the same way."""
    if not 0 < minutes <= TRY_IT_MAX_MINUTES:
        raise ValidationFailed(say(TRY_IT_LIFETIME, limit=TRY_IT_MAX_MINUTES), field="minutes",
                               code="invalid_lifetime")
    return _new_token(user, actor, timedelta(minutes=minutes), purpose="try_it")


def _new_token(user: StaffUser, actor: Actor, lifetime: timedelta, purpose: str = "api") -> tuple[str, ApiToken]:
    ceiling = current_app.config.get("API_TOKENS_PER_USER", 5)
    if active_token_count(user) >= ceiling:
        raise Conflict(say(TOO_MANY_TOKENS, username=user.username, ceiling=ceiling),
                       field="username", code="too_many_tokens")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = ApiToken(user_id=user.id, token_hash=_digest(token), prefix=token[:10], expires_at=utc_now() + lifetime)
    db.session.add(record)
    db.session.flush()
    after = {"token_prefix": record.prefix, "expires_at": record.expires_at}
    if purpose != "api":
        after["purpose"] = purpose
    audit.record(actor, "user.token_issued", "staff_user", user.username, after=after)
    return token, record


def revoke_token(user: StaffUser, actor: Actor, token_id: int) -> bool:
    """Revoke one of `user`'s own tokens now; False (nothing changed, nothing audited) when it is not theirs or
    no longer live."""
    record = db.session.get(ApiToken, token_id)
    if record is None or record.user_id != user.id or record.revoked_at is not None or record.expires_at <= utc_now():
        return False
    record.revoked_at = utc_now()
    audit.record(actor, "user.token_revoked", "staff_user", user.username, after={"token_prefix": record.prefix})
    return True


class TokenRefused(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True, slots=True)
class TokenUser(StaffLogin):
    """The staff user behind a bearer token, as the API needs it for one request: immutable, in no session.

    It answers what the permission checks and the request actor read (id, username, role) and Flask-Login's
    protocol, so `portal.access` treats it like a signed-in StaffUser."""
    id: int
    username: str
    role: str
    active: bool
    locale: str
    token_id: int
    use_noted: bool = False  # this request wrote the token's last use: the caller commits it


_TOKEN, _USER = ApiToken.__table__, StaffUser.__table__
# Token and user in one Core statement by the token's digest (unique index), built once.
_REVISION = PermissionRevision.__table__
# ... and the permission table's revision token in the same statement, so checking the table costs no round trip.
_TOKEN_LOOKUP = (select(_TOKEN.c.id, _TOKEN.c.revoked_at, _TOKEN.c.expires_at, _TOKEN.c.last_used_at,
                        _USER.c.id, _USER.c.username, _USER.c.role, _USER.c.active, _USER.c.locale,
                        select(_REVISION.c.token).where(_REVISION.c.id == 1).scalar_subquery())
                 .join_from(_TOKEN, _USER, _USER.c.id == _TOKEN.c.user_id)
                 .where(_TOKEN.c.token_hash == bindparam("digest")))
_NOTE_USE = update(_TOKEN).where(_TOKEN.c.id == bindparam("token_id")).values(last_used_at=bindparam("now"))
LAST_USED_RESOLUTION = timedelta(minutes=5)


def user_for_token(token: str) -> TokenUser:
    """The active user behind a bearer token; expired, revoked and unknown tokens and deactivated users are refused.

    Read afresh on every request (no cache): a revoked token or a deactivated user is refused on the next one.
    When the token was last noted in use more than LAST_USED_RESOLUTION ago, the use is written (a Core UPDATE in
    the caller's transaction: commit it), so a busy token costs one statement per request, not two."""
    if not token or not token.startswith(TOKEN_PREFIX):
        raise TokenRefused("invalid_token", "the bearer token is not valid")
    row = db.session.connection().execute(_TOKEN_LOOKUP, {"digest": _digest(token)}).first()
    if row is None or row[1] is not None:
        raise TokenRefused("invalid_token", "the bearer token is not valid")
    token_id, _revoked, expires_at, last_used_at, user_id, username, role, active, locale, revision = row
    role_table.use_token(revision or "")
    now = utc_now()
    if expires_at <= now:
        raise TokenRefused("token_expired", "the bearer token has expired")
    if not active:
        raise TokenRefused("invalid_token", "the token's user is deactivated")
    noted = last_used_at is None or now - last_used_at > LAST_USED_RESOLUTION
    if noted:
        db.session.connection().execute(_NOTE_USE, {"token_id": token_id, "now": now})
    return TokenUser(user_id, username, role, active, locale, token_id, noted)


def live_token_counts() -> dict[int, int]:
    """{user id: API tokens not revoked}, for the users page (what "Revoke API tokens" would end), one query."""
    return dict(db.session.execute(select(ApiToken.user_id, func.count()).where(ApiToken.revoked_at.is_(None))
                                   .group_by(ApiToken.user_id)).all())


def revoke_tokens(user: StaffUser, actor: Actor) -> int:
    count = 0
    for record in db.session.execute(select(ApiToken).where(ApiToken.user_id == user.id,
                                                            ApiToken.revoked_at.is_(None))).scalars():
        record.revoked_at = utc_now()
        count += 1
    audit.record(actor, "user.tokens_revoked", "staff_user", user.username, after={"revoked": count})
    return count
