"""Refunds of orders: the one place a refund is made and followed (after-sales calls `refund` too).

- `refund(order_no, amount, reason, actor, ...)` checks the amount (more than 0, two decimals, no more than was
  paid less what is refunded or on its way, the order's currency), goes through approvals (`order.refund`: a rule
  may hold it; the approval applies it through approvals.APPLY), then: on a direct channel paid through WeChat Pay
  or Alipay it calls the provider's refund API (shared.payments.refund_api) with an out_refund_no of ours, so a
  repeat never refunds twice; on a direct channel paid otherwise (a till, a transfer) the person recording it pays
  it back the same way and it is made when recorded (provider `manual`); on Shopify and WooCommerce it is pushed
  to the platform's own refund API (shared.services.platform_refunds); on the other platforms, whose open APIs let
  a merchant only answer a buyer's application, the refund waits for the platform's own report
  (channel_orders.apply_refund completes it).
- A provider that does not answer leaves the refund `processing`: `resolve` asks it by out_refund_no (the job
  `jobs.refunds.resolve_processing_refunds`), and sends the same request again when the provider never got it.
- `settle(...)` is the one rule every completed refund follows, the platform's and the providers' alike: recorded
  once by its id (a PlatformRefund row: what payments.reconcile compares with the bills), the order's refund status
  follows the refunded total, a full refund before shipping cancels the order (its stock released), and invoices
  already issued for the order are reversed by red letters (红字) for the refunded gross (`reverse_invoices`).
"""
import logging
import secrets
from decimal import Decimal, InvalidOperation

from flask import current_app, has_app_context
from sqlalchemy import func, select

from shared import dispatch
from shared.actors import SYSTEM, Actor
from shared import labels
from shared.extensions import db
from shared.lifecycle import OrderStatus
from shared.models import ApprovalRequest, Order, PlatformRefund
from shared.models.invoices import InvoicePart, InvoiceRequestOrder
from shared.models.payments import OrderRefund, Payment, PaymentAccount
from shared.money import CENT, format_money
from shared.payments import PaymentMessageError, refund_api
from shared.security.permissions import can
from shared.services import audit
from shared.services import orders as order_service
from shared.services.channel_orders import BEFORE_SHIPPING, follow_lifecycle
from shared.services.errors import Forbidden, NotFound, ValidationFailed
from shared.services.validation import N_, say
from shared.timekeeping import utc_now

log = logging.getLogger("orderloom.refunds")
S = OrderStatus
ZERO = Decimal("0.00")
LIVE = ("pending_approval", "processing", "awaiting_platform")  # these hold their amount against the order
REFUND_ORDER = ("none", "requested", "partially_refunded", "refunded")  # a refund report only moves it forward
RESOLVE_JOB = "jobs.refunds.resolve_refund"
MAX_ROW_ID = 2 ** 31 - 1

BAD_AMOUNT = N_("the refund amount must be more than 0 with at most two decimals")
OVER_PAID = N_("a refund of %(amount)s is more than can be refunded of %(order)s (%(left)s of %(paid)s paid)")
NOT_PAID = N_("%(order)s is not paid: there is nothing to refund")
BAD_CURRENCY = N_("the refund is in %(currency)s, the order in %(order_currency)s")
NO_REASON = N_("a refund needs a reason (at most 200 characters)")
MANUAL = "manual"  # OrderRefund.provider of a refund paid back outside the providers' APIs, recorded here
NOT_ALLOWED = N_("the %(role)s role may not refund orders")
UNKNOWN_REFUND = N_("no such refund")


# --- asking for a refund --------------------------------------------------------------------------------------

def _amount(value) -> Decimal:
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValidationFailed(say(BAD_AMOUNT), field="amount", code="invalid_amount")
    if not amount.is_finite() or amount <= ZERO or amount != amount.quantize(CENT):
        raise ValidationFailed(say(BAD_AMOUNT), field="amount", code="invalid_amount")
    return amount


def refunded_total(order: Order) -> Decimal:
    """What has been refunded of an order so far: the sum of its completed refunds (platform or provider)."""
    total = db.session.execute(select(func.coalesce(func.sum(PlatformRefund.amount), 0))
                               .where(PlatformRefund.order_id == order.id)).scalar_one()
    return Decimal(str(total)).quantize(CENT)


def close_rejected(order: Order) -> None:
    """Refunds held for an approval that was rejected or withdrawn are `rejected` (their amount is free again)."""
    held = db.session.execute(select(OrderRefund, ApprovalRequest.state).join(
        ApprovalRequest, ApprovalRequest.id == OrderRefund.approval_request_id).where(
        OrderRefund.order_id == order.id, OrderRefund.status == "pending_approval",
        ApprovalRequest.state.in_(("rejected", "withdrawn")))).all()
    for row, state in held:
        row.status, row.error_code, row.updated_at = "rejected", f"approval_{state}", utc_now()


