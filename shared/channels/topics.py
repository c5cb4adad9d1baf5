"""Webhook topics: what each platform's topic header means for the order center (docs/CHANNELS.md, "Webhook topics").

Shopify names the topic in `X-Shopify-Topic` (`orders/create`, `refunds/create`, ...), WooCommerce in
`X-WC-Webhook-Topic` (`order.created`, `order.deleted`, ...). The topic decides how the body is read:

    meaning = topic_meaning("shopify", "refunds/create")     # "refund"
    refund = read_refund("shopify", raw)                     # PlatformRefundNotice

Meanings: `order` (the body is the whole order: create or update it as its status says), `deleted` (the platform
deleted or trashed the order; the body may carry only its id), `restored` (WooCommerce took it out of the trash;
the body is the whole order), `refund` (the body is one refund of an order), `ignored` (a topic that carries no
order change: acknowledged and recorded, never sent to review) and `unknown` (nobody here knows the topic:
acknowledged, recorded, nothing changed). Like the adapters, this module never touches the database.
"""
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from shared.channels.canonical import PayloadProblem, need, offset_time, text_of, yuan
from shared.services.validation import N_, say

# What a person reads when this module refuses: message codes, said in the reader's language (say).
NO_REFUND_WEBHOOKS = N_("Channels of kind %(kind)s send no refund webhooks")
NOT_A_LIST = N_("%(field)s is not a list")
ITEM_NOT_OBJECT = N_("%(field)s[%(index)s] is not an object")
NOT_AN_OBJECT = N_("%(field)s must be an object")

ORDER, DELETED, RESTORED, REFUND, IGNORED, UNKNOWN = "order", "deleted", "restored", "refund", "ignored", "unknown"
MEANINGS = (ORDER, DELETED, RESTORED, REFUND, IGNORED, UNKNOWN)

# Exact topics first; a family prefix ("customers/") covers every topic of that family.
TOPICS: dict[str, dict[str, str]] = {
    "shopify": {
        "orders/create": ORDER, "orders/updated": ORDER, "orders/paid": ORDER, "orders/cancelled": ORDER,
        "orders/fulfilled": ORDER, "orders/partially_fulfilled": ORDER,
        "orders/delete": DELETED,
        "refunds/create": REFUND,
        # An edit is followed by orders/updated with the whole order; the edit body itself is only a diff.
        "orders/edited": IGNORED,
        # Fulfilments are ours (we ship and report the waybill): the platform echoing them changes nothing here.
        "fulfillments/create": IGNORED, "fulfillments/update": IGNORED, "fulfillment_events/create": IGNORED,
        "app/uninstalled": IGNORED, "shop/update": IGNORED, "shop/redact": IGNORED,
        "customers/": IGNORED, "customers_email_marketing_consent/": IGNORED, "products/": IGNORED,
        "inventory_levels/": IGNORED, "inventory_items/": IGNORED, "checkouts/": IGNORED, "carts/": IGNORED,
        "draft_orders/": IGNORED, "order_transactions/": IGNORED, "themes/": IGNORED, "collections/": IGNORED,
    },
    "woocommerce": {
        "order.created": ORDER, "order.updated": ORDER, "order.deleted": DELETED, "order.restored": RESTORED,
        "customer.": IGNORED, "product.": IGNORED, "coupon.": IGNORED, "action.": IGNORED,
    },
}
TOPIC_HEADERS = {"shopify": "X-Shopify-Topic", "woocommerce": "X-WC-Webhook-Topic"}
# The platform's id of one delivery (the same on a platform's retry of it): a body that carries no state of its own
# (a deletion is only the order id) is told apart from an earlier delivery of the same bytes by it.
DELIVERY_HEADERS = {"shopify": "X-Shopify-Webhook-Id", "woocommerce": "X-WC-Webhook-Delivery-ID"}


