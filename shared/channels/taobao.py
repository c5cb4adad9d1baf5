"""Taobao/Tmall: TOP trades (taobao.trades.sold.increment.get), Beijing-time `yyyy-MM-dd HH:mm:ss`, yuan strings."""
import json
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
    local_time,
    need,
    platform_id,
    quantity_of,
    signed_yuan,
    text_of,
    total_of,
    yuan,
)
from shared.channels.privacy import buyer_key_of, is_ciphertext, masked_text
from shared.services.validation import N_, say

# What a person reads when this module refuses: message codes, said in the reader's language (say).
NO_LINES = N_("%(field)s must list at least one item")

FIELDS = ("tid,tid_str,status,created,modified,pay_time,buyer_nick,receiver_name,receiver_mobile,receiver_state,"
          "receiver_city,receiver_district,receiver_town,receiver_address,receiver_zip,total_fee,post_fee,"
          "discount_fee,adjust_fee,payment,type,cod_status,buyer_cod_fee,promotion_details,orders,oaid")
ZERO = Decimal("0.00")


DECRYPT_METHOD = "taobao.top.oaid.decrypt"


def top_time(moment: datetime) -> str:
    return moment.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M:%S")


class TaobaoAdapter(Adapter):
    kind = "taobao"
    default_status_map = {
        "TRADE_NO_CREATE_PAY": ("pending_review", "unpaid", None),
        "WAIT_BUYER_PAY": ("pending_review", "unpaid", None),
        "WAIT_SELLER_SEND_GOODS": ("confirmed", "paid", None),
        "SELLER_CONSIGNED_PART": ("shipped", "paid", None),
        "WAIT_BUYER_CONFIRM_GOODS": ("shipped", "paid", None),
        "TRADE_BUYER_SIGNED": ("shipped", "paid", None),
        "TRADE_FINISHED": ("completed", "paid", None),
        "TRADE_CLOSED": ("cancelled", "paid", "refunded"),  # closed after payment: refunded in full
        "TRADE_CLOSED_BY_TAOBAO": ("cancelled", "unpaid", None),  # closed before payment
    }

    def external_id(self, raw: dict) -> str | None:
        value = raw.get("tid_str") or raw.get("tid")
        return str(value) if value is not None else None

    def status_of(self, raw: dict) -> str | None:
        return raw.get("status")

    def parse(self, raw: dict, zone: str) -> CanonicalOrder:
        """Amounts per TOP's order amount rules: each sub-order costs price × num − discount_fee (item-level
        promotions) + adjust_fee (the seller's price change) − part_mjz_discount (its share of shop-level
        promotions) = divide_order_fee; the trade's payment is the sum of those plus post_fee."""
        tid = text_of(need(raw, "tid_str") if raw.get("tid_str") else need(raw, "tid"), "tid", 64)
        items = need(need(raw, "orders"), "order", "orders")
        if not isinstance(items, list) or not items:
            raise PayloadProblem(say(NO_LINES, field="orders.order"), field="orders.order", code="no_lines")
        lines, adjustments = [], []
        for where, item in entries(items, "orders.order"):
            quantity = quantity_of(need(item, "num", where), f"{where}.num")
            price = yuan(need(item, "price", where), f"{where}.price")
            adjust = signed_yuan(item.get("adjust_fee") or "0.00", f"{where}.adjust_fee")
            discount = (yuan(item.get("discount_fee") or "0.00", f"{where}.discount_fee")
                        + yuan(item.get("part_mjz_discount") or "0.00", f"{where}.part_mjz_discount"))
            if adjust < 0:  # the seller lowered the price: a discount like any other
                discount, adjust = discount - adjust, ZERO
            adjustments.append(adjust)
            divided = item.get("divide_order_fee")
            # An item without SKU variants has no outer_sku_id: its merchant code is the item's outer_iid.
            code = item.get("outer_sku_id") or item.get("outer_iid") or ""
            lines.append(CanonicalLine(
                channel_sku=text_of(code, f"{where}.outer_sku_id", 64) if code else "",
                quantity=quantity, unit_price=price, title=item.get("title"),
                variant_id=platform_id(item.get("sku_id")), product_id=platform_id(item.get("num_iid")),
                discount=discount,
                paid=None if divided in (None, "") else yuan(divided, f"{where}.divide_order_fee") - adjust,
            ))
        promotions = (raw.get("promotion_details") or {}).get("promotion_detail") or []
        item_level = any(item.get("divide_order_fee") not in (None, "")
                         or any(str(item.get(key) or "0").strip() not in ("0", "0.0", "0.00")
                                for key in ("part_mjz_discount", "discount_fee")) for item in items)
        if item_level:
            discount = sum((line.discount for line in lines), ZERO)
        else:  # an older trade without the per-item split: the trade's own discount_fee
            discount = yuan(raw.get("discount_fee") or "0.00", "discount_fee")
            if discount == ZERO and promotions:
                discount = total_of(promotions, "discount_fee", "promotion_details.promotion_detail")
        pay_time = raw.get("pay_time")
        receiver = self._receiver(raw)
        cash_on_delivery = raw.get("type") == "cod"
        return CanonicalOrder(
            channel_order_id=tid,
            status_key=text_of(need(raw, "status"), "status", 64),
            modified_at=local_time(need(raw, "modified"), zone, "modified"),
            placed_at=local_time(need(raw, "created"), zone, "created"),
            paid_at=local_time(pay_time, zone, "pay_time") if pay_time else None,
            currency="CNY",
            customer_name=text_of(raw.get("buyer_nick") or receiver["name"], "buyer_nick", 60),
            customer_phone=receiver["phone"], receiver=receiver["name"], receiver_phone=receiver["phone"],
            province=text_of(need(raw, "receiver_state"), "receiver_state", 40),
            city=text_of(need(raw, "receiver_city"), "receiver_city", 40),
            district=text_of(need(raw, "receiver_district"), "receiver_district", 40),
            street=receiver["street"], protected=receiver["protected"],
            postal_code=raw.get("receiver_zip") or None,
            lines=lines,
            shipping_fee=yuan(raw.get("post_fee", "0.00"), "post_fee"),
            discount=discount,
            # A seller's price increase and the buyer's COD service fee are charges on top of the goods.
            fees=sum(adjustments, ZERO) + yuan(raw.get("buyer_cod_fee") or "0.00", "buyer_cod_fee"),
            paid_amount=yuan(need(raw, "payment"), "payment"),
            discounts_per_line=item_level,
            cash_on_delivery=cash_on_delivery,
            # cod_status SIGN_IN: the carrier delivered and took the cash; a finished trade is settled.
            cash_collected=cash_on_delivery and (raw.get("cod_status") == "SIGN_IN"
                                                 or raw.get("status") == "TRADE_FINISHED"),
            extra={"promotions": [{"name": p.get("promotion_name"), "discount": p.get("discount_fee")}
                                  for p in promotions if isinstance(p, dict)]},
        )

    @staticmethod
    def _receiver(raw: dict) -> dict:
        """Plain receiver fields, or (an OAID trade) the masked ones TOP sends with the OAID that stands for them."""
        oaid = raw.get("oaid")
        fields = ("receiver_name", "receiver_mobile", "receiver_address")
        if not oaid and not any(is_ciphertext(raw.get(name)) for name in fields):
            street = text_of(" ".join(filter(None, [raw.get("receiver_town"), need(raw, "receiver_address")])),
                             "receiver_address", 200)
            return {"name": text_of(need(raw, "receiver_name"), "receiver_name", 60),
                    "phone": text_of(need(raw, "receiver_mobile"), "receiver_mobile", 32), "street": street,
                    "protected": None}
        ciphertext = {name: raw[name] for name in (*fields, "receiver_phone") if raw.get(name)}
        if oaid:
            ciphertext["oaid"] = str(oaid)
        town = text_of(raw.get("receiver_town") or "", "receiver_town", 60)
        return {"name": masked_text(raw.get("receiver_name"), "receiver_name"),
                "phone": masked_text(raw.get("receiver_mobile"), "receiver_mobile", 32),
                "street": " ".join(filter(None, [town, masked_text(raw.get("receiver_address"), "receiver_address",
                                                                   200)])),
                "protected": PlatformProtected(ciphertext, buyer_key_of(oaid))}

    def fetch_page(self, client, creds: Credentials, start, end, cursor) -> Page:
        page_no = cursor or 1
        params = {
            "method": "taobao.trades.sold.increment.get", "app_key": creds.app_key, "session": creds.access_token,
            "timestamp": top_time(datetime.now(ZoneInfo("Asia/Shanghai"))), "format": "json", "v": "2.0",
            "sign_method": "md5", "fields": FIELDS, "start_modified": top_time(start), "end_modified": top_time(end),
            "page_no": str(page_no), "page_size": str(self.page_size), "use_has_next": "true",
        }
        params["sign"] = signing.top_sign(params, creds.app_secret or "")
        body = self._json(client.post(f"{creds.base_url}/router/rest", data=params))
        if "error_response" in body:
            error = body["error_response"]
            raise PlatformError(f"TOP error {error.get('code')}: {error.get('msg')} {error.get('sub_code', '')}")
        answer = body.get("trades_sold_increment_get_response") or {}
        trades = (answer.get("trades") or {}).get("trade") or []
        return Page(trades, page_no + 1 if answer.get("has_next") else None)

    def decrypt(self, client, creds: Credentials, requests) -> dict:
        """taobao.top.oaid.decrypt: up to 20 (tid, oaid) pairs per call, the receivers in plain text."""
        queries = [{"tid": request.order_id, "oaid": request.ciphertext.get("oaid")} for request in requests]
        if any(not query["oaid"] for query in queries):
            raise DecryptRefused("the trade carries no OAID to decrypt")
        params = {
            "method": DECRYPT_METHOD, "app_key": creds.app_key, "session": creds.access_token,
            "timestamp": top_time(datetime.now(ZoneInfo("Asia/Shanghai"))), "format": "json", "v": "2.0",
            "sign_method": "md5", "query_list": json.dumps(queries, separators=(",", ":"), ensure_ascii=False),
        }
        params["sign"] = signing.top_sign(params, creds.app_secret or "")
        body = self._json(client.post(f"{creds.base_url}/router/rest", data=params))
        if "error_response" in body:
            error = body["error_response"]
            raise DecryptRefused(f"TOP {error.get('code')} {error.get('sub_code') or ''}: "
                                 f"{error.get('sub_msg') or error.get('msg')}".strip())
        receivers = (body.get("top_oaid_decrypt_response") or {}).get("receiver_list") or {}
        if isinstance(receivers, dict):  # TOP's JSON wraps lists: {"receiver_list": {"receiver": [...]}}
            receivers = receivers.get("receiver") or []
        found = {str(item.get("tid")): item for item in receivers if isinstance(item, dict)}
        plain = {}
        for request in requests:
            item = found.get(request.order_id)
            if item is None:
                raise DecryptRefused(f"TOP returned no receiver for trade {request.order_id}")
            plain[request.order_id] = {
                "receiver": str(item.get("name") or ""), "phone": str(item.get("mobile") or item.get("phone") or ""),
                "street": " ".join(filter(None, [item.get("town"), item.get("address_detail")]))}
        return plain
