"""Second verification: a TOTP factor per staff user, single-use recovery codes, and step-up grants.

- TOTP (RFC 6238 via pyotp): 6 digits, 30-second steps, one step of tolerance either side (valid_window=1). The
  time step of the last accepted code is kept and only a later step is ever accepted, so a code (or an older one
  from the window) is never accepted twice; the check is one conditional UPDATE, so two requests racing with the
  same code cannot both pass.
- Enrolment: a random 160-bit base32 secret, encrypted at rest with the data keys (and re-encrypted by
  `keys rotate`), shown as an otpauth:// URI (Google Authenticator Key URI format) and its QR code as inline SVG;
  the first right code confirms it and returns 10 recovery codes, shown once. Recovery codes are 50-bit random
  codes stored only as a keyed hash (HMAC-SHA256 with the blind-index key); each works once.
- Five wrong codes (TOTP or recovery, reused ones included) lock the factor for 15 minutes; while locked every
  code is refused, right ones too.
- Step-up: a fresh verification gives the browser session (its random id, kept in the signed session since
  sign-in) a grant valid 5 minutes; `assert_fresh` is what sensitive operations check.
- Only another user administrator resets someone's factor, never their own, and only with their own fresh step-up.

Every outcome is audited, refusals included. Refusals (`CodeRefused`) are raised after their failure count, lock
and audit event are written into the transaction: the caller commits before answering, or the lock is lost.
"""
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote, urlencode

import pyotp
import qrcode
import qrcode.image.svg
from sqlalchemy import delete, func, or_, select, update

from shared import timekeeping
from shared.actors import Actor
from shared.extensions import db
from shared.lifecycle import OrderStatus, find_transition, may_fire
from shared.models import RecoveryCode, SecondFactor, StepUpGrant
from shared.security import crypto, role_table, sessions
from shared.security.permissions import can
from shared.services import audit
from shared.services.errors import Conflict, Forbidden, NotFound, ServiceError
from shared.services.validation import N_, say

# What a person reads when this module refuses: message codes, said in the reader's language (say).
ALREADY_ENROLLED = N_("A second factor is already set up; another administrator must reset it first")
FACTOR_LOCKED = N_("Too many wrong codes: the second factor is locked until %(locked_until)s UTC")
NO_SECOND_FACTOR = N_("No second factor is set up for this account")
NOT_ENROLLING = N_("Start the enrolment first")
ALREADY_SET_UP = N_("A second factor is already set up")
SET_UP_FIRST = N_("Set up a second factor first")
STEP_UP_NEEDS_SESSION = N_("A step-up is bound to a signed-in browser session; this request has none")
CONFIRM_FIRST = N_("Confirm with your second factor first: sensitive operations need a verification from this "
                        "session within the last 5 minutes")
OWN_SECOND_FACTOR = N_("Nobody resets their own second factor: ask another administrator")
ONLY_USER_ADMIN_RESETS = N_("Only a user administrator resets a second factor")
RESET_NEEDS_STEP_UP = N_("Resetting a second factor needs your own fresh step-up in this session")

ISSUER = "Orderloom"
DIGITS, INTERVAL, VALID_WINDOW = 6, 30, 1
MAX_FAILURES = 5
LOCK = timedelta(minutes=15)
GRANT_LIFETIME = timedelta(minutes=5)
RECOVERY_CODE_COUNT = 10
# 32 letters and digits without 0/O, 1/I: 10 of them are 50 random bits, read aloud or typed without confusion.
RECOVERY_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
RECOVERY_LENGTH = 10
MAX_CODE_LENGTH = 64

# Who must pass the second factor at sign-in: every role whose row says so (seeded: admin, auditor, finance; an admin
# sets it per role on the roles page), and anyone an approver check says is an approver.
# Other modules append `check(user) -> bool` here (the approvals engine registers "is this user an approver"):
# every user for whom any check answers True must use the second factor at sign-in.
APPROVER_CHECKS: list[Callable[[object], bool]] = []