def topic_meaning(kind: str, topic: str | None) -> str:
    """What a topic means for the channel kind. No topic at all is read as an order, as before topics were read."""
    if topic is None or topic == "":
        return ORDER
    table = TOPICS.get(kind, {})
    if topic in table:
        return table[topic]
    for prefix, meaning in table.items():
        if prefix.endswith(("/", ".")) and topic.startswith(prefix):
            return meaning
    return UNKNOWN


def carries_state(meaning: str) -> bool:
    """Whether the body holds the order's state (and a modified time), so the same bytes twice mean the same."""
    return meaning in (ORDER, RESTORED, REFUND)


@dataclass(frozen=True)
class PlatformDeletion:
    """The platform deleted (or trashed) an order; only its id is certain."""

    channel_order_id: str
    topic: str


@dataclass(frozen=True)
class PlatformRefundNotice:
    """One refund of one platform order, as the platform reported it."""

    refund_id: str
    channel_order_id: str
    amount: Decimal  # the money returned: the successful refund transactions
    currency: str | None
    refunded_at: datetime
    note: str | None
    lines: tuple[tuple[str, int], ...]  # (platform line id, quantity)
    restock: bool  # any line restocked on the platform


@dataclass(frozen=True)
class IgnoredTopic:
    """A delivery that carries no order change here (or a topic nobody knows)."""

    topic: str
    meaning: str  # IGNORED or UNKNOWN


def read_deletion(raw: dict, topic: str) -> PlatformDeletion:
    return PlatformDeletion(text_of(need(raw, "id"), "id", 64), topic)


def read_refund(kind: str, raw: dict) -> PlatformRefundNotice:
    """A Shopify Refund resource (the refunds/create body) read into one notice; the amount is the sum of its
    successful `refund` transactions (what actually went back to the buyer)."""
    if kind != "shopify":
        raise PayloadProblem(say(NO_REFUND_WEBHOOKS, kind=kind), code="unreadable_payload")
    amount, currency = Decimal("0.00"), None
    transactions = raw.get("transactions") or []
    if not isinstance(transactions, list):
        raise PayloadProblem(say(NOT_A_LIST, field="transactions"), field="transactions",
                             code="unreadable_payload")
    for index, transaction in enumerate(transactions):
        if not isinstance(transaction, dict):
            raise PayloadProblem(say(ITEM_NOT_OBJECT, field="transactions", index=index),
                                 field="transactions",
                                 code="unreadable_payload")
        if transaction.get("kind") == "refund" and transaction.get("status") == "success":
            amount += yuan(need(transaction, "amount", f"transactions[{index}]"), f"transactions[{index}].amount")
            currency = currency or transaction.get("currency")
    lines, restock = [], False
    for index, item in enumerate(raw.get("refund_line_items") or []):
        where = f"refund_line_items[{index}]"
        if not isinstance(item, dict):
            raise PayloadProblem(say(NOT_AN_OBJECT, field=where), field=where, code="unreadable_payload")
        lines.append((str(item.get("line_item_id") or ""), int(need(item, "quantity", where))))
        restock = restock or item.get("restock_type") in ("return", "cancel", "legacy_restock")
    when = raw.get("processed_at") or need(raw, "created_at")
    note = raw.get("note")
    return PlatformRefundNotice(
        refund_id=text_of(need(raw, "id"), "id", 64), channel_order_id=text_of(need(raw, "order_id"), "order_id", 64),
        amount=amount, currency=(str(currency).upper()[:3] if currency else None),
        refunded_at=offset_time(when, "processed_at"), note=(str(note)[:500] if note else None),
        lines=tuple(lines), restock=restock)


def is_woocommerce_ping(kind: str, body: bytes) -> bool:
    """WooCommerce's test delivery when a webhook is saved: the form body `webhook_id=N`, unsigned, no topic."""
    if kind != "woocommerce" or not body.startswith(b"webhook_id=") or len(body) > 40:
        return False
    return body[len(b"webhook_id="):].isdigit()
