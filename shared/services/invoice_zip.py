"""Finance's bulk download of issued invoices as one ZIP: the governed export kind `invoices_zip` (format zip).

The ZIP holds each issued part's PDF (the provider's when it sent one, else ours) named by its 20-digit invoice
number, and `manifest.csv` (number, date, buyer name as the requester's role may see it, amounts) that starts with
the export's watermark line, so `shared.exports.trace` reads the export id back from the ZIP. The ZIP's comment
carries the same line. Expiry, the 3 downloads and the access log are the export pipeline's, as for every export.
"""
import io
import zipfile

from sqlalchemy import select

from shared import exports as files
from shared.extensions import db
from shared.models import Order
from shared.models.invoices import InvoicePart, InvoiceRequest, InvoiceRequestOrder
from shared.security.masking import shown_value
from shared.services.errors import ValidationFailed
from shared.services.validation import N_, say

ZIP_ONLY = N_("Issued invoices are exported as a ZIP")

MANIFEST = "manifest.csv"
MANIFEST_HEADERS = ["number", "issued_on", "buyer_name", "buyer_kind", "kind", "total_amount", "total_tax",
                    "total_gross", "request_serial", "file"]
MAX_ORDER_NO = 64


def _query(filters: dict, zone: str):
    from shared.services.export_kinds import day_bounds

    query = (select(InvoicePart, InvoiceRequest).join(InvoiceRequest, InvoiceRequest.id == InvoicePart.request_id)
             .where(InvoicePart.status == "issued", InvoicePart.number.is_not(None)))
    start, end = day_bounds(filters, "date_from", "date_to", zone)
    if start is not None:
        query = query.where(InvoicePart.issued_at >= start)
    if end is not None:
        query = query.where(InvoicePart.issued_at < end)
    if filters.get("order_no"):
        query = query.where(InvoiceRequest.id.in_(
            select(InvoiceRequestOrder.request_id).join(Order, Order.id == InvoiceRequestOrder.order_id)
            .where(Order.order_no == filters["order_no"])))
    return query


def count(filters: dict, reader) -> int:
    from shared.services.export_kinds import count_rows

    return count_rows(_query(filters, reader.zone))


def buyer_name_for(request: InvoiceRequest, reader) -> str:
    """A company's name is not personal data; an individual's name is shown as the requester's role may see it."""
    if request.buyer_kind != "individual":
        return request.buyer_name
    return shown_value(reader.role, "name", request.buyer_name, reader.reveal)


def issued_on(part, zone: str) -> str:
    from shared import timekeeping

    return timekeeping.to_zone(part.issued_at, zone).date().isoformat() if part.issued_at else ""


PROGRESS_EVERY = 50  # PDFs between progress commits


def document(filters: dict, reader, format: str, watermark: files.Watermark, progress=None) -> tuple[bytes, int]:
    """The ZIP; `progress(done)` (the export job's) is told every PROGRESS_EVERY PDFs."""
    if format != "zip":
        raise ValidationFailed(say(ZIP_ONLY), field="format", code="unknown_export_format")
    rows, written = [], 0
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        ids = db.session.scalars(_query(filters, reader.zone).with_only_columns(InvoicePart.id)
                                 .order_by(InvoicePart.id)).all()
        for part_id in ids:  # one part (and its PDFs) in memory at a time
            part = db.session.get(InvoicePart, part_id)
            request = part.request
            content = part.provider_pdf or part.rendered_pdf
            name = f"invoice-{part.number}.pdf" if content else ""
            if content:
                archive.writestr(name, bytes(content))
            rows.append([part.number, issued_on(part, reader.zone), buyer_name_for(request, reader), request.buyer_kind,
                         request.kind, part.total_amount, part.total_tax, part.total_gross, request.serial, name])
            written += 1
            db.session.expunge(part)
            if progress is not None and written % PROGRESS_EVERY == 0:
                progress(written)
        archive.writestr(MANIFEST, files.csv_bytes(MANIFEST_HEADERS, rows, zone=reader.zone, watermark=watermark))
        archive.comment = " ".join(watermark.line().split()).encode("utf-8")[:65535]
    return buffer.getvalue(), written


def manifest_of(file_bytes: bytes) -> bytes | None:
    """The manifest of an invoices ZIP, or None when the bytes are not one (e.g. an XLSX, also a ZIP)."""
    try:
        with zipfile.ZipFile(io.BytesIO(file_bytes)) as archive:
            if MANIFEST not in archive.namelist():
                return None
            return archive.read(MANIFEST)
    except (zipfile.BadZipFile, KeyError, OSError):
        return None
