"""Pinduoduo: pdd.order.list.increment.get, Beijing-time `yyyy-MM-dd HH:mm:ss`, yuan as JSON numbers."""
import json
import time
from datetime import timedelta
from decimal import Decimal

from shared.channels import signing
from shared.channels.base import Adapter, Credentials, DecryptRefused, Page, PlatformError
from shared.channels.canonical import (
    CanonicalLine,
    CanonicalOrder,
    PayloadProblem,
    PlatformProtected,
    entries,
    float_yuan,
    local_time,
    need,
    platform_id,
    quantity_of,
    text_of,
)
from shared.channels.privacy import buyer_key_of, ciphertext_of, is_ciphertext, masked_text, plain_per_field
from shared.services.validation import N_, say

# What a person reads when this module refuses: message codes, said in the reader's language (say).
NO_LINES = N_("%(field)s must list at least one item")

_SHIPPED, _RECEIVED = "2", "3"
DECRYPT_TYPE = "pdd.open.decrypt.batch"
# Which ciphertext field of an order stands for which plain receiver field.
PLAIN_OF = {"receiver_name": "receiver", "receiver_phone": "phone", "address": "street"}
# Who gave each discount: the shop, Pinduoduo, and the group leader's free order (团长免单).
DISCOUNT_PARTS = ("seller_discount", "platform_discount", "capital_free_discount")


def _status_map() -> dict:
    """order_status (1 waiting to ship, 2 shipped, 3 received) × refund_status (1 none … 4 refunded)."""
    lifecycle = {"1": "confirmed", _SHIPPED: "shipped", _RECEIVED: "completed"}
    table = {}
    for order_status, target in lifecycle.items():
        table[f"{order_status}/1"] = (target, "paid", None)
        for in_progress in ("2", "3"):  # after-sale requested / refund being paid out
            table[f"{order_status}/{in_progress}"] = ("on_hold" if target == "confirmed" else target, "paid",
                                                      "requested")
        table[f"{order_status}/4"] = ("cancelled" if target == "confirmed" else target, "paid", "refunded")
    return table