# Order transitions that void a paid order: a sensitive operation (see `transition_needs_step_up`).
VOIDING_STATES = frozenset({"cancelled", "closed"})
PAID_STATES = frozenset({"paid", "partially_refunded"})


class StepUpRequired(Forbidden):
    """The operation needs a fresh second verification of this session (or, on the API, a code with the call)."""

    code = "step_up_required"


class CodeRefused(ServiceError):
    """A second-factor code was refused: wrong, expired, reused, a used recovery code, or the factor is locked.

    The failure count, the lock and the audit event are already in the transaction: commit before answering."""

    status = 403
    code = "invalid_code"


@dataclass(frozen=True)
class Enrolment:
    secret: str
    uri: str
    qr_svg: str


def _now(now: datetime | None) -> datetime:
    return now or timekeeping.utc_now()


def second_factor_required(user) -> bool:
    """The one sign-in policy: a role marked "second factor at sign-in" (seeded for admin, auditor and finance),
    and any user an APPROVER_CHECKS hook names."""
    info = role_table.current().roles.get(getattr(user, "role", None))
    if info is not None and info.second_factor:
        return True
    from shared.services import approvals  # noqa: F401  (importing it registers its "is an approver" check)

    return any(check(user) for check in APPROVER_CHECKS)


def factor_for(user) -> SecondFactor | None:
    return db.session.execute(select(SecondFactor).where(SecondFactor.user_id == user.id)).scalar_one_or_none()


def has_factor(user) -> bool:
    """Whether the user has a confirmed second factor."""
    factor = factor_for(user)
    return factor is not None and factor.confirmed


def provisioning_uri(username: str, secret: str) -> str:
    """otpauth://totp/ISSUER:ACCOUNT?secret=...&issuer=...&algorithm=SHA1&digits=6&period=30

    Google Authenticator Key URI format (github.com/google/google-authenticator/wiki/Key-Uri-Format): the label is
    the issuer and the account name joined by a colon, each URL-encoded; `secret` is base32 without padding;
    `issuer` repeats the label's prefix; algorithm, digits and period are written out although they are the
    defaults, so no app has to guess."""
    label = f"{quote(ISSUER, safe='')}:{quote(username, safe='')}"
    query = urlencode({"secret": secret.rstrip("="), "issuer": ISSUER, "algorithm": "SHA1", "digits": DIGITS,
                       "period": INTERVAL}, quote_via=quote)
    return f"otpauth://totp/{label}?{query}"


def qr_svg(uri: str) -> str:
    """The URI as a QR code: one <svg> element holding one <path> (geometry only, no text, no script, no style)."""
    image = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage,
                        error_correction=qrcode.constants.ERROR_CORRECT_M)
    return image.to_string(encoding="unicode")


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL)


def current_step(now: datetime | None = None) -> int:
    return int(_now(now).timestamp()) // INTERVAL


def _clean(code) -> str:
    return "".join(str(code or "").split())[:MAX_CODE_LENGTH]


