"""Invoices (issue 12): request an invoice for one buyer's order(s), submit its parts to the provider, apply what the
provider answers (by poll or callback), resubmit a failed one. The figures come from shared/finance/invoice_math.py,
the states from shared/finance/invoice_lifecycle.py; the provider from shared/finance/providers/.

Idempotency: every part has our serial, sent as the provider's orderNo; a part whose submit timed out is submitted
again under the same serial, which the provider answers 订单编号重复 and the adapter resolves by querying. An answer
for a part that is already issued (a double answer, a late callback) is kept in `provider_answers` and not applied.
"""
import logging
import re
import secrets
from decimal import Decimal

from flask import current_app
from sqlalchemy import select

from shared import dispatch
from shared.actors import SYSTEM, Actor
from shared import labels
from shared.extensions import db
from shared.finance import invoice_math, invoice_pdf
from shared.finance.invoice_lifecycle import INVOICE_REQUEST
from shared.finance.invoice_math import SourceLine, SplitRules, TaxData
from shared.finance.providers import ProviderError, ProviderResult, ProviderTimeout, provider_for
from shared.finance.providers.nuonuo import order_payload
from shared.models import InvoiceProfile, Order
from shared.models.invoices import InvoiceLineRow, InvoicePart, InvoiceRequest, InvoiceRequestOrder
from shared.services import audit, invoice_profiles, sku_tax
from shared.services.errors import Conflict, NotFound, ValidationFailed
from shared.services.validation import N_, say
from shared.timekeeping import utc_now

# What a person reads when this module refuses: message codes, said in the reader's language (say).
UNKNOWN_INVOICE = N_("No such invoice request")

log = logging.getLogger("orderloom.invoices")
KINDS = ("normal", "special")
MAX_ROW_ID = 2 ** 31 - 1  # 32-bit ids: a larger one names nothing (and would overflow the query)
LIVE = ("requested", "submitted", "issuing", "issued")  # an order on a request in these states is being invoiced
INVOICEABLE_ORDER_STATES = ("confirmed", "allocated", "picking", "packed", "shipped", "delivered", "completed")

# What a person reads when a request is refused: message codes, said in the reader's language (say).
MISSING_TAX_DATA = N_("These SKUs lack tax data (tax classification code, rate, unit): %(skus)s")
INVALID_KIND = N_("The invoice kind must be normal (普票) or special (专票)")
INVALID_PROFILE = N_("Choose one of the buyer's invoice profiles")
UNKNOWN_PROFILE = N_("No such invoice profile for this buyer")
SPECIAL_NOT_ALLOWED = N_("A special invoice (专票) needs an enterprise, institution or other buyer with a valid tax "
                         "id; an individual may ask for a normal invoice (普票)")
INVALID_ORDERS = N_("Name between 1 and 50 orders")
SEVERAL_BUYERS = N_("The orders of one invoice request must belong to one buyer")
NOT_INVOICEABLE = N_("Order %(order_no)s is %(status)s: it cannot be invoiced yet")
ALREADY_INVOICED = N_("Already invoiced or being invoiced: %(orders)s")
NOT_RESUBMITTABLE = N_("An invoice request that is %(status)s cannot be resubmitted")
NOT_CANCELLABLE = N_("A part is already with the provider: it can no longer be cancelled (issue a red invoice "
                     "instead)")
UNKNOWN_PART = N_("Invoice request %(request)s has no part %(position)s")
PART_NOT_ISSUED = N_("Part %(position)s of invoice request %(request)s is %(status)s, not issued")
PDF_NOT_READY = N_("The invoice PDF is being made: try again in a moment")
PROVIDER_SILENT = N_("The invoicing provider did not answer: %(error)s")
# The invoice arithmetic's refusals (invoice_math.InvoiceMathError codes) as a person reads them.
MATH_REFUSALS = {
    "nothing_to_invoice": N_("Nothing to invoice: the order's total is zero"),
    "invalid_amount": N_("The order's amounts cannot be invoiced (a negative line, discount or shipping)"),
    "invalid_discount_shares": N_("The order's discounts do not fit its lines"),
    "invalid_amount_limit": N_("The configured per-invoice amount limit must be positive"),
    "invalid_max_lines": N_("The configured line limit must allow at least two lines"),
    "nothing_to_allocate": N_("Nothing to invoice: the order has no lines"),
    "discount_over_goods": N_("The order's discount is more than its goods"),
}


