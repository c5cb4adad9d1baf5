"""Finding customers and everything of one customer for the staff portal's customer page.

Search goes through blind indexes only (never a LIKE on decrypted values) and follows the rules of order search
(docs/SECURITY.md, "Search and personal data"): a role may search by a personal value only in the form it already
sees, so the answer never reads back what the mask hides:

- an order number: every role with `customers: view`;
- a phone in full: roles that see phones in full; the masked form (`173****5372`): roles that see phones at all;
- an email: roles that see emails in full (a masked `z***@example.com` would otherwise be guessed back);
- a name (through the orders' receiver-name index): roles that see names in full.

Every search by a personal value is access-logged by kind (entity `customers`), counted against the same per-user
limit as order search. One customer's page merges their orders across channels: the orders they placed and the
orders whose receiver has their contact index (phone, or platform buyer key), which is how one person's orders on
several channels meet without plain text."""
from dataclasses import dataclass

from sqlalchemy import or_, select

from shared import order_numbers
from shared.actors import Actor
from shared.extensions import db
from shared.models import AfterSale, Customer, InvoiceRequest, InvoiceRequestOrder, Order
from shared.order_search import SearchRefused, check_search_rate, kind_of, masked_candidates
from shared.security import crypto
from shared.security.permissions import Visibility, visibility
from shared.services import audit
from shared.services.customers import normalized_name
from shared.services.errors import ValidationFailed
from shared.services.validation import N_, say

RESULTS = 50
ORDERS_SHOWN = 100
# What a search kind needs of the viewer's visibility, by field.
NEEDS = {"phone": ("phone", (Visibility.FULL,)), "phone_masked": ("phone", (Visibility.FULL, Visibility.MASKED)),
         "email": ("email", (Visibility.FULL,)), "name": ("name", (Visibility.FULL,))}


def search_kind(q: str, by_name: bool) -> str:
    """order_no, phone, phone_masked, email or name."""
    if by_name:
        return "name"
    if "@" in q:
        return "email"
    kind = kind_of(q)
    if kind in ("order_no", "phone", "phone_masked"):
        return kind
    raise ValidationFailed(say(N_("search customers by order number, phone or email")), field="q",
                           code="unknown_search")


def may_search(role: str, kind: str) -> bool:
    if kind == "order_no":
        return True
    field, levels = NEEDS[kind]
    return visibility(role, field) in levels


def find_customers(q: str, viewer: Actor, by_name: bool = False, door: str = "portal") -> list[Customer]:
    """Customers matching `q` as the viewer may search; the caller commits (the access-log entry)."""
    q = (q or "").strip()
    if not q or len(q) > 64:
        raise ValidationFailed(say(N_("type an order number, a phone, an email or a name (up to 64 characters)")),
                               field="q", code="invalid_search")
    kind = search_kind(q, by_name)
    personal = kind != "order_no"
    field = NEEDS[kind][0] if personal else None
    if personal:
        check_search_rate(viewer, kind, door, entity="customers", fields=(field,))
        if not may_search(viewer.role, kind):
            audit.log_access(viewer, "search_refused", "customers", f"by:{kind}", [field], channel=door)
            raise SearchRefused(say(N_("your role does not see this value in full and cannot search by it: search "
                                       "by the order number or as you see the value")), field="q")
    query = select(Customer).where(Customer.anonymised_at.is_(None)).order_by(Customer.id).limit(RESULTS)
    if kind == "order_no":
        query = query.where(Customer.id == select(Order.customer_id).where(
            Order.order_no == order_numbers.validate(q.upper())).scalar_subquery())
    elif kind == "phone":
        query = query.where(Customer.phone_index == crypto.blind_index("phone", q))
    elif kind == "phone_masked":
        query = query.where(Customer.phone_index.in_(masked_candidates(q)))
    elif kind == "email":
        query = query.where(Customer.email_index == crypto.blind_index("email", q))
    else:
        index = crypto.blind_index("receiver_name", normalized_name(q))
        query = query.where(Customer.id.in_(select(Order.customer_id).where(Order.receiver_name_index == index)))
    found = list(db.session.scalars(query))
    if personal:
        audit.log_access(viewer, "search", "customers", f"by:{kind}; found:{len(found)}", [field], channel=door)
    return found


@dataclass
class CustomerFile:
    """Everything of one customer the page shows."""

    customer: Customer
    orders: list[Order]
    after_sales: list[AfterSale]
    invoices: list[InvoiceRequest] | None


def customer_orders(customer: Customer, limit: int = ORDERS_SHOWN) -> list[Order]:
    """Their orders on every channel, newest first: the ones they placed and the ones sent to their contact index
    (the phone's blind index, or the platform buyer key's)."""
    mine = [Order.customer_id == customer.id]
    if customer.phone_index:
        mine.append(Order.receiver_phone_index == customer.phone_index)
    return list(db.session.scalars(select(Order).where(or_(*mine)).order_by(Order.placed_at.desc(), Order.id.desc())
                                   .limit(limit)))


def customer_file(customer: Customer, with_invoices: bool) -> CustomerFile:
    """The customer's orders, after-sales requests and (for roles that see invoices) invoice requests: one query
    each."""
    found = customer_orders(customer)
    ids = [o.id for o in found]
    cases = list(db.session.scalars(select(AfterSale).where(or_(AfterSale.customer_id == customer.id,
                                                                AfterSale.order_id.in_(ids)))
                                    .order_by(AfterSale.id.desc()).limit(ORDERS_SHOWN))) if ids or customer.id else []
    invoices = None
    if with_invoices:
        invoices = list(db.session.scalars(select(InvoiceRequest).where(or_(
            InvoiceRequest.customer_id == customer.id,
            InvoiceRequest.id.in_(select(InvoiceRequestOrder.request_id).where(InvoiceRequestOrder.order_id.in_(ids)))))
            .order_by(InvoiceRequest.id.desc()).limit(ORDERS_SHOWN)))
    return CustomerFile(customer, found, cases, invoices)
