"""JD: POP orders (jingdong.pop.order.enSearch), Beijing-time `yyyy-MM-dd HH:mm:ss`, yuan strings."""
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
    text_of,
    yuan,
)
from shared.channels.privacy import NO_MASK, buyer_key_of, ciphertext_of, is_ciphertext, masked_text
from shared.channels.taobao import top_time
from shared.services.validation import N_, say

# What a person reads when this module refuses: message codes, said in the reader's language (say).
NO_LINES = N_("%(field)s must list at least one item")
MUST_BE_LIST = N_("%(field)s must be a list")

DECRYPT_METHOD = "jingdong.jos.order.oaid.decrypt"
DECRYPT_RESPONSE = "jingdong_jos_order_oaid_decrypt_responce"  # JD's own spelling, as in every JOS answer
ZERO = Decimal("0.00")
STATES = "WAIT_SELLER_STOCK_OUT,WAIT_GOODS_RECEIVE_CONFIRM,FINISHED_L,TRADE_CANCELED,LOCKED"


class JdAdapter(Adapter):
    kind = "jd"
    default_status_map = {
        "WAIT_SELLER_STOCK_OUT": ("confirmed", "paid", None),
        "WAIT_GOODS_RECEIVE_CONFIRM": ("shipped", "paid", None),
        "FINISHED_L": ("completed", "paid", None),
        "TRADE_CANCELED": ("cancelled", "paid", "refunded"),
        "LOCKED": ("on_hold", "paid", "requested"),  # locked while the buyer's cancellation or refund is handled
    }

    def external_id(self, raw: dict) -> str | None:
        value = raw.get("orderId")
        return str(value) if value is not None else None

    def status_of(self, raw: dict) -> str | None:
        return raw.get("orderState")

    def parse(self, raw: dict, zone: str) -> CanonicalOrder:
        """orderPayment = orderTotalPrice − discounts + freightPrice. couponDetailList names every discount
        (seller's and JD's, per SKU when it has a skuId); without it, sellerDiscount is the whole discount."""
        consignee = need(raw, "consigneeInfo")
        items = need(raw, "itemInfoList")
        if not isinstance(items, list) or not items:
            raise PayloadProblem(say(NO_LINES, field="itemInfoList"), field="itemInfoList", code="no_lines")
        coupons = raw.get("couponDetailList")
        if coupons not in (None, "") and not isinstance(coupons, list):
            raise PayloadProblem(say(MUST_BE_LIST, field="couponDetailList"), field="couponDetailList",
                                 code="invalid_type")
        by_sku: dict[str, Decimal] = {}
        for index, coupon in enumerate(coupons or []):
            amount = yuan(need(coupon, "couponPrice", f"couponDetailList[{index}]"),
                          f"couponDetailList[{index}].couponPrice")
            sku_id = platform_id(coupon.get("skuId")) or ""
            by_sku[sku_id] = by_sku.get(sku_id, ZERO) + amount
        lines = []
        for where, item in entries(items, "itemInfoList"):
            code = item.get("outerSkuId") or ""
            sku_id = platform_id(item.get("skuId"))
            lines.append(CanonicalLine(
                channel_sku=text_of(code, f"{where}.outerSkuId", 64) if code else "",
                quantity=quantity_of(need(item, "itemTotal", where), f"{where}.itemTotal"),
                unit_price=yuan(need(item, "jdPrice", where), f"{where}.jdPrice"),
                title=item.get("skuName"), variant_id=sku_id, product_id=platform_id(item.get("wareId")),
                discount=by_sku.pop(sku_id, ZERO) if sku_id else ZERO,
            ))
        if coupons:
            discount = sum((line.discount for line in lines), ZERO) + sum(by_sku.values(), ZERO)
        else:
            discount = yuan(raw.get("sellerDiscount", "0.00"), "sellerDiscount")
        paid = raw.get("paymentConfirmTime")
        receiver = self._receiver(consignee)
        cash_on_delivery = str(raw.get("payType") or "").startswith("1-")  # "1-货到付款"
        return CanonicalOrder(
            channel_order_id=text_of(need(raw, "orderId"), "orderId", 64),
            status_key=text_of(need(raw, "orderState"), "orderState", 64),
            modified_at=local_time(need(raw, "modified"), zone, "modified"),
            placed_at=local_time(need(raw, "orderStartTime"), zone, "orderStartTime"),
            paid_at=local_time(paid, zone, "paymentConfirmTime") if paid else None,
            currency="CNY",
            customer_name=receiver["name"], customer_phone=receiver["phone"], receiver=receiver["name"],
            receiver_phone=receiver["phone"], protected=receiver["protected"],
            province=text_of(need(consignee, "province", "consigneeInfo"), "consigneeInfo.province", 40),
            city=text_of(need(consignee, "city", "consigneeInfo"), "consigneeInfo.city", 40),
            district=text_of(need(consignee, "county", "consigneeInfo"), "consigneeInfo.county", 40),
            street=receiver["street"],
            lines=lines,
            shipping_fee=yuan(raw.get("freightPrice", "0.00"), "freightPrice"),
            discount=discount,
            paid_amount=yuan(need(raw, "orderPayment"), "orderPayment"),
            discounts_per_line=bool(coupons), unallocated_discount=sum(by_sku.values(), ZERO),
            cash_on_delivery=cash_on_delivery,
            cash_collected=cash_on_delivery and raw.get("orderState") == "FINISHED_L",
            extra={"seller_discount": raw.get("sellerDiscount"), "seller_price": raw.get("orderSellerPrice")},
        )

    @staticmethod
    def _receiver(consignee: dict) -> dict:
        """Plain consignee fields, or JD's 加密字段: fullname / fullAddress / telephone as base64 ciphertext, mobile
        masked (136*******5), desen_mobile the platform's hash of the phone and oaid the receiver's open id."""
        protected = any(key in consignee for key in ("desen_mobile", "oaid"))
        if not protected and not is_ciphertext(consignee.get("fullname")):
            return {"name": text_of(need(consignee, "fullname", "consigneeInfo"), "consigneeInfo.fullname", 60),
                    "phone": text_of(need(consignee, "mobile", "consigneeInfo"), "consigneeInfo.mobile", 32),
                    "street": text_of(need(consignee, "fullAddress", "consigneeInfo"), "consigneeInfo.fullAddress",
                                      200), "protected": None}
        ciphertext = {"fullname": ciphertext_of(consignee, "fullname", "consigneeInfo"),
                      "fullAddress": ciphertext_of(consignee, "fullAddress", "consigneeInfo")}
        for key in ("telephone", "mobile", "oaid", "desen_mobile"):
            if consignee.get(key):
                ciphertext[key] = str(consignee[key])
        mobile = consignee.get("mobile")
        phone = masked_text(mobile, "consigneeInfo.mobile", 32) if mobile and "*" in str(mobile) else NO_MASK
        return {"name": NO_MASK, "phone": phone, "street": NO_MASK,
                "protected": PlatformProtected(ciphertext, buyer_key_of(consignee.get("desen_mobile"),
                                                                        consignee.get("oaid")))}

    def _call(self, client, creds: Credentials, method: str, business: dict) -> dict:
        """One JOS router call: the business parameters as `360buy_param_json`, MD5-signed, posted to /routerjson."""
        params = {
            "method": method, "app_key": creds.app_key, "access_token": creds.access_token,
            "timestamp": top_time(datetime.now(ZoneInfo("Asia/Shanghai"))), "v": "2.0", "sign_method": "md5",
            "360buy_param_json": json.dumps(business, separators=(",", ":"), ensure_ascii=False),
        }
        params["sign"] = signing.jd_sign(params, creds.app_secret or "")
        return self._json(client.post(f"{creds.base_url}/routerjson", data=params))

    def fetch_page(self, client, creds: Credentials, start, end, cursor) -> Page:
        page = cursor or 1
        business = {"start_date": top_time(start), "end_date": top_time(end), "order_state": STATES,
                    "page": str(page), "page_size": str(self.page_size), "dateType": "1"}
        body = self._call(client, creds, "jingdong.pop.order.enSearch", business)
        if "error_response" in body:
            error = body["error_response"]
            raise PlatformError(f"JD error {error.get('code')}: {error.get('en_desc') or error.get('zh_desc')}")
        result = (body.get("jingdong_pop_order_enSearch_responce") or {}).get("searchorderinfo_result") or {}
        if not (result.get("apiResult") or {}).get("success", False):
            raise PlatformError(f"JD search failed: {result.get('apiResult')}")
        orders = result.get("orderInfoList") or []
        total = int(result.get("orderTotal") or 0)
        return Page(orders, page + 1 if page * self.page_size < total else None)

    def decrypt(self, client, creds: Credentials, requests) -> dict:
        """jingdong.jos.order.oaid.decrypt (getReceiverInfoListReqVO.orderInfos: orderId + oaid), one batch."""
        infos = [{"orderId": request.order_id, "oaid": request.ciphertext.get("oaid")} for request in requests]
        if any(not info["oaid"] for info in infos):
            raise DecryptRefused("the order carries no oaid to decrypt")
        business = {"getReceiverInfoListReqVO": {"orderType": "POP", "appName": "orderloom", "orderInfos": infos,
                                                 "scenesType": "1001"}}
        body = self._call(client, creds, DECRYPT_METHOD, business)
        if "error_response" in body:
            error = body["error_response"]
            raise DecryptRefused(f"JD {error.get('code')}: {error.get('zh_desc') or error.get('en_desc')}")
        answer = (body.get(DECRYPT_RESPONSE) or {}).get("returnType") or {}
        if not answer.get("success"):
            raise DecryptRefused(f"JD {answer.get('code')}: {answer.get('msg') or 'decrypt refused'}")
        found = {str(item.get("orderId")): item for item in answer.get("data") or [] if isinstance(item, dict)}
        plain = {}
        for request in requests:
            item = found.get(request.order_id)
            if item is None:
                raise DecryptRefused(f"JD returned no receiver for order {request.order_id}")
            plain[request.order_id] = {"receiver": str(item.get("consName") or ""),
                                       "phone": str(item.get("consMobilePhone") or item.get("consTelephone") or ""),
                                       "street": str(item.get("consAddress") or "")}
        return plain
