"""Retention: how long each class of data is kept, legal holds that stop purging, and the nightly run.

Each data class has a default period and legal bounds (`CLASSES`); an admin may set another period within them
(audited, with a reason). The nightly job (`run`, jobs/retention.py) then, in sets:

- anonymises orders finished (completed, cancelled or closed) longer ago than the order period: the order, its
  lines, its money and its history stay; the receiver's name, phone, street, postal code, the platform's
  ciphertext and buyer key, and the phone's blind index go (so no search finds them again);
- anonymises customers whose every order is anonymised and who joined before the cutoff: the same for their
  name, phone, email, id number, saved addresses, invoice profiles and blind indexes; their site account is closed;
- empties the stored bodies of channel webhooks/polls and carrier tracking pushes processed longer ago than the
  inbox period (the content hash stays, so a redelivery is still known);
- archives and deletes audit events and access-log rows older than their period, from the chain's start
  (shared/services/sealing.py `prune`: the archive file is signed and chains on, the chain still verifies);
- expires export links and drops export files (shared/services/exports.py `expire_and_purge`).

An order or a customer under an active legal hold is skipped (a hold on a customer covers their orders). The run
writes its counts per class into the audit chain (`retention.run`) when it changed anything; a re-run with nothing
due changes nothing.
"""
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, exists, or_, select, update

from shared.actors import SYSTEM, Actor
from shared.extensions import db
from shared.lifecycle import OrderStatus
from shared.models import (Customer, CustomerAddress, ExceptionCase, InboxItem, InvoiceProfile, LegalHold, Order,
                           RetentionPolicy, TrackingPush)
from shared.models.payments import PaymentNotice
from shared.services import audit
from shared.services import validation as check
from shared.services.errors import Conflict, NotFound, ValidationFailed
from shared.services.validation import N_, say
from shared.timekeeping import as_utc, utc_now

YEAR = 365
FINISHED = (OrderStatus.COMPLETED.value, OrderStatus.CANCELLED.value, OrderStatus.CLOSED.value)
BATCH = 5000  # rows anonymised per statement


@dataclass(frozen=True)
class DataClass:
    code: str
    default_days: int
    minimum_days: int
    maximum_days: int
    label: str  # a msgid (N_), said in the reader's language
    basis: str  # why the bounds are what they are (a msgid)


CLASSES: dict[str, DataClass] = {c.code: c for c in (
    DataClass("order_personal", 3 * YEAR, 3 * YEAR, 5 * YEAR, N_("Order personal data (after completion)"),
              N_("E-commerce Law art. 31: transaction records are kept at least 3 years after completion; PIPL art. "
                 "19: no longer than needed (at most 5 years here).")),
    DataClass("audit", 3 * YEAR, 180, 10 * YEAR, N_("Audit events"),
              N_("Cybersecurity Law art. 21: logs are kept online at least 6 months (180 days).")),
    DataClass("access_log", 3 * YEAR, 180, 10 * YEAR, N_("Access log of personal data"),
              N_("Cybersecurity Law art. 21: logs are kept online at least 6 months (180 days).")),
    DataClass("export_files", 7, 1, 30, N_("Export files"),
              N_("A file with personal data lives only as long as it is needed: at most 30 days.")),
    DataClass("inbox_payloads", 90, 30, YEAR, N_("Channel and carrier payloads (after processing)"),
              N_("Kept 30 days at least for reconciliation and disputes; the order keeps what it needs.")),
)}
HOLDABLE = ("order", "customer")

UNKNOWN_CLASS = N_("unknown data class %(code)s")
BELOW_MINIMUM = N_("%(label)s must be kept at least %(days)s days (%(basis)s)")
ABOVE_MAXIMUM = N_("%(label)s may be kept at most %(days)s days")
REASON_NEEDED = N_("say why (a reason is kept with the change)")
UNKNOWN_ORDER = N_("no order %(ref)s")
UNKNOWN_CUSTOMER = N_("no customer %(ref)s")
ALREADY_HELD = N_("%(what)s is already under a legal hold")
NOT_HOLDABLE = N_("a legal hold is placed on an order or a customer")
NO_HOLD = N_("no active legal hold %(id)s")
NOT_WHOLE = N_("%(field)s must be a whole number")


def _whole(value, field: str) -> int:
    """A whole number from a form (text) or JSON (int); anything else is refused."""
    if isinstance(value, bool):
        value = None
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit() and len(value.strip()) <= 9:
        return int(value.strip())
    if isinstance(value, int):
        return value
    raise ValidationFailed(say(NOT_WHOLE, field=field), field=field, code="invalid_number")


# --- periods -----------------------------------------------------------------------------------------------------

def data_class(code: str) -> DataClass:
    found = CLASSES.get(code or "")
    if found is None:
        raise NotFound(say(UNKNOWN_CLASS, code=str(code)[:40]), field="data_class", code="unknown_data_class")
    return found


def period_days(code: str) -> int:
    """The period in force for a data class: the admin's, else the default."""
    stored = db.session.get(RetentionPolicy, data_class(code).code)
    return stored.days if stored is not None else CLASSES[code].default_days


