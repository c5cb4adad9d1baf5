"""Purchase suggestions (issue 15 item 4): suppliers and the SKUs bought from them, and the weekly computation of how
much to order per SKU and warehouse, mailed to each supplier as an XLSX through the mail outbox.

For each SKU with a supplier, in each warehouse that keeps it:

- sales are the units shipped (the `shipment` rows of the stock ledger) in the last 4, 8 and 12 weeks before the
  run, summed in one grouped query; the velocity (units a day) weighs each window's daily rate (WINDOWS: 0.5 for
  4 weeks, 0.3 for 8, 0.2 for 12), so a recent change counts most without one odd week deciding alone;
- the lead time is the supplier SKU's own, else the supplier's; a supplier whose lead time is not known yet can be
  saved (it is often learnt later), and each of its SKUs is then listed "cannot suggest: supplier X has no lead
  time" instead of being dropped from the report unseen;
- the safety stock is the supplier SKU's units when given, else the supplier's safety days of sales;
- the target is the sales over lead time plus the review period (REVIEW_DAYS: the next run is a week away) plus
  the safety stock; the position is the available stock (on hand - reserved - held, StockLevel.available) plus
  what is inbound (no purchase orders are kept yet: 0); what is missing is ordered, at least the MOQ, rounded up to
  whole packs. A SKU that sold nothing has a target of its safety stock alone: it is suggested only below it.
"""
import logging
import math
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import and_, case, func, insert, select

from shared.actors import SYSTEM, Actor
from shared.exports import xlsx_bytes
from shared.extensions import db
from shared.models import (PurchaseRun, PurchaseSuggestion, Sku, StockLevel, StockMovement, Supplier, SupplierSku,
                           Warehouse)
from shared.services import audit, notifications
from shared.services import validation as check
from shared.services.errors import Conflict, NotFound, ValidationFailed
from shared.services.validation import N_, say
from shared.timekeeping import as_utc, merchant_zone, utc_now

log = logging.getLogger("orderloom.purchasing")

# What a person reads when this module refuses or explains: message codes, said in the reader's language.
SUPPLIER_NOT_FOUND = N_("No such supplier")
DUPLICATE_SUPPLIER = N_("Supplier %(code)s exists")
UNKNOWN_SKU = N_("Unknown SKU \"%(code)s\"")
SKU_OF_ANOTHER = N_("SKU %(sku)s is bought from supplier %(supplier)s already: remove it there first")
NOT_SUPPLIED = N_("Supplier %(supplier)s does not supply SKU %(sku)s")
BAD_DAYS = N_("%(field)s must be a whole number of days from %(low)s to %(high)s")
BAD_UNITS = N_("%(field)s must be a whole number from %(low)s to %(high)s")
BAD_LOCALE = N_("The language of the supplier's mail is zh_CN or en")
RUN_NOT_FOUND = N_("No such purchase suggestion run")
NO_LEAD_TIME = N_("cannot suggest: supplier %(supplier)s has no lead time")
NO_PROBLEM = ""

# The windows (weeks before the run) and the weight of each one's daily rate; they sum to 1.
WINDOWS = ((4, Decimal("0.5")), (8, Decimal("0.3")), (12, Decimal("0.2")))
REVIEW_DAYS = 7  # the suggestions are computed weekly: cover the week until the next run too
DEFAULT_SAFETY_DAYS = 7
MAX_LEAD_DAYS = 365
MAX_UNITS = 1_000_000
VELOCITY_STEP = Decimal("0.001")
LOCALES = ("zh_CN", "en")
MAIL_EVENT = "purchase_suggestions"
XLSX_TYPE = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")


def weights_text() -> str:
    return ",".join(f"{weeks}:{weight}" for weeks, weight in WINDOWS)


def parse_weights(text: str) -> list[tuple[int, Decimal]]:
    """The windows and weights a run was computed with ("4:0.5,8:0.3,12:0.2")."""
    pairs = (part.split(":") for part in text.split(",") if part)
    return [(int(weeks), Decimal(weight)) for weeks, weight in pairs]


# ------------------------------------------------------------------------------------------------ suppliers

def _days(value, field: str, low: int, required: bool) -> int | None:
    if value is None or value == "":
        if required:
            raise ValidationFailed(say(check.REQUIRED, field=field), field=field, code="required")
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_LEAD_DAYS:
        raise ValidationFailed(say(BAD_DAYS, field=field, low=low, high=MAX_LEAD_DAYS), field=field,
                               code=f"invalid_{field}")
    return value