def in_flight(order: Order) -> Decimal:
    total = db.session.execute(select(func.coalesce(func.sum(OrderRefund.amount), 0)).where(
        OrderRefund.order_id == order.id, OrderRefund.status.in_(LIVE))).scalar_one()
    return Decimal(str(total)).quantize(CENT)


def refundable(order: Order) -> Decimal:
    """What may still be refunded: what was paid, less what is refunded and what refunds on their way hold."""
    paid = Decimal(order.total) if order.payment_status == "paid" else ZERO
    return max(paid - refunded_total(order) - in_flight(order), ZERO)


def provider_payment(order: Order) -> Payment | None:
    """The provider payment of an order on a direct channel (the trade a refund goes back through)."""
    return db.session.execute(select(Payment).where(Payment.order_id == order.id).order_by(Payment.id.desc())
                              .limit(1)).scalar_one_or_none()


def new_refund_no(order: Order) -> str:
    """out_refund_no / out_request_no: ours, unique, 6–64 characters of letters and digits (both providers)."""
    return f"RF{order.order_no}{secrets.token_hex(4).upper()}"


def refund(order_no: str, amount, reason: str, actor: Actor, *, lines=None, goods_returned: bool = False,
           after_sale_id: int | None = None, currency: str | None = None, transport=None) -> OrderRefund:
    """Refund part or all of what was paid for an order (see the module's docstring). Refused, nothing changed:
    a role that may not, a bad amount, more than can be refunded, another currency, no reason."""
    # Finance refunds any order; customer service refunds what it decided on an after-sales request.
    if not (can(actor.role, "payments", "edit") or actor.role == SYSTEM.role
            or (after_sale_id is not None and can(actor.role, "after_sales", "approve"))):
        raise Forbidden(say(NOT_ALLOWED, role=labels.role_name(actor.role)), code="forbidden")
    from shared.services import approvals

    order = order_service.get_order(order_no, for_update=True)
    amount = _amount(amount)
    reason = (reason or "").strip() if isinstance(reason, str) else ""
    if not reason or len(reason) > 200:
        raise ValidationFailed(say(NO_REASON), field="reason", code="reason_required")
    if currency and str(currency).upper() != order.currency:
        raise ValidationFailed(say(BAD_CURRENCY, currency=str(currency)[:3], order_currency=order.currency),
                               field="currency", code="currency_mismatch")
    if order.payment_status != "paid":
        raise ValidationFailed(say(NOT_PAID, order=order.order_no), field="amount", code="not_paid")
    close_rejected(order)
    left = refundable(order)
    if amount > left:
        raise ValidationFailed(say(OVER_PAID, amount=format_money(amount), order=order.order_no,
                                   left=format_money(left), paid=format_money(order.total)),
                               field="amount", code="over_refundable")
    payment = provider_payment(order) if order.channel.is_direct else None
    # A direct-channel order paid otherwise (a store's till, a bank transfer): the refund is paid back the same way
    # by the person who records it here, and counts as made when recorded (audited, under the same approvals).
    manual = order.channel.is_direct and payment is None
    out_refund_no = new_refund_no(order)
    context = {"amount": amount, "currency": order.currency, "channel": order.channel.code}
    held = approvals.gate("order.refund", order.order_no, context, {"out_refund_no": out_refund_no}, actor,
                          summary=f"{order.order_no} refund {order.currency} {format_money(amount)}: {reason}"[:200])
    row = OrderRefund(order_id=order.id, out_refund_no=out_refund_no, amount=amount, currency=order.currency,
                      reason=reason, status="pending_approval" if held is not None else "processing",
                      provider=payment.provider if payment else (MANUAL if manual else None),
                      account_id=payment.account_id if payment else None,
                      goods_returned=bool(goods_returned), after_sale_id=after_sale_id, lines=lines, attempts=0,
                      requested_by=actor.label[:80], approval_request_id=held.id if held is not None else None)
    db.session.add(row)
    db.session.flush()
    audit.record(actor, "refund.requested", "order", order.order_no, reason=reason,
                 after={"out_refund_no": out_refund_no, "amount": str(amount), "currency": order.currency,
                        "provider": row.provider, "status": row.status, "goods_returned": row.goods_returned,
                        "after_sale_id": after_sale_id})
    if held is None:
        perform(row, transport=transport)
    return row


