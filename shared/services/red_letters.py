"""Red-letter reversal (红字, issue 12 item 5): finance opens a 红字确认单 for an issued blue part (a reason, full or a
partial gross amount), the provider confirms it, then the red invoice is issued with its own 20-digit number and
negative figures, linked to the blue one (original_number). States as data: invoice_lifecycle.RED_LETTER.

Never more than what remains un-reversed on the blue invoice: every red not refused reserves its amount (the blue
part's row is locked while a new one is opened, so two at once cannot both take the last of it). A partial red
reverses each line in proportion to what remains of it, in whole cents by the largest remainder, its tax split at
its own rate by the blue invoice's round-half-up rule (invoice_math.red_lines). A request whose parts are all
reversed in full by issued reds no longer holds its orders: a new blue invoice may be requested for them.

An issued red keeps the provider's own PDF when its answer carries one (pdfUrl / pdfContent, as a blue part's
does) and `red_pdf` serves it first; ours is rendered too, the fallback. Refusals are message codes (`say`).
"""
import logging
import re
import secrets
from decimal import Decimal, InvalidOperation

from flask import current_app
from sqlalchemy import select

from shared.actors import SYSTEM, Actor
from shared import labels
from shared.extensions import db
from shared.finance import invoice_math, invoice_pdf
from shared.finance.invoice_lifecycle import RED_LETTER, RED_REASON_CODES, RED_REASONS
from shared.finance.invoice_math import CENT, ZERO, Remaining, TaxData
from shared.finance.providers import ProviderError, ProviderTimeout, RedResult, provider_for
from shared.models.invoices import InvoicePart, InvoiceRequest, RedLetter
from shared.services import audit
from shared.services.errors import Conflict, NotFound, ValidationFailed
from shared.services.validation import N_, say
from shared.timekeeping import utc_now

log = logging.getLogger("orderloom.invoices")
LIVE = ("requested", "submitted", "confirmed", "issued")  # a red in these states reserves its amount
REASON_LABELS = {"return": "销货退回", "error": "开票有误", "stopped": "服务中止", "allowance": "销售折让"}
MAX_ROW_ID = 2 ** 31 - 1

# What a refusal says (in the reader's language when said inside a request: shared/services/validation.say).
BAD_AMOUNT = N_("The amount must be a number like 12.34.")
AMOUNT_RANGE = N_("The amount must be more than 0 with at most two decimals.")
NO_PART = N_("There is no such invoice.")
NO_RED = N_("There is no such red-letter reversal.")
BAD_REASON = N_("The reason must be return (销货退回), error (开票有误), stopped (服务中止) or allowance (销售折让).")
PART_NOT_ISSUED = N_("Invoice %(serial)s is %(status)s: only an issued invoice can be reversed.")
OVER_REMAINING = N_("A red invoice for %(gross)s is more than remains un-reversed of invoice %(number)s "
                    "(%(left)s of %(total)s).")
RED_NOT_ISSUED = N_("Red-letter reversal %(serial)s is %(status)s, not issued.")
RED_PDF_NOT_READY = N_("The invoice PDF is being made: try again in a moment.")


def reserved(part: InvoicePart, states=LIVE) -> Decimal:
    return sum((-Decimal(red.total_gross) for red in part.reds if red.status in states), ZERO)


def remaining(part: InvoicePart) -> Decimal:
    """What of an issued blue part no red (not refused) reverses yet, tax-inclusive."""
    return Decimal(part.total_gross) - reserved(part)


def fully_reversed(request: InvoiceRequest) -> bool:
    """Every part of the request issued and reversed to zero by issued red invoices."""
    return request.status == "issued" and bool(request.parts) and all(
        part.status == "issued" and reserved(part, ("issued",)) == Decimal(part.total_gross)
        for part in request.parts)


