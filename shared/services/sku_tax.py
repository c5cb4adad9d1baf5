"""Tax data of SKUs for invoices (issue 12 item 2): the 19-digit 税收分类编码, the short category name printed as
`*类别简称*商品名`, a rate (13, 9, 6, 3, 1 or 0 percent) or a tax-free flag (免税 exempt / 不征税 untaxed, kept with
rate 0), and the unit. Set one SKU at a time (the catalog page) or many from a CSV/XLSX file.

The import is all or nothing: every row is checked first, and when any row is bad nothing is applied and the
report lists each bad row with its line, column and reason; a file with no bad row is applied in one transaction
(one audit event per SKU changed). A merchant fixes the file and uploads it again, so a half-applied import never
leaves SKUs to be found and fixed one by one.

`missing_tax_data(sku_ids)` says which SKUs cannot be invoiced and what each lacks: invoice requests call it.
"""
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from sqlalchemy import select

from shared.actors import Actor
from shared.channels.spreadsheet import SpreadsheetError, read_table
from shared.extensions import db
from shared.finance import text_rules
from shared.finance.invoice_math import RATES, TAX_FREE_LABELS  # the rates and tax-free flags: one place
from shared.models import Sku
from shared.services import audit
from shared.services.errors import NotFound, ValidationFailed
from shared.services.validation import N_, say

TAX_FREE = tuple(TAX_FREE_LABELS)
TAX_FREE_WORDS = {"exempt": "exempt", "免税": "exempt", "untaxed": "untaxed", "不征税": "untaxed"}
TAX_FIELDS = ("tax_code", "tax_short_name", "tax_rate", "tax_unit")  # what an invoice needs (tax_free is a rate)
SHORT_NAME_LIMIT = 40  # GBK bytes (the column holds 40 characters)
UNIT_LIMIT = 16
IMPORT_COLUMNS = ("sku", "tax_code", "tax_short_name", "tax_unit")
_CODE = re.compile(r"\d{19}")

BAD_CODE = N_("A tax classification code (税收分类编码) is exactly 19 digits.")
NUMERIC_CODE = N_("Store the tax_code column as text: a 19-digit number in a spreadsheet cell loses its last digits.")
BAD_RATE = N_("The rate is one of 13, 9, 6, 3, 1 or 0 (percent).")
BAD_FREE = N_("The tax-free flag is exempt (免税) or untaxed (不征税).")
RATE_AND_FREE = N_("Give either a rate or a tax-free flag, not both.")
RATE_MISSING = N_("Give a rate (13, 9, 6, 3, 1, 0) or a tax-free flag (exempt, untaxed).")
REQUIRED = N_("This is required.")
NO_ASTERISK = N_("The short name is printed between asterisks (*类别简称*), so it may not contain *.")
NO_SKU = N_("There is no SKU %(code)s.")
TWICE = N_("SKU %(code)s is also on line %(line)s.")
NO_RATE_COLUMN = N_("The header row needs a tax_rate or a tax_free column.")


def _text(value, field: str, limit: int) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValidationFailed(say(REQUIRED), field=field, code="required")
    if not isinstance(value, str):
        raise ValidationFailed(say(REQUIRED), field=field, code="invalid_type")
    value = value.strip()
    text_rules.check_length(value, field, limit)
    return value


def _rate(value) -> int | None:
    """13, "13", "13%", 0.13 (a spreadsheet's percent cell) → 13; empty → None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValidationFailed(say(BAD_RATE), field="tax_rate", code="invalid_tax_rate")
    raw = str(value).strip().removesuffix("%")
    try:
        number = Decimal(raw)
    except InvalidOperation:
        raise ValidationFailed(say(BAD_RATE), field="tax_rate", code="invalid_tax_rate") from None
    if 0 < number < 1 and not str(value).strip().endswith("%"):
        number *= 100
    if number != number.to_integral_value() or int(number) not in RATES:
        raise ValidationFailed(say(BAD_RATE), field="tax_rate", code="invalid_tax_rate")
    return int(number)


def clean(data: dict) -> dict:
    """The tax columns as stored, or the first refusal (field and code)."""
    code = data.get("tax_code")
    code = code.strip() if isinstance(code, str) else code
    if not isinstance(code, str) or not _CODE.fullmatch(code):
        raise ValidationFailed(say(BAD_CODE), field="tax_code", code="invalid_tax_code")
    short = _text(data.get("tax_short_name"), "tax_short_name", SHORT_NAME_LIMIT)
    if "*" in short or "＊" in short:
        raise ValidationFailed(say(NO_ASTERISK), field="tax_short_name", code="forbidden_character")
    unit = _text(data.get("tax_unit"), "tax_unit", UNIT_LIMIT)
    rate = _rate(data.get("tax_rate"))
    free = data.get("tax_free")
    free = free.strip() if isinstance(free, str) else free
    if free:
        if free not in TAX_FREE_WORDS:
            raise ValidationFailed(say(BAD_FREE), field="tax_free", code="invalid_tax_free")
        if rate not in (None, 0):
            raise ValidationFailed(say(RATE_AND_FREE), field="tax_rate", code="invalid_tax_rate")
        return {"tax_code": code, "tax_short_name": short, "tax_rate": 0, "tax_free": TAX_FREE_WORDS[free],
                "tax_unit": unit}
    if rate is None:
        raise ValidationFailed(say(RATE_MISSING), field="tax_rate", code="required")
    return {"tax_code": code, "tax_short_name": short, "tax_rate": rate, "tax_free": None, "tax_unit": unit}


def _values(sku: Sku) -> dict:
    return {name: getattr(sku, name) for name in ("tax_code", "tax_short_name", "tax_rate", "tax_free", "tax_unit")}


def _apply(sku: Sku, values: dict, actor: Actor, how: str) -> bool:
    before = _values(sku)
    if before == values:
        return False
    for name, value in values.items():
        setattr(sku, name, value)
    audit.record(actor, "sku.tax_data", "sku", sku.code, before=before, after=values, reason=how)
    return True


def set_tax_data(sku: Sku, data: dict, actor: Actor) -> Sku:
    """Set one SKU's tax data (all of it: code, short name, rate or tax-free flag, unit)."""
    _apply(sku, clean(data), actor, "edit")
    db.session.flush()
    return sku


