"""One canonical order from a channel becomes an order-center create or update, or goes to review.

Rules (issue 3): the platform's status is read through the channel's mapping table, never guessed; channel
SKUs go through the SKU mapping; amounts must add up within the platform's rounding; an older update never
overwrites a newer one (the platform's modified time decides); an address change is applied and audited while
the parcel is not yet packed; a refund or cancellation before shipping cancels the order, which releases its
stock. The platform does not move physical steps (allocate, pick, pack, ship): the warehouse does.
"""
from dataclasses import dataclass, replace
from sqlalchemy import select

from shared import cash_on_delivery
from shared.actors import SYSTEM
from shared.channels.base import Adapter
from shared.channels.canonical import CanonicalLine, CanonicalOrder
from shared.channels.topics import PlatformDeletion, PlatformRefundNotice
from shared.extensions import db
from shared.labels import STATUS, label
from shared.lifecycle import OrderStatus
from shared.models import Channel, Order, SkuMapping, StatusMapping
from shared.money import format_money
from shared.services import audit, customers
from shared.services import orders as order_service
from shared.services.errors import ServiceError, ValidationFailed
from shared.services.validation import N_, say
from shared.timekeeping import as_utc, utc_now

# What a person reads when this module refuses: message codes, said in the reader's language (say).
RESTORED_AFTER_CANCEL = N_("%(order_no)s was cancelled here when %(channel_name)s deleted it (its stock was released); "
                           "the platform restored it as \"%(status_key)s\": re-enter it or cancel it on the platform")
UNKNOWN_STATUS = N_("Status \"%(status_key)s\" of %(channel_name)s is not in the status mapping")
UNMAPPED_SKU = N_("Channel SKU %(unmapped)s is not mapped to an internal SKU")
AMOUNTS_DO_NOT_ADD_UP = N_("Amounts do not add up: goods %(goods)s − discount %(discount)s + shipping %(shipping)s + "
                           "fees %(fees)s + tax %(tax)s = %(computed)s ≠ paid %(paid)s (gap %(gap)s)")
LINE_AMOUNTS_DO_NOT_ADD_UP = N_("Amounts do not add up per line: %(problems)s")
ADDRESS_CHANGE_TOO_LATE = N_("The address changed on the platform after %(order_no)s was %(order_status)s")
WAITING_FOR_ORDER = N_("Refund %(refund_id)s is for %(channel_name)s order %(channel_order_id)s, which has not arrived "
                       "yet; it is applied when it does")
CURRENCY_MISMATCH = N_("Refund %(refund_id)s is in %(currency)s, %(order_no)s in %(currency_2)s")

S = OrderStatus
PLATFORM_HOLD = "platform:"  # hold reasons the channel placed start with this, so the channel may lift them
NOT_YET_PACKED = (S.PENDING_REVIEW, S.CONFIRMED, S.ALLOCATED, S.PICKING, S.ON_HOLD)
BEFORE_SHIPPING = (S.PENDING_REVIEW, S.CONFIRMED, S.ALLOCATED, S.PICKING, S.PACKED, S.ON_HOLD)
FINISHED = (S.CANCELLED, S.CLOSED)
MONEY_BACK = ("partially_refunded", "refunded")  # refund statuses that say money went back to the buyer
ADDRESS_FIELDS = ("receiver_name", "receiver_phone", "province", "city", "district", "street", "postal_code",
                  "platform_ciphertext", "platform_buyer_key")


class NeedsReview(ValidationFailed):
    """The order cannot flow on as received; a person must look (fix a mapping, then replay)."""

    code = "needs_review"


class WaitingForOrder(ServiceError):
    """A payload about an order that has not arrived yet (a refund before its order): kept, and replayed by itself
    when the order arrives."""

    status = 409
    code = "order_not_here"


PLATFORM_DELETED = "platform: deleted on"  # the cancel reason of an order the platform deleted


@dataclass(frozen=True)
class Mapping:
    """A status-mapping row as plain values: it outlives the commits of a batch without reloading."""

    platform_status: str
    lifecycle: str
    payment_status: str | None
    refund_status: str | None


@dataclass
class ChannelContext:
    """What processing a batch for one channel needs, loaded once per batch (no query per order)."""

    channel: Channel
    adapter: Adapter
    statuses: dict[str, Mapping]
    skus: dict[tuple[str, str], str]  # (key kind, value) → internal SKU code
    sku_objects: dict  # internal SKU code → Sku

    @classmethod
    def load(cls, channel: Channel, adapter: Adapter) -> "ChannelContext":
        statuses = db.session.execute(select(StatusMapping).where(StatusMapping.channel_id == channel.id)).scalars()
        skus = db.session.execute(select(SkuMapping).where(SkuMapping.channel_id == channel.id)).scalars().all()
        return cls(channel, adapter, {row.platform_status: Mapping(row.platform_status, row.lifecycle,
                                                                   row.payment_status, row.refund_status)
                                      for row in statuses},
                   {(row.key_kind, row.channel_sku): row.sku.code for row in skus},
                   {row.sku.code: row.sku for row in skus})

    def sku_for(self, line: CanonicalLine) -> str | None:
        """The internal SKU of a line: by the merchant's code, else the platform variant id, else the product id."""
        for key in line.mapping_keys():
            if key in self.skus:
                return self.skus[key]
        return None


