"""Platform orders for tests, in each platform's own shape (docs/CHANNELS.md), with amounts that add up.

Each builder takes the few things a test varies; everything else is a realistic default.
"""
import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from shared.channels.signing import body_hmac_base64  # noqa: F401  (tests sign with it too)

BEIJING = ZoneInfo("Asia/Shanghai")
WEBHOOK_SECRET = "whsec-test-0123456789abcdef"
CHANNELS = {  # code, name, kind
    "taobao": ("TB", "天猫旗舰店", "taobao"), "jd": ("JD", "京东自营店", "jd"),
    "pinduoduo": ("PD", "拼多多店", "pinduoduo"), "douyin": ("DY", "抖音小店", "douyin"),
    "shopify": ("SH", "Shopify Store", "shopify"), "woocommerce": ("WC", "WooCommerce Shop", "woocommerce"),
    "offline": ("OF", "线下门店", "offline"),
}


def beijing(moment: datetime) -> str:
    return moment.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def recent(minutes: int = 30) -> datetime:
    return (datetime.now(UTC) - timedelta(minutes=minutes)).replace(microsecond=0)


def taobao(tid="3801234567890123", status="WAIT_SELLER_SEND_GOODS", modified=None, sku="SKU-0001", num=2,
           price="59.90", post_fee="8.00", discount_fee="10.00", payment=None, receiver="李娜",
           mobile="13912345678", address="文三路 90 号", created=None, paid=True) -> dict:
    created = created or recent(60)
    modified = modified or created + timedelta(minutes=5)
    total_fee = f"{float(price) * num:.2f}"
    if payment is None:
        payment = f"{float(total_fee) + float(post_fee) - float(discount_fee):.2f}"
    return {
        "tid": int(tid), "tid_str": tid, "status": status, "created": beijing(created),
        "modified": beijing(modified), "pay_time": beijing(created + timedelta(minutes=1)) if paid else None,
        "buyer_nick": "tb_lina", "receiver_name": receiver, "receiver_mobile": mobile, "receiver_state": "浙江省",
        "receiver_city": "杭州市", "receiver_district": "西湖区", "receiver_address": address, "receiver_zip": "310012",
        "total_fee": total_fee, "post_fee": post_fee, "discount_fee": discount_fee, "payment": payment,
        "orders": {"order": [{"oid": int(tid) * 10 + 1, "outer_sku_id": sku, "title": "龙井茶 250g", "num": num,
                              "price": price, "total_fee": total_fee, "refund_status": "NO_REFUND"}]},
    }


def jd(order_id="290012345678", state="WAIT_SELLER_STOCK_OUT", modified=None, sku="SKU-0001", quantity="1",
       price="99.00", freight="0.00", discount="0.00") -> dict:
    start = recent(60)
    modified = modified or start + timedelta(minutes=3)
    total = f"{float(price) * int(quantity):.2f}"
    return {
        "orderId": order_id, "orderState": state, "orderStartTime": beijing(start), "modified": beijing(modified),
        "paymentConfirmTime": beijing(start + timedelta(minutes=1)), "orderTotalPrice": total,
        "freightPrice": freight, "sellerDiscount": discount,
        "orderPayment": f"{float(total) + float(freight) - float(discount):.2f}",
        "consigneeInfo": {"fullname": "王芳", "mobile": "13712345678", "province": "北京", "city": "朝阳区",
                          "county": "三环以内", "fullAddress": "北京朝阳区建国路 88 号"},
        "itemInfoList": [{"skuId": "100012", "outerSkuId": sku, "skuName": "碧螺春", "itemTotal": quantity,
                          "jdPrice": price}],
    }


def pinduoduo(order_sn="261121-045623189012345", order_status=1, refund_status=1, modified=None, sku="SKU-0002",
              count=3, price=19.9, postage=0.0, discount=5.7, pay_amount=None) -> dict:
    created = recent(60)
    modified = modified or created + timedelta(minutes=2)
    goods = round(price * count, 2)
    return {
        "order_sn": order_sn, "order_status": order_status, "refund_status": refund_status, "confirm_status": 1,
        "created_time": beijing(created), "pay_time": beijing(created + timedelta(minutes=1)),
        "updated_at": beijing(modified), "goods_amount": goods, "discount_amount": discount, "postage": postage,
        "pay_amount": pay_amount if pay_amount is not None else round(goods + postage - discount, 2),
        "receiver_name": "赵敏", "receiver_phone": "13612345678", "province": "广东省", "city": "深圳市",
        "town": "南山区", "address": "科技园南路 1 号",
        "item_list": [{"goods_id": 1, "sku_id": 2, "outer_id": sku, "goods_name": "红枣", "goods_count": count,
                       "goods_price": price}],
    }