def _units(value, field: str, low: int, default: int | None) -> int | None:
    if value is None or value == "":
        return default
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_UNITS:
        raise ValidationFailed(say(BAD_UNITS, field=field, low=low, high=MAX_UNITS), field=field,
                               code=f"invalid_{field}")
    return value


def _supplier_fields(data: dict) -> dict:
    locale = data.get("locale") or "zh_CN"
    if locale not in LOCALES:
        raise ValidationFailed(say(BAD_LOCALE), field="locale", code="invalid_locale")
    return {"name": check.text(data.get("name"), "name", 120), "email": check.email(data.get("email"), "email"),
            "locale": locale, "lead_time_days": _days(data.get("lead_time_days"), "lead_time_days", 1, False),
            "safety_days": _days(data.get("safety_days", DEFAULT_SAFETY_DAYS), "safety_days", 0, True)}


def _supplier_state(supplier: Supplier) -> dict:
    return {"name": supplier.name, "email": supplier.email, "locale": supplier.locale,
            "lead_time_days": supplier.lead_time_days, "safety_days": supplier.safety_days,
            "active": supplier.active}


def create_supplier(data: dict, actor: Actor) -> Supplier:
    """A new supplier; its lead time may be left empty (then its SKUs show "cannot suggest" in the report)."""
    check.mapping(data, "body")
    code = check.code(data.get("code"), "code", "supplier")
    fields = _supplier_fields(data)
    if db.session.execute(select(Supplier.id).where(Supplier.code == code)).first():
        raise Conflict(say(DUPLICATE_SUPPLIER, code=code), field="code", code="duplicate_supplier")
    supplier = Supplier(code=code, active=True, **fields)
    db.session.add(supplier)
    db.session.flush()
    audit.record(actor, "supplier.create", "supplier", code, after=_supplier_state(supplier))
    return supplier


def update_supplier(supplier: Supplier, data: dict, actor: Actor) -> Supplier:
    check.mapping(data, "body")
    fields = _supplier_fields(data)
    active = data.get("active", supplier.active)
    before = _supplier_state(supplier)
    for name, value in fields.items():
        setattr(supplier, name, value)
    supplier.active = bool(active)
    after = _supplier_state(supplier)
    if before != after:
        db.session.flush()
        audit.record(actor, "supplier.update", "supplier", supplier.code, before=before, after=after)
    return supplier


def get_supplier(supplier_id: int) -> Supplier:
    supplier = db.session.get(Supplier, supplier_id)
    if supplier is None:
        raise NotFound(say(SUPPLIER_NOT_FOUND), code="supplier_not_found")
    return supplier


def list_suppliers() -> list[tuple[Supplier, int]]:
    """Every supplier with how many SKUs it supplies, by code."""
    counts = (select(SupplierSku.supplier_id, func.count(SupplierSku.id).label("skus"))
              .group_by(SupplierSku.supplier_id).subquery())
    return list(db.session.execute(select(Supplier, func.coalesce(counts.c.skus, 0))
                                   .outerjoin(counts, counts.c.supplier_id == Supplier.id)
                                   .order_by(Supplier.code)).all())


def _sku_state(item: SupplierSku) -> dict:
    return {"sku": item.sku.code, "supplier_code": item.supplier_code, "lead_time_days": item.lead_time_days,
            "safety_units": item.safety_units, "moq": item.moq, "pack_size": item.pack_size}


def save_supplier_sku(supplier: Supplier, data: dict, actor: Actor) -> SupplierSku:
    """Add a SKU to the supplier or change its terms (its own lead time, safety units, MOQ, pack size). A SKU is
    bought from one supplier: one already bought elsewhere is refused."""
    check.mapping(data, "body")
    code = check.code(data.get("sku"), "sku", "sku")
    sku = db.session.execute(select(Sku).where(Sku.code == code)).scalar_one_or_none()
    if sku is None:
        raise NotFound(say(UNKNOWN_SKU, code=code), field="sku", code="unknown_sku")
    fields = {"supplier_code": check.text(data.get("supplier_code"), "supplier_code", 64, required=False),
              "lead_time_days": _days(data.get("lead_time_days"), "lead_time_days", 1, False),
              "safety_units": _units(data.get("safety_units"), "safety_units", 0, None),
              "moq": _units(data.get("moq"), "moq", 1, 1), "pack_size": _units(data.get("pack_size"), "pack_size", 1, 1)}
    item = db.session.execute(select(SupplierSku).where(SupplierSku.sku_id == sku.id)).scalar_one_or_none()
    if item is not None and item.supplier_id != supplier.id:
        raise Conflict(say(SKU_OF_ANOTHER, sku=code, supplier=item.supplier.code), field="sku",
                       code="sku_of_another_supplier")
    before = _sku_state(item) if item is not None else None
    if item is None:
        item = SupplierSku(supplier_id=supplier.id, sku_id=sku.id, sku=sku)
        db.session.add(item)
    for name, value in fields.items():
        setattr(item, name, value)
    db.session.flush()
    after = _sku_state(item)
    if before != after:
        audit.record(actor, "supplier.sku_save", "supplier", supplier.code, before=before, after=after)
    return item