def period(code: str) -> timedelta:
    return timedelta(days=period_days(code))


def policies() -> list[dict]:
    """Every data class with its bounds, the period in force and who last changed it (for the portal)."""
    stored = {p.data_class: p for p in db.session.execute(select(RetentionPolicy)).scalars()}
    return [{"class": c, "days": stored[c.code].days if c.code in stored else c.default_days,
             "changed_at": stored[c.code].updated_at if c.code in stored else None} for c in CLASSES.values()]


def set_period(code: str, days, actor: Actor, reason: str) -> RetentionPolicy:
    """Change a class's period within its legal bounds; audited with the reason. Out of bounds: refused, unchanged."""
    cls = data_class(code)
    days = _whole(days, "days")
    reason = check.text(reason, "reason", 500, required=False)
    if not reason:
        raise ValidationFailed(say(REASON_NEEDED), field="reason", code="reason_required")
    if days < cls.minimum_days:
        raise ValidationFailed(say(BELOW_MINIMUM, label=say(cls.label), days=cls.minimum_days, basis=say(cls.basis)),
                               field="days", code="below_legal_minimum")
    if days > cls.maximum_days:
        raise ValidationFailed(say(ABOVE_MAXIMUM, label=say(cls.label), days=cls.maximum_days), field="days",
                               code="above_maximum")
    before = period_days(code)
    policy = db.session.get(RetentionPolicy, code) or RetentionPolicy(data_class=code)
    policy.days, policy.updated_at, policy.updated_by_id = days, utc_now(), actor.id
    db.session.add(policy)
    audit.record(actor, "retention.period_changed", "retention", code, before={"days": before}, after={"days": days},
                 reason=reason)
    return policy


# --- legal holds ---------------------------------------------------------------------------------------------------

def _target(entity_type: str, ref) -> tuple[int, str]:
    """(id, label) of the order (by order number) or customer (by id) a hold names."""
    if entity_type == "order":
        ref = check.text(ref, "ref", 20)
        found = db.session.execute(select(Order.id).where(Order.order_no == ref.strip().upper())).scalar()
        if found is None:
            raise NotFound(say(UNKNOWN_ORDER, ref=ref[:20]), field="ref", code="unknown_order")
        return found, ref.strip().upper()
    if entity_type == "customer":
        raw = str(ref or "").strip()
        found = db.session.get(Customer, int(raw)) if raw.isdigit() and len(raw) <= 9 else None
        if found is None:
            raise NotFound(say(UNKNOWN_CUSTOMER, ref=raw[:20]), field="ref", code="unknown_customer")
        return found.id, f"C{found.id}"
    raise ValidationFailed(say(NOT_HOLDABLE), field="entity_type", code="invalid_hold_target")


def place_hold(entity_type: str, ref, reason: str, actor: Actor) -> LegalHold:
    """Stop retention for one order or customer until released; audited with the reason."""
    entity_id, label = _target(entity_type, ref)
    reason = check.text(reason, "reason", 500, required=False)
    if not reason:
        raise ValidationFailed(say(REASON_NEEDED), field="reason", code="reason_required")
    if is_held(entity_type, entity_id):
        raise Conflict(say(ALREADY_HELD, what=label), field="ref", code="already_held")
    hold = LegalHold(entity_type=entity_type, entity_id=entity_id, reason=reason, placed_by_id=actor.id,
                     placed_at=utc_now())
    db.session.add(hold)
    audit.record(actor, "retention.hold_placed", entity_type, label, after={"hold": True}, reason=reason)
    return hold


def release_hold(hold_id, reason: str, actor: Actor) -> LegalHold:
    hold_id = _whole(hold_id, "hold")
    hold = db.session.get(LegalHold, hold_id) if 0 < hold_id < 2 ** 31 else None
    if hold is None or hold.released_at is not None:
        raise NotFound(say(NO_HOLD, id=hold_id), field="hold", code="unknown_hold")
    reason = check.text(reason, "reason", 500, required=False)
    if not reason:
        raise ValidationFailed(say(REASON_NEEDED), field="reason", code="reason_required")
    hold.released_at, hold.released_by_id, hold.release_reason = utc_now(), actor.id, reason
    audit.record(actor, "retention.hold_released", hold.entity_type, hold_label(hold), before={"hold": True},
                 after={"hold": False}, reason=reason)
    return hold


def hold_label(hold: LegalHold) -> str:
    if hold.entity_type == "order":
        return db.session.execute(select(Order.order_no).where(Order.id == hold.entity_id)).scalar() or "?"
    return f"C{hold.entity_id}"


def is_held(entity_type: str, entity_id: int) -> bool:
    return db.session.execute(select(exists().where(_active_hold(entity_type, entity_id)))).scalar()


def _active_hold(entity_type: str, entity_id) -> object:
    return and_(LegalHold.entity_type == entity_type, LegalHold.entity_id == entity_id,
                LegalHold.released_at.is_(None))


