"""Customers: found by the blind index of their phone (or of the platform's buyer key), created on first order."""
import json
import re
from typing import NamedTuple

from sqlalchemy import bindparam, insert, select

from shared.actors import Actor
from shared.extensions import db
from shared.models import Customer
from shared.security import crypto
from shared.security import sessions
from shared.security.passwords import hash_password, policy_problem, verify_password
from shared.services import audit
from shared.services.errors import Conflict, ValidationFailed
from shared.services.sign_in import check_password, refuse_unknown
from shared.services import validation as check
from shared.services.validation import N_, say
NO_EMAIL_TO_SIGN_IN = N_("The customer has no email to sign in with")
EMAIL_REQUIRED = N_("An email address is required")
EMAIL_TAKEN = N_("An account with this email exists")
UNKNOWN_TIER = N_("No customer tier %(tier)s")


def find_by_phone(phone: str) -> Customer | None:
    return db.session.execute(
        select(Customer).where(Customer.phone_index == crypto.blind_index("phone", phone)).order_by(Customer.id)
    ).scalars().first()


def authenticate(email: str, password: str, ip: str | None) -> Customer:
    """Check a customer's sign-in by email; the same lockout and audit rules as staff."""
    email = (email or "").strip()
    customer = None
    if email:
        customer = db.session.execute(
            select(Customer).where(Customer.email_index == crypto.blind_index("email", email))
        ).scalar_one_or_none()
    if customer is None or not customer.password_hash:
        refuse_unknown(password, "wrong email or password")
    check_password(customer, password, Actor.for_customer(customer, ip=ip), "customer", customer.id,
                   wrong_message="wrong email or password")
    return customer


def buyer_key_label(protected: dict | None) -> str | None:
    """"<platform>:<key>" for a buyer the platform names only by its pseudonymous key."""
    if not protected or not protected.get("buyer_key"):
        return None
    return f"{protected['kind']}:{protected['buyer_key']}"


def contact_index(phone: str, protected: dict | None) -> str:
    """The keyed hash orders and customers are matched by: the phone's, or, when the platform sent ciphertext,
    the platform's buyer key (a masked phone such as 136*******5 is shared by many buyers and matches nothing)."""
    if not protected:
        return crypto.blind_index("phone", phone)
    label = buyer_key_label(protected)
    if label is None:  # no key: the ciphertext of the phone stands for the buyer on this platform
        ciphertext = protected.get("ciphertext") or {}
        label = f"{protected['kind']}:" + json.dumps(ciphertext, sort_keys=True, ensure_ascii=False)
    return crypto.blind_index("platform_buyer", label)


def normalized_name(name: str) -> str:
    """A receiver name as the search compares it: case and every kind of white space ignored."""
    return re.sub(r"\s+", "", name or "").lower()


def receiver_search_indexes(name: str, phone: str, protected: dict | None) -> dict:
    """The order columns the list searches by receiver name and by the phone's last four digits: keyed hashes
    (never the value), none when the platform sent only masks (a masked name or phone matches nobody)."""
    digits = crypto.normalize_phone(phone)
    if protected or not name:
        name_index = None
    else:
        name_index = crypto.blind_index("receiver_name", normalized_name(name))
    last4 = crypto.blind_index("phone_last4", digits[-4:]) if not protected and len(digits) >= 4 else None
    return {"receiver_name_index": name_index, "receiver_last4_index": last4}


def protected_columns(protected: dict | None) -> dict:
    """The order columns that keep a platform's ciphertext as received, and its buyer key as given."""
    if not protected:
        return {}
    return {"platform_ciphertext": json.dumps(protected["ciphertext"], ensure_ascii=False, sort_keys=True),
            "platform_buyer_key": protected.get("buyer_key")}


class CustomerRef(NamedTuple):
    """A customer as a new order names it: read or written by Core, in no session."""
    id: int
    name: str
    phone: str
    email: str | None


_TABLE = Customer.__table__
# Built once: the oldest customer with a contact index, whether an email is taken, and a new customer's row.
_BY_INDEX = (select(_TABLE.c.id, _TABLE.c.name, _TABLE.c.phone, _TABLE.c.email)
             .where(_TABLE.c.phone_index == bindparam("index")).order_by(_TABLE.c.id).limit(1))
_EMAIL_TAKEN = select(_TABLE.c.id).where(_TABLE.c.email_index == bindparam("email_index")).limit(1)
_INSERT = insert(_TABLE).returning(_TABLE.c.id)


def _new_customer(name: str, phone: str, email: str | None, index: str, protected: dict | None) -> dict:
    """The columns of a new customer; an email another account already has is kept off it."""
    email_index = crypto.blind_index("email", email) if email else None
    if email_index and db.session.connection().execute(_EMAIL_TAKEN, {"email_index": email_index}).first():
        email, email_index = None, None  # the email belongs to another account; keep it off
    return {"name": name, "phone": phone, "phone_index": index, "email": email, "email_index": email_index,
            "platform_buyer_key": buyer_key_label(protected)}


