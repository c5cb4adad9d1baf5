"""Cash on delivery (货到付款, WooCommerce `cod`, Shopify "Cash on Delivery (COD)"): the one rule, for every channel.

A cash-on-delivery order is unpaid until the platform or the carrier says the cash came in: a platform status
alone ("processing", a paid time WooCommerce sets on its own) is not payment. It is fulfilled all the same,
because the buyer pays the courier at the door. Adapters only report the platform's flags
(`CanonicalOrder.cash_on_delivery`, `.cash_collected`); everything that decides with them calls this module.
"""
from sqlalchemy import or_

from shared.lifecycle import OrderStatus
from shared.models import Order


def payment_status(cash_on_delivery: bool, cash_collected: bool, otherwise: str) -> str:
    """The payment status of an order as a channel reports it; `otherwise` is the status for prepaid orders."""
    if cash_on_delivery:
        return "paid" if cash_collected else "unpaid"
    return otherwise


def lifecycle(target: str, mapped_payment: str | None) -> str:
    """Where a cash-on-delivery order goes: a status mapped to "review while unpaid" (Shopify `pending`) means
    "awaiting the cash at the door" for it, so it is confirmed and fulfilled instead of waiting for payment."""
    if target == OrderStatus.PENDING_REVIEW and mapped_payment == "unpaid":
        return OrderStatus.CONFIRMED
    return target


def may_ship(order: Order) -> bool:
    """Paid orders ship; so do cash-on-delivery orders, whose cash the carrier collects on delivery."""
    return order.payment_status == "paid" or bool(order.cash_on_delivery)


def may_ship_clause():
    """`may_ship` as a SQL condition, for queries that pick orders to allocate."""
    return or_(Order.payment_status == "paid", Order.cash_on_delivery.is_(True))


def collected_on_delivery(order: Order) -> bool:
    """Whether a delivery the carrier reports settles the order's payment (cash taken at the door)."""
    return bool(order.cash_on_delivery) and order.payment_status != "paid"
