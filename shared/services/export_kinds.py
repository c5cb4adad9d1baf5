"""What can be exported: one `ExportKind` per kind, in one registry. A new kind (e.g. invoices) is one `register`.

Each kind names the permission it needs besides `exports` edit (the rows are what that page shows), the filters
it takes (validated here, stored on the export), the personal fields it can reveal, and how to count and read its
rows in id order, a batch at a time. Rows show personal fields as the reader's role sees them: masked or hidden,
and in full only where the role's visibility is FULL and the export was cleared (`Reader.reveal`).
"""
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from shared import labels
from shared.extensions import db
from shared.models import (AccessLogEntry, AuditEvent, BulkJob, BulkJobItem, Channel, Customer, Order,
                           ReconciliationReport)
from shared.security.masking import order_contact, shown_value
from shared.services.errors import ValidationFailed
from shared.services.validation import N_, say

# What a person reads when this module refuses: message codes, said in the reader's language (say).
UNKNOWN_EXPORT_KIND = N_("Unknown export kind \"%(code)s\"; known: %(kinds)s")
FILTER_TOO_LONG = N_("%(field)s is longer than %(limit)s characters")
RANGE_REVERSED = N_("%(low)s is after %(high)s")
UNKNOWN_STATUS = N_("Unknown order status \"%(status)s\"")
REPORT_NEEDED = N_("A reconciliation export needs the report's number")
NO_REPORT = N_("No reconciliation report %(raw)s")
UNKNOWN_DIFFERENCE = N_("Unknown difference kind \"%(difference)s\"")
NOT_A_DAY = N_("%(field)s is not a date (YYYY-MM-DD)")
NO_CHANNEL = N_("No channel \"%(channel)s\"")
NO_BULK_ACTION = N_("No bulk action \"%(bulk)s\"")

BATCH = 500


@dataclass(frozen=True)
class Reader:
    """Whose eyes the rows are for: the requester's role now, and whether personal fields may be shown in full."""

    role: str
    reveal: bool = False
    zone: str = "Asia/Shanghai"
    locale: str = "zh_CN"  # the requester's language: a report kind writes its words in it


@dataclass(frozen=True)
class ExportKind:
    code: str
    label: object  # lazy text, in the viewer's language
    permission: tuple[str, str]  # (resource, action) the requester's role needs besides exports edit
    headers: Callable[[Reader], list[str]]
    count: Callable[[dict, Reader], int]
    rows: Callable[[dict, Reader], Iterator[Sequence]]
    filter_fields: tuple[str, ...] = ()
    clean_filters: Callable[[dict], dict] = lambda filters: filters
    personal_fields: tuple[str, ...] = ()  # shared.security.permissions PERSONAL_FIELDS this kind can reveal
    sheet_title: str = "export"
    summary: Callable[[dict], str] = field(default=lambda filters: "")
    formats: tuple[str, ...] = ("csv", "xlsx")
    # A report that is not one table of rows (e.g. the access report, in XLSX or PDF) makes its whole file:
    # document(filters, reader, format, watermark) -> (bytes, rows); headers/count/rows are then unused.
    document: Callable | None = None
    # A document kind that reports its progress: document(..., progress=done_so_far) is called, committing it.
    document_progress: bool = False


KINDS: dict[str, ExportKind] = {}


def register(kind: ExportKind) -> ExportKind:
    assert kind.code not in KINDS, f"export kind {kind.code} registered twice"
    KINDS[kind.code] = kind
    return kind


def get(code: str) -> ExportKind:
    kind = KINDS.get(code)
    if kind is None:
        raise ValidationFailed(say(UNKNOWN_EXPORT_KIND, code=str(code)[:40], kinds=', '.join(KINDS)), field="kind",
                               code="unknown_export_kind")
    return kind


# --- filter helpers ----------------------------------------------------------------------------------------

def _text(filters: dict, name: str, max_chars: int) -> str | None:
    value = filters.get(name)
    if value in (None, ""):
        return None
    value = str(value).strip()
    if len(value) > max_chars:
        raise ValidationFailed(say(FILTER_TOO_LONG, field=name, limit=max_chars), field=name, code="invalid_filter")
    return value or None


def _day(filters: dict, name: str) -> str | None:
    value = _text(filters, name, 10)
    if value is None:
        return None
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise ValidationFailed(say(NOT_A_DAY, field=name), field=name, code="invalid_filter") from None


def _day_range(filters: dict, low: str, high: str) -> dict:
    days = {low: _day(filters, low), high: _day(filters, high)}
    if days[low] and days[high] and days[low] > days[high]:
        raise ValidationFailed(say(RANGE_REVERSED, low=low, high=high), field=low, code="invalid_filter")
    return days