def active_holds() -> list[LegalHold]:
    return list(db.session.execute(select(LegalHold).where(LegalHold.released_at.is_(None))
                                   .order_by(LegalHold.placed_at.desc())).scalars())


def order_hold(order: Order) -> LegalHold | None:
    """The active hold covering an order (its own, or its customer's), for the order page."""
    return db.session.execute(select(LegalHold).where(
        LegalHold.released_at.is_(None),
        or_(and_(LegalHold.entity_type == "order", LegalHold.entity_id == order.id),
            and_(LegalHold.entity_type == "customer", LegalHold.entity_id == order.customer_id)))
        .limit(1)).scalar()


# --- the nightly run ---------------------------------------------------------------------------------------------

def _anonymise_orders(now: datetime) -> int:
    cutoff = now - period("order_personal")
    due = (select(Order.id).where(Order.status.in_(FINISHED), Order.anonymised_at.is_(None), Order.updated_at < cutoff,
                                  ~exists().where(_active_hold("order", Order.id)),
                                  ~exists().where(_active_hold("customer", Order.customer_id)))
           .order_by(Order.id).limit(BATCH))
    total = 0
    while ids := list(db.session.execute(due).scalars()):
        db.session.execute(update(Order).where(Order.id.in_(ids)).values(
            receiver_name="", receiver_phone="", receiver_phone_index="", receiver_name_index=None,
            receiver_last4_index=None, street="", postal_code=None, platform_ciphertext=None, platform_buyer_key=None,
            anonymised_at=now, version=Order.version + 1)
            .execution_options(synchronize_session=False))
        db.session.execute(update(ExceptionCase).where(ExceptionCase.order_id.in_(ids)).values(buyer_index=None)
                           .execution_options(synchronize_session=False))
        total += len(ids)
    return total


def _anonymise_customers(now: datetime) -> int:
    cutoff = now - period("order_personal")
    due = (select(Customer.id).where(
        Customer.anonymised_at.is_(None), Customer.created_at < cutoff,
        ~exists().where(Order.customer_id == Customer.id, Order.anonymised_at.is_(None)),
        ~exists().where(_active_hold("customer", Customer.id))).order_by(Customer.id).limit(BATCH))
    total = 0
    while ids := list(db.session.execute(due).scalars()):
        for kept in (CustomerAddress, InvoiceProfile):  # saved addresses and invoice profiles (发票抬头) go whole
            db.session.execute(delete(kept).where(kept.customer_id.in_(ids)).execution_options(synchronize_session=False))
        db.session.execute(update(Customer).where(Customer.id.in_(ids)).values(
            name="", phone="", phone_index="", email=None, email_index=None, id_number=None, platform_buyer_key=None,
            password_hash=None, session_generation=Customer.session_generation + 1, anonymised_at=now)
            .execution_options(synchronize_session=False))
        total += len(ids)
    return total


def _purge_payloads(now: datetime) -> int:
    from shared.services.inbox import REPLAYABLE

    cutoff = now - period("inbox_payloads")
    total = 0
    for model in (InboxItem, TrackingPush, PaymentNotice):  # payment notices carry a payer's id: same period
        result = db.session.execute(update(model).where(
            model.processed_at < cutoff, model.payload_purged_at.is_(None), model.status.not_in(REPLAYABLE))
            .values(body="", payload_purged_at=now).execution_options(synchronize_session=False))
        total += result.rowcount
    return total


def _prune(log_name: str, data_code: str, now: datetime) -> int:
    from shared.services import sealing

    total = 0
    while True:
        done = sealing.prune(log_name, now - period(data_code))
        if done is None:  # a sealer holds the log: the next night takes it
            return total
        total += done.count
        if done.count < 50_000:
            return total


def _purge_exports(now: datetime) -> int:
    from shared.services import exports

    return exports.expire_and_purge(now).get("export.purge", 0)


STEPS: dict[str, Callable[[datetime], int]] = {
    "order_personal": _anonymise_orders,
    "customers": _anonymise_customers,
    "inbox_payloads": _purge_payloads,
    "audit": lambda now: _prune("audit", "audit", now),
    "access_log": lambda now: _prune("access", "access_log", now),
    "export_files": _purge_exports,
}


def run(now: datetime | None = None, commit: Callable[[], None] | None = None) -> dict[str, int]:
    """Apply every period once (see the module's docstring); returns the count per class. The counts go into the
    audit chain as `retention.run` when any is above zero; the caller's `commit` is called after each class."""
    now = as_utc(now) or utc_now()
    commit = commit or db.session.commit
    counts = {}
    for code, step in STEPS.items():
        counts[code] = step(now)
        commit()
    if any(counts.values()):
        audit.record(SYSTEM, "retention.run", "retention", now.date().isoformat(), after=counts)
        commit()
    return counts


def last_runs(limit: int = 10) -> list:
    from shared.models import AuditEvent

    return list(db.session.execute(select(AuditEvent).where(AuditEvent.action == "retention.run")
                                   .order_by(AuditEvent.id.desc()).limit(limit)).scalars())
