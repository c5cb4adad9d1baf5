"""Reading invoice requests for finance's queue, an order's invoice history and a customer's own invoices. The
changes (request, resubmit, cancel) stay in shared/services/invoices.py; this module only finds and shows."""
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from shared import paging
from shared.extensions import db
from shared.models import Order
from shared.models.invoices import InvoicePart, InvoiceRequest, InvoiceRequestOrder
from shared.security.masking import masked_id_number, masked_name
from shared.security.permissions import Visibility, visibility
from shared.services.errors import ValidationFailed
from shared.services.invoice_profiles import masked_value
from shared.services.validation import N_, say

UNKNOWN_STATE = N_("Unknown invoice state: %(state)s")
ORDER_NO_TOO_LONG = N_("The order number is too long")

# The queue's filters: a lifecycle state, "held" (still requested, held for the credit line), or "red" (with a
# red-letter reversal, 红字, in any state).
QUEUE_FILTERS = ("requested", "submitted", "issuing", "issued", "failed", "cancelled", "held", "red")
PAGE_SIZE = 50
MAX_ORDER_NO = 64


def queue(status: str | None = None, order_no: str | None = None, cursor: str | None = None,
          back: str | None = None, limit: int = PAGE_SIZE) -> paging.Window:
    """One page of invoice requests, newest first, by state and/or order number; an unknown state is refused."""
    query = select(InvoiceRequest).options(selectinload(InvoiceRequest.parts),
                                           selectinload(InvoiceRequest.orders).selectinload(InvoiceRequestOrder.order))
    query = filtered(query, status, order_no)
    return paging.window(db.session, query, InvoiceRequest.id, InvoiceRequest.id, cursor=cursor, limit=limit,
                         descending=True, back=back)


def clean_filters(status: str | None, order_no: str | None) -> dict:
    """The queue's filters checked (an unknown state or an over-long order number refused), empty ones left out."""
    status = (status or "").strip() or None
    if status and status not in QUEUE_FILTERS:
        raise ValidationFailed(say(UNKNOWN_STATE, state=status[:20]), field="status", code="invalid_status")
    number = (order_no or "").strip().upper()
    if len(number) > MAX_ORDER_NO:
        raise ValidationFailed(say(ORDER_NO_TOO_LONG), field="order_no", code="too_long")
    return {key: value for key, value in (("status", status), ("order_no", number)) if value}


def filtered(query, status: str | None = None, order_no: str | None = None):
    """A query over InvoiceRequest narrowed to the queue's filters (the page and the invoice ledger export)."""
    filters = clean_filters(status, order_no)
    status, number = filters.get("status"), filters.get("order_no")
    if status == "held":
        query = query.where(InvoiceRequest.status == "requested", InvoiceRequest.held_reason.is_not(None))
    elif status == "red":
        from shared.models.invoices import RedLetter

        query = query.where(InvoiceRequest.id.in_(
            select(InvoicePart.request_id).join(RedLetter, RedLetter.part_id == InvoicePart.id)))
    elif status:
        query = query.where(InvoiceRequest.status == status)
    if number:
        query = query.where(InvoiceRequest.id.in_(
            select(InvoiceRequestOrder.request_id).join(Order, Order.id == InvoiceRequestOrder.order_id)
            .where(Order.order_no == number)))
    return query


def requests_for_order(order_id: int) -> list[InvoiceRequest]:
    """Every invoice request an order is on, newest first (with their parts)."""
    return list(db.session.scalars(
        select(InvoiceRequest).options(selectinload(InvoiceRequest.parts))
        .join(InvoiceRequestOrder, InvoiceRequestOrder.request_id == InvoiceRequest.id)
        .where(InvoiceRequestOrder.order_id == order_id).order_by(InvoiceRequest.id.desc())))