class MissingTaxData(ValidationFailed):
    """SKUs of the order lack their tax data: the list says which, and what each lacks."""

    code = "missing_tax_code"

    def __init__(self, missing: list[dict]):
        codes = ", ".join(item["sku"] for item in missing)
        super().__init__(say(MISSING_TAX_DATA, skus=codes), field="skus")
        self.missing = missing

    def as_json(self) -> dict:
        body = super().as_json()
        body["error"]["skus"] = self.missing
        return body


def credit_line(provider=None) -> dict:
    """The credit line (授信额度) as the provider reports it now: total, used, remaining; when the provider does not
    answer, `available` is false with the reason (figures null), since nothing on our side failed."""
    provider = provider or provider_for(current_app.config)
    try:
        line = provider.credit_line()
    except (ProviderTimeout, ProviderError) as error:
        return {"available": False, "reason": say(PROVIDER_SILENT, error=str(error)), "total": None,
                "used": None, "remaining": None}
    return {"available": True, "reason": None, "total": str(line.total), "used": str(line.used),
            "remaining": str(line.remaining)}


def _tax_data(sku) -> TaxData:
    return TaxData(code=sku.tax_code, short_name=sku.tax_short_name, rate=0 if sku.tax_free else sku.tax_rate,
                   tax_free=sku.tax_free, unit=sku.tax_unit or "")


def _rules(config) -> SplitRules:
    return SplitRules.from_config(config)


def compute_parts(orders: list[Order], config) -> list[invoice_math.InvoicePart]:
    """The invoices of these orders together: their lines, each order's discount allocated over its own lines,
    the shipping of all of them as one line (see invoice_math)."""
    lines, shares, shipping = [], [], Decimal("0.00")
    for order in orders:
        order_lines = [SourceLine(name=line.sku.name, quantity=line.quantity, gross=Decimal(line.line_total),
                                  tax=_tax_data(line.sku), ref=f"{order.order_no}:{line.sku.code}")
                       for line in order.lines]
        goods = sum((ln.gross for ln in order_lines), Decimal("0.00"))
        if Decimal(order.discount) > goods:
            raise invoice_math.InvoiceMathError(f"order {order.order_no}: the discount is more than the goods",
                                                code="discount_over_goods")
        shares += invoice_math.allocate(Decimal(order.discount), [ln.gross for ln in order_lines]) \
            if goods else [Decimal("0.00")] * len(order_lines)
        lines += order_lines
        shipping += Decimal(order.shipping_fee)
    return invoice_math.invoice_parts(lines, sum(shares, Decimal("0.00")), shipping,
                                      invoice_math.shipping_tax(config), _rules(config),
                                      config.get("INVOICE_SHIPPING_NAME", "运费"), shares=shares)


def _new_serial() -> str:
    return f"INV{utc_now():%Y%m%d}{secrets.token_hex(6).upper()}"


def _snapshot(request: InvoiceRequest, profile: InvoiceProfile) -> None:
    request.profile_id = profile.id
    request.buyer_kind, request.buyer_name, request.buyer_tax_id = profile.kind, profile.name, profile.tax_id
    request.buyer_address_phone = " ".join(filter(None, (profile.address, profile.phone))) or None
    request.buyer_bank_account = " ".join(filter(None, (profile.bank, profile.account))) or None
    request.buyer_email = profile.email


def _profile_for(profile_id, customer_id: int, kind: str) -> InvoiceProfile:
    if kind not in KINDS:
        raise ValidationFailed(say(INVALID_KIND), field="kind", code="invalid_kind")
    if not isinstance(profile_id, int) or isinstance(profile_id, bool) or not 0 < profile_id <= MAX_ROW_ID:
        raise ValidationFailed(say(INVALID_PROFILE), field="profile_id", code="invalid_profile")
    profile = db.session.get(InvoiceProfile, profile_id)
    if profile is None or profile.customer_id != customer_id:
        raise NotFound(say(UNKNOWN_PROFILE), field="profile_id", code="unknown_profile")
    if kind == "special" and not invoice_profiles.may_request_special(profile):
        raise ValidationFailed(say(SPECIAL_NOT_ALLOWED), field="kind", code="special_not_allowed")
    return profile


