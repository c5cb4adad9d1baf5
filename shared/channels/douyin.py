"""Douyin shop: order.searchList, unix-second times, amounts in fen."""
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from shared.channels import signing
from shared.channels.base import Adapter, Credentials, DecryptRefused, Page, PlatformError
from shared.channels.canonical import (
    CanonicalLine,
    CanonicalOrder,
    PayloadProblem,
    PlatformProtected,
    entries,
    fen,
    need,
    platform_id,
    quantity_of,
    text_of,
    unix_time,
)
from shared.channels.privacy import buyer_key_of, ciphertext_of, masked_text, plain_per_field
from shared.money import CENT
from shared.services.validation import N_, say

# What a person reads when this module refuses: message codes, said in the reader's language (say).
MISSING = N_("%(field)s is missing")
NO_LINES = N_("%(field)s must list at least one item")
AMOUNTS_DO_NOT_ADD_UP = N_("%(where)s.origin_amount does not divide into %(quantity)s equal unit prices")

ZERO = Decimal("0.00")


def fen_signed(value, field_name: str) -> Decimal:
    """A fen amount that may be negative (modify_amount: the seller's price change)."""
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        return -fen(-value, field_name)
    return fen(value, field_name)


DECRYPT_METHOD = "order.batchDecrypt"
PLAIN_OF = {"encrypt_post_receiver": "receiver", "encrypt_post_tel": "phone", "encrypt_detail": "street"}


def _name(value, field_name: str) -> str:
    """post_addr parts arrive as {"name": ...} objects."""
    if isinstance(value, dict):
        value = value.get("name")
    if not value:
        raise PayloadProblem(say(MISSING, field=field_name), field=field_name, code="missing_field")
    return text_of(value, field_name, 40)