def find_or_create_ref(name: str, phone: str, email: str | None, actor: Actor,
                       protected: dict | None = None) -> CustomerRef:
    """The customer with this phone number (or platform buyer key), or a new one (audited): a read, and an INSERT
    for a new customer, as Core statements (the API's hot path)."""
    connection = db.session.connection()
    index = contact_index(phone, protected)
    found = connection.execute(_BY_INDEX, {"index": index}).first()
    if found is not None:
        return CustomerRef(*found)
    values = _new_customer(name, phone, email, index, protected)
    customer_id = connection.execute(_INSERT, values).scalar_one()
    audit.record(actor, "customer.create", "customer", customer_id, after={"created": True})
    return CustomerRef(customer_id, values["name"], values["phone"], values["email"])


def find_or_create(name: str, phone: str, email: str | None, actor: Actor, protected: dict | None = None) -> Customer:
    """The customer with this phone number (or platform buyer key), or a new one, as an ORM object."""
    index = contact_index(phone, protected)
    customer = db.session.execute(
        select(Customer).where(Customer.phone_index == index).order_by(Customer.id)).scalars().first()
    if customer is not None:
        return customer
    customer = Customer(**_new_customer(name, phone, email, index, protected))
    db.session.add(customer)
    db.session.flush()
    audit.record(actor, "customer.create", "customer", customer.id, after={"created": True})
    return customer


def check_password_strength(password, email: str) -> None:
    """The password rule for a customer (shared.security.passwords.policy_problem), refused as a ValidationFailed."""
    problem = policy_problem(password, email)
    if problem:
        raise ValidationFailed(problem, field="password", code="weak_password")


_check_password = check_password_strength


def set_password(customer: Customer, password: str, actor: Actor) -> None:
    """Open a customer-site account or change its password; every earlier session of the customer ends."""
    if not customer.email:
        raise Conflict(say(NO_EMAIL_TO_SIGN_IN), field="email")
    _check_password(password, customer.email)
    customer.password_hash = hash_password(password)
    sessions.end_all(customer)
    audit.record(actor, "customer.set_password", "customer", customer.id)


def end_sessions(customer: Customer, actor: Actor, reason: str = "sign_out") -> None:
    """End every session of the customer, wherever its cookie is."""
    sessions.end_all(customer)
    audit.record(actor, f"customer.{reason}", "customer", customer.id)


def create_account(name, phone, email, password, actor: Actor) -> Customer:
    name = check.text(name, "name", 60)
    phone = check.phone(phone, "phone")
    email = check.email(email, "email")
    if not email:
        raise ValidationFailed(say(EMAIL_REQUIRED), field="email", code="required")
    _check_password(password, email)  # before anything is written: a refusal leaves no half-made customer
    if db.session.execute(select(Customer.id).where(Customer.email_index == crypto.blind_index("email", email))).first():
        raise Conflict(say(EMAIL_TAKEN), field="email", code="duplicate_email")
    customer = find_or_create(name, phone, email, actor)
    if customer.email is None:
        customer.email, customer.email_index = email, crypto.blind_index("email", email)
    set_password(customer, password, actor)
    return customer


EMAIL_TAKEN = N_("another account uses this email")
WRONG_CURRENT = N_("the current password is not right")


def update_profile(customer: Customer, name, email, phone, actor: Actor) -> list[str]:
    """The customer changes their name, email or phone: checked as at sign-up, the email unique, the email and phone
    blind indexes following (a customer known by a platform's buyer key keeps that key's index). Audited with the
    names of the fields changed, never their values. Returns those names."""
    name = check.text(name, "name", 60)
    phone = check.phone(phone, "phone")
    email = check.email(email, "email")
    if customer.password_hash and not email:
        raise ValidationFailed(say(EMAIL_REQUIRED), field="email", code="required")
    email_index = crypto.blind_index("email", email) if email else None
    if email_index and email_index != customer.email_index and db.session.execute(
            select(Customer.id).where(Customer.email_index == email_index, Customer.id != customer.id)).first():
        raise Conflict(say(EMAIL_TAKEN), field="email", code="duplicate_email")
    changed = [field for field, old, new in (("name", customer.name, name), ("email", customer.email, email),
                                             ("phone", customer.phone, phone)) if (old or None) != (new or None)]
    if not changed:
        return []
    customer.name, customer.email, customer.email_index = name, email, email_index
    if "phone" in changed:
        customer.phone = phone
        if not customer.platform_buyer_key:
            customer.phone_index = crypto.blind_index("phone", phone)
    db.session.flush()
    audit.record(actor, "customer.profile", "customer", customer.id, after={"fields": changed})
    return changed


def change_password(customer: Customer, current: str, new: str, actor: Actor) -> None:
    """The customer changes their password: the current one first, the same strength rule, every session ended
    (the caller starts this browser's again)."""
    if not verify_password(customer.password_hash, current or ""):
        audit.record(actor, "customer.password_refused", "customer", customer.id)
        raise ValidationFailed(say(WRONG_CURRENT), field="current_password", code="wrong_password")
    set_password(customer, new, actor)


def set_tier(customer: Customer, tier: str, actor: Actor) -> Customer:
    """Move a customer to a tier that exists as data (shared.models.CustomerTier), audited."""
    from shared.models import CustomerTier

    code = (tier or "").strip() if isinstance(tier, str) else ""
    if not code or db.session.get(CustomerTier, code) is None:
        raise ValidationFailed(say(UNKNOWN_TIER, tier=str(tier)[:16]), field="tier", code="unknown_tier")
    if customer.tier == code:
        return customer
    before = customer.tier
    customer.tier = code
    db.session.flush()
    audit.record(actor, "customer.tier", "customer", customer.id, before={"tier": before}, after={"tier": code})
    return customer