def request_invoice(order_nos: list[str], profile_id: int, kind: str, actor: Actor) -> InvoiceRequest:
    """Ask for the invoice(s) of one buyer's order(s): refused (nothing changed) when an order is unknown, belongs to
    another buyer, is not yet confirmed or already invoiced, when SKUs lack tax data, or the profile may not have
    this kind. The submit job is sent after the commit."""
    from shared.services import orders as order_service

    if not order_nos or len(order_nos) > 50:
        raise ValidationFailed(say(INVALID_ORDERS), field="order_nos", code="invalid_orders")
    orders = []
    for order_no in dict.fromkeys(order_nos):
        orders.append(order_service.get_order(order_no))
    if len({order.customer_id for order in orders}) != 1:
        raise ValidationFailed(say(SEVERAL_BUYERS), field="order_nos", code="several_buyers")
    for order in orders:
        if order.status not in INVOICEABLE_ORDER_STATES:
            raise Conflict(say(NOT_INVOICEABLE, order_no=order.order_no, status=labels.label(labels.STATUS,
                               order.status)),
                           field="order_no",
                           code="order_not_invoiceable")
    from shared.services.red_letters import fully_reversed

    held = db.session.execute(
        select(InvoiceRequestOrder.order_id, InvoiceRequestOrder.request_id)
        .join(InvoiceRequest, InvoiceRequest.id == InvoiceRequestOrder.request_id)
        .where(InvoiceRequestOrder.order_id.in_([o.id for o in orders]), InvoiceRequest.status.in_(LIVE))).all()
    # a request reversed in full by red invoices no longer holds its orders: a new blue invoice may follow
    taken = [order_id for order_id, request_id in held
             if not fully_reversed(db.session.get(InvoiceRequest, request_id))]
    if taken:
        nos = ", ".join(o.order_no for o in orders if o.id in set(taken))
        raise Conflict(say(ALREADY_INVOICED, orders=nos), field="order_no", code="already_invoiced")
    missing = []
    for order in orders:
        for line in order.lines:
            fields = sku_tax.missing_for(line.sku)
            if fields and not any(item["sku"] == line.sku.code for item in missing):
                missing.append({"sku": line.sku.code, "name": line.sku.name, "missing": fields})
    if missing:
        raise MissingTaxData(missing)
    profile = _profile_for(profile_id, orders[0].customer_id, kind)
    config = current_app.config
    try:
        parts = compute_parts(orders, config)
    except invoice_math.InvoiceMathError as refused:
        message = MATH_REFUSALS.get(refused.code)
        raise ValidationFailed(say(message) if message else str(refused), field="order_no", code=refused.code)
    request = InvoiceRequest(serial=_new_serial(), customer_id=orders[0].customer_id, kind=kind,
                             status=INVOICE_REQUEST.initial, requested_by=actor.label,
                             total_gross=sum(p.total_gross for p in parts),
                             total_amount=sum(p.total_amount for p in parts),
                             total_tax=sum(p.total_tax for p in parts))
    _snapshot(request, profile)
    request.orders = [InvoiceRequestOrder(order_id=order.id) for order in orders]
    request.parts = [_part_row(request.serial, position, part) for position, part in enumerate(parts, 1)]
    db.session.add(request)
    db.session.flush()
    audit.record(actor, "invoice.requested", "invoice_request", request.id,
                 after={"serial": request.serial, "kind": kind, "orders": [o.order_no for o in orders],
                        "parts": len(parts), "total_gross": str(request.total_gross)})
    from shared import dispatch

    dispatch.after_commit("jobs.invoices.submit_invoice_request", request.id, skip_inline=True)
    log.info("invoice_request=%s serial=%s parts=%s gross=%s", request.id, request.serial, len(parts),
             request.total_gross)
    return request


def _part_row(serial: str, position: int, part: invoice_math.InvoicePart) -> InvoicePart:
    row = InvoicePart(position=position, serial=f"{serial}-{position}", status="pending",
                      total_gross=part.total_gross, total_amount=part.total_amount, total_tax=part.total_tax,
                      total_in_words=part.total_in_words)
    row.lines = [InvoiceLineRow(position=index, kind=ln.kind, name=ln.name, tax_code=ln.tax_code, rate=ln.rate,
                                tax_free=ln.tax_free, spec=ln.spec, unit=ln.unit,
                                quantity=None if ln.quantity is None else str(ln.quantity),
                                unit_price=None if ln.unit_price is None else str(ln.unit_price),
                                gross=ln.gross, amount=ln.amount, tax=ln.tax, ref=ln.ref)
                 for index, ln in enumerate(part.lines, 1)]
    return row