def _utc_bounds(filters: dict, low: str, high: str, zone: str) -> tuple[datetime | None, datetime | None]:
    """Merchant-zone calendar days as a UTC half-open range [start of low, start of the day after high)."""
    tz = ZoneInfo(zone)
    start = datetime.combine(date.fromisoformat(filters[low]), time(), tz) if filters.get(low) else None
    end = (datetime.combine(date.fromisoformat(filters[high]), time(), tz) + timedelta(days=1)
           if filters.get(high) else None)
    return start, end


def _compact(values: dict) -> dict:
    return {key: value for key, value in values.items() if value not in (None, "")}


def _batches(query, id_column) -> Iterator[list]:
    """The query's rows in id order, a batch at a time (keyset, so a long export never OFFSETs)."""
    last = 0
    while True:
        batch = db.session.execute(query.where(id_column > last).order_by(id_column).limit(BATCH)).all()
        if not batch:
            return
        last = batch[-1][0].id if hasattr(batch[-1][0], "id") else batch[-1][0]
        yield batch


def _let_go(batch: list) -> None:
    for row in batch:
        db.session.expunge(row[0])


def _count(query) -> int:
    return db.session.execute(select(func.count()).select_from(query.order_by(None).subquery())).scalar_one()


# --- orders ------------------------------------------------------------------------------------------------

ORDER_HEADERS = ["order_no", "channel", "channel_order_id", "status", "payment_status", "refund_status", "currency",
                 "goods_total", "shipping_fee", "discount", "total", "placed_at", "paid_at", "shipped_at",
                 "receiver", "phone", "province", "city", "district", "address"]


def _order_filters(filters: dict) -> dict:
    status = _text(filters, "status", 20)
    if status and status not in labels.STATUS:
        raise ValidationFailed(say(UNKNOWN_STATUS, status=status), field="status", code="invalid_filter")
    channel = _text(filters, "channel", 8)
    if channel:
        channel = channel.upper()
        if db.session.execute(select(Channel.id).where(Channel.code == channel)).scalar_one_or_none() is None:
            raise ValidationFailed(say(NO_CHANNEL, channel=channel), field="channel", code="invalid_filter")
    bulk = _text(filters, "bulk", 24)
    if bulk and db.session.execute(select(BulkJob.id).where(BulkJob.public_id == bulk)).scalar_one_or_none() is None:
        raise ValidationFailed(say(NO_BULK_ACTION, bulk=bulk), field="bulk", code="invalid_filter")
    return _compact({"status": status, "channel": channel, "bulk": bulk,
                     **_day_range(filters, "placed_from", "placed_to")})


def _order_query(filters: dict, zone: str = "Asia/Shanghai"):
    query = select(Order, Channel.code).join(Channel, Channel.id == Order.channel_id)
    if filters.get("status"):
        query = query.where(Order.status == filters["status"])
    if filters.get("channel"):
        query = query.where(Channel.code == filters["channel"])
    if filters.get("bulk"):  # the orders a bulk action froze (its selection on the order list)
        query = query.where(Order.id.in_(select(BulkJobItem.order_id).join(BulkJob, BulkJob.id == BulkJobItem.job_id)
                                         .where(BulkJob.public_id == filters["bulk"])))
    start, end = _utc_bounds(filters, "placed_from", "placed_to", zone)
    if start is not None:
        query = query.where(Order.placed_at >= start)
    if end is not None:
        query = query.where(Order.placed_at < end)
    return query


def _order_rows(filters: dict, reader: Reader) -> Iterator[list]:
    for batch in _batches(_order_query(filters, reader.zone), Order.id):
        rows = []
        for order, channel_code in batch:
            contact = order_contact(order, reader.role, reveal=reader.reveal)
            rows.append([order.order_no, channel_code, order.channel_order_id, order.status, order.payment_status,
                         order.refund_status, order.currency, order.goods_total, order.shipping_fee, order.discount,
                         order.total, order.placed_at, order.paid_at, order.shipped_at, contact["receiver"],
                         contact["phone"], contact["province"], contact["city"], contact["district"],
                         contact["address"]])
        _let_go(batch)  # a long export must not keep every row it has read in the session
        yield from rows


register(ExportKind(
    code="orders", label=_l("Orders"), permission=("orders", "view"), headers=lambda reader: list(ORDER_HEADERS),
    count=lambda filters, reader: _count(_order_query(filters, reader.zone)), rows=_order_rows,
    filter_fields=("status", "channel", "placed_from", "placed_to", "bulk"), clean_filters=_order_filters,
    personal_fields=("name", "phone", "address"), sheet_title="orders"))


# --- customers ---------------------------------------------------------------------------------------------

CUSTOMER_HEADERS = ["customer_id", "name", "phone", "email", "id_number", "tier", "created_at"]


