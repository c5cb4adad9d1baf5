"""PDF invoices in the layout of a 数电票 (issue 12 item 6), rendered by WeasyPrint with the fonts shipped in
static/fonts/ (Orderloom Invoice Sans: Noto Sans CJK SC cut to GB 2312 and the form's text; Sans GBK: the rest of
GBK; Han A / Han B: HanaMin cut to CJK Extension A and the Extension B characters in use;
devtools/fonts/invoice_fonts.py rebuilds them).

The PdfInvoice below is the interface agreed with the invoice pipeline (issue 12's finance split): that side
computes the lines and totals, this one checks they add up and prints them. A provider's own PDF is kept when it
sends one; this render is the preview (number None) and the fallback.

Warm worker: the first render in a process parses the stylesheet and loads the five font faces into a WeasyPrint
FontConfiguration; later renders reuse both (`_warm()`), so an RQ worker pays that once (docs/PERFORMANCE.md: a
fresh process's first render 0.35–0.57 s after ≈ 0.6 s importing WeasyPrint, then 0.17–0.31 s a render).
RQ runs one job at a time per worker; a lock makes the first load safe for threads too. `orderloom worker` loads it
before forking (jobs/worker.py), so every work horse starts warm.
"""
import io
import re
import threading
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_DIR = ROOT / "templates" / "invoices"
TEMPLATE = "shudian.html"
STYLESHEET = TEMPLATE_DIR / "shudian.css"
FONT_DIR = ROOT / "static" / "fonts"
FONT_FAMILIES = ("Orderloom Invoice Sans", "Orderloom Invoice Sans GBK", "Orderloom Invoice Han A",
                 "Orderloom Invoice Han B")
KINDS = {"special": "电子发票（增值税专用发票）", "normal": "电子发票（普通发票）"}
RATES_WITHOUT_PERCENT = ("免税", "不征税")
QR_SIZE = "22mm"


class InvoicePdfError(ValueError):
    """The invoice cannot be printed as given (the message says which field)."""


@dataclass
class PdfParty:
    name: str
    tax_id: str
    address_phone: str = ""
    bank_account: str = ""


@dataclass
class PdfLine:
    name: str  # already "*类别简称*商品名"
    spec: str
    unit: str
    quantity: Decimal | None
    unit_price: Decimal | None  # tax-exclusive
    amount: Decimal  # tax-exclusive; negative for a discount line
    rate: str  # "13%", "0%", "免税", "不征税"
    tax: Decimal


@dataclass
class PdfInvoice:
    number: str | None  # None: a preview
    issued_on: date
    kind: str  # "normal" | "special"
    seller: PdfParty
    buyer: PdfParty
    lines: list[PdfLine]
    total_amount: Decimal
    total_tax: Decimal
    total_gross: Decimal
    total_in_words: str  # 价税合计 in capitals (invoice_math.capitals)
    remarks: str = ""
    issuer: str = ""
    qr_payload: str = ""
    red: bool = False
    original_number: str | None = None


def money(value: Decimal) -> str:
    """Two decimals, no grouping, as on the form (-5.00 for a discount line)."""
    return f"{Decimal(value).quantize(Decimal('0.01')):f}"


def quantity_text(value: Decimal | None) -> str:
    """Up to 8 decimals as the form allows, trailing zeros dropped (2, 1.5, 0.333)."""
    if value is None:
        return ""
    text = f"{Decimal(value).quantize(Decimal('0.00000001')).normalize():f}"
    return text


def unit_price_text(value: Decimal | None) -> str:
    """Unit prices keep at least 2 and at most 8 decimals (35.398230 prints as 35.39823)."""
    if value is None:
        return ""
    text = f"{Decimal(value).quantize(Decimal('0.00000001')):f}".rstrip("0")
    whole, _, decimals = text.partition(".")
    return f"{whole}.{decimals.ljust(2, '0')}"


def validate(invoice: PdfInvoice) -> None:
    """Refuse what would print a wrong legal document; nothing is rendered then."""
    if invoice.kind not in KINDS:
        raise InvoicePdfError(f"kind: {invoice.kind!r} is not one of {sorted(KINDS)}")
    if invoice.number is not None and not (len(invoice.number) == 20 and invoice.number.isdigit()):
        raise InvoicePdfError(f"number: a 数电票 number has 20 digits, got {invoice.number!r}")
    if invoice.red and not invoice.original_number:
        raise InvoicePdfError("original_number: a red invoice names the invoice it reverses")
    if not invoice.lines:
        raise InvoicePdfError("lines: an invoice has at least one line")
    for position, line in enumerate(invoice.lines, 1):
        if not (line.rate in RATES_WITHOUT_PERCENT or (line.rate.endswith("%") and line.rate[:-1].isdigit())):
            raise InvoicePdfError(f"lines[{position}].rate: {line.rate!r} is not like 13%, 0%, 免税 or 不征税")
    amount = sum((Decimal(line.amount) for line in invoice.lines), Decimal(0))
    tax = sum((Decimal(line.tax) for line in invoice.lines), Decimal(0))
    if amount != Decimal(invoice.total_amount) or tax != Decimal(invoice.total_tax):
        raise InvoicePdfError(f"total_amount/total_tax: the lines sum to {money(amount)} + {money(tax)}, "
                              f"the totals say {money(invoice.total_amount)} + {money(invoice.total_tax)}")
    if Decimal(invoice.total_amount) + Decimal(invoice.total_tax) != Decimal(invoice.total_gross):
        raise InvoicePdfError("total_gross: 价税合计 is not total_amount + total_tax")