def get_request(request_id: int) -> InvoiceRequest:
    found = db.session.get(InvoiceRequest, request_id) if 0 < request_id <= MAX_ROW_ID else None
    if found is None:
        raise NotFound(say(UNKNOWN_INVOICE), field="invoice", code="unknown_invoice")
    return found


def _math_part(part: InvoicePart) -> invoice_math.InvoicePart:
    return invoice_math.InvoicePart(lines=[
        invoice_math.InvoiceLine(kind=ln.kind, name=ln.name, tax_code=ln.tax_code, rate=ln.rate, tax_free=ln.tax_free,
                                 spec=ln.spec, unit=ln.unit,
                                 quantity=None if ln.quantity is None else Decimal(ln.quantity),
                                 unit_price=None if ln.unit_price is None else Decimal(ln.unit_price),
                                 gross=Decimal(ln.gross), amount=Decimal(ln.amount), tax=Decimal(ln.tax), ref=ln.ref)
        for ln in part.lines])


def _buyer(request: InvoiceRequest) -> dict:
    return {"name": request.buyer_name, "tax_id": request.buyer_tax_id, "address": request.buyer_address_phone,
            "bank": request.buyer_bank_account, "email": request.buyer_email}


def _settle(request: InvoiceRequest) -> None:
    """The request's state from its parts'."""
    states = [part.status for part in request.parts]
    if all(state == "issued" for state in states):
        target = "issued"
    elif "failed" in states:
        target = "failed"
        request.failure_reason = next(p.failure_reason for p in request.parts if p.status == "failed")
    elif "issuing" in states or "issued" in states:
        target = "issuing"
    elif all(state == "pending" for state in states):
        target = "requested"
    else:
        target = "submitted"
    if target != request.status:
        if request.status == "requested" and target in ("issuing", "issued"):
            INVOICE_REQUEST.move(request, "submitted")
        if request.status == "submitted" and target == "issued":
            INVOICE_REQUEST.move(request, "issuing")
        if target != request.status:
            INVOICE_REQUEST.move(request, target)
        if target in ("issued", "failed"):
            audit.record(SYSTEM, f"invoice.{target}", "invoice_request", request.id,
                         after={"numbers": [p.number for p in request.parts if p.number]} if target == "issued"
                         else {"reason": request.failure_reason})
    request.updated_at = utc_now()


def submit(request: InvoiceRequest, provider=None) -> dict:
    """Send every pending part to the provider. The credit line is checked first: a request that would pass it is
    held (it stays requested with the reason). A timeout leaves the part pending for the next run (same serial)."""
    provider = provider or provider_for(current_app.config)
    tally = {"submitted": 0, "failed": 0, "timeouts": 0, "held": False}
    if request.status not in ("requested", "submitted"):
        return tally
    pending = [part for part in request.parts if part.status == "pending"]
    if not pending:
        return tally
    try:
        credit = provider.credit_line()
    except (ProviderTimeout, ProviderError) as error:
        log.warning("invoice_request=%s credit line unknown: %s", request.id, error)
        tally["timeouts"] += 1
        return tally
    needed = sum((Decimal(part.total_amount) for part in pending), Decimal("0.00"))
    if needed > credit.remaining:
        request.held_reason = (f"超授信额度 / over the credit line: needs {needed}, remaining {credit.remaining} "
                               f"of {credit.total}")
        tally["held"] = True
        return tally
    request.held_reason = None
    config = current_app.config
    for part in pending:
        order = order_payload(part.serial, _math_part(part), request.kind, _buyer(request),
                              config["INVOICE_SELLER_TAX_ID"], config.get("INVOICE_ISSUER", ""),
                              f"{utc_now():%Y-%m-%d %H:%M:%S}")
        try:
            result = provider.submit(part.serial, order)
        except (ProviderTimeout, ProviderError) as error:
            log.warning("invoice_part=%s serial=%s submit unanswered: %s", part.id, part.serial, error)
            tally["timeouts"] += 1
            continue
        apply_result(part, result)
        tally["failed" if part.status == "failed" else "submitted"] += 1
    _settle(request)
    return tally