def apply_approved(out_refund_no: str) -> None:
    """approvals.APPLY for `order.refund`: the refund held for approval is made now."""
    row = db.session.execute(select(OrderRefund).where(OrderRefund.out_refund_no == out_refund_no)
                             .with_for_update()).scalar_one_or_none()
    if row is None or row.status != "pending_approval":
        return
    row.status, row.updated_at = "processing", utc_now()
    perform(row)


def _timeout() -> float:
    return float(current_app.config.get("PAYMENT_API_TIMEOUT", refund_api.TIMEOUT)) if has_app_context() \
        else refund_api.TIMEOUT


def notify_url(account: PaymentAccount) -> str | None:
    """Where the provider posts the refund's notification: our payment hook, when the portal's address is set."""
    base = current_app.config.get("PORTAL_BASE_URL") if has_app_context() else None
    if not base:
        return None
    return f"{base.rstrip('/')}/hooks/pay/{account.provider}/{account.channel.code}"


def perform(row: OrderRefund, transport=None) -> OrderRefund:
    """Send the refund to its provider (or leave it to the platform); follow the answer."""
    from shared.services import platform_refunds  # Shopify, WooCommerce: the platform's own refund API
    if platform_refunds.pushes(row):
        return platform_refunds.push(row, transport)
    if row.provider is None:
        row.status, row.updated_at = "awaiting_platform", utc_now()
        return row
    if row.provider == MANUAL:
        complete(row)
        return row
    payment = provider_payment(row.order)
    account = row.account
    row.attempts += 1
    client = refund_api.client_for(account, transport, _timeout())
    try:
        answer = client.create(payment.out_trade_no, row.out_refund_no, row.reason, notify_url(account), row.amount,
                               Decimal(payment.amount), row.currency)
    except (refund_api.ProviderUnreachable, PaymentMessageError) as error:
        _unanswered(row, error)
        return row
    follow(row, answer)
    return row


def _unanswered(row: OrderRefund, error: Exception) -> None:
    """No answer we can trust: the refund may or may not be made; it stays processing and is asked about."""
    row.status, row.updated_at = "processing", utc_now()
    row.error_code = getattr(error, "code", None) or "provider_unreachable"
    row.last_error = str(error)[:500]
    log.warning("refund=%s out_refund_no=%s unanswered: %s", row.id, row.out_refund_no, error)
    dispatch.after_commit(RESOLVE_JOB, row.id, queue="sync", skip_inline=True)


def follow(row: OrderRefund, answer: refund_api.RefundAnswer, notice_id: int | None = None) -> str:
    """Apply one provider answer (or report) to a refund; returns what happened."""
    if row.status in ("succeeded", "failed", "rejected"):
        return "unchanged"
    if answer.provider_refund_id:
        row.provider_refund_id = answer.provider_refund_id[:64]
    row.updated_at = utc_now()
    if answer.status == refund_api.SUCCEEDED:
        complete(row, answer.refunded_at)
        return "succeeded"
    if answer.status in (refund_api.REFUSED, refund_api.FAILED):
        row.status, row.error_code, row.last_error = "failed", (answer.code or answer.status)[:60], \
            (answer.message or "")[:500] or None
        audit.record(SYSTEM, "refund.failed", "order", row.order.order_no,
                     after={"out_refund_no": row.out_refund_no, "provider": row.provider, "code": row.error_code,
                            "message": row.last_error})
        return "failed"
    row.status, row.error_code = "processing", None
    return "processing"


def complete(row: OrderRefund, refunded_at=None) -> None:
    """The provider refunded: recorded by the one rule, the refund row succeeded and linked to it."""
    order = db.session.execute(select(Order).where(Order.id == row.order_id).with_for_update(of=Order)).scalar_one()
    _outcome, recorded = settle(order, order.channel_id, row.out_refund_no, Decimal(row.amount),
                                refunded_at or utc_now(), f"{row.provider} {row.provider_refund_id or ''}".strip(),
                                goods_returned=row.goods_returned, actor=SYSTEM, asked_here=True)
    if recorded is None:
        recorded = db.session.execute(select(PlatformRefund).where(
            PlatformRefund.channel_id == order.channel_id, PlatformRefund.platform_refund_id == row.out_refund_no)
        ).scalar_one_or_none()
    row.status, row.completed_at, row.updated_at, row.error_code = "succeeded", utc_now(), utc_now(), None
    row.platform_refund_id = recorded.id if recorded is not None else None
    audit.record(SYSTEM, "refund.succeeded", "order", order.order_no,
                 after={"out_refund_no": row.out_refund_no, "provider": row.provider,
                        "provider_refund_id": row.provider_refund_id, "amount": str(row.amount)})


