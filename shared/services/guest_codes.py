"""One-time codes for guests (issue 13 item 6): a guest who found an order by its number and phone digits proves
it is theirs before acting on it (cancel, change the address, write to customer service) with a 6-digit code sent
to the order's email, or by (simulated) SMS to its receiver phone.

Only a keyed hash of the code is kept; a code lives 10 minutes, allows 5 tries, is used once; a new code replaces
the older ones; at most 3 codes per order in 10 minutes (the route is also rate-limited per address).
"""
import hmac
import secrets
from datetime import timedelta

from sqlalchemy import func, select, update

from shared.actors import Actor
from shared.extensions import db
from shared.models import GuestCode, Order
from shared.security import crypto
from shared.security.masking import masked_email, masked_phone
from shared.services import audit, notifications
from shared.services.errors import Conflict, ValidationFailed
from shared.services.validation import N_, say
from shared.timekeeping import as_utc, utc_now

# What a person reads when this module refuses: message codes, said in the reader's language (say).
INVALID_CHANNEL = N_("Choose where to send the code")

LIFETIME = timedelta(minutes=10)
MAX_TRIES = 5
MAX_CODES = 3  # per order within LIFETIME
DIGITS = 6

TOO_MANY_CODES = N_("too many codes were sent for this order; wait 10 minutes and ask again")
NO_CODE = N_("this code has expired or was used; ask for a new one")
WRONG_CODE = N_("the code is not right; check it and try again")
LOCKED = N_("too many wrong codes; ask for a new one")
NOT_A_CODE = N_("the code is six digits")


def _hash(order_id: int, code: str) -> str:
    return crypto.blind_index("guest_code", f"{order_id}:{code}")


def destinations(order: Order) -> dict[str, str]:
    """Where a code may go, masked for the page: {"email": "l***@example.com", "sms": "138****5678"}."""
    found = {}
    email = (order.customer.email or "").strip() if order.customer is not None else ""
    if email:
        found["email"] = masked_email(email)
    if order.receiver_phone and not order.platform_protected:
        found["sms"] = masked_phone(order.receiver_phone)
    return found


def send_code(order: Order, channel: str, actor: Actor) -> GuestCode:
    """Make a code, keep its hash, queue it to the order's email or phone (the outbox); older codes end."""
    if channel not in destinations(order):
        raise ValidationFailed(say(INVALID_CHANNEL), field="channel", code="invalid_channel")
    now = utc_now()
    recent = db.session.execute(select(func.count()).select_from(GuestCode).where(
        GuestCode.order_id == order.id, GuestCode.created_at > now - LIFETIME)).scalar_one()
    if recent >= MAX_CODES:
        raise Conflict(say(TOO_MANY_CODES), field="channel", code="too_many_codes")
    db.session.execute(update(GuestCode).where(GuestCode.order_id == order.id, GuestCode.used_at.is_(None))
                       .values(used_at=now).execution_options(synchronize_session=False))
    code = f"{secrets.randbelow(10 ** DIGITS):0{DIGITS}d}"
    row = GuestCode(order_id=order.id, channel=channel, code_hash=_hash(order.id, code), attempts=0,
                    expires_at=now + LIFETIME, created_at=now)
    db.session.add(row)
    db.session.flush()
    recipient = order.customer.email if channel == "email" else order.receiver_phone
    notifications.notify_address(order, channel, recipient, "guest_code", code=code)
    audit.record(actor, "guest.code_sent", "order", order.order_no, after={"channel": channel, "code": row.id})
    return row


def verify(order: Order, code, actor: Actor) -> None:
    """Check a guest's code: the order's newest live code, unexpired, under 5 tries; used once. A wrong code counts
    a try (the caller commits even when this refuses, so the count stays)."""
    code = (code or "").strip() if isinstance(code, str) else ""
    if not (len(code) == DIGITS and code.isdigit()):
        raise ValidationFailed(say(NOT_A_CODE), field="code", code="invalid_code")
    now = utc_now()
    row = db.session.execute(select(GuestCode).where(GuestCode.order_id == order.id, GuestCode.used_at.is_(None))
                             .order_by(GuestCode.id.desc()).limit(1).with_for_update()).scalar_one_or_none()
    if row is None or as_utc(row.expires_at) <= now:
        raise ValidationFailed(say(NO_CODE), field="code", code="code_expired")
    if row.attempts >= MAX_TRIES:
        raise ValidationFailed(say(LOCKED), field="code", code="too_many_tries")
    if not hmac.compare_digest(row.code_hash, _hash(order.id, code)):
        row.attempts += 1
        if row.attempts >= MAX_TRIES:
            row.used_at = now  # spent: a new code is needed
        db.session.flush()
        audit.record(actor, "guest.code_wrong", "order", order.order_no, after={"code": row.id,
                                                                              "attempts": row.attempts})
        raise ValidationFailed(say(LOCKED if row.attempts >= MAX_TRIES else WRONG_CODE), field="code",
                               code="too_many_tries" if row.attempts >= MAX_TRIES else "wrong_code")
    row.used_at = now
    db.session.flush()
    audit.record(actor, "guest.code_verified", "order", order.order_no, after={"code": row.id})
