"""Report rows as CSV or XLSX downloads that open correctly in Excel and cannot smuggle in formulas.

Text cells that start with = + - @ tab or CR get a leading apostrophe (the OWASP "CSV injection" guard), so a
customer named "=HYPERLINK(...)" stays text. Numbers (int, float, Decimal) are never touched: -12.50 is a number.
Aware datetimes are shown in the given zone; naive ones are written as they are (taken as already local).

A governed export (shared/services/exports.py) passes a `Watermark`: the exporter, the time (merchant zone) and
the export id go into a visible line (CSV: the first line after the BOM; XLSX: the first row of the sheet and the
printed header and footer) and into a per-file marker (XLSX: the core document properties of ECMA-376 Part 2 /
OPC, i.e. dc:creator, dc:title, dc:identifier, cp:keywords, dc:description, and a very hidden sheet). `trace`
reads the export id back from either format (and from a PDF report's /Keywords, and from an invoices ZIP's
manifest CSV).
"""
import csv
import io
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

from openpyxl import Workbook, load_workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ERROR_CODES, ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
DEFAULT_ZONE = "Asia/Shanghai"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
DATE_FORMAT = "yyyy-mm-dd"
XLSX_MAX_CELL_CHARS = 32767  # Excel's limit; openpyxl would cut silently
SHEET_TITLE_MAX_CHARS = 31
MARKER_SHEET = "orderloom_export"  # the very hidden sheet of an XLSX export (Excel's UI cannot unhide it)
MARKER_KEYWORD = "orderloom-export"
CSV_MARKER = re.compile(r"^# orderloom export (?P<id>[A-Za-z0-9]{6,24}) by ")


@dataclass(frozen=True)
class Watermark:
    """Who made a governed export, when (already in the merchant's zone) and its export id."""

    export_id: str
    username: str
    display_name: str
    made_at: datetime  # aware, in the merchant zone
    zone: str
    kind: str = ""

    @property
    def exporter(self) -> str:
        """Username and display name, without the characters that would split the CSV line into cells (a name
        like 'x,=HYPERLINK(...)' must not become a cell of its own that a spreadsheet runs)."""
        name = f"{self.username} ({self.display_name})" if self.display_name else self.username
        return re.sub(r'[,;"\t\r\n]+', " ", name)

    @property
    def moment(self) -> str:
        return self.made_at.isoformat(timespec="seconds")

    def line(self) -> str:
        """The visible line; CSV starts with it (after the BOM), and `trace` reads the id from it."""
        return f"# orderloom export {self.export_id} by {self.exporter} at {self.moment} ({self.zone})"

    def sheet_line(self) -> str:
        return (f"Orderloom 导出 export {self.export_id} · 导出人 by {self.exporter} · 时间 at {self.moment} "
                f"({self.zone})")


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


def csv_bytes(headers: list[str], rows: Iterable[Sequence], zone: str = DEFAULT_ZONE,
              watermark: Watermark | None = None) -> bytes:
    """The rows as CSV, UTF-8 with a BOM (without it Excel reads Chinese as mojibake), CRLF line ends; with a
    watermark, its line comes first (after the BOM)."""
    tz = ZoneInfo(zone)
    buffer = io.StringIO()
    if watermark is not None:
        buffer.write(_one_line(watermark.line()) + "\r\n")
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
               zone: str = DEFAULT_ZONE, watermark: Watermark | None = None) -> bytes:
    """The rows as an XLSX workbook, streamed (write-only) so 100k rows stay fast; bold, frozen header row.

    With a watermark: its line is the sheet's first row (above the header) and its printed header and footer,
    and the file carries the export id in its document properties and in a very hidden sheet."""
    tz = ZoneInfo(zone)
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=_sheet_title(sheet_title))
    bold = Font(bold=True)
    if watermark is not None:
        _mark_workbook(workbook, sheet, watermark)
        sheet.freeze_panes = "A3"  # watermark line and header stay in view
        line = WriteOnlyCell(sheet, value=_xlsx_text(watermark.sheet_line()))
        line.font = Font(italic=True)
        sheet.append([line])
    else:
        sheet.freeze_panes = "A2"  # must be set before the first row is written
    header_cells = []
    for header in headers:
        cell = WriteOnlyCell(sheet, value=_xlsx_text(str(header)))
        cell.font = bold
        header_cells.append(cell)
    sheet.append(header_cells)
    for row in rows:
        sheet.append([_xlsx_cell(sheet, value, tz) for value in row])
    if watermark is not None:
        marker = workbook.create_sheet(title=MARKER_SHEET)
        marker.sheet_state = "veryHidden"
        for key, value in (("export_id", watermark.export_id), ("exporter", watermark.username),
                           ("exporter_name", watermark.display_name), ("exported_at", watermark.moment),
                           ("zone", watermark.zone), ("kind", watermark.kind)):
            marker.append([key, _xlsx_text(value)])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _one_line(text: str) -> str:
    return re.sub(r"[\r\n]+", " ", text)