def qr_svg(payload: str) -> str:
    """The QR code as inline SVG paths (qrcode's SvgPathImage: no Pillow)."""
    import qrcode
    import qrcode.image.svg

    image = qrcode.make(payload or " ", image_factory=qrcode.image.svg.SvgPathImage, box_size=10, border=1)
    buffer = io.BytesIO()
    image.save(buffer)
    text = buffer.getvalue().decode("utf-8")
    text = text[text.index("<svg"):]  # without the XML declaration, to sit inside the HTML
    # qrcode sizes the image by its module count (31 mm and more); the form's box is 22 mm, the viewBox scales it
    return re.sub(r'^<svg width="[^"]*" height="[^"]*"', f'<svg width="{QR_SIZE}" height="{QR_SIZE}"', text)


class _Warm:
    """What a worker keeps between renders: the Jinja environment, the FontConfiguration with the shipped faces
    loaded, and the parsed stylesheet bound to it."""

    def __init__(self):
        from jinja2 import Environment, FileSystemLoader, select_autoescape
        from weasyprint import CSS
        from weasyprint.text.fonts import FontConfiguration

        self.environment = Environment(loader=FileSystemLoader(str(TEMPLATE_DIR)),
                                       autoescape=select_autoescape(["html"], default=True))
        self.template = self.environment.get_template(TEMPLATE)
        self.font_config = FontConfiguration()
        self.stylesheet = CSS(filename=str(STYLESHEET), font_config=self.font_config)


_warm_state: _Warm | None = None
_warm_lock = threading.Lock()


def _warm() -> _Warm:
    global _warm_state
    if _warm_state is None:
        with _warm_lock:
            if _warm_state is None:
                _warm_state = _Warm()
    return _warm_state


def warm_up() -> None:
    """Load the fonts and stylesheet now (a worker calls this at start so the first job is not the slow one)."""
    _warm()


def html(invoice: PdfInvoice) -> str:
    """The invoice as HTML (what render() prints)."""
    from markupsafe import Markup

    validate(invoice)
    lines = [{"name": line.name, "spec": line.spec, "unit": line.unit, "quantity": quantity_text(line.quantity),
              "unit_price": unit_price_text(line.unit_price), "amount": money(line.amount), "rate": line.rate,
              "tax": money(line.tax)} for line in invoice.lines]
    return _warm().template.render(
        invoice=invoice, title=KINDS[invoice.kind], lines=lines, issued_on=f"{invoice.issued_on:%Y年%m月%d日}",
        total_amount=money(invoice.total_amount), total_tax=money(invoice.total_tax),
        total_gross=money(invoice.total_gross), negative=Decimal(invoice.total_gross) < 0,
        qr_svg=Markup(qr_svg(invoice.qr_payload)))  # our own SVG; every invoice field stays escaped


def render(invoice: PdfInvoice) -> bytes:
    """The invoice as a PDF (bytes). InvoicePdfError for an invoice that cannot be printed as given."""
    from weasyprint import HTML

    document = html(invoice)
    warm = _warm()
    return HTML(string=document, base_url=str(TEMPLATE_DIR) + "/").write_pdf(
        stylesheets=[warm.stylesheet], font_config=warm.font_config)


def from_dict(data: dict) -> PdfInvoice:
    """A PdfInvoice from plain data (a job's arguments: strings for decimals, an ISO date)."""
    def decimal(value):
        return None if value is None or value == "" else Decimal(str(value))

    try:
        issued_on = date.fromisoformat(str(data["issued_on"]))
    except (KeyError, ValueError) as bad:
        raise InvoicePdfError(f"issued_on: {bad}") from None
    try:
        return PdfInvoice(
            number=data.get("number"), issued_on=issued_on, kind=data["kind"],
            seller=PdfParty(**data["seller"]), buyer=PdfParty(**data["buyer"]),
            lines=[PdfLine(name=line["name"], spec=line.get("spec", ""), unit=line.get("unit", ""),
                           quantity=decimal(line.get("quantity")), unit_price=decimal(line.get("unit_price")),
                           amount=decimal(line["amount"]), rate=line["rate"], tax=decimal(line["tax"]))
                   for line in data["lines"]],
            total_amount=decimal(data["total_amount"]), total_tax=decimal(data["total_tax"]),
            total_gross=decimal(data["total_gross"]), total_in_words=data["total_in_words"],
            remarks=data.get("remarks", ""), issuer=data.get("issuer", ""), qr_payload=data.get("qr_payload", ""),
            red=bool(data.get("red", False)), original_number=data.get("original_number"))
    except (KeyError, TypeError, ValueError, ArithmeticError) as bad:
        raise InvoicePdfError(f"invoice data: {bad!r}") from None