def resolve(row: OrderRefund, transport=None) -> str:
    """A refund left processing: ask the provider by out_refund_no; one it never got is sent again (same number,
    so never twice). Idempotent: a finished refund is left as it is."""
    if row.status != "processing" or row.provider in (None, MANUAL):
        return row.status
    client = refund_api.client_for(row.account, transport, _timeout())
    payment = provider_payment(row.order)
    try:
        answer = client.query(row.out_refund_no, payment.out_trade_no)
    except (refund_api.ProviderUnreachable, PaymentMessageError) as error:
        row.last_error, row.updated_at = str(error)[:500], utc_now()
        return row.status
    if answer.status == refund_api.NOT_FOUND:
        return perform(row, transport).status
    follow(row, answer)
    return row.status


def processing_ids(limit: int = 200) -> list[int]:
    return list(db.session.scalars(select(OrderRefund.id).where(OrderRefund.status == "processing",
                                                                OrderRefund.provider.is_not(None))
                                   .order_by(OrderRefund.id).limit(limit)))


# --- reports of a refund (provider notifications, platform refunds) -------------------------------------------

def apply_provider_report(order: Order, account: PaymentAccount, report: dict, notice_id: int | None = None
                          ) -> tuple[str, Decimal | None]:
    """A verified refund notification of a provider, for `order`: (outcome, amount). SUCCESS completes the refund
    (once: a replay finds it recorded); ABNORMAL / CLOSED fails a refund of ours still on its way. A refund made
    outside Orderloom (the merchant's console) is recorded too, by the provider's amount."""
    row = db.session.execute(select(OrderRefund).where(OrderRefund.out_refund_no == report["out_refund_no"])
                             .with_for_update()).scalar_one_or_none()
    if row is not None and row.order_id != order.id:
        return "order_mismatch", None
    if report["state"] != "SUCCESS":
        if row is not None:
            follow(row, refund_api.RefundAnswer(refund_api.FAILED, report.get("refund_id"), report["state"]))
        return "refund_failed", None
    amount = report.get("amount")
    if amount is None:  # Alipay: refund_fee is the trade's refunded total
        amount = Decimal(row.amount) if row is not None else report["refunded_total"] - refunded_total(order)
    if row is not None and amount != Decimal(row.amount):
        return "amount_mismatch", amount
    if amount <= ZERO:
        return "duplicate", amount
    if row is not None:
        if row.status == "succeeded":
            return "duplicate", amount
        row.provider_refund_id = (report.get("refund_id") or row.provider_refund_id or "")[:64] or None
        row.status = "processing"  # a refund failed or held here that the provider made anyway: it is made
        complete(row, report.get("refunded_at"))
        return "refunded", amount
    outcome, _recorded = settle(order, account.channel_id, report["out_refund_no"], amount,
                                report.get("refunded_at") or utc_now(), f"{account.provider} {report.get('refund_id')}",
                                actor=SYSTEM)
    return ("refunded" if outcome == "refunded" else "duplicate"), amount


def settle(order: Order, channel_id: int, refund_id: str, amount: Decimal, refunded_at, note: str | None,
           *, inbox_item_id: int | None = None, goods_returned: bool = False, actor: Actor = SYSTEM,
           channel_name: str | None = None, asked_here: bool = False) -> tuple[str, PlatformRefund | None]:
    """THE rule of a completed refund (platform or provider): recorded once by its id; the order's refund status
    follows the refunded total (partially or fully refunded); a full refund before shipping cancels the order and
    releases its stock; issued invoices are reversed for the refunded gross. After shipping only the refund status
    changes (the goods come back through after-sales). Returns ("unchanged", None) for a refund already recorded."""
    seen = db.session.execute(select(PlatformRefund.id).where(
        PlatformRefund.channel_id == channel_id, PlatformRefund.platform_refund_id == refund_id)).scalar_one_or_none()
    if seen is not None:
        return "unchanged", None
    recorded = PlatformRefund(channel_id=channel_id, order_id=order.id, platform_refund_id=refund_id, amount=amount,
                              currency=order.currency, refunded_at=refunded_at, note=(note or "")[:500] or None,
                              inbox_item_id=inbox_item_id)
    db.session.add(recorded)
    db.session.flush()
    refunded = refunded_total(order)
    full = refunded >= Decimal(order.total)
    status = "refunded" if full else ("partially_refunded" if refunded > 0 else order.refund_status)
    if REFUND_ORDER.index(status) < REFUND_ORDER.index(order.refund_status):
        status = order.refund_status  # the platform's status already said more (a refund webhook still on its way)
    where = channel_name or order.channel.name
    reason = f"refund {refund_id} of {format_money(amount)} {order.currency} on {where}"
    before_delivery = order.status in BEFORE_SHIPPING
    if status != order.refund_status:
        order_service.record_refund_status(order, status, SYSTEM, reason)
    if full and before_delivery:
        follow_lifecycle(order, S.CANCELLED, f"refunded in full ({reason})")
    order.updated_at = utc_now()
    if not asked_here:  # a refund we asked for is completed by its caller, never matched to another one by amount
        _pending_platform_refund_done(order, amount, recorded)
    red_reason = "return" if goods_returned else ("stopped" if full and before_delivery else "allowance")
    reverse_invoices(order, amount, full, red_reason, actor)
    return "refunded", recorded


