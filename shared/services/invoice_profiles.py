"""Invoice profiles (发票抬头): the buyers a customer's invoices are made out to, kept by the customer on the
customer site or by staff for B2B customers. The one place that creates, changes and deletes them.

Rules by kind (enterprise 企业 / institution 机关事业单位 / individual 个人 / other 其他):
- enterprise: a valid 统一社会信用代码 is required (every enterprise has one since the 2015-2017 re-registration);
- institution and other: a valid USCC, or an older 15-20 character taxpayer number (some government bodies,
  foreign representative offices and other organisations still invoice under one);
- individual: the tax id is optional; when given it is the person's resident id (GB 11643, checked by
  python-stdnum's cn.ric) or a USCC.
The tax id is stored as typed after removing spaces and upper-casing (shared/finance/tax_ids.py). Name, address
+ phone and bank + account are limited in GBK bytes (shared/finance/text_rules.py). 专票 may be asked for only by a
profile of a non-individual kind with a valid tax id (`may_request_special`).

Every refusal is a ValidationFailed naming the field and a code; nothing is changed. Audit rows keep what may be
personal masked (an individual's name and id, every phone, address, account and email).
"""
import re

from sqlalchemy import func, select, update
from stdnum.cn import ric

from shared.actors import Actor
from shared.extensions import db
from shared.finance import tax_ids, text_rules
from shared.models import Customer, InvoiceProfile
from shared.models.finance import PROFILE_KINDS
from shared.security.masking import masked_email, masked_id_number, masked_name, masked_phone
from shared.security.permissions import Visibility, visibility
from shared.services import audit
from shared.services import validation as check
from shared.services.errors import NotFound, ValidationFailed
from shared.services.validation import N_, say
from shared.timekeeping import utc_now

# What a person reads when this module refuses: message codes, said in the reader's language (say).
PROFILE_NOT_OBJECT = N_("The profile must be an object")

FIELDS = ("kind", "name", "tax_id", "address", "phone", "bank", "account", "email")
TEXT_FIELDS = ("name", "address", "phone", "bank", "account")
LEGACY_KINDS = ("institution", "other")
MAX_PROFILES = 20  # per customer
CREATORS = ("customer", "staff")
_PHONE = re.compile(r"[0-9+\-() ]+")
_ACCOUNT = re.compile(r"[0-9A-Za-z\- ]+")

UNKNOWN_KIND = N_("Choose the type of buyer: enterprise, institution, individual or other.")
NAME_REQUIRED = N_("Enter the name to put on the invoice.")
TAX_ID_REQUIRED = N_("Enter the buyer's tax id (unified social credit code).")
NOT_RESIDENT_ID = N_("An individual's tax id is their 18-character resident id number: this one does not check out.")
BAD_PHONE = N_("A phone number has digits and may have +, -, brackets and spaces.")
BAD_ACCOUNT = N_("A bank account number has digits (and may have letters, - and spaces).")
BAD_EMAIL = N_("This is not an email address.")
TOO_MANY = N_("A customer may keep at most %(limit)s invoice profiles: delete one first.")
NO_PROFILE = N_("There is no such invoice profile.")
NO_CUSTOMER = N_("There is no such customer.")


def _text(data: dict, field: str) -> str:
    """A field as text, trimmed, "" when absent; refused when it is not text."""
    value = data.get(field)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationFailed(say(check.MUST_BE, field=field, kind=say(check.KINDS["text"])), field=field,
                               code="invalid_type")
    return value.strip()


def clean(data: dict) -> dict:
    """The profile's values as they will be stored, or the first refusal (field and code)."""
    if not isinstance(data, dict):
        raise ValidationFailed(say(PROFILE_NOT_OBJECT), field="body", code="invalid_type")
    kind = data.get("kind")
    if kind not in PROFILE_KINDS:
        raise ValidationFailed(say(UNKNOWN_KIND), field="kind", code="invalid_kind")
    values = {"kind": kind, **{field: _text(data, field) for field in TEXT_FIELDS}}
    if not values["name"]:
        raise ValidationFailed(say(NAME_REQUIRED), field="name", code="required")
    text_rules.invoice_name(values["name"])
    values["tax_id"] = _tax_id(kind, data.get("tax_id"))
    if values["phone"] and not _PHONE.fullmatch(values["phone"]):
        raise ValidationFailed(say(BAD_PHONE), field="phone", code="invalid_phone")
    text_rules.address_and_phone(values["address"], values["phone"])
    if values["account"] and not _ACCOUNT.fullmatch(values["account"]):
        raise ValidationFailed(say(BAD_ACCOUNT), field="account", code="invalid_account")
    text_rules.bank_and_account(values["bank"], values["account"])
    email = _text(data, "email")
    if email:
        try:
            email = check.email(email, "email")
        except ValidationFailed:
            raise ValidationFailed(say(BAD_EMAIL), field="email", code="invalid_email") from None
    values["email"] = email or None
    for field in TEXT_FIELDS:
        values[field] = values[field] or None
    return values


