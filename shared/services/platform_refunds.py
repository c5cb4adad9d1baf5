"""Refunds of platform orders sent to the platform's own refund API (Shopify, WooCommerce: shared.channels.refund_push).

refunds.perform hands a refund here when its channel's platform has a refund API we speak and the channel has an API
connection; every other platform refund waits for the platform's report, as before (`awaiting_platform`).

- `push(row)`: the refund is sent with our out_refund_no written into it (the platforms take no idempotency key). The
  platform's answer completes it through refunds.settle (the one rule), recorded under the platform's refund id, so
  the platform's later report of the same refund (a Shopify refunds/create webhook: channel_orders.apply_refund) is
  the same PlatformRefund row and is not counted again. A refusal fails the refund with the platform's message
  (nothing recorded as refunded). No answer to trust leaves it `processing`, and the refund jobs ask again.
- `resolve(row)`: asks the platform for its refund carrying our out_refund_no; one found completes the refund, one
  the platform never got is sent again. Idempotent: a finished refund is left as it is.
- `claim_report(...)`: the platform reported a refund (its webhook) while our push was still unanswered: the report
  completes that refund (matched by our out_refund_no in the refund's note, else by amount), once.
"""
import logging
from decimal import Decimal

import httpx
from flask import current_app, has_app_context
from sqlalchemy import select

from shared import dispatch
from shared.actors import SYSTEM
from shared.channels import refund_push
from shared.extensions import db
from shared.models import ChannelConnection, Order, PlatformRefund
from shared.models.payments import OrderRefund
from shared.payments import refund_api
from shared.services import audit
from shared.services import refunds
from shared.services.polling import credentials
from shared.timekeeping import utc_now

log = logging.getLogger("orderloom.refunds")
TIMEOUT = 15.0  # seconds; PLATFORM_REFUND_TIMEOUT in the configuration overrides it
PUSHED = tuple(refund_push.PUSHES)  # OrderRefund.provider of a refund sent to its platform


def _timeout() -> float:
    return float(current_app.config.get("PLATFORM_REFUND_TIMEOUT", TIMEOUT)) if has_app_context() else TIMEOUT


def connection_of(order: Order) -> ChannelConnection | None:
    connection = db.session.execute(select(ChannelConnection).where(
        ChannelConnection.channel_id == order.channel_id)).scalar_one_or_none()
    return connection if connection is not None and connection.base_url else None


def pushes(row: OrderRefund) -> bool:
    """Whether this refund goes to its platform's refund API: a platform refund (or one already sent there) on a
    channel whose platform has one and that has an API connection."""
    if row.provider not in (None, *PUSHED):
        return False
    order = row.order
    return refund_push.push_for(order.channel.kind) is not None and connection_of(order) is not None


def is_pushed(row: OrderRefund) -> bool:
    """A refund already sent to its platform (the refund jobs ask the platform about it, not a payment provider)."""
    return row.provider in PUSHED


def _request(row: OrderRefund) -> refund_push.PushRequest:
    return refund_push.PushRequest(row.order.channel_order_id, row.out_refund_no, Decimal(row.amount), row.currency,
                                   row.reason)


def _client(transport) -> httpx.Client:
    return httpx.Client(timeout=_timeout(), transport=transport)


def push(row: OrderRefund, transport: httpx.BaseTransport | None = None) -> OrderRefund:
    """Send the refund to its platform and follow the answer (see the module's docstring)."""
    order = row.order
    pusher = refund_push.push_for(order.channel.kind)
    row.provider, row.attempts, row.status = pusher.kind, (row.attempts or 0) + 1, "processing"
    try:
        with _client(transport) as client:
            answer = pusher.create(client, credentials(connection_of(order)), _request(row))
    except refund_push.PlatformUnreachable as error:
        _unanswered(row, error)
        return row
    follow(row, answer)
    return row


def _unanswered(row: OrderRefund, error: Exception) -> None:
    """The refund may or may not be made on the platform: it stays processing, and is asked about."""
    row.status, row.updated_at = "processing", utc_now()
    row.error_code, row.last_error = "platform_unreachable", str(error)[:500]
    log.warning("refund=%s out_refund_no=%s platform=%s unanswered: %s", row.id, row.out_refund_no, row.provider,
                error)
    dispatch.after_commit(refunds.RESOLVE_JOB, row.id, queue="sync", skip_inline=True)