def _remaining_lines(part: InvoicePart) -> list[Remaining]:
    """The blue lines (each discount folded into the line it discounts) less what live reds reverse of them."""
    folded: list[list] = []
    for line in part.lines:
        if line.kind == "discount" and folded:
            folded[-1][1] += Decimal(line.gross)
            folded[-1][2] += Decimal(line.tax)
            continue
        folded.append([line, Decimal(line.gross), Decimal(line.tax)])
    taken: dict[int, list[Decimal]] = {}
    for red in part.reds:
        if red.status in LIVE:
            for row in red.lines:
                got = taken.setdefault(row["position"], [ZERO, ZERO])
                got[0] += -Decimal(row["gross"])
                got[1] += -Decimal(row["tax"])
    out = []
    for line, gross, tax in folded:
        got = taken.get(line.position, [ZERO, ZERO])
        out.append(Remaining(position=line.position, name=line.name,
                             tax=TaxData(code=line.tax_code, short_name="", rate=line.rate, tax_free=line.tax_free),
                             spec=line.spec, gross=gross - got[0], tax_amount=tax - got[1]))
    return [line for line in out if line.gross > ZERO]


def _amount(value) -> Decimal:
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValidationFailed(say(BAD_AMOUNT), field="amount", code="invalid_amount")
    if not amount.is_finite() or amount <= ZERO or amount != amount.quantize(CENT):
        raise ValidationFailed(say(AMOUNT_RANGE), field="amount", code="invalid_amount")
    return amount


def get_part(part_id: int) -> InvoicePart:
    part = db.session.get(InvoicePart, part_id) if isinstance(part_id, int) and 0 < part_id <= MAX_ROW_ID else None
    if part is None:
        raise NotFound(say(NO_PART), field="part", code="unknown_part")
    return part


def get_red(red_id: int) -> RedLetter:
    red = db.session.get(RedLetter, red_id) if isinstance(red_id, int) and 0 < red_id <= MAX_ROW_ID else None
    if red is None:
        raise NotFound(say(NO_RED), field="red", code="unknown_red")
    return red


def open_red(part_id: int, reason: str, amount, actor: Actor) -> RedLetter:
    """Open a 红字确认单 for an issued blue part: `amount` None (or "") reverses all that remains, else that gross
    amount in part. Refused, with nothing changed, for an unknown reason, a part not issued, a bad amount or one
    over what remains. The job that submits it is sent after the commit."""
    if reason not in RED_REASONS:
        raise ValidationFailed(say(BAD_REASON), field="reason", code="invalid_reason")
    part = db.session.scalars(select(InvoicePart).where(InvoicePart.id == get_part(part_id).id)
                              .with_for_update()).one()
    if part.status != "issued" or not part.number:
        raise Conflict(say(PART_NOT_ISSUED, serial=part.serial, status=labels.label(labels.INVOICE_STATUS,
                           part.status)),
                       field="part", code="not_issued")
    left = remaining(part)
    full = amount is None or str(amount).strip() == ""
    gross = left if full else _amount(amount)
    if gross > left or left <= ZERO:
        raise ValidationFailed(say(OVER_REMAINING, gross=gross, number=part.number, left=left,
                                   total=Decimal(part.total_gross)), field="amount", code="over_remaining")
    lines = invoice_math.red_lines(_remaining_lines(part), gross)
    total_amount = sum((Decimal(row["amount"]) for row in lines), ZERO)
    total_tax = sum((Decimal(row["tax"]) for row in lines), ZERO)
    red = RedLetter(part_id=part.id, serial=f"RED{utc_now():%Y%m%d}{secrets.token_hex(6).upper()}", reason=reason,
                    full=gross == Decimal(part.total_gross) and not reserved(part), status=RED_LETTER.initial,
                    original_number=part.number, total_gross=-gross, total_amount=total_amount, total_tax=total_tax,
                    total_in_words=invoice_math.capitals(-gross), lines=lines,
                    requested_by=actor.label)
    db.session.add(red)
    db.session.flush()
    audit.record(actor, "invoice.red_requested", "red_letter", red.id,
                 after={"serial": red.serial, "original_number": part.number, "reason": reason,
                        "gross": str(red.total_gross), "full": red.full}, reason=REASON_LABELS[reason])
    from shared import dispatch

    dispatch.after_commit("jobs.invoices.advance_red_letter", red.id, skip_inline=True)
    log.info("red_letter=%s serial=%s original=%s gross=%s", red.id, red.serial, part.number, red.total_gross)
    return red


