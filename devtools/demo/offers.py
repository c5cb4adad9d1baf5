"""Demo out-of-stock choices (issue 15 item 5): the first regular customer is a VIP; a limited tea is short in every
single warehouse (2 in Hangzhou, 3 in Guangzhou), a gift box stands in for it, and 30 are expected in Hangzhou in a
week. Two of the customer's orders of 4 wait instead of being refused; on the first, customer service accepted the
substitute (the order goes on), the second waits with its transfer, pre-order and substitute offers in the exception
center and on the customer's order page. Orders placed here are marked in their channel order id (OOS-DEMO-…)."""
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from shared.actors import Actor
from shared.extensions import db
from shared.models import Customer
from shared.security import crypto
from shared.services import catalog, customers, orders, sku_tax, stock, stock_offers

CS = Actor(id=None, label="demo-cs", role="customer_service")
SHORT, SUBSTITUTE = "TEA-101", "TEA-102"


@dataclass
class SeededOffers:
    waiting: int = 0
    accepted: int = 0


def _order(customer: Customer, serial: int, now: datetime) -> dict:
    placed = now - timedelta(minutes=30 + serial)
    return {
        "channel": "OS", "channel_order_id": f"OOS-DEMO-{serial:03d}", "placed_at": placed.isoformat(),
        "paid_at": (placed + timedelta(minutes=2)).isoformat(), "currency": "CNY",
        "customer": {"name": customer.name, "phone": customer.phone, "email": customer.email},
        "shipping_address": {"receiver": customer.name, "phone": customer.phone, "province": "浙江省",
                             "city": "杭州市", "district": "西湖区", "street": f"文三路 {200 + serial} 号 1 幢 101"},
        "lines": [{"sku": SHORT, "quantity": 4, "unit_price": "680.00"}], "shipping_fee": "0.00", "discount": "0.00"}


def seed_offers(now: datetime, customer_email: str, actor: Actor) -> SeededOffers:
    """The SKUs, receipt and two waiting orders above (nothing when the account does not exist). The caller
    commits."""
    seeded = SeededOffers()
    customer = db.session.execute(select(Customer).where(
        Customer.email_index == crypto.blind_index("email", customer_email))).scalar_one_or_none()
    if customer is None:
        return seeded
    customers.set_tier(customer, "vip", actor)
    from devtools.demo.seed import TAX_DATA

    tax_code, short_name, rate, unit = TAX_DATA["TEA"]  # invoiced as the other teas
    for code, name in ((SHORT, "武夷山 母树大红袍 限量 50g"), (SUBSTITUTE, "武夷山 大红袍 礼盒 50g")):
        sku = catalog.create_sku({"sku": code, "name": name}, actor)
        sku_tax.set_tax_data(sku, {"tax_code": tax_code, "tax_short_name": short_name, "tax_rate": rate,
                                   "tax_unit": unit}, actor)
    stock.adjust_stock(SHORT, "HZ1", 2, "限量到货", actor, kind="receipt")
    stock.adjust_stock(SHORT, "GZ1", 3, "限量到货", actor, kind="receipt")
    stock.adjust_stock(SUBSTITUTE, "HZ1", 12, "opening stock", actor, kind="receipt")
    stock_offers.mark_substitute(SHORT, SUBSTITUTE, "598.00", actor)
    stock_offers.expect_receipt(SHORT, "HZ1", (now + timedelta(days=7)).date(), 30, actor, reference="ASN-DEMO-101")
    first = orders.create_order(_order(customer, 1, now), actor)
    second = orders.create_order(_order(customer, 2, now), actor)
    seeded.waiting = sum(order.status == "on_hold" for order in (first, second))
    substitute = next(o for o in stock_offers.offers_of(first.id) if o.kind == "substitute")
    if stock_offers.accept(substitute, CS).status == "accepted":
        seeded.accepted += 1
    return seeded