def follow(row: OrderRefund, answer: refund_push.PushAnswer) -> str:
    """Apply the platform's answer to the refund; returns what happened."""
    if row.status in ("succeeded", "failed", "rejected"):
        return "unchanged"
    if answer.refund_id:
        row.provider_refund_id = answer.refund_id[:64]
    if answer.status == refund_push.SUCCEEDED:
        complete(row, answer.refund_id, answer.amount, answer.refunded_at)
        return "succeeded"
    if answer.status == refund_push.REFUSED:
        # The one way a refund fails (status, code, message, the refund.failed audit event).
        return refunds.follow(row, refund_api.RefundAnswer(refund_api.REFUSED, answer.refund_id, answer.code,
                                                           answer.message))
    row.status, row.error_code, row.updated_at = "processing", None, utc_now()
    return "processing"


def complete(row: OrderRefund, platform_refund_id: str, amount: Decimal | None, refunded_at=None,
             recorded: PlatformRefund | None = None) -> None:
    """The platform refunded: recorded by the one rule under the platform's refund id (unless its report recorded it
    already), the refund row succeeded and linked to it."""
    order = db.session.execute(select(Order).where(Order.id == row.order_id).with_for_update(of=Order)).scalar_one()
    if recorded is None:
        _outcome, recorded = refunds.settle(
            order, order.channel_id, platform_refund_id, amount if amount is not None else Decimal(row.amount),
            refunded_at or utc_now(), f"{order.channel.name} refund {platform_refund_id} ({row.out_refund_no})",
            goods_returned=row.goods_returned, actor=SYSTEM, asked_here=True)
    if recorded is None:  # the platform's report of this refund arrived first: the same row, not a second refund
        recorded = db.session.execute(select(PlatformRefund).where(
            PlatformRefund.channel_id == order.channel_id, PlatformRefund.platform_refund_id == platform_refund_id)
        ).scalar_one()
    row.status, row.completed_at, row.updated_at, row.error_code = "succeeded", utc_now(), utc_now(), None
    row.provider_refund_id, row.platform_refund_id = platform_refund_id[:64], recorded.id
    audit.record(SYSTEM, "refund.succeeded", "order", order.order_no,
                 after={"out_refund_no": row.out_refund_no, "provider": row.provider,
                        "provider_refund_id": row.provider_refund_id, "amount": str(recorded.amount)})


def resolve(row: OrderRefund, transport: httpx.BaseTransport | None = None) -> str:
    """A pushed refund left processing: ask the platform for the refund carrying our out_refund_no; one it never got
    is sent again (it carries the same number). Idempotent: a finished refund is left as it is."""
    if row.status != "processing" or not is_pushed(row):
        return row.status
    connection = connection_of(row.order)
    if connection is None:
        return row.status
    pusher = refund_push.push_for(row.order.channel.kind)
    try:
        with _client(transport) as client:
            answer = pusher.find(client, credentials(connection), _request(row))
    except refund_push.PlatformUnreachable as error:
        row.last_error, row.updated_at = str(error)[:500], utc_now()
        return row.status
    if answer.status == refund_push.NOT_FOUND:
        return push(row, transport).status
    follow(row, answer)
    return row.status


def claim_report(order: Order, recorded: PlatformRefund) -> OrderRefund | None:
    """A refund the platform reported (and settle recorded) that is ours, pushed and still unanswered: completed by
    the report, once. Ours when the platform's note carries our out_refund_no, else the oldest of the same amount."""
    if db.session.execute(select(OrderRefund.id).where(OrderRefund.platform_refund_id == recorded.id)).first():
        return None  # already some refund's (refunds.settle matched one awaiting the platform)
    waiting = list(db.session.scalars(select(OrderRefund).where(
        OrderRefund.order_id == order.id, OrderRefund.status == "processing", OrderRefund.provider.in_(PUSHED))
        .order_by(OrderRefund.id).with_for_update()))
    note = recorded.note or ""
    row = next((item for item in waiting if refund_push.marker(item.out_refund_no) in note), None) or next(
        (item for item in waiting if Decimal(item.amount) == Decimal(recorded.amount)), None)
    if row is None:
        return None
    complete(row, recorded.platform_refund_id, Decimal(recorded.amount), recorded=recorded)
    return row
