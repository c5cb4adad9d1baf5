"""Taobao/Tmall: TOP trades (taobao.trades.sold.increment.get), Beijing-time `yyyy-MM-dd HH:mm:ss`, yuan strings."""
from datetime import datetime
from zoneinfo import ZoneInfo

from shared.channels import signing
from shared.channels.base import Adapter, Credentials, Page, PlatformError
from shared.channels.canonical import (CanonicalLine, CanonicalOrder, PayloadProblem, local_time, need,
                                       quantity_of, text_of, yuan)

FIELDS = ("tid,tid_str,status,created,modified,pay_time,buyer_nick,receiver_name,receiver_mobile,receiver_state,"
          "receiver_city,receiver_district,receiver_town,receiver_address,receiver_zip,total_fee,post_fee,"
          "discount_fee,payment,orders")


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
        tid = text_of(need(raw, "tid_str") if raw.get("tid_str") else need(raw, "tid"), "tid", 64)
        items = need(need(raw, "orders"), "order", "orders")
        if not isinstance(items, list) or not items:
            raise PayloadProblem("orders.order must list at least one item", field="orders.order", code="no_lines")
        lines = []
        for index, item in enumerate(items):
            where = f"orders.order[{index}]"
            lines.append(CanonicalLine(
                channel_sku=text_of(need(item, "outer_sku_id", where), f"{where}.outer_sku_id", 64),
                quantity=quantity_of(need(item, "num", where), f"{where}.num"),
                unit_price=yuan(need(item, "price", where), f"{where}.price"),
                title=item.get("title"),
            ))
        pay_time = raw.get("pay_time")
        return CanonicalOrder(
            channel_order_id=tid,
            status_key=text_of(need(raw, "status"), "status", 64),
            modified_at=local_time(need(raw, "modified"), zone, "modified"),
            placed_at=local_time(need(raw, "created"), zone, "created"),
            paid_at=local_time(pay_time, zone, "pay_time") if pay_time else None,
            currency="CNY",
            customer_name=text_of(raw.get("buyer_nick") or need(raw, "receiver_name"), "buyer_nick", 60),
            customer_phone=text_of(need(raw, "receiver_mobile"), "receiver_mobile", 32),
            receiver=text_of(need(raw, "receiver_name"), "receiver_name", 60),
            receiver_phone=text_of(need(raw, "receiver_mobile"), "receiver_mobile", 32),
            province=text_of(need(raw, "receiver_state"), "receiver_state", 40),
            city=text_of(need(raw, "receiver_city"), "receiver_city", 40),
            district=text_of(need(raw, "receiver_district"), "receiver_district", 40),
            street=text_of(" ".join(filter(None, [raw.get("receiver_town"), need(raw, "receiver_address")])),
                           "receiver_address", 200),
            postal_code=raw.get("receiver_zip") or None,
            lines=lines,
            shipping_fee=yuan(raw.get("post_fee", "0.00"), "post_fee"),
            discount=yuan(raw.get("discount_fee", "0.00"), "discount_fee"),
            paid_amount=yuan(need(raw, "payment"), "payment"),
        )

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