def remove_supplier_sku(supplier: Supplier, sku_code: str, actor: Actor) -> None:
    item = db.session.execute(select(SupplierSku).join(Sku, Sku.id == SupplierSku.sku_id)
                              .where(SupplierSku.supplier_id == supplier.id, Sku.code == sku_code)
                              ).scalar_one_or_none()
    if item is None:
        raise NotFound(say(NOT_SUPPLIED, supplier=supplier.code, sku=sku_code), field="sku", code="not_supplied")
    before = _sku_state(item)
    db.session.delete(item)
    db.session.flush()
    audit.record(actor, "supplier.sku_remove", "supplier", supplier.code, before=before)


# ------------------------------------------------------------------------------------------------ the computation

def sales_by_window(as_of: datetime):
    """Units shipped per SKU and warehouse in each window before `as_of`: one grouped query over the ledger's
    shipment rows (a subquery: sku_id, warehouse_id, sold_4w, sold_8w, sold_12w)."""
    sold = -StockMovement.delta
    columns = [func.sum(case((StockMovement.created_at >= as_of - timedelta(weeks=weeks), sold), else_=0))
               .label(f"sold_{weeks}w") for weeks, _weight in WINDOWS]
    longest = max(weeks for weeks, _weight in WINDOWS)
    return (select(StockMovement.sku_id, StockMovement.warehouse_id, *columns)
            .where(StockMovement.kind == "shipment", StockMovement.created_at >= as_of - timedelta(weeks=longest),
                   StockMovement.created_at < as_of)
            .group_by(StockMovement.sku_id, StockMovement.warehouse_id).subquery())


def velocity(sold: dict[int, int]) -> Decimal:
    """Units a day: each window's daily rate weighed (WINDOWS), to 0.001."""
    total = sum((weight * Decimal(sold[weeks]) / Decimal(weeks * 7) for weeks, weight in WINDOWS), Decimal(0))
    return total.quantize(VELOCITY_STEP, rounding=ROUND_HALF_UP)