def douyin(order_id="6920012345678901234", status=105, update_time=None, sku="SKU-0003", num=2,
           origin_amount=3980, post=600, promotion=500, order_amount=None, pay_time=True) -> dict:
    created = int(recent(60).timestamp())
    return {
        "order_id": order_id, "order_status": status, "order_status_desc": "已支付",
        "create_time": created, "update_time": update_time or created + 120,
        "pay_time": created + 60 if pay_time else 0,
        "order_amount": order_amount if order_amount is not None else origin_amount + post - promotion,
        "pay_amount": origin_amount + post - promotion, "post_amount": post, "promotion_amount": promotion,
        "post_receiver": "陈静", "post_tel": "13512345678",
        "post_addr": {"province": {"name": "四川省"}, "city": {"name": "成都市"}, "town": {"name": "武侯区"},
                      "street": {"name": "桂溪街道"}, "detail": "天府大道 1 号"},
        "sku_order_list": [{"sku_id": 1, "code": sku, "product_name": "毛峰", "item_num": num,
                            "origin_amount": origin_amount}],
    }


def shopify(order_id=5801234567890, financial="paid", fulfillment=None, updated=None, sku="SKU-0004",
            quantity=1, price="25.00", shipping="5.00", discounts="0.00", total=None, cancelled_at=None,
            created="2026-11-20T09:30:00-05:00") -> dict:
    updated = updated or "2026-11-20T09:35:00-05:00"
    goods = float(price) * quantity
    return {
        "id": order_id, "name": "#1001", "created_at": created, "updated_at": updated, "processed_at": created,
        "cancelled_at": cancelled_at, "currency": "USD", "financial_status": financial,
        "fulfillment_status": fulfillment, "subtotal_price": f"{goods - float(discounts):.2f}",
        "total_discounts": discounts, "total_shipping_price_set": {"shop_money": {"amount": shipping,
                                                                                   "currency_code": "USD"}},
        "total_tax": "0.00", "taxes_included": False,
        "total_price": total or f"{goods - float(discounts) + float(shipping):.2f}",
        "email": "ada@example.com", "phone": "+14155550101",
        "customer": {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com",
                     "phone": "+14155550101"},
        "shipping_address": {"name": "Ada Lovelace", "phone": "+14155550101", "address1": "1 Market St",
                             "address2": None, "city": "San Francisco", "province": "California",
                             "zip": "94105", "country_code": "US"},
        "line_items": [{"id": 1, "sku": sku, "title": "Oolong tea", "quantity": quantity, "price": price}],
    }


def woocommerce(order_id=7301, status="processing", modified="2026-11-20T10:05:00", sku="SKU-0005", quantity=2,
                subtotal="30.00", shipping="4.00", discount="2.00", total=None) -> dict:
    return {
        "id": order_id, "number": str(order_id), "status": status, "currency": "EUR",
        "date_created_gmt": "2026-11-20T10:00:00", "date_modified_gmt": modified,
        "date_paid_gmt": "2026-11-20T10:01:00" if status in ("processing", "completed") else None,
        "discount_total": discount, "shipping_total": shipping, "total_tax": "0.00", "prices_include_tax": False,
        "total": total or f"{float(subtotal) - float(discount) + float(shipping):.2f}",
        "billing": {"first_name": "Marie", "last_name": "Curie", "email": "marie@example.com",
                    "phone": "+33123456789"},
        "shipping": {"first_name": "Marie", "last_name": "Curie", "address_1": "11 Rue Pierre et Marie Curie",
                     "address_2": "", "city": "Paris", "state": "IDF", "postcode": "75005", "country": "FR",
                     "phone": "+33123456789"},
        "line_items": [{"id": 1, "name": "Jasmine tea", "sku": sku, "quantity": quantity, "subtotal": subtotal,
                        "price": float(subtotal) / quantity}],
    }


def body(order: dict) -> bytes:
    return json.dumps(order, ensure_ascii=False).encode()


def signed_headers(kind: str, raw_body: bytes, secret: str = WEBHOOK_SECRET) -> dict:
    signature = body_hmac_base64(secret, raw_body)
    if kind == "shopify":
        return {"X-Shopify-Hmac-Sha256": signature, "X-Shopify-Topic": "orders/updated",
                "Content-Type": "application/json"}
    return {"X-WC-Webhook-Signature": signature, "X-WC-Webhook-Topic": "order.updated",
            "Content-Type": "application/json"}
