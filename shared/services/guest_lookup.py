"""Guest order look-up (order number + last four digits of the receiver phone), limited per order.

A per-address limit alone lets many addresses share the 10,000 guesses at one order's last four digits. So
each order counts its own wrong tries: GUEST_LOOKUP_MAX_FAILURES (5) within GUEST_LOOKUP_WINDOW lock that order's
guest look-up for GUEST_LOOKUP_LOCK (an hour) from every address, raise an alarm (once per lock) and write an
audit event. A locked order answers exactly like a wrong guess, so the lock tells nobody the order exists.
"""
import hmac
from datetime import timedelta

from sqlalchemy import select

from shared import order_numbers
from shared.actors import Actor
from shared.extensions import db
from shared.models import FulfilmentAlarm, GuestLookupLock, Order
from shared.security.crypto import normalize_phone
from shared.services import audit
from shared.timekeeping import utc_now

GUEST_LOOKUP_MAX_FAILURES = 5
GUEST_LOOKUP_WINDOW = timedelta(hours=1)
GUEST_LOOKUP_LOCK = timedelta(hours=1)


def _lock_row(order_id: int) -> GuestLookupLock | None:
    return db.session.execute(select(GuestLookupLock).where(GuestLookupLock.order_id == order_id)
                              .with_for_update()).scalar_one_or_none()


def check(order_no: str, phone_last4: str, actor: Actor) -> int | None:
    """The order's id when the digits match and its look-up is not locked; None otherwise (the caller commits,
    so the count of wrong tries is kept)."""
    row = db.session.execute(
        select(Order.id, Order.order_no, Order.receiver_phone).where(
            Order.order_no == order_numbers.validate(order_no))).first()
    if row is None:
        return None
    now = utc_now()
    lock = _lock_row(row.id)
    if lock is not None and lock.locked_until is not None and lock.locked_until > now:
        return None  # locked: the same answer as a wrong guess, whatever was typed
    # A platform's masked phone (136*******5, 1********35) keeps fewer than four trailing digits: its digits are
    # not the phone's last four, so such an order cannot be found this way (the platform's own page tracks it).
    stored = normalize_phone(row.receiver_phone.rsplit("*", 1)[-1])[-4:]
    if len(stored) == 4 and hmac.compare_digest(stored, phone_last4 or ""):
        if lock is not None:
            db.session.delete(lock)  # the right answer starts the count again
        return row.id
    if lock is None:
        lock = GuestLookupLock(order_id=row.id, failures=0, window_started_at=now)
        db.session.add(lock)
    elif now - lock.window_started_at > GUEST_LOOKUP_WINDOW or lock.locked_until is not None:
        lock.failures, lock.window_started_at, lock.locked_until = 0, now, None
    lock.failures += 1
    if lock.failures >= GUEST_LOOKUP_MAX_FAILURES:
        lock.locked_until = now + GUEST_LOOKUP_LOCK
        db.session.add(FulfilmentAlarm(
            kind="guest_lookup_locked", order_id=row.id, role="auditor", raised_at=now,
            subject=f"guest:{row.order_no}:{now:%Y%m%d%H%M}"[:80],
            message=f"{row.order_no}: {lock.failures} wrong phone digits at the guest look-up within an hour "
                    f"(last from {actor.ip or 'an unknown address'}); its guest look-up is locked for an hour"))
        audit.record(actor, "order.guest_lookup_locked", "order", row.order_no,
                     after={"failures": lock.failures, "locked_until": lock.locked_until})
    db.session.flush()
    return None
