"""One serializer of an order for every reader: the JSON API, outbound webhooks and the customer site.

What a reader sees of the personal fields comes from the permission table's field visibility for its audience
(a staff role, `subscriber`, `customer` or `guest`); money travels as strings with two decimals, time as ISO 8601
with an offset."""
from shared.money import format_money
from shared.security.masking import order_contact, shown_value
from shared.security.permissions import Visibility, visibility
from shared.timekeeping import as_utc


def iso_time(moment) -> str | None:
    return None if moment is None else as_utc(moment).isoformat()


def shipping_address(order, audience: str, reveal: bool = False, contact: dict | None = None) -> dict:
    """The receiver as the audience may see it; street and postal code only where the whole address is shown.

    A platform-encrypted order shows the platform's masks unless `contact` holds what the platform's decrypt API
    answered (a reveal)."""
    contact = dict(contact) if contact is not None else order_contact(order, audience, reveal=reveal)
    whole = reveal and visibility(audience, "address") is Visibility.FULL
    if getattr(order, "platform_protected", False):
        contact.update(street=contact.get("street") if whole else None,
                       postal_code=order.postal_code if whole else None, platform_encrypted=True)
        contact.pop("platform_masked", None)
        return contact
    contact.update(street=order.street if whole else None, postal_code=order.postal_code if whole else None)
    return contact


def order_payload(order, audience: str, reveal: bool = False, detail: bool = True) -> dict:
    """An order as the audience may see it; list items (detail=False) carry neither lines nor the customer."""
    body = {
        "order_no": order.order_no, "channel": order.channel.code if order.channel else None,
        "channel_order_id": order.channel_order_id,
        "status": order.status, "payment_status": order.payment_status, "refund_status": order.refund_status,
        "currency": order.currency, "goods_total": format_money(order.goods_total),
        "shipping_fee": format_money(order.shipping_fee), "discount": format_money(order.discount),
        "tax": format_money(order.tax), "fees": format_money(order.fees), "total": format_money(order.total),
        "cash_on_delivery": order.cash_on_delivery, "platform_status": order.platform_status,
        "placed_at": iso_time(order.placed_at), "paid_at": iso_time(order.paid_at),
        "shipped_at": iso_time(order.shipped_at), "created_at": iso_time(order.created_at),
        "updated_at": iso_time(order.updated_at), "warehouse": order.warehouse.code if order.warehouse else None,
        "shipping_address": shipping_address(order, audience, reveal),
    }
    if detail:
        customer = order.customer
        body["customer"] = {field: shown_value(audience, field, getattr(customer, field) if customer else None,
                                               reveal)
                            for field in ("name", "phone", "email")}
        body["lines"] = [{"id": line.id, "sku": line.sku.code, "name": line.sku.name, "quantity": line.quantity,
                          "unit_price": format_money(line.unit_price), "line_total": format_money(line.line_total)}
                         for line in order.lines]
    return body