def sku_by_code(code: str) -> Sku:
    sku = db.session.execute(select(Sku).where(Sku.code == (code or "").strip())).scalar_one_or_none()
    if sku is None:
        raise NotFound(say(NO_SKU, code=code), field="sku", code="unknown_sku")
    return sku


def missing_fields(tax_code, short_name, rate, tax_free, unit) -> list[str]:
    """The tax fields one SKU lacks for an invoice: a 19-digit code, a short category name, a rate of RATES (or a
    tax-free flag, whose rate is 0), a unit. The one rule, for the page, the import's report and invoice requests."""
    lacks = []
    if not tax_code or not _CODE.fullmatch(tax_code):
        lacks.append("tax_code")
    if not short_name:
        lacks.append("tax_short_name")
    if (tax_free not in TAX_FREE if tax_free is not None else rate not in RATES) or (tax_free and rate not in (0, None)):
        lacks.append("tax_rate")
    if not unit:
        lacks.append("tax_unit")
    return lacks


def missing_for(sku: Sku) -> list[str]:
    return missing_fields(sku.tax_code, sku.tax_short_name, sku.tax_rate, sku.tax_free, sku.tax_unit)


def missing_tax_data(sku_ids) -> list[tuple[str, list[str]]]:
    """(SKU code, the tax fields it lacks) for every SKU of `sku_ids` that cannot be invoiced, by code.

    An invoice cannot be requested for an order while this is not empty: the list says which SKUs and what."""
    ids = sorted({int(i) for i in sku_ids})
    if not ids:
        return []
    rows = db.session.execute(select(Sku.code, Sku.tax_code, Sku.tax_short_name, Sku.tax_rate, Sku.tax_free,
                                     Sku.tax_unit).where(Sku.id.in_(ids)).order_by(Sku.code)).all()
    return [(row.code, lacks) for row in rows if (lacks := missing_fields(*row[1:]))]


@dataclass
class RowProblem:
    line: int
    sku: str
    field: str
    code: str
    message: str


@dataclass
class ImportReport:
    rows: int = 0
    changed: int = 0
    unchanged: int = 0
    problems: list[RowProblem] = field(default_factory=list)

    @property
    def applied(self) -> bool:
        return not self.problems and self.rows > 0


def _numeric_code_lines(filename: str, data: bytes) -> set[int]:
    """Lines of an .xlsx whose tax_code cell is a number (its 19 digits cannot survive a double)."""
    if not (filename or "").lower().endswith(".xlsx"):
        return set()
    import io

    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(data), read_only=True, data_only=True).active
    lines, column = set(), None
    for line, row in enumerate(sheet.iter_rows(values_only=True), start=1):
        if column is None:
            header = [str(cell or "").strip().lower() for cell in row]
            if "tax_code" in header:
                column = header.index("tax_code")
            continue
        if column < len(row) and isinstance(row[column], (int, float)) and not isinstance(row[column], bool):
            lines.add(line)
    return lines


def import_tax_data(filename: str, data: bytes, actor: Actor) -> ImportReport:
    """Check every row of a CSV/XLSX of tax data; apply all of them only when none is bad (see the module)."""
    try:
        table = read_table(filename, data, IMPORT_COLUMNS)
    except SpreadsheetError as refused:
        raise ValidationFailed(str(refused), field="file", code="unreadable_file") from None
    if table and "tax_rate" not in table[0][1] and "tax_free" not in table[0][1]:
        raise ValidationFailed(say(NO_RATE_COLUMN), field="file", code="missing_column")
    numeric = _numeric_code_lines(filename, data)
    codes = [row.get("sku", "").strip() for _line, row in table]
    skus = {sku.code: sku for sku in db.session.execute(select(Sku).where(Sku.code.in_(set(codes)))).scalars()}
    report, seen, planned = ImportReport(rows=len(table)), {}, []
    for line, row in table:
        code = row.get("sku", "").strip()
        try:
            if not code:
                raise ValidationFailed(say(REQUIRED), field="sku", code="required")
            if code in seen:
                raise ValidationFailed(say(TWICE, code=code, line=seen[code]), field="sku", code="duplicate_sku")
            seen[code] = line
            if code not in skus:
                raise ValidationFailed(say(NO_SKU, code=code), field="sku", code="unknown_sku")
            if line in numeric:
                raise ValidationFailed(say(NUMERIC_CODE), field="tax_code", code="invalid_tax_code")
            planned.append((skus[code], clean(row)))
        except ValidationFailed as refused:
            report.problems.append(RowProblem(line, code, refused.field or "", refused.code, refused.message))
    if report.problems:
        return report  # nothing applied
    for sku, values in planned:
        if _apply(sku, values, actor, f"import {filename}"[:200]):
            report.changed += 1
        else:
            report.unchanged += 1
    db.session.flush()
    return report