def _tax_id(kind: str, raw) -> str | None:
    if raw is not None and not isinstance(raw, str):
        raise ValidationFailed(say(check.MUST_BE, field="tax_id", kind=say(check.KINDS["text"])), field="tax_id",
                               code="invalid_type")
    code = tax_ids.normalise(raw)
    if kind == "individual":
        if not code:
            return None
        if len(code) == tax_ids.USCC_LENGTH and code[0] in "123456789" and ric.is_valid(code):
            return code
        if tax_ids.is_uscc(code):
            return code
        raise ValidationFailed(say(NOT_RESIDENT_ID), field="tax_id", code="invalid_tax_id")
    if not code:
        raise ValidationFailed(say(TAX_ID_REQUIRED), field="tax_id", code="required")
    return tax_ids.validate(code, legacy_allowed=kind in LEGACY_KINDS)


def may_request_special(profile: InvoiceProfile) -> bool:
    """专票 (a special VAT invoice) is for a buyer that deducts input VAT: a non-individual kind with a valid tax id."""
    if profile is None or profile.kind == "individual" or not profile.tax_id:
        return False
    if tax_ids.is_uscc(profile.tax_id):
        return True
    return profile.kind in LEGACY_KINDS and tax_ids.is_legacy_number(profile.tax_id)


def masked_value(field: str, value: str | None) -> str | None:
    """One personal part of a profile as a reader who may not see it in full sees it."""
    if not value:
        return value
    if field == "phone":
        return masked_phone(value)
    if field == "email":
        return masked_email(value)
    if field == "account":
        return f"****{value[-4:]}"
    return value[:6] + "****"  # address: the first characters (usually province and city)


def _masked(profile: InvoiceProfile) -> dict:
    """The profile as an audit row keeps it: personal values masked."""
    individual = profile.kind == "individual"
    return {"customer_id": profile.customer_id, "kind": profile.kind,
            "name": masked_name(profile.name) if individual else profile.name,
            "tax_id": masked_id_number(profile.tax_id) if individual else profile.tax_id,
            "address": masked_value("address", profile.address), "phone": masked_value("phone", profile.phone),
            "bank": profile.bank, "account": masked_value("account", profile.account),
            "email": masked_value("email", profile.email), "is_default": bool(profile.is_default),
            "created_by": profile.created_by}


def profiles_for_customer(customer_id: int) -> list[InvoiceProfile]:
    """The customer's profiles, the default first, then oldest first."""
    return db.session.execute(
        select(InvoiceProfile).where(InvoiceProfile.customer_id == customer_id)
        .order_by(InvoiceProfile.is_default.desc(), InvoiceProfile.id)).scalars().all()


def profile_for_customer(customer_id: int, profile_id) -> InvoiceProfile:
    """The customer's own profile with this id; anyone else's (or none) is NotFound."""
    if not isinstance(profile_id, int) or isinstance(profile_id, bool):
        raise NotFound(say(NO_PROFILE), field="profile_id")
    profile = db.session.execute(select(InvoiceProfile).where(
        InvoiceProfile.id == profile_id, InvoiceProfile.customer_id == customer_id)).scalar_one_or_none()
    if profile is None:
        raise NotFound(say(NO_PROFILE), field="profile_id")
    return profile


def default_profile(customer_id: int) -> InvoiceProfile | None:
    return db.session.execute(select(InvoiceProfile).where(
        InvoiceProfile.customer_id == customer_id, InvoiceProfile.is_default.is_(True))).scalars().first()


def _lock_customer(customer_id: int) -> None:
    """Serialise changes to one customer's profiles (the one-default rule and the count limit hold under
    concurrent requests): a row lock on the customer in PostgreSQL; SQLite has one writer anyway."""
    found = db.session.execute(select(Customer.id).where(Customer.id == customer_id).with_for_update()).first()
    if found is None:
        raise NotFound(say(NO_CUSTOMER), field="customer")