def check(context: ChannelContext, canonical: CanonicalOrder) -> Mapping:
    """Everything that sends an order to review, checked before anything is written."""
    mapping = context.statuses.get(canonical.status_key)
    if mapping is None:
        raise NeedsReview(say(UNKNOWN_STATUS, status_key=canonical.status_key, channel_name=context.channel.name),
                          field="status", code="unknown_status")
    if canonical.cash_on_delivery:
        mapping = replace(mapping, lifecycle=cash_on_delivery.lifecycle(mapping.lifecycle, mapping.payment_status))
    unmapped = sorted({line.describe() for line in canonical.lines if context.sku_for(line) is None})
    if unmapped:
        raise NeedsReview(say(UNMAPPED_SKU, unmapped=', '.join(unmapped)), field="sku",
                          code="unmapped_sku")
    gap = canonical.amount_gap()
    tolerance = context.adapter.rounding_tolerance
    if abs(gap) > tolerance:
        raise NeedsReview(
            say(AMOUNTS_DO_NOT_ADD_UP, goods=format_money(canonical.goods_total),
                discount=format_money(canonical.discount), shipping=format_money(canonical.shipping_fee),
                fees=format_money(canonical.fees), tax=format_money(canonical.tax),
                computed=format_money(canonical.paid_amount + gap), paid=format_money(canonical.paid_amount),
                gap=format_money(gap)), field="amounts", code="amounts_do_not_add_up")
    problems = canonical.line_problems()
    if problems and tolerance == 0:
        raise NeedsReview(say(LINE_AMOUNTS_DO_NOT_ADD_UP, problems='; '.join(problems)), field="amounts",
                          code="amounts_do_not_add_up")
    return mapping


def payment_of(mapping: Mapping, canonical: CanonicalOrder) -> str:
    """The status mapping's word on payment, or the platform's paid time; cash on delivery by its own rule."""
    return cash_on_delivery.payment_status(canonical.cash_on_delivery, canonical.cash_collected,
                                           mapping.payment_status or ("paid" if canonical.paid_at else "unpaid"))


def refund_of(mapping: Mapping, canonical: CanonicalOrder) -> str:
    if mapping.refund_status:
        return mapping.refund_status
    # A cancellation after payment is a full refund on every platform we speak (Douyin "4", Woo "cancelled").
    return "refunded" if mapping.lifecycle == S.CANCELLED and canonical.paid_at else "none"


def apply(context: ChannelContext, canonical: CanonicalOrder) -> tuple[str, Order | None]:
    """Create or update the order; returns (outcome, order). Raises NeedsReview or a ServiceError."""
    mapping = check(context, canonical)
    order = db.session.execute(
        select(Order).where(Order.channel_id == context.channel.id,
                            Order.channel_order_id == canonical.channel_order_id).with_for_update(of=Order)
    ).scalar_one_or_none()
    if order is None:
        return "created", _create(context, canonical, mapping)
    stored = as_utc(order.platform_modified_at)
    if stored is not None and canonical.modified_at <= stored:
        return "stale", order
    return _update(order, canonical, mapping), order


def order_data(context: ChannelContext, canonical: CanonicalOrder, paid: bool) -> dict:
    return {
        "channel": context.channel.code, "channel_order_id": canonical.channel_order_id,
        "placed_at": canonical.placed_at, "paid_at": (canonical.paid_at or canonical.modified_at) if paid else None,
        "currency": canonical.currency,
        "customer": {"name": canonical.customer_name, "phone": canonical.customer_phone,
                     "email": canonical.customer_email},
        "shipping_address": {"receiver": canonical.receiver, "phone": canonical.receiver_phone,
                             "province": canonical.province, "city": canonical.city, "district": canonical.district,
                             "street": canonical.street, "postal_code": canonical.postal_code},
        "lines": [{"sku": context.sku_for(line), "quantity": line.quantity,
                   "unit_price": str(line.unit_price)} for line in canonical.lines],
        "shipping_fee": str(canonical.shipping_fee), "discount": str(canonical.discount),
        "tax": str(canonical.tax), "fees": str(canonical.fees), "cash_on_delivery": canonical.cash_on_delivery,
        "platform_protected": protected_of(context, canonical),
    }


