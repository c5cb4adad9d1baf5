"""SKUs, warehouses and channels: the master data orders and stock refer to."""
from sqlalchemy import select

from shared.actors import Actor
from shared.extensions import db
from shared.models import Channel, Sku, Warehouse
from shared.models.channel import CHANNEL_KINDS
from shared.services import audit
from shared.services import validation as check
from shared.services.errors import Conflict, ValidationFailed


def _non_negative_int(value, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationFailed(f"{field} must be zero or a positive whole number", field=field,
                               code="invalid_quantity")
    return value


def create_sku(data: dict, actor: Actor) -> Sku:
    check.mapping(data, "body")
    code = check.code(data.get("sku"), "sku", "sku")
    name = check.text(data.get("name"), "name", 200)
    safety = _non_negative_int(data.get("safety_stock", 0), "safety_stock")
    batch = data.get("batch_tracked", False)
    if not isinstance(batch, bool):
        raise ValidationFailed("batch_tracked must be true or false", field="batch_tracked", code="invalid_type")
    if db.session.execute(select(Sku.id).where(Sku.code == code)).first():
        raise Conflict(f"SKU {code} exists", field="sku", code="duplicate_sku")
    sku = Sku(code=code, name=name, safety_stock=safety, batch_tracked=batch, active=True)
    db.session.add(sku)
    db.session.flush()
    audit.record(actor, "sku.create", "sku", code, after={"name": name, "safety_stock": safety,
                                                          "batch_tracked": batch})
    return sku


def update_sku(sku: Sku, actor: Actor, safety_stock=None, name=None) -> Sku:
    before = {"name": sku.name, "safety_stock": sku.safety_stock}
    if safety_stock is not None:
        sku.safety_stock = _non_negative_int(safety_stock, "safety_stock")
    if name is not None:
        sku.name = check.text(name, "name", 200)
    after = {"name": sku.name, "safety_stock": sku.safety_stock}
    if before != after:
        db.session.flush()
        audit.record(actor, "sku.update", "sku", sku.code, before=before, after=after)
    return sku


def create_warehouse(data: dict, actor: Actor) -> Warehouse:
    check.mapping(data, "body")
    code = check.code(data.get("code"), "code", "warehouse")
    values = {f: check.text(data.get(f), f, 120 if f == "name" else 40) for f in ("name", "province", "city")}
    if db.session.execute(select(Warehouse.id).where(Warehouse.code == code)).first():
        raise Conflict(f"warehouse {code} exists", field="code", code="duplicate_warehouse")
    warehouse = Warehouse(code=code, active=True, **values)
    db.session.add(warehouse)
    db.session.flush()
    audit.record(actor, "warehouse.create", "warehouse", code, after=values)
    return warehouse


def create_channel(code: str, name: str, kind: str, actor: Actor, timezone: str = "Asia/Shanghai",
                   currency: str = "CNY") -> Channel:
    code = check.code(code, "code", "channel")
    if kind not in CHANNEL_KINDS:
        raise ValidationFailed(f"unknown channel kind {kind!r}", field="kind")
    if db.session.execute(select(Channel.id).where(Channel.code == code)).first():
        raise Conflict(f"channel {code} exists", field="code", code="duplicate_channel")
    channel = Channel(code=code, name=check.text(name, "name", 80), kind=kind, timezone=timezone,
                      currency=currency, active=True)
    db.session.add(channel)
    db.session.flush()
    audit.record(actor, "channel.create", "channel", code, after={"name": channel.name, "kind": kind})
    return channel