def order_quantity(need: int, moq: int, pack_size: int) -> int:
    """What is ordered for a shortfall: nothing when none, else at least the MOQ, in whole packs."""
    if need <= 0:
        return 0
    quantity = max(need, moq)
    return -(-quantity // pack_size) * pack_size


def suggestion(row, review_days: int = REVIEW_DAYS) -> dict:
    """One line's figures from its stock, sales and terms (a row of `_inputs`)."""
    sold = {4: int(row.sold_4w or 0), 8: int(row.sold_8w or 0), 12: int(row.sold_12w or 0)}
    speed = velocity(sold)
    lead = row.sku_lead_time_days or row.supplier_lead_time_days
    if row.safety_units is not None:
        safety_days, safety_units = None, row.safety_units
    else:
        safety_days = row.safety_days
        safety_units = math.ceil(speed * safety_days)
    inbound = 0  # no purchase orders are kept yet: nothing is on its way
    position = row.on_hand - row.reserved - row.held + inbound
    line = {"supplier_id": row.supplier_id, "sku_id": row.sku_id, "warehouse_id": row.warehouse_id,
            "sold_4w": sold[4], "sold_8w": sold[8], "sold_12w": sold[12], "velocity": speed,
            "lead_time_days": lead, "safety_days": safety_days, "safety_units": safety_units,
            "on_hand": row.on_hand, "reserved": row.reserved, "held": row.held, "inbound": inbound,
            "position": position, "moq": row.moq, "pack_size": row.pack_size, "problem": None}
    if lead is None:
        return {**line, "target": 0, "suggested": 0, "problem": "no_lead_time"}
    target = math.ceil(speed * (lead + review_days)) + safety_units
    return {**line, "target": target, "suggested": order_quantity(target - position, row.moq, row.pack_size)}


def _inputs(as_of: datetime):
    """Every (supplier SKU, warehouse keeping it) with its stock and sales: one statement."""
    sales = sales_by_window(as_of)
    return db.session.execute(
        select(SupplierSku.supplier_id, SupplierSku.sku_id, StockLevel.warehouse_id,
               SupplierSku.lead_time_days.label("sku_lead_time_days"),
               Supplier.lead_time_days.label("supplier_lead_time_days"), Supplier.safety_days,
               SupplierSku.safety_units, SupplierSku.moq, SupplierSku.pack_size,
               StockLevel.on_hand, StockLevel.reserved, StockLevel.held,
               sales.c.sold_4w, sales.c.sold_8w, sales.c.sold_12w)
        .join(Supplier, Supplier.id == SupplierSku.supplier_id)
        .join(Sku, Sku.id == SupplierSku.sku_id)
        .join(StockLevel, StockLevel.sku_id == SupplierSku.sku_id)
        .join(Warehouse, Warehouse.id == StockLevel.warehouse_id)
        .outerjoin(sales, and_(sales.c.sku_id == StockLevel.sku_id, sales.c.warehouse_id == StockLevel.warehouse_id))
        .where(Supplier.active, Sku.active, Warehouse.active)
        .order_by(SupplierSku.supplier_id, SupplierSku.sku_id, StockLevel.warehouse_id)).all()


def compute(actor: Actor, as_of: datetime | None = None, week: str | None = None) -> PurchaseRun:
    """Compute the suggestions as of now (or `as_of`) into a new run, its lines written in one INSERT; audited."""
    as_of = as_utc(as_of) if as_of is not None else utc_now()
    run = PurchaseRun(week=week, as_of=as_of, weights=weights_text(), review_days=REVIEW_DAYS,
                      actor_label=actor.label, line_count=0)
    db.session.add(run)
    db.session.flush()
    lines = [{"run_id": run.id, **suggestion(row)} for row in _inputs(as_of)]
    if lines:
        db.session.execute(insert(PurchaseSuggestion), lines)
    run.line_count = len(lines)
    to_order = [line for line in lines if line["suggested"] > 0]
    audit.record(actor, "purchasing.suggest", "purchase_run", run.id, after={
        "week": week, "rows": len(lines), "to_order": len(to_order),
        "units": sum(line["suggested"] for line in to_order),
        "cannot_suggest": sum(1 for line in lines if line["problem"])})
    log.info("purchase_run=%s week=%s lines=%s to_order=%s", run.id, week, len(lines), len(to_order))
    return run


def iso_week(moment: datetime) -> str:
    """The ISO week of a moment in the merchant's zone: "2026-W49"."""
    year, week, _day = as_utc(moment).astimezone(ZoneInfo(merchant_zone())).isocalendar()
    return f"{year}-W{week:02d}"


def weekly(now: datetime | None = None) -> PurchaseRun | None:
    """The weekly run: computed and mailed once per ISO week (merchant zone); None when this week's exists."""
    now = now or utc_now()
    week = iso_week(now)
    if db.session.execute(select(PurchaseRun.id).where(PurchaseRun.week == week)).first():
        return None
    run = compute(SYSTEM, now, week=week)
    queue_supplier_mails(run, SYSTEM)
    return run


def get_run(run_id: int) -> PurchaseRun:
    run = db.session.get(PurchaseRun, run_id)
    if run is None:
        raise NotFound(say(RUN_NOT_FOUND), code="run_not_found")
    return run


def latest_run() -> PurchaseRun | None:
    return db.session.execute(select(PurchaseRun).order_by(PurchaseRun.id.desc()).limit(1)).scalar_one_or_none()


def recent_runs(limit: int = 12) -> list[PurchaseRun]:
    return list(db.session.scalars(select(PurchaseRun).order_by(PurchaseRun.id.desc()).limit(limit)))


def lines_of(run: PurchaseRun, supplier_id: int | None = None, to_order_only: bool = False) -> list:
    """A run's lines with their supplier, SKU and warehouse loaded (one query), by supplier, SKU, warehouse."""
    query = (select(PurchaseSuggestion, Supplier, Sku, Warehouse)
             .join(Supplier, Supplier.id == PurchaseSuggestion.supplier_id)
             .join(Sku, Sku.id == PurchaseSuggestion.sku_id)
             .join(Warehouse, Warehouse.id == PurchaseSuggestion.warehouse_id)
             .where(PurchaseSuggestion.run_id == run.id)
             .order_by(Supplier.code, Sku.code, Warehouse.code))
    if supplier_id is not None:
        query = query.where(PurchaseSuggestion.supplier_id == supplier_id)
    if to_order_only:
        query = query.where(PurchaseSuggestion.suggested > 0)
    return list(db.session.execute(query).all())


def problem_text(line: PurchaseSuggestion, supplier: Supplier) -> str:
    """What the report says of a line that could not be computed (empty when it could)."""
    if line.problem == "no_lead_time":
        return say(NO_LEAD_TIME, supplier=supplier.code)
    return NO_PROBLEM


# ------------------------------------------------------------------------------------------------ the supplier's file

def _headers() -> list[str]:
    return [_("SKU"), _("Supplier's article"), _("Name"), _("Warehouse"), _("Sold, last 4 weeks"),
            _("Sold, last 8 weeks"), _("Sold, last 12 weeks"), _("Weights (weeks: weight)"), _("Units a day"),
            _("Lead time (days)"), _("Review period (days)"), _("Safety stock (days)"), _("Safety stock (units)"),
            _("On hand"), _("Reserved"), _("Held"), _("Inbound"), _("Position"), _("Target"), _("MOQ"),
            _("Pack size"), _("Suggested quantity")]


def supplier_workbook(run: PurchaseRun, supplier: Supplier) -> tuple[str, bytes]:
    """The supplier's XLSX of a run (its lines with something to order, every assumption in its own column), in the
    supplier's language; made again from the run's lines whenever it is needed, so the mail and the download agree."""
    codes = {item.sku_id: item.supplier_code for item in supplier.skus}
    with force_locale("en" if supplier.locale == "en" else "zh_Hans_CN"):
        headers = _headers()
        rows = [[sku.code, codes.get(sku.id) or "", sku.name, warehouse.code, line.sold_4w, line.sold_8w,
                 line.sold_12w, run.weights, line.velocity, line.lead_time_days, run.review_days,
                 line.safety_days if line.safety_days is not None else "", line.safety_units, line.on_hand,
                 line.reserved, line.held, line.inbound, line.position, line.target, line.moq, line.pack_size,
                 line.suggested]
                for line, _supplier, sku, warehouse in lines_of(run, supplier.id, to_order_only=True)]
        title = _("Purchase suggestions")
    filename = f"purchase-suggestions-{supplier.code}-{run.week or f'run{run.id}'}.xlsx"
    return filename, xlsx_bytes(headers, rows, sheet_title=title, zone=merchant_zone())


def mail_attachment(reference: str) -> tuple[str, tuple[str, str], bytes]:
    """The attachment an outbox row names ("<run id>:<supplier id>"): file name, MIME type, content."""
    run_id, supplier_id = (int(part) for part in reference.split(":"))
    filename, content = supplier_workbook(get_run(run_id), get_supplier(supplier_id))
    return filename, XLSX_TYPE, content


def queue_supplier_mails(run: PurchaseRun, actor: Actor) -> int:
    """Queue one mail per supplier with something to order in the run (and an email address), its XLSX attached
    when sent; once per run and supplier (the outbox's dedupe key). Returns how many were queued now."""
    totals = db.session.execute(
        select(PurchaseSuggestion.supplier_id, func.count(PurchaseSuggestion.id), func.sum(PurchaseSuggestion.suggested))
        .where(PurchaseSuggestion.run_id == run.id, PurchaseSuggestion.suggested > 0)
        .group_by(PurchaseSuggestion.supplier_id)).all()
    queued = 0
    for supplier_id, count, units in totals:
        supplier = db.session.get(Supplier, supplier_id)
        if not supplier.email:
            continue
        row_id = notifications.queue_mail(
            supplier.email, MAIL_EVENT, {"supplier": supplier.name, "week": run.week or f"#{run.id}",
                                         "lines": int(count), "units": int(units),
                                         "attachment": f"{MAIL_EVENT}:{run.id}:{supplier.id}"},
            locale=supplier.locale, dedupe_key=f"purchase:{run.id}:{supplier.id}")
        if row_id is not None:
            queued += 1
            audit.record(actor, "purchasing.mail", "supplier", supplier.code,
                         after={"run": run.id, "rows": int(count), "units": int(units),
                                "to_domain": supplier.email.split("@")[-1]})
    return queued