def protected_of(context: ChannelContext, canonical: CanonicalOrder) -> dict | None:
    """The platform's ciphertext and buyer key, as the order services take them (None for plain payloads)."""
    return protected_of_kind(context.channel.kind, canonical)


def protected_of_kind(kind: str, canonical: CanonicalOrder) -> dict | None:
    if canonical.protected is None:
        return None
    return {"kind": kind, "ciphertext": canonical.protected.ciphertext, "buyer_key": canonical.protected.buyer_key}


def _create(context: ChannelContext, canonical: CanonicalOrder, mapping: Mapping) -> Order:
    """A first sight. Open orders reserve stock; an order first seen closed or already shipped is recorded only."""
    paid = payment_of(mapping, canonical) == "paid"
    target = mapping.lifecycle
    reserve = target in (S.PENDING_REVIEW, S.CONFIRMED, S.ON_HOLD)
    ships = paid or canonical.cash_on_delivery  # a COD order is fulfilled unpaid: the courier takes the cash
    order = order_service.create_order(order_data(context, canonical, paid), SYSTEM, reserve=reserve,
                                       auto_confirm=ships and target != S.PENDING_REVIEW)
    order.platform_status, order.platform_modified_at = canonical.status_key, canonical.modified_at
    order.refund_status = refund_of(mapping, canonical)
    reason = f"{PLATFORM_HOLD} {context.channel.name} status {canonical.status_key}"
    if target == S.ON_HOLD:
        order_service.transition_order(order, S.ON_HOLD, SYSTEM, reason)
    elif target == S.CANCELLED:
        order_service.transition_order(order, S.CANCELLED, SYSTEM, reason)
    elif target in (S.SHIPPED, S.COMPLETED):
        order_service.record_platform_state(order, target, SYSTEM, f"first seen {target} on {context.channel.name}")
    return order


def _address_changes(order: Order, canonical: CanonicalOrder, kind: str) -> dict:
    """Changed receiver fields; for platform ciphertext, a new ciphertext or buyer key is a new address too."""
    columns = customers.protected_columns(protected_of_kind(kind, canonical))
    new = {"receiver_name": canonical.receiver, "receiver_phone": canonical.receiver_phone,
           "province": canonical.province, "city": canonical.city, "district": canonical.district,
           "street": canonical.street, "postal_code": canonical.postal_code,
           "platform_ciphertext": columns.get("platform_ciphertext"),
           "platform_buyer_key": columns.get("platform_buyer_key")}
    return {name: value for name, value in new.items() if (getattr(order, name) or None) != (value or None)}


def _update(order: Order, canonical: CanonicalOrder, mapping: Mapping) -> str:
    changes = _address_changes(order, canonical, order.channel.kind)
    if changes and order.status not in NOT_YET_PACKED and order.status not in FINISHED:
        raise NeedsReview(say(ADDRESS_CHANGE_TOO_LATE, order_no=order.order_no,
                              order_status=label(STATUS, order.status)),
                          field="shipping_address", code="address_change_too_late")
    before_status = (order.status, order.payment_status, order.refund_status)
    if payment_of(mapping, canonical) == "paid" and order.payment_status == "unpaid" and order.status not in FINISHED:
        order_service.record_payment(order, canonical.paid_at or canonical.modified_at, SYSTEM)
    if changes and order.status in NOT_YET_PACKED:
        before = order_service.masked_receiver(order)
        for name, value in changes.items():
            setattr(order, name, value)
        order_service.address_changed(order, SYSTEM, before, order_service.masked_receiver(order), sorted(changes))
    follow_lifecycle(order, mapping.lifecycle, f"status {canonical.status_key}")
    refund = refund_of(mapping, canonical)
    if refund in ("none", "requested") and order.refund_status in MONEY_BACK:
        # Money already went back (a refund recorded here, e.g. one we pushed to WooCommerce, whose order stays
        # "processing" after a partial refund): a status that does not show it never undoes it.
        refund = order.refund_status
    if refund != order.refund_status:
        order_service.record_refund_status(order, refund, SYSTEM, f"platform status {canonical.status_key}")
    order.platform_status, order.platform_modified_at = canonical.status_key, canonical.modified_at
    order.updated_at = utc_now()
    after_status = (order.status, order.payment_status, order.refund_status)
    return "updated" if changes or after_status != before_status else "unchanged"