def bill_payload(red: RedLetter, config) -> dict:
    """The 红字确认单 as the provider takes it (nuonuo.OpeMplatform.saveInvoiceRedConfirm's bill)."""
    request = red.part.request
    return {
        "billNo": red.serial, "blueInvoiceNumber": red.original_number, "reasonCode": RED_REASON_CODES[red.reason],
        "salerTaxNum": config["INVOICE_SELLER_TAX_ID"], "buyerTaxNum": request.buyer_tax_id or "",
        "buyerName": request.buyer_name, "totalGross": str(red.total_gross), "totalAmount": str(red.total_amount),
        "totalTax": str(red.total_tax),
        "details": [{"blueLine": row["position"], "goodsName": row["name"], "goodsCode": row["tax_code"],
                     "taxRate": str(Decimal(row["rate"]) / 100), "taxExcludedAmount": row["amount"],
                     "tax": row["tax"], "taxIncludedAmount": row["gross"]} for row in red.lines],
    }


def _move(red: RedLetter, target: str, **after) -> None:
    RED_LETTER.move(red, target)
    red.updated_at = utc_now()
    audit.record(SYSTEM, f"invoice.red_{target}", "red_letter", red.id,
                 after={"serial": red.serial, "original_number": red.original_number, **after})


def apply_red_result(red: RedLetter, result: RedResult) -> bool:
    """Apply one provider answer to a red; False when nothing changed."""
    if red.status in ("issued", "refused"):
        return False
    if result.confirmation_no and not red.confirmation_no:
        red.confirmation_no = result.confirmation_no
    if result.status == "refused":
        red.failure_reason = (result.reason or "refused")[:300]
        _move(red, "refused", reason=red.failure_reason)
        return True
    if result.status in ("submitted", "confirmed", "issued") and red.status == "requested":
        _move(red, "submitted", confirmation_no=red.confirmation_no)
    if result.status in ("confirmed", "issued") and red.status == "submitted":
        _move(red, "confirmed")
    if result.status == "issued" and red.status == "confirmed":
        if not result.number or not re.fullmatch(r"\d{20}", result.number):
            log.warning("red_letter=%s issued without a 20-digit number: %r", red.id, result.number)
            return False
        red.number, red.issued_at = result.number, utc_now()
        # The provider's own PDF of the red, kept and served first, as a blue part's is (invoices.apply_result);
        # ours is still rendered after the commit as the fallback.
        red.pdf_url = result.pdf_url[:500] if result.pdf_url else None
        if result.pdf_bytes:
            red.provider_pdf = result.pdf_bytes
        _move(red, "issued", number=red.number, gross=str(red.total_gross), provider_pdf=bool(red.provider_pdf))
        return True
    return result.status != "unknown"


def advance(red: RedLetter, provider=None) -> str:
    """Move a red along as far as the provider lets it now: apply the 确认单, query it, issue the red invoice. A
    timeout leaves it where it is for the next sweep (the same serial: a repeat is answered by querying)."""
    provider = provider or provider_for(current_app.config)
    for _ in range(3):
        before = red.status
        try:
            if red.status == "requested":
                result = provider.apply_red(red.serial, bill_payload(red, current_app.config))
            elif red.status == "submitted":
                result = provider.query_red(red.serial)
            elif red.status == "confirmed":
                result = provider.issue_red(red.serial, red.confirmation_no or "")
            else:
                break
        except (ProviderTimeout, ProviderError) as error:
            log.warning("red_letter=%s serial=%s unanswered: %s", red.id, red.serial, error)
            break
        apply_red_result(red, result)
        if red.status == before:
            break
    return red.status