def apply_result(part: InvoicePart, result: ProviderResult) -> bool:
    """Apply one provider answer to a part; False when it was not applied (a duplicate or a late answer)."""
    answers = list(part.provider_answers or [])
    answers.append({"status": result.status, "provider_serial": result.provider_serial, "number": result.number,
                    "reason": result.reason, "at": utc_now().isoformat()})
    part.provider_answers = answers[-10:]
    if part.status in ("issued",) or (part.status == "failed" and result.status != "failed"):
        log.info("invoice_part=%s serial=%s answer ignored: already %s", part.id, part.serial, part.status)
        return False
    if result.status == "accepted":
        if part.provider_serial and result.provider_serial and part.provider_serial != result.provider_serial:
            log.warning("invoice_part=%s serial=%s second acceptance %s ignored (kept %s)", part.id, part.serial,
                        result.provider_serial, part.provider_serial)
            return False
        part.provider_serial = part.provider_serial or result.provider_serial
        if part.status == "pending":
            part.status = "submitted"
        return True
    if result.status == "issuing":
        part.provider_serial = part.provider_serial or result.provider_serial
        part.status = "issuing"
        return True
    if result.status == "issued":
        if not result.number or not re.fullmatch(r"\d{20}", result.number):
            log.warning("invoice_part=%s issued without a 20-digit number: %r", part.id, result.number)
            return False
        part.status, part.number = "issued", result.number
        part.issued_at = utc_now()
        # Our own PDF, rendered by a documents worker (warm fonts): the preview, and the fallback when the provider
        # sends none; the provider's is kept and served first.
        # (Inline, with no Redis, the sweeper renders it: a job cannot run inside the commit that asks for it.)
        dispatch.after_commit("jobs.invoice_pdf.render_invoice_part", part.id, queue="documents", skip_inline=True)
        # The customer's mail with the download link (once per part; inline, the sweeper sends it).
        dispatch.after_commit("jobs.invoices.mail_invoice_part", part.id, skip_inline=True)
        part.pdf_url, part.ofd_url, part.xml_url = result.pdf_url, result.ofd_url, result.xml_url
        if result.pdf_bytes:
            part.provider_pdf = result.pdf_bytes
        part.failure_reason = None
        return True
    if result.status == "failed":
        part.status, part.failure_reason = "failed", (result.reason or "failed")[:300]
        return True
    if result.status == "unknown" and part.status != "pending":
        part.status = "pending"  # the provider never got it: submit again under the same serial
        return True
    return False


def verify_callback(body: bytes, signature: str | None, config=None) -> None:
    """A push is the provider's only when X-Nuonuo-Sign is the HMAC of its raw bytes with our app secret."""
    import hmac

    from shared.finance.providers.nuonuo import sign

    config = config or current_app.config
    if not signature:
        raise ValidationFailed("the push carries no signature", field="signature", code="missing_signature")
    if not hmac.compare_digest(sign(config["INVOICE_PROVIDER_APP_SECRET"], body), signature):
        raise ValidationFailed("the push's signature is wrong", field="signature", code="bad_signature")


def apply_callback(body: bytes, signature: str, config=None) -> bool:
    """The provider's push of a result (a queryInvoiceResult row as JSON, signed like our requests): verified, then
    applied like a poll's answer; a repeat or late push is kept and not applied. False when not applied.
    The raw row (less its PDF, which is kept as the part's provider PDF) is kept in the part's provider_answers, in
    the same transaction as its effect (POST /hooks/invoicing/<provider> calls this: see why there)."""
    import json

    from shared.finance.providers.nuonuo import NuonuoProvider

    verify_callback(body, signature, config)
    try:
        row = json.loads(body)
    except ValueError:
        raise ValidationFailed("the push is not JSON", field="body", code="invalid_json")
    if not isinstance(row, dict) or not isinstance(row.get("orderNo"), str):
        raise ValidationFailed("the push names no orderNo", field="orderNo", code="invalid_push")
    part = db.session.scalars(select(InvoicePart).where(InvoicePart.serial == row["orderNo"][:64])).first()
    if part is None:
        raise NotFound("no invoice part with this serial", field="orderNo", code="unknown_invoice")
    try:
        result = NuonuoProvider.read_result(row)
    except (ValueError, TypeError):  # e.g. a pdfContent that is not base64
        raise ValidationFailed("the push's fields cannot be read", field="body", code="invalid_push")
    applied = apply_result(part, result)
    answers = list(part.provider_answers or [])
    answers[-1] = {**answers[-1], "via": "callback", "applied": applied,
                   "raw": {k: v for k, v in row.items() if k != "pdfContent"}}
    part.provider_answers = answers
    if part.request.status in ("requested", "submitted", "issuing"):
        _settle(part.request)
    log.info("invoice_part=%s serial=%s callback status=%s applied=%s", part.id, part.serial, result.status, applied)
    return applied