def _matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step within the window whose code this is, or None (every candidate is compared)."""
    totp, matched = _totp(secret), None
    current = totp.timecode(now)
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            matched = step
    return matched


def enrol(user, actor: Actor, now: datetime | None = None) -> Enrolment:
    """Start (or show again) the enrolment of a user without a confirmed factor: a random secret, its URI, its QR."""
    now = _now(now)
    factor = factor_for(user)
    if factor is not None and factor.confirmed:
        raise Conflict(say(ALREADY_ENROLLED),
                       code="already_enrolled")
    if factor is None:
        factor = SecondFactor(user_id=user.id, secret=pyotp.random_base32(), enrolled_at=now, confirmed=False,
                              failed_attempts=0)
        db.session.add(factor)
        db.session.flush()
        audit.record(actor, "second_factor.enrolment_started", "staff_user", user.username)
    uri = provisioning_uri(user.username, factor.secret)
    return Enrolment(factor.secret, uri, qr_svg(uri))


def _refuse(factor: SecondFactor, user, actor: Actor, purpose: str, now: datetime, reason: str, message: str):
    """Count a refused code (five lock the factor), audit it, and raise."""
    attempts = (factor.failed_attempts or 0) + 1
    after = {"purpose": purpose, "reason": reason, "failed_attempts": attempts}
    if attempts >= MAX_FAILURES:
        factor.failed_attempts, factor.locked_until = 0, now + LOCK
        after["locked_until"] = factor.locked_until
    else:
        factor.failed_attempts = attempts
    audit.record(actor, "second_factor.refused", "staff_user", user.username, after=after)
    if "locked_until" in after:
        audit.record(actor, "second_factor.locked", "staff_user", user.username,
                     after={"locked_until": factor.locked_until, "purpose": purpose})
    db.session.flush()
    raise CodeRefused(message, field="code", code=reason)


def _refuse_when_locked(factor: SecondFactor, user, actor: Actor, purpose: str, now: datetime) -> None:
    if factor.locked_until is not None and factor.locked_until > now:
        audit.record(actor, "second_factor.refused", "staff_user", user.username,
                     after={"purpose": purpose, "reason": "factor_locked", "locked_until": factor.locked_until})
        raise CodeRefused(say(FACTOR_LOCKED, locked_until=f"{factor.locked_until:%Y-%m-%d %H:%M}"), field="code",
                          code="factor_locked")


def _confirmed_factor(user, actor: Actor, purpose: str) -> SecondFactor:
    factor = factor_for(user)
    if factor is None or not factor.confirmed:
        audit.record(actor, "second_factor.refused", "staff_user", user.username,
                     after={"purpose": purpose, "reason": "no_second_factor"})
        raise CodeRefused(say(NO_SECOND_FACTOR), field="code", code="no_second_factor")
    return factor


def _accept_step(factor: SecondFactor, step: int, now: datetime) -> bool:
    """Record `step` as the last accepted one, only if it is later than every step accepted before (atomic)."""
    accepted = db.session.execute(
        update(SecondFactor)
        .where(SecondFactor.id == factor.id, or_(SecondFactor.last_step.is_(None), SecondFactor.last_step < step))
        .values(last_step=step, last_used_at=now, failed_attempts=0)
        .execution_options(synchronize_session=False)).rowcount
    db.session.refresh(factor)
    return accepted == 1


def verify(user, code, actor: Actor, now: datetime | None = None, purpose: str = "sign_in",
           allow_recovery: bool = True) -> str:
    """Accept a current TOTP code (or, if allowed, an unused recovery code); returns "totp" or "recovery".

    Refused (CodeRefused, audited, counted): a wrong or expired code, a code of a step already accepted (or older),
    a used or unknown recovery code, any code while the factor is locked."""
    now = _now(now)
    factor = _confirmed_factor(user, actor, purpose)
    _refuse_when_locked(factor, user, actor, purpose, now)
    cleaned = _clean(code)
    if cleaned.isdigit() and len(cleaned) == DIGITS:
        step = _matching_step(factor.secret, cleaned, now)
        if step is None:
            _refuse(factor, user, actor, purpose, now, "invalid_code", "the code is wrong or has expired")
        if not _accept_step(factor, step, now):
            _refuse(factor, user, actor, purpose, now, "code_reused",
                    "this code has already been used; wait for the next one")
        method = "totp"
    elif allow_recovery and cleaned:
        _use_recovery_code(factor, user, cleaned, actor, purpose, now)
        method = "recovery"
    else:
        _refuse(factor, user, actor, purpose, now, "invalid_code", "the code is wrong or has expired")
    audit.record(actor, "second_factor.verified", "staff_user", user.username,
                 after={"purpose": purpose, "method": method})
    return method


def confirm_enrolment(user, code, actor: Actor, now: datetime | None = None) -> list[str]:
    """The first right code confirms the factor; returns the 10 recovery codes (shown once, stored hashed)."""
    now = _now(now)
    factor = factor_for(user)
    if factor is None:
        raise NotFound(say(NOT_ENROLLING), field="code", code="not_enrolling")
    if factor.confirmed:
        raise Conflict(say(ALREADY_SET_UP), field="code", code="already_enrolled")
    _refuse_when_locked(factor, user, actor, "enrolment", now)
    cleaned = _clean(code)
    step = _matching_step(factor.secret, cleaned, now) if cleaned.isdigit() and len(cleaned) == DIGITS else None
    if step is None:
        _refuse(factor, user, actor, "enrolment", now, "invalid_code", "the code is wrong or has expired")
    factor.confirmed, factor.confirmed_at = True, now
    factor.last_step, factor.last_used_at, factor.failed_attempts = step, now, 0
    codes = _new_recovery_codes(user, now)
    audit.record(actor, "second_factor.enrolled", "staff_user", user.username,
                 after={"confirmed_at": now, "recovery_codes": len(codes)})
    return codes


# --- recovery codes ---------------------------------------------------------------------------------------------

def _normal_recovery(code: str) -> str:
    return code.replace("-", "").upper()


def _recovery_digest(code: str) -> str:
    return crypto.blind_index("recovery_code", _normal_recovery(code))


def _new_recovery_codes(user, now: datetime) -> list[str]:
    """Replace every recovery code of the user with 10 new ones; returns them as XXXXX-XXXXX (the only time)."""
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_LENGTH))
        codes.append(f"{raw[:5]}-{raw[5:]}")
        db.session.add(RecoveryCode(user_id=user.id, code_hash=_recovery_digest(raw), created_at=now))
    db.session.flush()
    return codes


def _use_recovery_code(factor: SecondFactor, user, code: str, actor: Actor, purpose: str, now: datetime) -> None:
    row = db.session.execute(select(RecoveryCode.id, RecoveryCode.used_at).where(
        RecoveryCode.user_id == user.id, RecoveryCode.code_hash == _recovery_digest(code))).first()
    if row is None:
        _refuse(factor, user, actor, purpose, now, "invalid_code", "the code is wrong or has expired")
    used = db.session.execute(update(RecoveryCode).where(RecoveryCode.id == row.id, RecoveryCode.used_at.is_(None))
                              .values(used_at=now).execution_options(synchronize_session=False)).rowcount
    if used != 1:
        _refuse(factor, user, actor, purpose, now, "recovery_code_used", "this recovery code has already been used")
    factor.failed_attempts, factor.last_used_at = 0, now
    audit.record(actor, "second_factor.recovery_code_used", "staff_user", user.username,
                 after={"purpose": purpose, "remaining": remaining_recovery_codes(user)})


def remaining_recovery_codes(user) -> int:
    return db.session.execute(select(func.count(RecoveryCode.id)).where(
        RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))).scalar_one()


def regenerate_recovery_codes(user, actor: Actor, now: datetime | None = None) -> list[str]:
    """Ten new recovery codes; every old one stops working. The portal asks for a fresh step-up first."""
    now = _now(now)
    factor = factor_for(user)
    if factor is None or not factor.confirmed:
        raise Conflict(say(SET_UP_FIRST), code="no_second_factor")
    codes = _new_recovery_codes(user, now)
    audit.record(actor, "second_factor.recovery_codes_regenerated", "staff_user", user.username,
                 after={"recovery_codes": len(codes)})
    return codes


# --- step-up grants ---------------------------------------------------------------------------------------------

def session_digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def grant_step_up(user, session_id: str | None, actor: Actor, method: str = "totp",
                  now: datetime | None = None) -> StepUpGrant:
    """A step-up grant for this one browser session, valid GRANT_LIFETIME (the caller has just verified a code)."""
    now = _now(now)
    if not session_id:
        raise StepUpRequired(say(STEP_UP_NEEDS_SESSION))
    db.session.execute(delete(StepUpGrant).where(StepUpGrant.user_id == user.id, StepUpGrant.expires_at <= now))
    grant = StepUpGrant(user_id=user.id, session_digest=session_digest(session_id), method=method, granted_at=now,
                        expires_at=now + GRANT_LIFETIME)
    db.session.add(grant)
    db.session.flush()
    audit.record(actor, "step_up.granted", "staff_user", user.username,
                 after={"method": method, "expires_at": grant.expires_at})
    return grant


def step_up(user, session_id: str | None, code, actor: Actor, now: datetime | None = None) -> StepUpGrant:
    """Verify a code and grant this session a fresh step-up."""
    now = _now(now)
    method = verify(user, code, actor, now, purpose="step_up")
    return grant_step_up(user, session_id, actor, method, now)


def fresh_until(user, session_id: str | None, now: datetime | None = None) -> datetime | None:
    """When this session's step-up ends, or None when it has no fresh one."""
    if not session_id:
        return None
    return db.session.execute(select(func.max(StepUpGrant.expires_at)).where(
        StepUpGrant.user_id == user.id, StepUpGrant.session_digest == session_digest(session_id),
        StepUpGrant.expires_at > _now(now))).scalar_one()