def _customer_rows(filters: dict, reader: Reader) -> Iterator[list]:
    def shown(field_name: str, value):
        return shown_value(reader.role, field_name, value, reader.reveal) if value else ""

    for batch in _batches(select(Customer), Customer.id):
        rows = [[c.id, shown("name", c.name), shown("phone", c.phone), shown("email", c.email),
                 shown("id_number", c.id_number), c.tier, c.created_at] for (c,) in batch]
        _let_go(batch)
        yield from rows


register(ExportKind(
    code="customers", label=_l("Customers"), permission=("customers", "view"),
    headers=lambda reader: list(CUSTOMER_HEADERS), count=lambda filters, reader: _count(select(Customer)),
    rows=_customer_rows, personal_fields=("name", "phone", "email", "id_number"), sheet_title="customers"))


# --- access log --------------------------------------------------------------------------------------------

ACCESS_HEADERS = ["id", "occurred_at_utc", "actor", "ip", "action", "entity_type", "entity_id", "fields", "channel"]


def _access_query(filters: dict, zone: str = "Asia/Shanghai"):
    query = select(AccessLogEntry)
    start, end = _utc_bounds(filters, "date_from", "date_to", zone)
    if start is not None:
        query = query.where(AccessLogEntry.occurred_at >= start)
    if end is not None:
        query = query.where(AccessLogEntry.occurred_at < end)
    return query


def _access_rows(filters: dict, reader: Reader) -> Iterator[list]:
    for batch in _batches(_access_query(filters, reader.zone), AccessLogEntry.id):
        rows = [[e.id, e.occurred_at.isoformat(), e.actor_label, e.ip, e.action, e.entity_type, e.entity_id, e.fields,
                 e.channel] for (e,) in batch]
        _let_go(batch)
        yield from rows


register(ExportKind(
    code="access_log", label=_l("Access log"), permission=("access_log", "view"),
    headers=lambda reader: list(ACCESS_HEADERS),
    count=lambda filters, reader: _count(_access_query(filters, reader.zone)), rows=_access_rows,
    filter_fields=("date_from", "date_to"),
    clean_filters=lambda filters: _compact(_day_range(filters, "date_from", "date_to")), sheet_title="access log"))


# --- audit trail -------------------------------------------------------------------------------------------

AUDIT_HEADERS = ["seq", "id", "occurred_at_utc", "actor", "ip", "action", "entity_type", "entity_id", "before",
                 "after", "reason"]


def audit_filters(filters: dict) -> dict:
    return _compact({"action": _text(filters, "action", 64), "entity": _text(filters, "entity", 64),
                     "actor": _text(filters, "actor", 120)})


def audit_event_query(filters: dict):
    """The audit events the filters ask for (the audit page shows them newest first; an export reads by id)."""
    query = select(AuditEvent)
    if filters.get("action"):
        query = query.where(AuditEvent.action.startswith(filters["action"], autoescape=True))
    if filters.get("entity"):
        query = query.where(AuditEvent.entity_id == filters["entity"])
    if filters.get("actor"):
        query = query.where(AuditEvent.actor_label == filters["actor"])
    return query


def _audit_rows(filters: dict, reader: Reader) -> Iterator[list]:
    from shared.services import audit

    def as_json(values):
        shown = audit.visible_values(values, event.entity_type, reader.role)
        return json.dumps(shown, ensure_ascii=False) if shown else ""

    for batch in _batches(audit_event_query(filters), AuditEvent.id):
        rows = []
        for (event,) in batch:
            rows.append([event.seq, event.id, event.occurred_at.isoformat(), event.actor_label, event.ip,
                         event.action, event.entity_type, event.entity_id, as_json(event.before),
                         as_json(event.after), event.reason])
        _let_go(batch)
        yield from rows


register(ExportKind(
    code="audit", label=_l("Audit trail"), permission=("audit", "view"), headers=lambda reader: list(AUDIT_HEADERS),
    count=lambda filters, reader: _count(audit_event_query(filters)), rows=_audit_rows,
    filter_fields=("action", "entity", "actor"), clean_filters=audit_filters, sheet_title="audit trail"))


# --- channel reconciliation reports ------------------------------------------------------------------------

def _reconciliation_filters(filters: dict) -> dict:
    raw = _text(filters, "report_id", 12)
    if raw is None or not raw.isdigit():
        raise ValidationFailed(say(REPORT_NEEDED), field="report_id",
                               code="invalid_filter")
    if db.session.get(ReconciliationReport, int(raw)) is None:
        raise ValidationFailed(say(NO_REPORT, raw=raw), field="report_id", code="invalid_filter")
    difference = _text(filters, "difference", 20)
    if difference and difference not in labels.DIFFERENCE:
        raise ValidationFailed(say(UNKNOWN_DIFFERENCE, difference=difference), field="difference",
                               code="invalid_filter")
    return _compact({"report_id": int(raw), "difference": difference})


