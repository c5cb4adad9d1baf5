"""WooCommerce: REST API v3 orders and order webhooks; `*_gmt` times are UTC by definition."""
from decimal import Decimal

from shared.channels.base import Adapter, Credentials, Page, PlatformError
from shared.channels.canonical import (CanonicalLine, CanonicalOrder, PayloadProblem, entries, gmt_time, need,
                                       platform_id, quantity_of, signed_yuan, text_of, total_of, yuan)
from shared.money import CENT
from shared.services.validation import N_, say

# What a person reads when this module refuses: message codes, said in the reader's language (say).
NO_LINES = N_("%(field)s must list at least one item")
MISSING = N_("%(field)s is missing")
AMOUNTS_DO_NOT_ADD_UP = N_("%(where)s.subtotal does not divide into %(quantity)s equal unit prices")

ZERO = Decimal("0.00")


class WooCommerceAdapter(Adapter):
    kind = "woocommerce"
    webhook_signature_header = "X-WC-Webhook-Signature"
    default_status_map = {
        "pending": ("pending_review", "unpaid", None),
        "on-hold": ("pending_review", "unpaid", None),  # awaiting a bank transfer or cheque
        "processing": ("confirmed", "paid", None),
        "completed": ("completed", "paid", None),
        "cancelled": ("cancelled", None, None),
        "refunded": ("cancelled", "paid", "refunded"),
        "failed": ("cancelled", "unpaid", None),
    }

    def external_id(self, raw: dict) -> str | None:
        value = raw.get("id")
        return str(value) if value is not None else None

    def is_ping(self, raw: dict) -> bool:
        return "webhook_id" in raw and "id" not in raw  # sent once when a webhook is saved

    def status_of(self, raw: dict) -> str | None:
        return raw.get("status")

    def parse(self, raw: dict, zone: str) -> CanonicalOrder:
        """total = Σ line subtotal − discount_total + shipping_total + Σ fee_lines.total + total_tax. WooCommerce
        stores every line amount without tax whatever prices_include_tax says, so total_tax always adds; each
        line's subtotal − total is its share of the coupons (coupon_lines), so discounts are allocated per
        line. A fee line may be negative (a discount entered as a fee)."""
        items = need(raw, "line_items")
        if not isinstance(items, list) or not items:
            raise PayloadProblem(say(NO_LINES, field="line_items"), field="line_items", code="no_lines")
        lines, per_line = [], True
        for where, item in entries(items, "line_items"):
            quantity = quantity_of(need(item, "quantity", where), f"{where}.quantity")
            subtotal = yuan(need(item, "subtotal", where), f"{where}.subtotal")  # the line before discounts
            unit = (subtotal / quantity).quantize(CENT)
            if unit * quantity != subtotal:
                raise PayloadProblem(say(AMOUNTS_DO_NOT_ADD_UP, where=where, quantity=quantity),
                                     field=f"{where}.subtotal", code="amounts_do_not_add_up")
            if item.get("total") in (None, ""):
                per_line, line_discount = False, ZERO
            else:
                line_discount = subtotal - yuan(item["total"], f"{where}.total")
            code = item.get("sku") or ""
            lines.append(CanonicalLine(channel_sku=text_of(code, f"{where}.sku", 64) if code else "",
                                       quantity=quantity, unit_price=unit, title=item.get("name"),
                                       variant_id=platform_id(item.get("variation_id")),
                                       product_id=platform_id(item.get("product_id")),
                                       discount=line_discount))
        tax = yuan(raw.get("total_tax", "0.00"), "total_tax")
        fees = total_of(raw.get("fee_lines"), "total", "fee_lines", read=signed_yuan)
        discount = yuan(raw.get("discount_total", "0.00"), "discount_total")
        if fees < 0:  # a negative fee is how WooCommerce shops enter a cart discount by hand
            discount, fees = discount - fees, ZERO
            per_line = False
        billing, shipping = raw.get("billing") or {}, need(raw, "shipping")
        receiver = " ".join(filter(None, [shipping.get("first_name"), shipping.get("last_name")])).strip()
        if not receiver:
            raise PayloadProblem(say(MISSING, field="shipping.first_name"), field="shipping.first_name",
                                 code="missing_field")
        phone = shipping.get("phone") or billing.get("phone")
        if not phone:
            raise PayloadProblem(say(MISSING, field="shipping.phone"), field="shipping.phone",
                                 code="missing_field")
        city = text_of(need(shipping, "city", "shipping"), "shipping.city", 40)
        paid = raw.get("date_paid_gmt")
        cash_on_delivery = raw.get("payment_method") == "cod"
        return CanonicalOrder(
            channel_order_id=text_of(need(raw, "id"), "id", 64),
            status_key=text_of(need(raw, "status"), "status", 30),
            modified_at=gmt_time(need(raw, "date_modified_gmt"), "date_modified_gmt"),
            placed_at=gmt_time(need(raw, "date_created_gmt"), "date_created_gmt"),
            paid_at=gmt_time(paid, "date_paid_gmt") if paid else None,
            currency=text_of(need(raw, "currency"), "currency", 3).upper(),
            customer_name=" ".join(filter(None, [billing.get("first_name"), billing.get("last_name")])) or receiver,
            customer_phone=billing.get("phone") or phone,
            customer_email=billing.get("email") or None,
            receiver=receiver, receiver_phone=text_of(phone, "shipping.phone", 32),
            province=text_of(shipping.get("state") or shipping.get("country") or city, "shipping.state", 40),
            city=city,
            district=text_of(shipping.get("address_2") or city, "shipping.address_2", 40),
            street=text_of(need(shipping, "address_1", "shipping"), "shipping.address_1", 200),
            postal_code=shipping.get("postcode") or None,
            lines=lines,
            shipping_fee=yuan(raw.get("shipping_total", "0.00"), "shipping_total"),
            discount=discount,
            fees=fees,
            paid_amount=yuan(need(raw, "total"), "total"),
            tax=tax,
            discounts_per_line=per_line,
            cash_on_delivery=cash_on_delivery,
            # WooCommerce sets date_paid when a COD order reaches "processing", before any cash is taken: only
            # "completed" (the shop confirms delivery and payment) says the cash came in.
            cash_collected=cash_on_delivery and raw.get("status") == "completed",
            extra={"fee_lines": [{"name": fee.get("name"), "total": fee.get("total")}
                                 for fee in raw.get("fee_lines") or [] if isinstance(fee, dict)],
                   "coupons": [line.get("code") for line in raw.get("coupon_lines") or [] if isinstance(line, dict)],
                   "prices_include_tax": raw.get("prices_include_tax", False)},
        )

    def fetch_page(self, client, creds: Credentials, start, end, cursor) -> Page:
        page = cursor or 1
        response = client.get(
            f"{creds.base_url}/wp-json/wc/v3/orders", auth=(creds.app_key or "", creds.app_secret or ""),
            params={"modified_after": start.strftime("%Y-%m-%dT%H:%M:%S"),
                    "modified_before": end.strftime("%Y-%m-%dT%H:%M:%S"), "dates_are_gmt": "true",
                    "page": str(page), "per_page": str(self.page_size), "orderby": "modified", "order": "asc"})
        body = self._json(response)
        if not isinstance(body, list):
            raise PlatformError("WooCommerce answered with something other than a list of orders")
        pages = int(response.headers.get("X-WP-TotalPages") or 1)
        return Page(body, page + 1 if page < pages else None)