def is_fresh(user, session_id: str | None, now: datetime | None = None) -> bool:
    return fresh_until(user, session_id, now) is not None


def assert_fresh(user, session_id: str | None, now: datetime | None = None) -> None:
    """Refuse (StepUpRequired, code step_up_required) unless this session verified a code in the last 5 minutes."""
    if not is_fresh(user, session_id, now):
        raise StepUpRequired(say(CONFIRM_FIRST))


def verify_for_request(user, code, actor: Actor, now: datetime | None = None) -> None:
    """The API has no session: a sensitive call carries a current TOTP code, verified for that call alone (its
    time step is then used up, like any accepted code). Recovery codes are for people, not for scripts."""
    verify(user, code, actor, now, purpose="api", allow_recovery=False)


def transition_needs_step_up(order, to, role: str, reason=None) -> bool:
    """Whether this move voids a paid order (cancelling or closing it after the money came in): a sensitive
    operation. Only a move the lifecycle would carry out asks for the code; one it refuses anyway (not declared,
    not the role's, no reason given) gets its own answer first."""
    if to not in VOIDING_STATES or order.payment_status not in PAID_STATES:
        return False
    transition = find_transition(order.status, OrderStatus(to))
    if transition is None or not may_fire(transition, role):
        return False
    return not (transition.needs_reason and not (isinstance(reason, str) and reason.strip()))