def in_flight_ids(limit: int = 200) -> list[int]:
    return list(db.session.scalars(select(RedLetter.id).where(RedLetter.status.in_(("requested", "submitted",
                                                                                      "confirmed")))
                                   .order_by(RedLetter.id).limit(limit)))


def unrendered_ids(limit: int = 50) -> list[int]:
    return list(db.session.scalars(select(RedLetter.id).where(RedLetter.status == "issued",
                                                              RedLetter.rendered_pdf.is_(None))
                                   .order_by(RedLetter.id).limit(limit)))


def to_pdf_invoice(red: RedLetter, config=None) -> "invoice_pdf.PdfInvoice":
    """What our PDF of the red invoice prints: the blue one's parties, the red's own number and negative lines,
    red=True and the reversed invoice's number."""
    from shared.services.invoices import pdf_fields

    fields = pdf_fields(red.part, config)
    issued = red.issued_at or utc_now()
    fields.update({
        "number": red.number, "issued_on": issued.date(),
        "lines": [{"name": row["name"], "spec": row["spec"], "unit": row["unit"], "quantity": None,
                   "unit_price": None, "amount": Decimal(row["amount"]),
                   "rate": invoice_math.TAX_FREE_LABELS[row["tax_free"]] if row["tax_free"] else f"{row['rate']}%",
                   "tax": Decimal(row["tax"])} for row in red.lines],
        "total_amount": Decimal(red.total_amount), "total_tax": Decimal(red.total_tax),
        "total_gross": Decimal(red.total_gross), "total_in_words": red.total_in_words,
        "remarks": f"{fields['remarks']}；红字：{REASON_LABELS[red.reason]}；被红冲蓝字发票 {red.original_number}",
        "qr_payload": f"01,32,,{red.number or ''},{red.total_amount},{issued:%Y%m%d},,",
        "red": True, "original_number": red.original_number,
    })
    return invoice_pdf.from_dict(fields)


def render_red_pdf(red_id: int) -> int:
    red = db.session.get(RedLetter, red_id)
    if red is None or red.status != "issued":
        return 0
    red.rendered_pdf = invoice_pdf.render(to_pdf_invoice(red))
    return len(red.rendered_pdf)


def red_of_request(request: InvoiceRequest, position: int, red_id: int) -> RedLetter:
    """A red of the request's part at `position` (1-based); a red of any other part (or none) is NotFound, so a
    caller that scoped the request to its owner scopes the red with it."""
    red = get_red(red_id)
    part = red.part
    if part.request_id != request.id or part.position != position:
        raise NotFound(say(NO_RED), field="red", code="unknown_red")
    return red


def red_pdf(red: RedLetter) -> tuple[bytes, str]:
    """The PDF of an issued red invoice: the provider's when it sent one, else ours; with a file name."""
    if red.status != "issued":
        raise Conflict(say(RED_NOT_ISSUED, serial=red.serial, status=labels.label(labels.RED_STATUS, red.status)),
                       field="red", code="not_issued")
    content = red.provider_pdf or red.rendered_pdf
    if not content:
        raise Conflict(say(RED_PDF_NOT_READY), field="red", code="pdf_not_ready")
    return bytes(content), f"invoice-{red.number}.pdf"


def red_json(red: RedLetter) -> dict:
    return {"id": red.id, "serial": red.serial, "status": red.status, "reason": red.reason, "full": red.full,
            "original_number": red.original_number, "number": red.number,
            "confirmation_no": red.confirmation_no, "total_gross": str(red.total_gross),
            "total_amount": str(red.total_amount), "total_tax": str(red.total_tax),
            "failure_reason": red.failure_reason}