class DouyinAdapter(Adapter):
    kind = "douyin"
    page_size = 100
    default_status_map = {
        "1": ("pending_review", "unpaid", None),
        "105": ("confirmed", "paid", None),
        "2": ("confirmed", "paid", None),
        "101": ("shipped", "paid", None),
        "3": ("shipped", "paid", None),
        "4": ("cancelled", None, None),  # cancelled: refunded when it had been paid, derived from pay_time
        "5": ("completed", "paid", None),
    }

    def external_id(self, raw: dict) -> str | None:
        value = raw.get("order_id")
        return str(value) if value is not None else None

    def status_of(self, raw: dict) -> str | None:
        return str(raw.get("order_status"))

    def parse(self, raw: dict, zone: str) -> CanonicalOrder:
        """Fen. pay_amount = Σ origin_amount − promotion_amount (shop + platform + talent) − promotion_pay_amount
        (the payment channel's promotion) + post_amount (+ modify_amount, the seller's price change). Each SKU
        order carries its own promotion_amount and promotion_pay_amount (coupon_amount is the coupon share
        inside promotion_amount), so discounts are allocated per line."""
        items = need(raw, "sku_order_list")
        if not isinstance(items, list) or not items:
            raise PayloadProblem(say(NO_LINES, field="sku_order_list"), field="sku_order_list",
                                 code="no_lines")
        lines, per_line = [], False
        for where, item in entries(items, "sku_order_list"):
            quantity = quantity_of(need(item, "item_num", where), f"{where}.item_num")
            line_total = fen(need(item, "origin_amount", where), f"{where}.origin_amount")
            unit = (line_total / quantity).quantize(CENT)
            if unit * quantity != line_total:
                raise PayloadProblem(say(AMOUNTS_DO_NOT_ADD_UP, where=where, quantity=quantity),
                                     field=f"{where}.origin_amount", code="amounts_do_not_add_up")
            per_line = per_line or "promotion_amount" in item
            discount = (fen(item.get("promotion_amount", 0), f"{where}.promotion_amount")
                        + fen(item.get("promotion_pay_amount", 0), f"{where}.promotion_pay_amount"))
            code = item.get("code") or item.get("out_sku_id") or ""
            lines.append(CanonicalLine(channel_sku=text_of(code, f"{where}.code", 64) if code else "",
                                       quantity=quantity, unit_price=unit, title=item.get("product_name"),
                                       variant_id=platform_id(item.get("sku_id")),
                                       product_id=platform_id(item.get("product_id")), discount=discount))
        modify = fen_signed(raw.get("modify_amount", 0), "modify_amount")
        discount = (fen(raw.get("promotion_amount", 0), "promotion_amount")
                    + fen(raw.get("promotion_pay_amount", 0), "promotion_pay_amount"))
        if modify < 0:  # the seller lowered the price
            discount -= modify
        address = need(raw, "post_addr")
        pay_time = raw.get("pay_time")
        receiver = self._receiver(raw, address)
        name, phone = receiver["name"], receiver["phone"]
        cash_on_delivery = raw.get("pay_type") == 0  # 0 货到付款, 1 微信, 2 支付宝, ...
        return CanonicalOrder(
            channel_order_id=text_of(need(raw, "order_id"), "order_id", 64),
            status_key=text_of(need(raw, "order_status"), "order_status", 8),
            modified_at=unix_time(need(raw, "update_time"), "update_time"),
            placed_at=unix_time(need(raw, "create_time"), "create_time"),
            paid_at=unix_time(pay_time, "pay_time") if pay_time else None,
            currency="CNY",
            customer_name=name, customer_phone=phone, receiver=name, receiver_phone=phone,
            province=_name(address.get("province"), "post_addr.province"),
            city=_name(address.get("city"), "post_addr.city"),
            district=_name(address.get("town"), "post_addr.town"),
            street=receiver["street"], protected=receiver["protected"],
            lines=lines,
            shipping_fee=fen(raw.get("post_amount", 0), "post_amount"),
            discount=discount,
            fees=modify if modify > 0 else ZERO,
            # pay_amount is what the buyer pays; older payloads without it carry order_amount only.
            paid_amount=fen(raw["pay_amount"] if "pay_amount" in raw else need(raw, "order_amount"), "pay_amount"),
            discounts_per_line=per_line and modify >= 0,
            cash_on_delivery=cash_on_delivery,
            cash_collected=cash_on_delivery and str(raw.get("order_status")) == "5",
        )

    @staticmethod
    def _receiver(raw: dict, address: dict) -> dict:
        """Plain post_* fields, or the encrypt_* ciphertext (`##…#1##`, `$$…$1$$`) with the mask_* forms."""
        street_name = (address.get("street") or {}).get("name") if isinstance(address.get("street"), dict) else None
        if "encrypt_post_receiver" not in raw and "encrypt_post_tel" not in raw:
            return {"name": text_of(need(raw, "post_receiver"), "post_receiver", 60),
                    "phone": text_of(need(raw, "post_tel"), "post_tel", 32),
                    "street": text_of(" ".join(filter(None, [street_name, need(address, "detail", "post_addr")])),
                                      "post_addr.detail", 200), "protected": None}
        ciphertext = {"encrypt_post_receiver": ciphertext_of(raw, "encrypt_post_receiver"),
                      "encrypt_post_tel": ciphertext_of(raw, "encrypt_post_tel"),
                      "encrypt_detail": ciphertext_of(address, "encrypt_detail", "post_addr")}
        masked_address = raw.get("mask_post_addr") if isinstance(raw.get("mask_post_addr"), dict) else {}
        detail = masked_text(masked_address.get("detail"), "mask_post_addr.detail", 200)
        return {"name": masked_text(raw.get("mask_post_receiver"), "mask_post_receiver"),
                "phone": masked_text(raw.get("mask_post_tel"), "mask_post_tel", 32),
                "street": " ".join(filter(None, [street_name, detail])),
                "protected": PlatformProtected(ciphertext, buyer_key_of(raw.get("open_address_id"),
                                                                        raw.get("doudian_open_id")))}

    def fetch_page(self, client, creds: Credentials, start, end, cursor) -> Page:
        page = cursor or 0
        business = {"update_time_start": int(start.timestamp()), "update_time_end": int(end.timestamp()),
                    "page": page, "size": self.page_size, "order_by": "update_time"}
        param_json = signing.douyin_param_json(business)
        timestamp = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M:%S")
        method = "order.searchList"
        params = {"app_key": creds.app_key, "method": method, "access_token": creds.access_token,
                  "param_json": param_json, "timestamp": timestamp, "v": "2", "sign_method": "hmac-sha256",
                  "sign": signing.douyin_sign(creds.app_key or "", method, param_json, timestamp,
                                              creds.app_secret or "")}
        body = self._json(client.get(f"{creds.base_url}/order/searchList", params=params))
        if body.get("code") != 10000:
            raise PlatformError(f"Douyin error {body.get('code')}: {body.get('msg')}")
        data = body.get("data") or {}
        orders = data.get("shop_order_list") or []
        total = int(data.get("total") or 0)
        return Page(orders, page + 1 if (page + 1) * self.page_size < total else None)

    def decrypt(self, client, creds: Credentials, requests) -> dict:
        """order.batchDecrypt: cipher_infos of (auth_id = order id, cipher_text), at most 50 per call."""
        infos = [{"auth_id": request.order_id, "cipher_text": request.ciphertext[name]}
                 for request in requests for name in PLAIN_OF if request.ciphertext.get(name)]
        param_json = signing.douyin_param_json({"cipher_infos": infos})
        timestamp = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M:%S")
        params = {"app_key": creds.app_key, "method": DECRYPT_METHOD, "access_token": creds.access_token,
                  "param_json": param_json, "timestamp": timestamp, "v": "2", "sign_method": "hmac-sha256",
                  "sign": signing.douyin_sign(creds.app_key or "", DECRYPT_METHOD, param_json, timestamp,
                                              creds.app_secret or "")}
        body = self._json(client.post(f"{creds.base_url}/order/batchDecrypt", data=params))
        if body.get("code") != 10000:
            raise DecryptRefused(f"Douyin {body.get('code')}: {body.get('sub_msg') or body.get('msg')}")
        data = body.get("data") or {}
        custom = data.get("custom_err") or {}
        if custom.get("err_code") not in (0, None):
            raise DecryptRefused(f"Douyin {custom.get('err_code')}: {custom.get('err_msg')}")
        answers = {(str(item.get("auth_id")), item.get("cipher_text")): item for item in data.get("decrypt_infos") or []
                   if isinstance(item, dict)}
        return plain_per_field("Douyin", requests, answers, PLAIN_OF, "err_no", "decrypt_text")
