"""SKUs, warehouses (their carriers and bins) and channels: the master data orders and stock refer to."""
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select

from shared.actors import Actor
from shared.carriers.waybills import CARRIER_NAMES
from shared.extensions import db
from shared.models import Bin, Channel, Sku, Warehouse
from shared.models.channel import CHANNEL_KINDS
from shared.services import audit
from shared.services.channel_settings import seed_status_mappings
from shared.services import validation as check
from shared.services.errors import Conflict, NotFound, ValidationFailed
from shared.services.validation import N_, say

# What a person reads when this module refuses: message codes, said in the reader's language (say).
NOT_ZERO_OR_MORE = N_("%(field)s must be zero or a positive whole number")
NOT_A_FLAG = N_("%(field)s must be true or false")
DUPLICATE_SKU = N_("SKU %(code)s exists")
INVALID_CARRIERS = N_("Name at least one carrier, e.g. [\"SF\", \"YTO\"]")
UNKNOWN_CARRIER = N_("Unknown carrier \"%(unknown)s\": use %(carrier_names)s")
DUPLICATE_CARRIER = N_("A carrier is named twice")
DUPLICATE_WAREHOUSE = N_("Warehouse %(code)s exists")
NOT_CHANGEABLE = N_("%(unknown)s cannot be changed")
WHOLE_FROM = N_("%(field)s must be a whole number from %(minimum)s")
DUPLICATE_BIN = N_("%(warehouse_code)s has a bin %(code)s already")
CAPACITY_BELOW_CONTENTS = N_("Bin %(row_code)s holds %(held)s units: capacity cannot be less")
UNKNOWN_BIN = N_("%(warehouse_code)s has no bin \"%(code)s\"")
INVALID_CURRENCY = N_("A currency is a three-letter ISO 4217 code, e.g. CNY")
UNKNOWN_CHANNEL = N_("Unknown channel \"%(code)s\"")
INVALID_KIND = N_("Unknown channel kind \"%(kind)s\": use %(channel_kinds)s")
DUPLICATE_CHANNEL = N_("Channel %(code)s exists")
INVALID_TIMEZONE = N_("\"%(zone)s\" is not a time zone (e.g. Asia/Shanghai)")