def _reconciliation_differences(filters: dict) -> list:
    from shared.services import reconciliation

    return reconciliation.differences(filters["report_id"], filters.get("difference"))


def _reconciliation_rows(filters: dict, reader: Reader) -> Iterator[list]:
    for d in _reconciliation_differences(filters):
        yield [d.kind, d.channel_order_id, d.platform_status, d.expected_status, d.local_status, d.order_no]


def _reconciliation_headers(reader: Reader) -> list[str]:
    from shared.services import reconciliation

    return reconciliation.REPORT_HEADERS


register(ExportKind(
    code="reconciliation", label=_l("Channel reconciliation report"), permission=("channels", "view"),
    headers=_reconciliation_headers, count=lambda filters, reader: len(_reconciliation_differences(filters)),
    rows=_reconciliation_rows, filter_fields=("report_id", "difference"), clean_filters=_reconciliation_filters,
    sheet_title="reconciliation"))


# --- the access report for auditors (shared/services/access_report.py) -----------------------------------

def _access_report_filters(filters: dict) -> dict:
    from shared.services import access_report

    return access_report.clean_filters(filters)


def _access_report_document(filters: dict, reader: Reader, format: str, watermark) -> tuple[bytes, int]:
    from shared.services import access_report

    return access_report.document(filters, reader, format, watermark)


register(ExportKind(
    code="access_report", label=_l("Access report"), permission=("access_log", "view"),
    headers=lambda reader: [], count=lambda filters, reader: 0, rows=lambda filters, reader: iter(()),
    filter_fields=("date_from", "date_to"), clean_filters=_access_report_filters, sheet_title="access report",
    formats=("xlsx", "pdf"), document=_access_report_document))


# --- issued invoices as one ZIP for finance (shared/services/invoice_zip.py) ------------------------------------

def _invoices_zip_filters(filters: dict) -> dict:
    """Issued invoices only (the kind's whole point); optional issue-date range and order number."""
    from shared.services import invoice_zip

    order_no = _text(filters, "order_no", invoice_zip.MAX_ORDER_NO)
    return _compact({**_day_range(filters, "date_from", "date_to"),
                     "order_no": order_no.upper() if order_no else None})


def day_bounds(filters: dict, low: str, high: str, zone: str) -> tuple[datetime | None, datetime | None]:
    """For kinds made elsewhere: the filters' merchant-zone days as a UTC half-open range."""
    return _utc_bounds(filters, low, high, zone)


def count_rows(query) -> int:
    return _count(query)


def _invoices_zip_count(filters: dict, reader: Reader) -> int:
    from shared.services import invoice_zip

    return invoice_zip.count(filters, reader)


def _invoices_zip_document(filters: dict, reader: Reader, format: str, watermark, progress=None) -> tuple[bytes, int]:
    from shared.services import invoice_zip

    return invoice_zip.document(filters, reader, format, watermark, progress=progress)


register(ExportKind(
    code="invoices_zip", label=_l("Issued invoices (ZIP of PDFs)"), permission=("invoices", "view"),
    headers=lambda reader: [], count=_invoices_zip_count, rows=lambda filters, reader: iter(()),
    filter_fields=("date_from", "date_to", "order_no"), clean_filters=_invoices_zip_filters,
    personal_fields=("name",), sheet_title="invoices", formats=("zip",), document=_invoices_zip_document,
    document_progress=True))


# --- the invoice queue as a ledger for finance (shared/services/invoice_ledger.py) ------------------------------

def _invoice_ledger_filters(filters: dict) -> dict:
    from shared.services import invoice_ledger

    return invoice_ledger.clean_filters(filters)


def _invoice_ledger_count(filters: dict, reader: Reader) -> int:
    from shared.services import invoice_ledger

    return invoice_ledger.count(filters, reader)


def _invoice_ledger_rows(filters: dict, reader: Reader) -> Iterator[list]:
    from shared.services import invoice_ledger

    return invoice_ledger.rows(filters, reader)


def _invoice_ledger_headers(reader: Reader) -> list[str]:
    from shared.services import invoice_ledger

    return list(invoice_ledger.HEADERS)


register(ExportKind(
    code="invoice_ledger", label=_l("Invoice ledger"), permission=("invoices", "view"),
    headers=_invoice_ledger_headers, count=_invoice_ledger_count, rows=_invoice_ledger_rows,
    filter_fields=("status", "order_no"), clean_filters=_invoice_ledger_filters,
    personal_fields=("name", "id_number"), sheet_title="invoice ledger"))