def _pending_platform_refund_done(order: Order, amount: Decimal, recorded: PlatformRefund) -> None:
    """A platform refund that arrives for a refund asked for here (same order, same amount) completes it."""
    row = db.session.execute(select(OrderRefund).where(
        OrderRefund.order_id == order.id, OrderRefund.status == "awaiting_platform", OrderRefund.amount == amount)
        .order_by(OrderRefund.id).limit(1)).scalar_one_or_none()
    if row is None:
        return
    row.status, row.completed_at, row.updated_at = "succeeded", utc_now(), utc_now()
    row.platform_refund_id, row.provider_refund_id = recorded.id, recorded.platform_refund_id
    audit.record(SYSTEM, "refund.succeeded", "order", order.order_no,
                 after={"out_refund_no": row.out_refund_no, "platform_refund_id": recorded.platform_refund_id,
                        "amount": str(row.amount)})


# --- invoices: red letters for what was refunded --------------------------------------------------------------

def issued_parts(order: Order) -> list[tuple[InvoicePart, int]]:
    """The issued blue invoice parts of the order's invoice requests, with how many orders each request holds."""
    parts = db.session.execute(select(InvoicePart).join(
        InvoiceRequestOrder, InvoiceRequestOrder.request_id == InvoicePart.request_id).where(
        InvoiceRequestOrder.order_id == order.id, InvoicePart.status == "issued", InvoicePart.number.is_not(None))
        .order_by(InvoicePart.id)).scalars().all()
    return [(part, len(part.request.orders)) for part in parts]


def reverse_invoices(order: Order, amount: Decimal, full: bool, reason: str, actor: Actor) -> list:
    """Red letters (红字) for a refund of `amount` gross: over the order's issued parts that still have something
    left, in order; a full refund of an order invoiced on its own reverses its invoices in full."""
    from shared.services import red_letters

    reds, left = [], amount
    for part, orders_in_request in issued_parts(order):
        remaining = red_letters.remaining(part)
        if remaining <= ZERO:
            continue
        if full and orders_in_request == 1:
            reds.append(red_letters.open_red(part.id, reason, None, actor))
            continue
        if left <= ZERO:
            break
        take = min(left, remaining)
        reds.append(red_letters.open_red(part.id, reason, str(take), actor))
        left -= take
    if reds:
        audit.record(actor, "refund.invoices_reversed", "order", order.order_no,
                     after={"amount": str(amount), "reason": reason, "red_letters": [red.serial for red in reds]})
    return reds


# --- reading --------------------------------------------------------------------------------------------------

def refunds_of(order: Order) -> list[OrderRefund]:
    close_rejected(order)
    return list(db.session.scalars(select(OrderRefund).where(OrderRefund.order_id == order.id)
                                   .order_by(OrderRefund.id)))


def get_refund(refund_id) -> OrderRefund:
    row = db.session.get(OrderRefund, int(refund_id)) if str(refund_id).isdigit() and \
        0 < int(refund_id) <= MAX_ROW_ID else None
    if row is None:
        raise NotFound(say(UNKNOWN_REFUND), field="refund", code="refund_not_found")
    return row


def refund_json(row: OrderRefund) -> dict:
    from shared.order_payloads import iso_time

    return {"id": row.id, "out_refund_no": row.out_refund_no, "amount": format_money(Decimal(row.amount)),
            "currency": row.currency, "reason": row.reason, "status": row.status, "provider": row.provider,
            "provider_refund_id": row.provider_refund_id, "goods_returned": row.goods_returned,
            "after_sale_id": row.after_sale_id, "approval_id": row.approval_request_id,
            "error": {"code": row.error_code, "message": row.last_error} if row.error_code else None,
            "requested_by": row.requested_by, "created_at": iso_time(row.created_at),
            "completed_at": iso_time(row.completed_at)}