def _non_negative_int(value, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationFailed(say(NOT_ZERO_OR_MORE, field=field), field=field,
                               code="invalid_quantity")
    return value


def create_sku(data: dict, actor: Actor) -> Sku:
    check.mapping(data, "body")
    code = check.code(data.get("sku"), "sku", "sku")
    name = check.text(data.get("name"), "name", 200)
    safety = _non_negative_int(data.get("safety_stock", 0), "safety_stock")
    batch = data.get("batch_tracked", False)
    if not isinstance(batch, bool):
        raise ValidationFailed(say(NOT_A_FLAG, field="batch_tracked"), field="batch_tracked",
                               code="invalid_type")
    if db.session.execute(select(Sku.id).where(Sku.code == code)).first():
        raise Conflict(say(DUPLICATE_SKU, code=code), field="sku", code="duplicate_sku")
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


def _carriers(value) -> str:
    """The carriers a warehouse asks for a waybill, first choice first, then the backups: "SF,YTO"."""
    if isinstance(value, str):
        value = [part for part in re.split(r"[\s,]+", value) if part]
    if not isinstance(value, list) or not value or not all(isinstance(code, str) for code in value):
        raise ValidationFailed(say(INVALID_CARRIERS), field="carriers",
                               code="invalid_carriers")
    codes = [code.strip().upper() for code in value]
    unknown = [code for code in codes if code not in CARRIER_NAMES]
    if unknown:
        raise ValidationFailed(say(UNKNOWN_CARRIER, unknown=unknown[0], carrier_names=', '.join(CARRIER_NAMES)),
                               field="carriers",
                               code="unknown_carrier")
    if len(set(codes)) != len(codes):
        raise ValidationFailed(say(DUPLICATE_CARRIER), field="carriers", code="duplicate_carrier")
    return ",".join(codes)


def _flag(value, field: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationFailed(say(NOT_A_FLAG, field=field), field=field, code="invalid_type")
    return value


WAREHOUSE_FIELDS = ("name", "province", "city", "carriers", "cold_chain", "active")


def _warehouse_values(warehouse: Warehouse) -> dict:
    return {field: getattr(warehouse, field) for field in WAREHOUSE_FIELDS}


def create_warehouse(data: dict, actor: Actor) -> Warehouse:
    check.mapping(data, "body")
    code = check.code(data.get("code"), "code", "warehouse")
    values = {f: check.text(data.get(f), f, 120 if f == "name" else 40) for f in ("name", "province", "city")}
    values["carriers"] = _carriers(data["carriers"]) if data.get("carriers") is not None else "SF,YTO"
    values["cold_chain"] = _flag(data.get("cold_chain", False), "cold_chain")
    if db.session.execute(select(Warehouse.id).where(Warehouse.code == code)).first():
        raise Conflict(say(DUPLICATE_WAREHOUSE, code=code), field="code", code="duplicate_warehouse")
    warehouse = Warehouse(code=code, active=True, **values)
    db.session.add(warehouse)
    db.session.flush()
    audit.record(actor, "warehouse.create", "warehouse", code, after=values)
    return warehouse


def update_warehouse(warehouse: Warehouse, data: dict, actor: Actor) -> Warehouse:
    """Change a warehouse's name, place, carriers (first choice, then backups), cold chain or whether it is used."""
    check.mapping(data, "body")
    unknown = sorted(set(data) - set(WAREHOUSE_FIELDS))
    if unknown:
        raise ValidationFailed(say(NOT_CHANGEABLE, unknown=unknown[0]), field=unknown[0], code="unknown_field")
    before = _warehouse_values(warehouse)
    values = {}
    for field in ("name", "province", "city"):
        if field in data:
            values[field] = check.text(data[field], field, 120 if field == "name" else 40)
    if "carriers" in data:
        values["carriers"] = _carriers(data["carriers"])
    for field in ("cold_chain", "active"):
        if field in data:
            values[field] = _flag(data[field], field)
    for field, value in values.items():
        setattr(warehouse, field, value)
    after = _warehouse_values(warehouse)
    if after != before:
        db.session.flush()
        audit.record(actor, "warehouse.update", "warehouse", warehouse.code, before=before, after=after)
    return warehouse




def _bin_number(value, field: str, default: int, minimum: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= 10_000_000:
        raise ValidationFailed(say(WHOLE_FROM, field=field, minimum=minimum), field=field,
                               code="invalid_quantity")
    return value


def bins_of(warehouse: Warehouse) -> list[Bin]:
    return db.session.execute(select(Bin).where(Bin.warehouse_id == warehouse.id)
                              .order_by(Bin.walk_order, Bin.code)).scalars().all()


def create_bin(warehouse: Warehouse, data: dict, actor: Actor) -> Bin:
    """A storage location: a code printed on the shelf (letters, digits, '-', '_', '.'), its place on the pick
    walk and how many units it holds."""
    check.mapping(data, "body")
    code = check.code(data.get("code"), "code", "bin")
    walk = _bin_number(data.get("walk_order"), "walk_order", default=0, minimum=0)
    capacity = _bin_number(data.get("capacity"), "capacity", default=10_000, minimum=1)
    if db.session.execute(select(Bin.id).where(Bin.warehouse_id == warehouse.id, Bin.code == code)).first():
        raise Conflict(say(DUPLICATE_BIN, warehouse_code=warehouse.code, code=code), field="code", code="duplicate_bin")
    row = Bin(warehouse_id=warehouse.id, code=code, walk_order=walk, capacity=capacity)
    db.session.add(row)
    db.session.flush()
    audit.record(actor, "bin.create", "warehouse", warehouse.code,
                 after={"bin": code, "walk_order": walk, "capacity": capacity})
    return row


def update_bin(warehouse: Warehouse, row: Bin, data: dict, actor: Actor) -> Bin:
    """Change a bin's place on the walk or its capacity (never below what lies in it)."""
    from sqlalchemy import func

    from shared.models import Lot

    check.mapping(data, "body")
    before = {"walk_order": row.walk_order, "capacity": row.capacity}
    row.walk_order = _bin_number(data.get("walk_order"), "walk_order", default=row.walk_order, minimum=0)
    capacity = _bin_number(data.get("capacity"), "capacity", default=row.capacity, minimum=1)
    held = db.session.execute(select(func.coalesce(func.sum(Lot.quantity), 0)).where(Lot.bin_id == row.id)).scalar()
    if capacity < held:
        raise ValidationFailed(say(CAPACITY_BELOW_CONTENTS, row_code=row.code, held=held), field="capacity",
                               code="capacity_below_contents")
    row.capacity = capacity
    after = {"walk_order": row.walk_order, "capacity": row.capacity}
    if after != before:
        db.session.flush()
        audit.record(actor, "bin.update", "warehouse", warehouse.code, before=before | {"bin": row.code},
                     after=after | {"bin": row.code})
    return row


def get_bin(warehouse: Warehouse, code: str) -> Bin:
    row = db.session.execute(select(Bin).where(Bin.warehouse_id == warehouse.id, Bin.code == (code or "").strip())
                             ).scalar_one_or_none()
    if row is None:
        raise NotFound(say(UNKNOWN_BIN, warehouse_code=warehouse.code, code=code), field="bin", code="unknown_bin")
    return row


def _timezone(value) -> str:
    zone = check.text(value, "timezone", 40)
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed(say(INVALID_TIMEZONE, zone=zone), field="timezone",
                               code="invalid_timezone") from None
    return zone


def _currency(value) -> str:
    currency = check.text(value, "currency", 3).upper()
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise ValidationFailed(say(INVALID_CURRENCY), field="currency",
                               code="invalid_currency")
    return currency


def all_channels() -> list[Channel]:
    return db.session.execute(select(Channel).order_by(Channel.code)).scalars().all()


def get_channel(code: str) -> Channel:
    channel = db.session.execute(select(Channel).where(Channel.code == (code or "").strip().upper())
                                 ).scalar_one_or_none()
    if channel is None:
        raise NotFound(say(UNKNOWN_CHANNEL, code=code), field="channel", code="unknown_channel")
    return channel


def create_channel(code: str, name: str, kind: str, actor: Actor, timezone: str = "Asia/Shanghai",
                   currency: str = "CNY") -> Channel:
    """A sales channel: a two-letter code (the prefix of its order numbers), its platform, zone and currency."""
    code = check.code(code, "code", "channel")
    if kind not in CHANNEL_KINDS:
        raise ValidationFailed(say(INVALID_KIND, kind=kind, channel_kinds=', '.join(CHANNEL_KINDS)), field="kind",
                               code="invalid_kind")
    name = check.text(name, "name", 80)
    timezone, currency = _timezone(timezone or "Asia/Shanghai"), _currency(currency or "CNY")
    if db.session.execute(select(Channel.id).where(Channel.code == code)).first():
        raise Conflict(say(DUPLICATE_CHANNEL, code=code), field="code", code="duplicate_channel")
    channel = Channel(code=code, name=name, kind=kind, timezone=timezone, currency=currency, active=True)
    db.session.add(channel)
    db.session.flush()
    seed_status_mappings(channel)  # the platform's documented statuses, to be edited from there
    audit.record(actor, "channel.create", "channel", code,
                 after={"name": name, "kind": kind, "timezone": timezone, "currency": currency})
    return channel


CHANNEL_FIELDS = ("name", "timezone", "currency", "active")


def update_channel(channel: Channel, data: dict, actor: Actor) -> Channel:
    """Rename a channel, change its zone or currency, or stop using it. Its code and platform stay: order
    numbers and the inbox refer to them."""
    check.mapping(data, "body")
    unknown = sorted(set(data) - set(CHANNEL_FIELDS))
    if unknown:
        raise ValidationFailed(say(NOT_CHANGEABLE, unknown=unknown[0]), field=unknown[0], code="unknown_field")
    before = {field: getattr(channel, field) for field in CHANNEL_FIELDS}
    if "name" in data:
        channel.name = check.text(data["name"], "name", 80)
    if "timezone" in data:
        channel.timezone = _timezone(data["timezone"])
    if "currency" in data:
        channel.currency = _currency(data["currency"])
    if "active" in data:
        channel.active = _flag(data["active"], "active")
    after = {field: getattr(channel, field) for field in CHANNEL_FIELDS}
    if after != before:
        db.session.flush()
        audit.record(actor, "channel.update", "channel", channel.code, before=before, after=after)
    return channel