def issued_parts_for_customer_order(customer_id: int, order_id: int) -> list[tuple[InvoiceRequest, InvoicePart]]:
    """The issued invoices of one of the customer's orders (owner-scoped in SQL)."""
    rows = db.session.execute(
        select(InvoiceRequest, InvoicePart).join(InvoicePart, InvoicePart.request_id == InvoiceRequest.id)
        .join(InvoiceRequestOrder, InvoiceRequestOrder.request_id == InvoiceRequest.id)
        .where(InvoiceRequest.customer_id == customer_id, InvoiceRequestOrder.order_id == order_id,
               InvoicePart.status == "issued")
        .order_by(InvoiceRequest.id.desc(), InvoicePart.position)).all()
    return [(request, part) for request, part in rows]


def request_for_customer(customer_id: int, request_id: int) -> InvoiceRequest | None:
    """The customer's own invoice request; anyone else's (or none) is None, whatever the id says."""
    if not 0 < request_id <= 2 ** 31 - 1:
        return None
    return db.session.execute(select(InvoiceRequest).where(InvoiceRequest.id == request_id,
                                                           InvoiceRequest.customer_id == customer_id)
                              ).scalar_one_or_none()


# The buyer snapshot's personal parts and the permission-table field each is shown by; an individual's name and
# id number too (a company's name and tax id are not personal data).
_PERSONAL = {"address_phone": ("address", "address"), "bank_account": ("address", "account"),
             "email": ("email", "email")}
_INDIVIDUAL = {"name": ("name", None), "tax_id": ("id_number", None)}


def buyer_shown_to(request: InvoiceRequest, role: str) -> tuple[dict, list[str]]:
    """The buyer snapshot as a staff role sees it (masked unless its field visibility is full) and the fields
    shown in full, which the caller writes to the access log."""
    body = {"kind": request.buyer_kind, "name": request.buyer_name, "tax_id": request.buyer_tax_id,
            "address_phone": request.buyer_address_phone, "bank_account": request.buyer_bank_account,
            "email": request.buyer_email}
    governed = {**_PERSONAL, **(_INDIVIDUAL if request.buyer_kind == "individual" else {})}
    shown = []
    for field, (governed_by, mask_as) in governed.items():
        if not body[field]:
            continue
        level = visibility(role, governed_by)
        if level is Visibility.FULL:
            shown.append(field)
        elif level is Visibility.HIDDEN:
            body[field] = "—"
        elif field == "name":
            body[field] = masked_name(body[field])
        elif field == "tax_id":
            body[field] = masked_id_number(body[field])
        else:
            body[field] = masked_value(mask_as, body[field])
    return body, shown


def refusal_text(refused) -> str:
    """A refusal of the invoice services in the reader's words (zh/en), called by the portal and the customer site;
    the SKUs that lack tax data are listed."""
    from flask_babel import gettext as _

    code = refused.code
    if code == "missing_tax_code":
        skus = ", ".join(f"{item['sku']} ({item['name']})" for item in getattr(refused, "missing", []))
        return _("These SKUs lack their tax data (tax classification code, rate or unit): %(skus)s", skus=skus)
    texts = {
        "order_not_invoiceable": _("This order cannot be invoiced in its present state."),
        "already_invoiced": _("This order is already invoiced or being invoiced."),
        "special_not_allowed": _("A special VAT invoice (专票) needs an enterprise, institution or other buyer with "
                                 "a valid tax id; an individual may ask for a normal invoice (普票)."),
        "unknown_profile": _("Choose one of this buyer's invoice profiles."),
        "invalid_profile": _("Choose one of this buyer's invoice profiles."),
        "invalid_kind": _("Choose a normal (普票) or special (专票) invoice."),
        "invalid_invoice_request_transition": _("This invoice request cannot do that in its present state."),
        "not_issued": _("This invoice is not issued yet."),
        "pdf_not_ready": _("The invoice PDF is being made: try again in a moment."),
        "unknown_part": _("This invoice request has no such invoice."),
    }
    return texts.get(code, refused.message)
