"""A customer's address book (issue 13 item 6): saved shipping addresses, encrypted at rest like an order's
(receiver, phone and street in EncryptedText columns), checked by the one address rule (orders.read_address), one
default at a time. Owner-scoped: `address_for_customer` finds only the customer's own."""
from sqlalchemy import select, update

from shared.actors import Actor
from shared.extensions import db
from shared.models import CustomerAddress
from shared.services import audit
from shared.services.errors import NotFound, ValidationFailed
from shared.services.orders import read_address
from shared.services.validation import N_, say

# What a person reads when this module refuses: message codes, said in the reader's language (say).
ADDRESS_NOT_FOUND = N_("No such address")

MAX_ADDRESSES = 20
TOO_MANY = N_("an address book holds at most %(limit)s addresses")


def addresses_for_customer(customer_id: int) -> list[CustomerAddress]:
    return list(db.session.execute(select(CustomerAddress).where(CustomerAddress.customer_id == customer_id)
                                   .order_by(CustomerAddress.is_default.desc(), CustomerAddress.id)).scalars())


def address_for_customer(customer_id: int, address_id) -> CustomerAddress:
    row = None
    if str(address_id).isdigit() and int(address_id) < 2 ** 31:
        row = db.session.execute(select(CustomerAddress).where(CustomerAddress.id == int(address_id),
                                                               CustomerAddress.customer_id == customer_id)
                                 ).scalar_one_or_none()
    if row is None:
        raise NotFound(say(ADDRESS_NOT_FOUND), field="address", code="address_not_found")
    return row


def _values(data: dict) -> dict:
    clean = read_address(data)
    return {"receiver": clean["receiver"], "phone": clean["receiver_phone"],
            **{k: clean[k] for k in ("province", "city", "district", "street", "postal_code")}}


def _make_default(customer_id: int, row: CustomerAddress) -> None:
    db.session.execute(update(CustomerAddress).where(CustomerAddress.customer_id == customer_id,
                                                     CustomerAddress.id != row.id)
                       .values(is_default=False).execution_options(synchronize_session="fetch"))
    row.is_default = True


def create_address(customer_id: int, data: dict, actor: Actor, default: bool = False) -> CustomerAddress:
    values = _values(data)
    existing = addresses_for_customer(customer_id)
    if len(existing) >= MAX_ADDRESSES:
        raise ValidationFailed(say(TOO_MANY, limit=MAX_ADDRESSES), field="address", code="too_many")
    row = CustomerAddress(customer_id=customer_id, is_default=False, **values)
    db.session.add(row)
    db.session.flush()
    if default or not existing:
        _make_default(customer_id, row)
    db.session.flush()
    audit.record(actor, "customer.address_create", "customer_address", row.id,
                 after={"district": f"{row.province}{row.city}{row.district}", "default": row.is_default})
    return row


def update_address(row: CustomerAddress, data: dict, actor: Actor) -> CustomerAddress:
    values = _values(data)
    changed = sorted(k for k, v in values.items() if (getattr(row, k) or None) != (v or None))
    for key, value in values.items():
        setattr(row, key, value)
    db.session.flush()
    audit.record(actor, "customer.address_update", "customer_address", row.id, after={"fields": changed})
    return row


def delete_address(row: CustomerAddress, actor: Actor) -> None:
    customer_id, was_default, row_id = row.customer_id, row.is_default, row.id
    db.session.delete(row)
    db.session.flush()
    if was_default:
        rest = addresses_for_customer(customer_id)
        if rest:
            _make_default(customer_id, rest[0])
            db.session.flush()
    audit.record(actor, "customer.address_delete", "customer_address", row_id)


def set_default(row: CustomerAddress, actor: Actor) -> None:
    _make_default(row.customer_id, row)
    db.session.flush()
    audit.record(actor, "customer.address_default", "customer_address", row.id)


def as_shipping_address(row: CustomerAddress) -> dict:
    """A saved address in the shape an order's address change takes."""
    return {"receiver": row.receiver, "phone": row.phone, "province": row.province, "city": row.city,
            "district": row.district, "street": row.street, "postal_code": row.postal_code}
