"""Demo purchasing (issue 15 item 4): a supplier for each product family with its lead time, safety days, MOQ and
pack size, and one new supplier (household goods) whose lead time is not known yet, so the report shows its SKUs as
"cannot suggest". The week's suggestions are computed from the seeded shipments and stock, and each supplier with
something to order gets its XLSX mail queued in the outbox (the demo's sweeper sends it to the SMTP sink)."""
from dataclasses import dataclass

from sqlalchemy import func, select

from shared.actors import Actor
from shared.extensions import db
from shared.models import PurchaseSuggestion, Sku, Warehouse
from shared.services import purchasing
from shared.timekeeping import utc_now

BUYER = Actor(id=None, label="demo-purchasing", role="ops_manager")
# (code, name, email, language, lead time days or None, safety days, SKU prefix, MOQ, pack size)
SUPPLIERS = (
    ("XHTEA", "杭州西湖茶业供应链有限公司", "caigou@xhtea.example.cn", "zh_CN", 10, 7, "TEA-", 12, 6),
    ("LANUTS", "临安山核桃食品有限公司", "order@lanuts.example.cn", "zh_CN", 7, 5, "SNK-", 10, 10),
    ("GZBEAUTY", "广州美研化妆品有限公司", "sales@gzbeauty.example.cn", "zh_CN", 14, 10, "COS-", 24, 12),
    ("NBAPPL", "Ningbo Home Appliance Co., Ltd.", "export@nbappl.example.com", "en", 21, 14, "APL-", 10, 2),
    ("YWHOME", "义乌日用百货新供应商", "info@ywhome.example.cn", "zh_CN", None, 7, "HOM-", 1, 1),
)


@dataclass
class SeededPurchasing:
    suppliers: int = 0
    lines: int = 0
    to_order: int = 0
    cannot_suggest: int = 0
    mails: int = 0


def seed_purchasing() -> SeededPurchasing:
    """Suppliers and their SKUs, then this week's run (the weekly job then finds it done); the caller commits."""
    seeded = SeededPurchasing()
    skus = db.session.execute(select(Sku.code, Sku.safety_stock).order_by(Sku.code)).all()
    warehouses = db.session.execute(select(func.count(Warehouse.id)).where(Warehouse.active)).scalar_one() or 1
    for code, name, email, locale, lead, safety, prefix, moq, pack in SUPPLIERS:
        supplier = purchasing.create_supplier({"code": code, "name": name, "email": email, "locale": locale,
                                               "lead_time_days": lead, "safety_days": safety}, BUYER)
        for sku, safety_stock in (row for row in skus if row.code.startswith(prefix)):
            # The SKU's safety stock (the low-stock alarm's, for all warehouses) shared out as units per
            # warehouse: the SKUs the seed leaves short are then below it, and ordered.
            purchasing.save_supplier_sku(supplier, {"sku": sku, "supplier_code": f"{code}-{sku}", "moq": moq,
                                                    "pack_size": pack,
                                                    "safety_units": -(-safety_stock // warehouses)}, BUYER)
        seeded.suppliers += 1
    db.session.flush()
    run = purchasing.weekly(utc_now())
    if run is None:
        return seeded
    lines = db.session.execute(select(PurchaseSuggestion).where(PurchaseSuggestion.run_id == run.id)).scalars().all()
    seeded.lines = len(lines)
    seeded.to_order = sum(1 for line in lines if line.suggested > 0)
    seeded.cannot_suggest = sum(1 for line in lines if line.problem)
    seeded.mails = len({line.supplier_id for line in lines if line.suggested > 0})
    return seeded