def _mark_workbook(workbook, sheet, watermark: Watermark) -> None:
    """Core properties (what File > Info shows) and the printed header/footer of the data sheet."""
    props = workbook.properties
    props.creator = props.lastModifiedBy = _xlsx_text(watermark.exporter)[:255]
    props.title = f"Orderloom export {watermark.export_id}"
    props.subject = watermark.kind or None
    props.identifier = watermark.export_id
    props.keywords = f"{MARKER_KEYWORD} {watermark.export_id}"
    props.description = _xlsx_text(watermark.line()[2:])
    props.created = props.modified = watermark.made_at.astimezone(ZoneInfo("UTC")).replace(tzinfo=None)
    # Printed pages: "&" starts a header/footer code in Excel, so it is doubled in the text.
    printed = _one_line(watermark.line()[2:]).replace("&", "&&")[:240]
    sheet.oddHeader.center.text = printed
    sheet.oddFooter.center.text = printed
    sheet.oddFooter.right.text = "&P / &N"


def trace(file_bytes: bytes) -> str | None:
    """The export id a governed export file carries (XLSX: hidden sheet, then document properties; CSV: the first
    line), or None when the file has no marker."""
    if file_bytes[:4] == b"PK\x03\x04":
        from shared.services.invoice_zip import manifest_of

        manifest = manifest_of(file_bytes)  # a ZIP of invoices: its manifest CSV carries the line
        return trace(manifest) if manifest is not None else _trace_xlsx(file_bytes)
    if file_bytes[:5] == b"%PDF-":
        return _trace_pdf(file_bytes)
    text = file_bytes[:4096].decode("utf-8-sig", errors="replace")
    match = CSV_MARKER.match(text.split("\n", 1)[0].strip())
    return match.group("id") if match else None


def _trace_xlsx(file_bytes: bytes) -> str | None:
    try:
        workbook = load_workbook(io.BytesIO(file_bytes), read_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError):
        return None
    try:
        if MARKER_SHEET in workbook.sheetnames:
            for key, value, *_ in workbook[MARKER_SHEET].iter_rows(values_only=True):
                if key == "export_id" and value:
                    return str(value)
        identifier = workbook.properties.identifier
        if identifier:
            return identifier
        keywords = (workbook.properties.keywords or "").split()
        if len(keywords) == 2 and keywords[0] == MARKER_KEYWORD:
            return keywords[1]
        return None
    finally:
        workbook.close()


PDF_MARKER = re.compile(rb"\(" + MARKER_KEYWORD.encode() + rb" ([A-Za-z0-9]{6,24})\)")
PDF_STREAM = re.compile(rb"stream\r?\n(.*?)\r?\nendstream", re.S)


def _trace_pdf(file_bytes: bytes) -> str | None:
    """A PDF report carries `orderloom-export <id>` as its /Keywords (shared/services/access_report.py); the
    document information is usually inside a compressed object stream, so Flate streams are opened too."""
    import zlib

    found = PDF_MARKER.search(file_bytes)
    if found:
        return found.group(1).decode()
    for stream in PDF_STREAM.finditer(file_bytes):
        try:
            found = PDF_MARKER.search(zlib.decompress(stream.group(1)))
        except zlib.error:
            continue
        if found:
            return found.group(1).decode()
    return None


def _sheet_title(title: str) -> str:
    """Excel refuses sheet titles over 31 characters or with any of []:*?/\\ in them."""
    cleaned = "".join("_" if char in '[]:*?/\\' else char for char in str(title)).strip("'")
    return cleaned[:SHEET_TITLE_MAX_CHARS] or "report"
