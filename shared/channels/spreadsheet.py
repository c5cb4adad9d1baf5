"""CSV and Excel import for offline stores and platform exports: one row per order line, grouped into orders.

Each grouped order is stored in the inbox as JSON (source "import") and processed like any other payload,
so an imported order is validated, mapped and made idempotent exactly as a synced one.
"""
import csv
import io
from datetime import datetime

from shared.channels.base import Adapter
from shared.channels.canonical import (CanonicalLine, CanonicalOrder, PayloadProblem, local_time, need,
                                       offset_time, quantity_of, text_of, yuan)
from shared.services.validation import N_, say

# What a person reads when this module refuses: message codes, said in the reader's language (say).
INVALID_CURRENCY = N_("%(where)s: currency must be a 3-letter code")
# Why a whole file is refused (SpreadsheetError): the importers show these to the person who uploaded it.
FILE_TOO_LARGE = N_("The file is larger than %(megabytes)s MB: split it and upload the parts")
NOT_XLSX = N_("Not a readable .xlsx file (%(kind)s): save it again from Excel, or as .csv")
NOT_UTF8_OR_GB18030 = N_("The CSV file is neither UTF-8 nor GB18030 text: save it again as UTF-8")
CSV_UNREADABLE = N_("The CSV file cannot be read: %(error)s")
NOT_CSV_OR_XLSX = N_("Upload a .csv or .xlsx file")
FILE_EMPTY = N_("The file is empty")
HEADER_LACKS = N_("The header row lacks: %(columns)s")
TOO_MANY_ROWS = N_("At most %(limit)s rows per file: split it and upload the parts")

COLUMNS = ("channel_order_id", "placed_at", "paid_at", "currency", "customer_name", "customer_phone", "receiver",
           "receiver_phone", "province", "city", "district", "street", "postal_code", "sku", "quantity",
           "unit_price", "shipping_fee", "discount", "paid_amount")
REQUIRED = ("channel_order_id", "placed_at", "receiver", "receiver_phone", "province", "city", "district", "street",
            "sku", "quantity", "unit_price", "paid_amount")
ORDER_FIELDS = tuple(c for c in COLUMNS if c not in ("sku", "quantity", "unit_price"))
MAX_ROWS = 50_000
MAX_BYTES = 10 * 1024 * 1024


class SpreadsheetError(ValueError):
    """The file as a whole cannot be read (wrong type, missing header); nothing is imported."""


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def read_rows(filename: str, data: bytes) -> list[dict]:
    """Order rows as dicts keyed by the header, from .csv (UTF-8, with or without BOM, or GB18030) or .xlsx."""
    return [row for _line, row in read_table(filename, data, REQUIRED)]