def follow_lifecycle(order: Order, target: str, why: str) -> None:
    """Move the order as far as the platform's word allows: commercial changes only."""
    reason = f"{PLATFORM_HOLD} {why}"
    status_key = why.removeprefix("status ")
    if target == S.CANCELLED:
        if order.status in BEFORE_SHIPPING:
            order_service.transition_order(order, S.CANCELLED, SYSTEM, reason)  # releases the reservation
        return
    if target == S.ON_HOLD:
        if order.status in BEFORE_SHIPPING and order.status != S.ON_HOLD:
            order_service.transition_order(order, S.ON_HOLD, SYSTEM, reason)
        return
    if order.status == S.ON_HOLD and (order.hold_reason or "").startswith(PLATFORM_HOLD):
        order_service.release_hold(order, SYSTEM, f"{PLATFORM_HOLD} resolved, status {status_key}")
    if target in (S.CONFIRMED, S.SHIPPED, S.COMPLETED) and order.status == S.PENDING_REVIEW \
            and cash_on_delivery.may_ship(order):
        order_service.transition_order(order, S.CONFIRMED, SYSTEM, "paid on the platform")
    if target == S.COMPLETED and order.status == S.SHIPPED:
        order_service.transition_order(order, S.COMPLETED, SYSTEM, "completed on the platform")


def _locked_order(context: ChannelContext, channel_order_id: str) -> Order | None:
    return db.session.execute(
        select(Order).where(Order.channel_id == context.channel.id, Order.channel_order_id == channel_order_id)
        .with_for_update(of=Order)).scalar_one_or_none()


def apply_deletion(context: ChannelContext, deletion: PlatformDeletion) -> tuple[str, Order | None]:
    """The platform deleted or trashed the order. Not yet shipped: cancelled with the platform's reason, which
    releases its stock (a merchant deletes an order they will not ship). Shipped or completed: the parcel is gone
    already, so the deletion is only recorded (audited). An order we never had: nothing to do."""
    order = _locked_order(context, deletion.channel_order_id)
    if order is None:
        return "not_here", None
    reason = f"{PLATFORM_DELETED} {context.channel.name} ({deletion.topic})"
    if order.status in FINISHED:
        return "unchanged", order
    if order.status in BEFORE_SHIPPING:
        order_service.transition_order(order, S.CANCELLED, SYSTEM, reason)  # releases the reservation
        order.updated_at = utc_now()
        return "cancelled", order
    audit.record(SYSTEM, "order.platform_deleted", "order", order.order_no, reason=reason,
                 after={"status": order.status, "topic": deletion.topic})
    return "recorded", order


def check_restored(context: ChannelContext, canonical: CanonicalOrder) -> None:
    """An order back from the platform's trash. If we cancelled it when it was trashed (its stock released, maybe
    sold since), it is not silently re-opened: a person decides (re-enter it, or cancel it on the platform).
    Otherwise the restored order is applied like any update (or created, if it is new here)."""
    order = db.session.execute(select(Order).where(
        Order.channel_id == context.channel.id, Order.channel_order_id == canonical.channel_order_id)
    ).scalar_one_or_none()
    mapping = context.statuses.get(canonical.status_key)
    if order is None or order.status != S.CANCELLED or not (order.cancel_reason or "").startswith(PLATFORM_DELETED):
        return
    if mapping is not None and mapping.lifecycle == S.CANCELLED:
        return
    raise NeedsReview(say(RESTORED_AFTER_CANCEL, order_no=order.order_no, channel_name=context.channel.name,
                          status_key=canonical.status_key), field="status", code="restored_after_cancel")


def apply_refund(context: ChannelContext, notice: PlatformRefundNotice, inbox_item_id: int | None = None
                 ) -> tuple[str, Order]:
    """One platform refund, applied once (by its refund id): the order's refund status follows the refunded total
    (partially or fully refunded); a full refund before shipping cancels the order and releases its stock, the
    same rule as a platform status that says refunded. After shipping only the refund status changes (the goods
    come back through after-sales). The rule is refunds.settle, shared with the providers' refunds (invoices
    reversed too). A refund we pushed to the platform is the same refund id, so its report changes nothing
    (platform_refunds). A refund for an order not here yet raises WaitingForOrder."""
    order = _locked_order(context, notice.channel_order_id)
    if order is None:
        raise WaitingForOrder(say(WAITING_FOR_ORDER, refund_id=notice.refund_id, channel_name=context.channel.name,
                                  channel_order_id=notice.channel_order_id),
                              field="order_id")
    if notice.currency and notice.currency != order.currency:
        raise NeedsReview(say(CURRENCY_MISMATCH, refund_id=notice.refund_id, currency=notice.currency,
                              order_no=order.order_no, currency_2=order.currency),
                          field="currency", code="currency_mismatch")
    from shared.services import platform_refunds, refunds

    outcome, recorded = refunds.settle(order, context.channel.id, notice.refund_id, notice.amount,
                                       notice.refunded_at, notice.note, inbox_item_id=inbox_item_id,
                                       channel_name=context.channel.name)
    if recorded is not None:  # a refund we pushed whose answer was lost: the platform's report completes it
        platform_refunds.claim_report(order, recorded)
    return outcome, order

