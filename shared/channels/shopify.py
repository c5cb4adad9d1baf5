"""Shopify: the orders webhook and REST orders.json; ISO 8601 times with an offset, amounts as strings."""
import re
from decimal import Decimal

from shared.channels.base import Adapter, Credentials, Page
from shared.channels.canonical import (CanonicalLine, CanonicalOrder, PayloadProblem, need, offset_time,
                                       quantity_of, text_of, yuan)

_NEXT_LINK = re.compile(r'<([^>]+)>;\s*rel="next"')
API_VERSION = "2024-10"
ZERO = Decimal("0.00")


def _person(first, last) -> str:
    return " ".join(part for part in (first, last) if part).strip()


class ShopifyAdapter(Adapter):
    kind = "shopify"
    page_size = 250
    webhook_signature_header = "X-Shopify-Hmac-Sha256"
    default_status_map = {
        "pending/unfulfilled": ("pending_review", "unpaid", None),
        "authorized/unfulfilled": ("pending_review", "unpaid", None),
        "partially_paid/unfulfilled": ("pending_review", "unpaid", None),
        "paid/unfulfilled": ("confirmed", "paid", None),
        "paid/partial": ("shipped", "paid", None),
        "paid/fulfilled": ("shipped", "paid", None),
        "partially_refunded/unfulfilled": ("confirmed", "paid", "partially_refunded"),
        "partially_refunded/fulfilled": ("shipped", "paid", "partially_refunded"),
        "refunded/unfulfilled": ("cancelled", "paid", "refunded"),
        "refunded/fulfilled": ("shipped", "paid", "refunded"),
        "refunded/restocked": ("cancelled", "paid", "refunded"),
        "cancelled/refunded": ("cancelled", "paid", "refunded"),
        "cancelled/voided": ("cancelled", "unpaid", None),
        "cancelled/pending": ("cancelled", "unpaid", None),
        "voided/unfulfilled": ("cancelled", "unpaid", None),
    }

    def external_id(self, raw: dict) -> str | None:
        value = raw.get("id")
        return str(value) if value is not None else None

    @staticmethod
    def status_key(raw: dict) -> str:
        financial = text_of(need(raw, "financial_status"), "financial_status", 30)
        if raw.get("cancelled_at"):
            return f"cancelled/{financial}"
        return f"{financial}/{raw.get('fulfillment_status') or 'unfulfilled'}"

    def status_of(self, raw: dict) -> str | None:
        return self.status_key(raw)

    def parse(self, raw: dict, zone: str) -> CanonicalOrder:
        items = need(raw, "line_items")
        if not isinstance(items, list) or not items:
            raise PayloadProblem("line_items must list at least one item", field="line_items", code="no_lines")
        lines = []
        for index, item in enumerate(items):
            where = f"line_items[{index}]"
            lines.append(CanonicalLine(
                channel_sku=text_of(need(item, "sku", where), f"{where}.sku", 64),
                quantity=quantity_of(need(item, "quantity", where), f"{where}.quantity"),
                unit_price=yuan(need(item, "price", where), f"{where}.price"),
                title=item.get("title"),
            ))
        address = need(raw, "shipping_address")
        customer = raw.get("customer") or {}
        shipping = (((raw.get("total_shipping_price_set") or {}).get("shop_money") or {}).get("amount", "0.00"))
        tax = yuan(raw.get("total_tax", "0.00"), "total_tax")
        if raw.get("taxes_included", False):
            tax = ZERO  # already inside the line prices
        financial = raw.get("financial_status")
        paid_at = offset_time(need(raw, "processed_at"), "processed_at") if financial in (
            "paid", "partially_refunded", "refunded") else None
        receiver = text_of(need(address, "name", "shipping_address"), "shipping_address.name", 60)
        receiver_phone = text_of(need(address, "phone", "shipping_address"), "shipping_address.phone", 32)
        city = text_of(need(address, "city", "shipping_address"), "shipping_address.city", 40)
        return CanonicalOrder(
            channel_order_id=text_of(need(raw, "id"), "id", 64),
            status_key=self.status_key(raw),
            modified_at=offset_time(need(raw, "updated_at"), "updated_at"),
            placed_at=offset_time(need(raw, "created_at"), "created_at"),
            paid_at=paid_at,
            currency=text_of(need(raw, "currency"), "currency", 3).upper(),
            customer_name=_person(customer.get("first_name"), customer.get("last_name")) or receiver,
            customer_phone=customer.get("phone") or raw.get("phone") or receiver_phone,
            customer_email=customer.get("email") or raw.get("email"),
            receiver=receiver, receiver_phone=receiver_phone,
            province=text_of(address.get("province") or address.get("country_code") or city,
                             "shipping_address.province", 40),
            city=city,
            district=text_of(address.get("address2") or city, "shipping_address.address2", 40),
            street=text_of(need(address, "address1", "shipping_address"), "shipping_address.address1", 200),
            postal_code=address.get("zip") or None,
            lines=lines,
            shipping_fee=yuan(shipping, "total_shipping_price_set.shop_money.amount"),
            discount=yuan(raw.get("total_discounts", "0.00"), "total_discounts"),
            paid_amount=yuan(need(raw, "total_price"), "total_price"),
            tax=tax,
        )

    def fetch_page(self, client, creds: Credentials, start, end, cursor) -> Page:
        headers = {"X-Shopify-Access-Token": creds.access_token or ""}
        if cursor:
            response = client.get(cursor, headers=headers)  # the next link carries page_info and limit only
        else:
            response = client.get(f"{creds.base_url}/admin/api/{API_VERSION}/orders.json", headers=headers,
                                  params={"status": "any", "updated_at_min": start.isoformat(),
                                          "updated_at_max": end.isoformat(), "limit": str(self.page_size)})
        body = self._json(response)
        match = _NEXT_LINK.search(response.headers.get("Link", ""))
        return Page(body.get("orders") or [], match.group(1) if match else None)