# --- reset by another administrator -----------------------------------------------------------------------------

def reset_factor(target, actor: Actor, session_id: str | None, now: datetime | None = None) -> None:
    """Remove the target's factor, recovery codes and grants and end their sessions: they enrol again at sign-in.

    Only another user administrator (users:edit) may, never on their own account, and only with their own fresh
    step-up in this session. Refusals are audited too (the caller commits them)."""
    now = _now(now)
    reason = None
    if actor.id is not None and actor.id == target.id:
        reason, error = "own_second_factor", Forbidden(
            say(OWN_SECOND_FACTOR), code="own_second_factor")
    elif not can(actor.role, "users", "edit"):
        reason, error = "forbidden", Forbidden(say(ONLY_USER_ADMIN_RESETS))
    elif actor.id is None or not is_fresh(_Account(actor.id), session_id, now):
        reason, error = "step_up_required", StepUpRequired(
            say(RESET_NEEDS_STEP_UP))
    if reason is not None:
        audit.record(actor, "second_factor.reset_refused", "staff_user", target.username, after={"reason": reason})
        raise error
    factor = factor_for(target)
    had = {"enrolled": factor is not None, "confirmed": bool(factor and factor.confirmed),
           "recovery_codes": remaining_recovery_codes(target)}
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == target.id))
    db.session.execute(delete(StepUpGrant).where(StepUpGrant.user_id == target.id))
    if factor is not None:
        db.session.delete(factor)
    sessions.end_all(target)
    db.session.flush()
    audit.record(actor, "second_factor.reset", "staff_user", target.username, before=had,
                 after={"enrolled": False, "sessions_ended": True})


@dataclass(frozen=True)
class _Account:
    id: int
