"""Report rows as CSV or XLSX downloads that open correctly in Excel and cannot smuggle in formulas.

Text cells that start with = + - @ tab or CR get a leading apostrophe (the OWASP "CSV injection" guard), so a
customer named "=HYPERLINK(...)" stays text. Numbers (int, float, Decimal) are never touched: -12.50 is a number.
Aware datetimes are shown in the given zone; naive ones are written as they are (taken as already local).
"""
import csv
import io
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ERROR_CODES, ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
DEFAULT_ZONE = "Asia/Shanghai"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
DATE_FORMAT = "yyyy-mm-dd"
XLSX_MAX_CELL_CHARS = 32767  # Excel's limit; openpyxl would cut silently
SHEET_TITLE_MAX_CHARS = 31


def neutralise_formula(text: str) -> str:
    """Text that a spreadsheet would read as a formula, prefixed with an apostrophe; other text unchanged."""
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


def _local(moment: datetime, zone: ZoneInfo) -> datetime:
    """A naive wall-clock time for the sheet: aware moments in the zone, naive ones as they are."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        return moment
    return moment.astimezone(zone).replace(tzinfo=None)


def _csv_cell(value, zone: ZoneInfo) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    if isinstance(value, datetime):
        return _local(value, zone).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, (date, time)):
        return value.isoformat()
    return neutralise_formula(str(value))


def csv_bytes(headers: list[str], rows: Iterable[Sequence], zone: str = DEFAULT_ZONE) -> bytes:
    """The rows as CSV, UTF-8 with a BOM (without it Excel reads Chinese as mojibake), CRLF line ends."""
    tz = ZoneInfo(zone)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([_csv_cell(header, tz) for header in headers])
    for row in rows:
        writer.writerow([_csv_cell(value, tz) for value in row])
    return buffer.getvalue().encode("utf-8-sig")


def _decimal_format(value: Decimal) -> str | None:
    """Show a Decimal with the places it has (12.50 stays 12.50, not 12.5)."""
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int) or exponent >= 0:
        return None
    return "0." + "0" * min(-exponent, 15)


def _xlsx_text(text: str) -> str:
    # Control characters are illegal in the XML behind a sheet: openpyxl would raise on the whole export.
    return neutralise_formula(ILLEGAL_CHARACTERS_RE.sub("", text))[:XLSX_MAX_CELL_CHARS]


def _xlsx_cell(sheet, value, zone: ZoneInfo):
    """A plain value where openpyxl infers it right (fast path), a WriteOnlyCell where it needs a type or format."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, Decimal):
        if not value.is_finite():
            return str(value)
        places = _decimal_format(value)
        if places is None:
            return value
        cell = WriteOnlyCell(sheet, value=value)
        cell.number_format = places
        return cell
    if isinstance(value, datetime):
        cell = WriteOnlyCell(sheet, value=_local(value, zone))
        cell.number_format = DATETIME_FORMAT
        return cell
    if isinstance(value, date):
        cell = WriteOnlyCell(sheet, value=value)
        cell.number_format = DATE_FORMAT
        return cell
    if isinstance(value, time):
        return value
    text = _xlsx_text(str(value))
    if text in ERROR_CODES:  # "#N/A" typed by a user is text, not an Excel error value
        cell = WriteOnlyCell(sheet, value=text)
        cell.data_type = "s"
        return cell
    return text


def xlsx_bytes(headers: list[str], rows: Iterable[Sequence], sheet_title: str = "report",
               zone: str = DEFAULT_ZONE) -> bytes:
    """The rows as an XLSX workbook, streamed (write-only) so 100k rows stay fast; bold, frozen header row."""
    tz = ZoneInfo(zone)
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=_sheet_title(sheet_title))
    sheet.freeze_panes = "A2"  # must be set before the first row is written
    bold = Font(bold=True)
    header_cells = []
    for header in headers:
        cell = WriteOnlyCell(sheet, value=_xlsx_text(str(header)))
        cell.font = bold
        header_cells.append(cell)
    sheet.append(header_cells)
    for row in rows:
        sheet.append([_xlsx_cell(sheet, value, tz) for value in row])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _sheet_title(title: str) -> str:
    """Excel refuses sheet titles over 31 characters or with any of []:*?/\\ in them."""
    cleaned = "".join("_" if char in '[]:*?/\\' else char for char in str(title)).strip("'")
    return cleaned[:SHEET_TITLE_MAX_CHARS] or "report"