class PinduoduoAdapter(Adapter):
    kind = "pinduoduo"
    # Amounts travel as JSON numbers (floats): a cent of difference from binary rounding is the platform's own.
    rounding_tolerance = Decimal("0.01")
    max_window = timedelta(minutes=30)  # the increment API refuses longer windows
    default_status_map = _status_map()

    def external_id(self, raw: dict) -> str | None:
        value = raw.get("order_sn")
        return str(value) if value is not None else None

    def status_of(self, raw: dict) -> str | None:
        return f"{raw.get('order_status')}/{raw.get('refund_status')}"

    def parse(self, raw: dict, zone: str) -> CanonicalOrder:
        """pay_amount = goods_amount − (seller_discount + platform_discount + capital_free_discount) + postage,
        yuan as JSON numbers; discount_amount is that same sum where the breakdown is absent."""
        items = need(raw, "item_list")
        if not isinstance(items, list) or not items:
            raise PayloadProblem(say(NO_LINES, field="item_list"), field="item_list", code="no_lines")
        lines = []
        for where, item in entries(items, "item_list"):
            # outer_id is the SKU's merchant code; a goods without specs has only outer_goods_id.
            code = item.get("outer_id") or item.get("outer_goods_id") or ""
            lines.append(CanonicalLine(
                channel_sku=text_of(code, f"{where}.outer_id", 64) if code else "",
                quantity=quantity_of(need(item, "goods_count", where), f"{where}.goods_count"),
                unit_price=float_yuan(need(item, "goods_price", where), f"{where}.goods_price"),
                title=item.get("goods_name"), variant_id=platform_id(item.get("sku_id")),
                product_id=platform_id(item.get("goods_id")),
            ))
        order_status = text_of(need(raw, "order_status"), "order_status", 8)
        refund_status = text_of(need(raw, "refund_status"), "refund_status", 8)
        paid = raw.get("pay_time")
        receiver = self._receiver(raw)
        name, phone = receiver["name"], receiver["phone"]
        parts = [key for key in DISCOUNT_PARTS if raw.get(key) is not None]
        if parts:
            discount = sum((float_yuan(raw[key], key) for key in parts), Decimal("0.00"))
        else:
            discount = float_yuan(raw.get("discount_amount", 0), "discount_amount")
        return CanonicalOrder(
            channel_order_id=text_of(need(raw, "order_sn"), "order_sn", 64),
            status_key=f"{order_status}/{refund_status}",
            modified_at=local_time(need(raw, "updated_at"), zone, "updated_at"),
            placed_at=local_time(need(raw, "created_time"), zone, "created_time"),
            paid_at=local_time(paid, zone, "pay_time") if paid else None,
            currency="CNY",
            customer_name=name, customer_phone=phone, receiver=name, receiver_phone=phone,
            province=text_of(need(raw, "province"), "province", 40),
            city=text_of(need(raw, "city"), "city", 40),
            district=text_of(need(raw, "town"), "town", 40),
            street=receiver["street"], protected=receiver["protected"],
            lines=lines,
            shipping_fee=float_yuan(raw.get("postage", 0), "postage"),
            discount=discount,
            paid_amount=float_yuan(need(raw, "pay_amount"), "pay_amount"),
            extra={key: raw.get(key) for key in DISCOUNT_PARTS + ("discount_amount",) if raw.get(key) is not None},
        )

    @staticmethod
    def _receiver(raw: dict) -> dict:
        """Plain receiver fields, or Pinduoduo's 密文 (`~…~`, phones `$…$`) with their `*_mask` forms."""
        fields = ("receiver_name", "receiver_phone", "address")
        if "receiver_name_mask" not in raw and not any(is_ciphertext(raw.get(name)) for name in fields):
            return {"name": text_of(need(raw, "receiver_name"), "receiver_name", 60),
                    "phone": text_of(need(raw, "receiver_phone"), "receiver_phone", 32),
                    "street": text_of(need(raw, "address"), "address", 200), "protected": None}
        ciphertext = {name: ciphertext_of(raw, name) for name in fields}
        if raw.get("receiver_address"):
            ciphertext["receiver_address"] = raw["receiver_address"]
        return {"name": masked_text(raw.get("receiver_name_mask"), "receiver_name_mask"),
                "phone": masked_text(raw.get("receiver_phone_mask"), "receiver_phone_mask", 32),
                "street": masked_text(raw.get("address_mask"), "address_mask", 200),
                "protected": PlatformProtected(ciphertext, buyer_key_of(raw.get("open_address_id")))}

    def fetch_page(self, client, creds: Credentials, start, end, cursor) -> Page:
        page = cursor or 1
        params = {
            "type": "pdd.order.list.increment.get", "client_id": creds.app_key, "access_token": creds.access_token,
            "timestamp": str(int(time.time())), "data_type": "JSON", "version": "V1", "is_lucky_flag": "0",
            "order_status": "5", "refund_status": "5", "start_updated_at": str(int(start.timestamp())),
            "end_updated_at": str(int(end.timestamp())), "page": str(page), "page_size": str(self.page_size),
            "use_has_next": "true",
        }
        params["sign"] = signing.pdd_sign(params, creds.app_secret or "")
        body = self._json(client.post(f"{creds.base_url}/api/router", data=params))
        if "error_response" in body:
            error = body["error_response"]
            raise PlatformError(f"PDD error {error.get('error_code')}: {error.get('error_msg')}")
        answer = body.get("order_list_get_response") or {}
        return Page(answer.get("order_list") or [], page + 1 if answer.get("has_next") else None)

    def decrypt(self, client, creds: Credentials, requests) -> dict:
        """pdd.open.decrypt.batch: data_list of (data_tag = order_sn, encrypted_data), at most 100 per call."""
        data_list = [{"data_tag": request.order_id, "encrypted_data": request.ciphertext[name]}
                     for request in requests for name in PLAIN_OF if request.ciphertext.get(name)]
        params = {
            "type": DECRYPT_TYPE, "client_id": creds.app_key, "access_token": creds.access_token,
            "timestamp": str(int(time.time())), "data_type": "JSON", "version": "V1",
            "data_list": json.dumps(data_list, separators=(",", ":"), ensure_ascii=False),
        }
        params["sign"] = signing.pdd_sign(params, creds.app_secret or "")
        body = self._json(client.post(f"{creds.base_url}/api/router", data=params))
        if "error_response" in body:
            error = body["error_response"]
            raise DecryptRefused(f"PDD {error.get('error_code')}: {error.get('error_msg')} {error.get('sub_msg') or ''}"
                                 .strip())
        answers = {(str(item.get("data_tag")), item.get("encrypted_data")): item for item in
                   (body.get("open_decrypt_batch_response") or {}).get("data_decrypt_list") or []
                   if isinstance(item, dict)}
        return plain_per_field("PDD", requests, answers, PLAIN_OF, "error_code", "decrypted_data")