def create_profile(customer_id: int, data: dict, actor: Actor, created_by: str = "customer") -> InvoiceProfile:
    """Add a profile for the customer; the first one becomes the default, as does one created with default=True."""
    if created_by not in CREATORS:
        raise ValueError(created_by)
    values = clean(data)
    _lock_customer(customer_id)
    count = db.session.execute(select(func.count()).select_from(InvoiceProfile)
                               .where(InvoiceProfile.customer_id == customer_id)).scalar_one()
    if count >= MAX_PROFILES:
        raise ValidationFailed(say(TOO_MANY, limit=MAX_PROFILES), field="profile", code="too_many_profiles")
    now = utc_now()
    make_default = count == 0 or data.get("is_default") is True
    if make_default:
        _clear_default(customer_id)
    profile = InvoiceProfile(customer_id=customer_id, created_by=created_by, is_default=make_default,
                             created_at=now, updated_at=now, **values)
    db.session.add(profile)
    db.session.flush()
    audit.record(actor, "invoice_profile.create", "invoice_profile", profile.id, after=_masked(profile))
    return profile


def update_profile(profile: InvoiceProfile, data: dict, actor: Actor) -> InvoiceProfile:
    """Replace the profile's values (all fields of the form or body); the default flag is set_default's."""
    values = clean(data)
    before = _masked(profile)
    for field, value in values.items():
        setattr(profile, field, value)
    profile.updated_at = utc_now()
    db.session.flush()
    audit.record(actor, "invoice_profile.update", "invoice_profile", profile.id, before=before, after=_masked(profile))
    return profile


def delete_profile(profile: InvoiceProfile, actor: Actor) -> None:
    """Delete the profile; when it was the default, the oldest remaining one becomes the default."""
    _lock_customer(profile.customer_id)
    before, profile_id, customer_id, was_default = _masked(profile), profile.id, profile.customer_id, profile.is_default
    db.session.delete(profile)
    db.session.flush()
    if was_default:
        heir = db.session.execute(select(InvoiceProfile).where(InvoiceProfile.customer_id == customer_id)
                                  .order_by(InvoiceProfile.id)).scalars().first()
        if heir is not None:
            heir.is_default = True
    audit.record(actor, "invoice_profile.delete", "invoice_profile", profile_id, before=before)


def set_default(profile: InvoiceProfile, actor: Actor) -> InvoiceProfile:
    """Make this the customer's default profile (the one invoices are made out to unless another is chosen)."""
    if not profile.is_default:
        _lock_customer(profile.customer_id)
        _clear_default(profile.customer_id)
        profile.is_default = True
        profile.updated_at = utc_now()
        db.session.flush()
        audit.record(actor, "invoice_profile.default", "invoice_profile", profile.id,
                     before={"is_default": False}, after={"is_default": True})
    return profile


def _clear_default(customer_id: int) -> None:
    db.session.execute(update(InvoiceProfile).where(InvoiceProfile.customer_id == customer_id,
                                                    InvoiceProfile.is_default.is_(True))
                       .values(is_default=False).execution_options(synchronize_session="fetch"))


# The personal parts of a profile and the permission-table field each is shown by (an individual's name and id too).
PERSONAL_FIELDS = {"phone": "phone", "address": "address", "email": "email", "account": "address"}
INDIVIDUAL_FIELDS = {"name": "name", "tax_id": "id_number"}


def shown_to(profile: InvoiceProfile, role: str) -> tuple[dict, list[str]]:
    """The profile as a staff role sees it (as_json, personal parts masked unless the role's field visibility is
    full) and the personal fields shown in full, which the caller writes to the access log."""
    body, shown = as_json(profile), []
    governed = {**PERSONAL_FIELDS, **(INDIVIDUAL_FIELDS if profile.kind == "individual" else {})}
    for field, governed_by in governed.items():
        if not body[field]:
            continue
        if visibility(role, governed_by) is Visibility.FULL:
            shown.append(field)
        elif field == "name":
            body[field] = masked_name(body[field])
        elif field == "tax_id":
            body[field] = masked_id_number(body[field])
        else:
            body[field] = masked_value(field, body[field])
    return body, shown


def as_json(profile: InvoiceProfile) -> dict:
    """Every value of the profile, unmasked: for its owner; staff see it through shown_to."""
    return {"id": profile.id, "type": profile.kind, "name": profile.name, "tax_id": profile.tax_id,
            "address": profile.address, "phone": profile.phone, "bank": profile.bank, "account": profile.account,
            "email": profile.email, "is_default": bool(profile.is_default), "created_by": profile.created_by,
            "may_request_special": may_request_special(profile)}