def poll(request: InvoiceRequest, provider=None) -> dict:
    """Ask the provider about every part in flight and apply the answers."""
    provider = provider or provider_for(current_app.config)
    tally = {"issued": 0, "failed": 0, "waiting": 0, "timeouts": 0}
    for part in request.parts:
        if part.status not in ("submitted", "issuing"):
            continue
        try:
            result = provider.query(part.serial)
        except (ProviderTimeout, ProviderError) as error:
            log.warning("invoice_part=%s serial=%s query unanswered: %s", part.id, part.serial, error)
            tally["timeouts"] += 1
            continue
        apply_result(part, result)
        tally[{"issued": "issued", "failed": "failed"}.get(part.status, "waiting")] += 1
    if request.status in ("submitted", "issuing", "requested"):
        _settle(request)
    return tally


def resubmit(request: InvoiceRequest, actor: Actor, profile_id: int | None = None) -> InvoiceRequest:
    """A failed request, perhaps with another (or an edited) profile, goes back to requested: its failed parts get
    new serials (the provider keeps the old ones as failed) and are sent again after the commit."""
    if request.status != "failed":
        raise Conflict(say(NOT_RESUBMITTABLE, status=labels.label(labels.INVOICE_STATUS, request.status)),
                       code="invalid_invoice_request_transition")
    profile = _profile_for(profile_id if profile_id is not None else request.profile_id, request.customer_id,
                           request.kind)
    _snapshot(request, profile)
    for part in request.parts:
        if part.status == "failed":
            attempt = part.serial.count("r") + 1
            part.serial = f"{request.serial}-{part.position}r{attempt}"
            part.status, part.provider_serial, part.failure_reason = "pending", None, None
    before = request.failure_reason
    request.failure_reason = None
    INVOICE_REQUEST.move(request, "requested")
    audit.record(actor, "invoice.resubmitted", "invoice_request", request.id, before={"failure_reason": before})
    from shared import dispatch

    dispatch.after_commit("jobs.invoices.submit_invoice_request", request.id, skip_inline=True)
    return request


def cancel(request: InvoiceRequest, actor: Actor, reason: str) -> None:
    if any(part.status in ("submitted", "issuing", "issued") for part in request.parts):
        raise Conflict(say(NOT_CANCELLABLE), code="invalid_invoice_request_transition")
    INVOICE_REQUEST.move(request, "cancelled")
    audit.record(actor, "invoice.cancelled", "invoice_request", request.id, reason=reason)


def in_flight_ids(limit: int = 500) -> list[int]:
    """Requests the sweeper looks after: waiting for the provider, or with a part not yet accepted."""
    return list(db.session.scalars(select(InvoiceRequest.id).where(
        InvoiceRequest.status.in_(("requested", "submitted", "issuing"))).order_by(InvoiceRequest.id).limit(limit)))


def request_json(request: InvoiceRequest) -> dict:
    """One invoice request as the API shows it."""
    from shared.services import red_letters

    money = lambda value: str(Decimal(value).quantize(Decimal("0.01")))  # noqa: E731
    return {
        "id": request.id, "serial": request.serial, "status": request.status, "kind": request.kind,
        "orders": [link.order.order_no for link in request.orders],
        "buyer": {"kind": request.buyer_kind, "name": request.buyer_name, "tax_id": request.buyer_tax_id},
        "total_gross": money(request.total_gross), "total_amount": money(request.total_amount),
        "total_tax": money(request.total_tax), "failure_reason": request.failure_reason,
        "held_reason": request.held_reason,
        "numbers": [part.number for part in request.parts if part.number],
        "parts": [{"position": part.position, "serial": part.serial, "status": part.status, "number": part.number,
                   "total_gross": money(part.total_gross), "total_amount": money(part.total_amount),
                   "total_tax": money(part.total_tax), "total_in_words": part.total_in_words,
                   "pdf_url": part.pdf_url, "ofd_url": part.ofd_url, "xml_url": part.xml_url,
                   "failure_reason": part.failure_reason, "lines": len(part.lines),
                   "reds": [red_letters.red_json(red) for red in part.reds]} for part in request.parts],
    }


