"""Finance's invoice ledger: the governed export kind `invoice_ledger` (CSV or XLSX) of the invoice queue with the
queue's filters (state, order number), one row per invoice part (a request not split into parts yet: one row).

Each row: the request, its order numbers, the buyer (an individual's name and id number as the requester's role may
see them, in full only for a cleared personal export; a company's name and tax id are not personal data), kind,
states, the invoice number and issue date, amount, tax and gross, the issued red-letter reversals (numbers and their
gross, negative) and the failure reason. Permission, clearance, the approval gate, watermark and retention are the
export pipeline's (shared/services/exports.py), as for every export kind.
"""
from collections.abc import Iterator
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from shared.extensions import db
from shared.models.invoices import InvoicePart, InvoiceRequest, InvoiceRequestOrder
from shared.security.masking import shown_value
from shared.services import invoice_queue, invoice_zip

HEADERS = ["request_id", "request_serial", "order_numbers", "buyer_name", "buyer_tax_id", "buyer_kind", "kind",
           "status", "part", "part_status", "number", "issued_on", "amount", "tax", "gross", "red_numbers",
           "red_gross", "failure_reason"]
BATCH = 200  # requests per read (their parts, orders and reds loaded with them)


def clean_filters(filters: dict) -> dict:
    return invoice_queue.clean_filters(filters.get("status"), filters.get("order_no"))


def count(filters: dict, reader) -> int:
    """Rows the ledger will have: each part, and each request without parts once."""
    requests = invoice_queue.filtered(select(InvoiceRequest.id), filters.get("status"), filters.get("order_no"))
    rows = select(func.count()).select_from(InvoiceRequest).outerjoin(
        InvoicePart, InvoicePart.request_id == InvoiceRequest.id).where(InvoiceRequest.id.in_(requests))
    return db.session.execute(rows).scalar_one()


def _tax_id(request: InvoiceRequest, reader) -> str:
    if not request.buyer_tax_id:
        return ""
    if request.buyer_kind != "individual":
        return request.buyer_tax_id
    return shown_value(reader.role, "id_number", request.buyer_tax_id, reader.reveal)


def _row(request: InvoiceRequest, part: InvoicePart | None, reader) -> list:
    orders = " ".join(link.order.order_no for link in request.orders)
    head = [request.id, request.serial, orders, invoice_zip.buyer_name_for(request, reader), _tax_id(request, reader),
            request.buyer_kind, request.kind, request.status]
    if part is None:
        return head + ["", "", "", "", request.total_amount, request.total_tax, request.total_gross, "", "",
                       request.failure_reason or request.held_reason or ""]
    reds = [red for red in part.reds if red.number]
    return head + [part.position, part.status, part.number or "", invoice_zip.issued_on(part, reader.zone),
                   part.total_amount, part.total_tax, part.total_gross, " ".join(red.number for red in reds),
                   sum((red.total_gross for red in reds), Decimal("0.00")) if reds else "",
                   part.failure_reason or request.failure_reason or ""]


def rows(filters: dict, reader) -> Iterator[list]:
    """The rows in request id order, a batch of requests at a time (keyset; each batch let go once written)."""
    query = invoice_queue.filtered(select(InvoiceRequest), filters.get("status"), filters.get("order_no")).options(
        selectinload(InvoiceRequest.parts).selectinload(InvoicePart.reds),
        selectinload(InvoiceRequest.orders).selectinload(InvoiceRequestOrder.order))
    last = 0
    while True:
        batch = db.session.scalars(query.where(InvoiceRequest.id > last).order_by(InvoiceRequest.id).limit(BATCH)
                                   ).all()
        if not batch:
            return
        last = batch[-1].id
        out = [_row(request, part, reader) for request in batch for part in (request.parts or [None])]
        for request in batch:  # a long ledger must not keep every request it has read in the session
            db.session.expunge(request)
        yield from out
