"""Shopify: the orders webhook and REST orders.json; ISO 8601 times with an offset, amounts as strings."""
import re
from decimal import Decimal

from shared.channels.base import Adapter, Credentials, Page
from shared.channels.canonical import (CanonicalLine, CanonicalOrder, PayloadProblem, entries, need, offset_time,
                                       platform_id, quantity_of, text_of, total_of, yuan)
from shared.services.validation import N_, say

# What a person reads when this module refuses: message codes, said in the reader's language (say).
NO_LINES = N_("%(field)s must list at least one item")

_NEXT_LINK = re.compile(r'<([^>]+)>;\s*rel="next"')
API_VERSION = "2024-10"
ZERO = Decimal("0.00")
PAID = ("paid", "partially_refunded", "refunded")  # financial statuses after the money came in
# Shopify's manual payment method for cash on delivery is named "Cash on Delivery (COD)"; older shops "cod".
COD_GATEWAYS = frozenset({"cash on delivery (cod)", "cash on delivery", "cod"})


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
        # Cash on delivery stays "pending" while it is fulfilled and delivered, until the shop marks it paid.
        "pending/partial": ("shipped", "unpaid", None),
        "pending/fulfilled": ("shipped", "unpaid", None),
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
        """total_price = Σ price × quantity − total_discounts + Σ shipping_lines.price + total_tax (unless
        taxes_included) + total_tip_received. total_discounts is the sum of every line's discount_allocations
        and the shipping lines' discount_allocations, so discounts are allocated per line."""
        items = need(raw, "line_items")
        if not isinstance(items, list) or not items:
            raise PayloadProblem(say(NO_LINES, field="line_items"), field="line_items", code="no_lines")
        lines, per_line = [], False
        for where, item in entries(items, "line_items"):
            allocations = item.get("discount_allocations")
            per_line = per_line or allocations is not None
            code = item.get("sku") or ""
            lines.append(CanonicalLine(
                channel_sku=text_of(code, f"{where}.sku", 64) if code else "",
                quantity=quantity_of(need(item, "quantity", where), f"{where}.quantity"),
                unit_price=yuan(need(item, "price", where), f"{where}.price"),
                title=item.get("title"), variant_id=platform_id(item.get("variant_id")),
                product_id=platform_id(item.get("product_id")),
                discount=total_of(allocations, "amount", f"{where}.discount_allocations"),
            ))
        address = need(raw, "shipping_address")
        customer = raw.get("customer") or {}
        shipping_lines = raw.get("shipping_lines")
        if isinstance(shipping_lines, list) and shipping_lines:
            shipping = total_of(shipping_lines, "price", "shipping_lines")
            shipping_discount = sum((total_of(line.get("discount_allocations"), "amount",
                                              f"shipping_lines[{index}].discount_allocations")
                                     for index, line in enumerate(shipping_lines)), ZERO)
        else:
            amount = ((raw.get("total_shipping_price_set") or {}).get("shop_money") or {}).get("amount", "0.00")
            shipping, shipping_discount = yuan(amount, "total_shipping_price_set.shop_money.amount"), ZERO
        tax = yuan(raw.get("total_tax", "0.00"), "total_tax")
        if raw.get("taxes_included", False):
            tax = ZERO  # already inside the line prices
        financial = raw.get("financial_status")
        paid_at = offset_time(need(raw, "processed_at"), "processed_at") if financial in PAID else None
        receiver = text_of(need(address, "name", "shipping_address"), "shipping_address.name", 60)
        receiver_phone = text_of(need(address, "phone", "shipping_address"), "shipping_address.phone", 32)
        city = text_of(need(address, "city", "shipping_address"), "shipping_address.city", 40)
        gateways = [raw.get("gateway")] + list(raw.get("payment_gateway_names") or [])
        cash_on_delivery = any(isinstance(name, str) and name.strip().lower() in COD_GATEWAYS for name in gateways)
        discount = yuan(raw.get("total_discounts", "0.00"), "total_discounts")
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
            shipping_fee=shipping,
            discount=discount,
            fees=yuan(raw.get("total_tip_received") or "0.00", "total_tip_received"),
            paid_amount=yuan(need(raw, "total_price"), "total_price"),
            tax=tax,
            discounts_per_line=per_line,
            unallocated_discount=shipping_discount,  # a shipping discount belongs to no line
            cash_on_delivery=cash_on_delivery,
            cash_collected=cash_on_delivery and financial in PAID,
            extra={"current_total_price": raw.get("current_total_price"), "taxes_included": raw.get("taxes_included"),
                   "tax_lines": [{"title": line.get("title"), "price": line.get("price"), "rate": line.get("rate")}
                                 for line in raw.get("tax_lines") or [] if isinstance(line, dict)]},
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