def _rate_label(line) -> str:
    return invoice_math.TAX_FREE_LABELS[line.tax_free] if line.tax_free else f"{line.rate}%"


def to_pdf_invoice(part: InvoicePart, config=None) -> "invoice_pdf.PdfInvoice":
    """What the invoice PDF prints for one part (shared/finance/invoice_pdf.py). A part not yet issued is a preview
    (number None)."""
    return invoice_pdf.from_dict(pdf_fields(part, config))


def pdf_fields(part: InvoicePart, config=None) -> dict:
    config = config or current_app.config
    request = part.request
    issued = part.issued_at or utc_now()
    return {
        "number": part.number, "issued_on": issued.date(), "kind": request.kind,
        "seller": {"name": config["INVOICE_SELLER_NAME"], "tax_id": config["INVOICE_SELLER_TAX_ID"],
                   "address_phone": config.get("INVOICE_SELLER_ADDRESS_PHONE", ""),
                   "bank_account": config.get("INVOICE_SELLER_BANK_ACCOUNT", "")},
        "buyer": {"name": request.buyer_name, "tax_id": request.buyer_tax_id or "",
                  "address_phone": request.buyer_address_phone or "",
                  "bank_account": request.buyer_bank_account or ""},
        "lines": [{"name": ln.name, "spec": ln.spec, "unit": ln.unit,
                   "quantity": None if ln.quantity is None else Decimal(ln.quantity),
                   "unit_price": None if ln.unit_price is None else Decimal(ln.unit_price),
                   "amount": Decimal(ln.amount), "rate": _rate_label(ln), "tax": Decimal(ln.tax)}
                  for ln in part.lines],
        "total_amount": Decimal(part.total_amount), "total_tax": Decimal(part.total_tax),
        "total_gross": Decimal(part.total_gross), "total_in_words": part.total_in_words,
        "remarks": f"订单 {', '.join(link.order.order_no for link in request.orders)}",
        "issuer": config.get("INVOICE_ISSUER", ""),
        "qr_payload": f"01,32,,{part.number or ''},{part.total_amount},{issued:%Y%m%d},,",
        "red": False, "original_number": None,
    }




def unrendered_part_ids(limit: int = 50) -> list[int]:
    """Issued parts whose PDF of ours is not made yet (the render job was lost, or jobs run inline)."""
    return list(db.session.scalars(select(InvoicePart.id).where(InvoicePart.status == "issued",
                                                                InvoicePart.rendered_pdf.is_(None))
                                   .order_by(InvoicePart.id).limit(limit)))


def render_part_pdf(part_id: int) -> int:
    """Render our PDF of an issued part and keep it (the job's work); returns its size, 0 when there is nothing to
    render (unknown, not issued). A re-run renders again (the same invoice prints the same)."""
    part = db.session.get(InvoicePart, part_id)
    if part is None or part.status != "issued":
        return 0
    part.rendered_pdf = invoice_pdf.render(to_pdf_invoice(part))
    return len(part.rendered_pdf)


def part_pdf(request: InvoiceRequest, position: int) -> tuple[bytes, str]:
    """The PDF of one issued part of a request (1-based): the provider's when it sent one, else ours; with a file
    name. Not issued (yet) or not rendered yet: a Conflict saying so."""
    parts = sorted(request.parts, key=lambda p: p.position)
    if not 1 <= position <= len(parts):
        raise NotFound(say(UNKNOWN_PART, request=request.id, position=position), field="part", code="unknown_part")
    part = parts[position - 1]
    if part.status != "issued":
        raise Conflict(say(PART_NOT_ISSUED, position=position, request=request.id,
                           status=labels.label(labels.INVOICE_STATUS, part.status)),
                       field="part", code="not_issued")
    content = part.provider_pdf or part.rendered_pdf
    if not content:
        raise Conflict(say(PDF_NOT_READY), field="part", code="pdf_not_ready")
    return bytes(content), f"invoice-{part.number}.pdf"