def read_table(filename: str, data: bytes, required: tuple[str, ...]) -> list[tuple[int, dict]]:
    """(line number in the file, row keyed by the lower-cased header) for every non-empty row after the header."""
    if len(data) > MAX_BYTES:
        raise SpreadsheetError(say(FILE_TOO_LARGE, megabytes=MAX_BYTES // (1024 * 1024)))
    name = (filename or "").lower()
    if name.endswith(".xlsx"):
        from openpyxl import load_workbook

        try:
            sheet = load_workbook(io.BytesIO(data), read_only=True, data_only=True).active
        except Exception as error:  # openpyxl raises many kinds for a damaged file
            raise SpreadsheetError(say(NOT_XLSX, kind=type(error).__name__)) from None
        table = [[_cell(value) for value in row] for row in sheet.iter_rows(values_only=True)]
    elif name.endswith(".csv"):
        for encoding in ("utf-8-sig", "gb18030"):
            try:
                text = data.decode(encoding)
                break
            except UnicodeDecodeError:
                continue
        else:
            raise SpreadsheetError(say(NOT_UTF8_OR_GB18030))
        try:
            table = [[cell.strip() for cell in row] for row in csv.reader(io.StringIO(text))]
        except csv.Error as error:  # a field over the size limit, a NUL byte, a broken quote
            raise SpreadsheetError(say(CSV_UNREADABLE, error=error)) from None
    else:
        raise SpreadsheetError(say(NOT_CSV_OR_XLSX))
    table = [(line, row) for line, row in enumerate(table, start=1) if any(row)]
    if not table:
        raise SpreadsheetError(say(FILE_EMPTY))
    header = [cell.strip().lower() for cell in table[0][1]]
    missing = [column for column in required if column not in header]
    if missing:
        raise SpreadsheetError(say(HEADER_LACKS, columns=", ".join(missing)))
    if len(table) - 1 > MAX_ROWS:
        raise SpreadsheetError(say(TOO_MANY_ROWS, limit=MAX_ROWS))
    return [(line, dict(zip(header, row + [""] * (len(header) - len(row))))) for line, row in table[1:]]


def group_orders(rows: list[dict]) -> list[dict]:
    """One JSON-ready order per channel_order_id; order-level columns are taken from its first row."""
    orders: dict[str, dict] = {}
    for number, row in enumerate(rows, start=2):
        key = row.get("channel_order_id", "").strip()
        if key not in orders:
            orders[key] = {field: row.get(field, "") for field in ORDER_FIELDS} | {"lines": [], "rows": []}
        orders[key]["lines"].append({"sku": row.get("sku", ""), "quantity": row.get("quantity", ""),
                                     "unit_price": row.get("unit_price", "")})
        orders[key]["rows"].append(number)
    return list(orders.values())


def _time(value: str, zone: str, field_name: str) -> datetime:
    """Local `yyyy-MM-dd HH:mm:ss` in the channel's zone, or ISO 8601 with an offset."""
    if "T" in value:
        return offset_time(value, field_name)
    return local_time(value, zone, field_name)


class ImportAdapter(Adapter):
    """Reads the grouped-row JSON that `group_orders` produces; used by offline, own-shop and mini-program."""

    kind = "import"
    default_status_map = {
        "paid": ("confirmed", "paid", None),
        "unpaid": ("pending_review", "unpaid", None),
    }

    def external_id(self, raw: dict) -> str | None:
        return raw.get("channel_order_id") or None

    def status_of(self, raw: dict) -> str | None:
        return "paid" if raw.get("paid_at") else "unpaid"

    def parse(self, raw: dict, zone: str) -> CanonicalOrder:
        rows = raw.get("rows") or []
        where = f"rows {', '.join(map(str, rows))}" if rows else "row"
        lines = []
        for index, line in enumerate(need(raw, "lines")):
            lines.append(CanonicalLine(
                channel_sku=text_of(need(line, "sku", f"lines[{index}]"), f"{where}: sku", 64),
                quantity=quantity_of(need(line, "quantity", f"lines[{index}]"), f"{where}: quantity"),
                unit_price=yuan(need(line, "unit_price", f"lines[{index}]"), f"{where}: unit_price"),
            ))
        paid = raw.get("paid_at")
        receiver = text_of(need(raw, "receiver"), "receiver", 60)
        receiver_phone = text_of(need(raw, "receiver_phone"), "receiver_phone", 32)
        currency = (raw.get("currency") or "CNY").upper()
        if len(currency) != 3:
            raise PayloadProblem(say(INVALID_CURRENCY, where=where), field="currency",
                                 code="invalid_currency")
        placed_at = _time(need(raw, "placed_at"), zone, "placed_at")
        return CanonicalOrder(
            channel_order_id=text_of(need(raw, "channel_order_id"), "channel_order_id", 64),
            status_key="paid" if paid else "unpaid",
            modified_at=placed_at if not paid else max(placed_at, _time(paid, zone, "paid_at")),
            placed_at=placed_at,
            paid_at=_time(paid, zone, "paid_at") if paid else None,
            currency=currency,
            customer_name=raw.get("customer_name") or receiver,
            customer_phone=raw.get("customer_phone") or receiver_phone,
            receiver=receiver, receiver_phone=receiver_phone,
            province=text_of(need(raw, "province"), "province", 40),
            city=text_of(need(raw, "city"), "city", 40),
            district=text_of(need(raw, "district"), "district", 40),
            street=text_of(need(raw, "street"), "street", 200),
            postal_code=raw.get("postal_code") or None,
            lines=lines,
            shipping_fee=yuan(raw.get("shipping_fee") or "0.00", "shipping_fee"),
            discount=yuan(raw.get("discount") or "0.00", "discount"),
            paid_amount=yuan(need(raw, "paid_amount"), "paid_amount"),
        )
