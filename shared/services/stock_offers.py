"""Out-of-stock choices (issue 15 item 5): an order of a priority customer that cannot be reserved waits instead of
being refused, on hold, in an exception with offers computed for each short line, which customer service (and, where
the tier says so, the customer on the customer site) may accept:

- a transfer: the units missing in the warehouse nearest the receiver, from the nearest other warehouse that has
  them free, with the extra days (handling days plus a day per `transfer_km_per_day` km);
- a pre-order on the next expected inbound receipt with room for the line (its date), with a coupon from the
  configured rule (percent of the line or a fixed amount), taken off the order through the price-change path
  (`orders.change_price`, unpaid) or given back through the refund service (paid);
- substitutes: SKUs marked as standing in for the line's SKU that have the units free, with the price difference.

Accepting acts through the existing services (stock_ops.transfer, stock.place_line, orders.change_price,
refunds.refund, orders.release_hold, exceptions.transition). Every accept first looks whether the line can be
reserved as it is now: stock that arrived anyway makes the offers stale, the line is reserved normally and the
customer is told. An offer is accepted once; a refusal (the substitute's stock went meanwhile, the receipt is full)
changes nothing. `orders.create_order` calls `wait_instead` when it would refuse for stock: the one hook.
"""
import math
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from flask import current_app
from sqlalchemy import select, update

from shared.actors import SYSTEM, Actor
from shared.data.places import distance_km, locate
from shared.extensions import db
from shared.lifecycle import OrderStatus
from shared.models import (Customer, CustomerTier, ExceptionCase, ExpectedReceipt, Order, SkuSubstitute,
                           StockOffer, StockOfferSettings, Warehouse)
from shared.money import parse_money
from shared.services import audit, customers
from shared.services import orders as order_service
from shared.services import stock as stock_service
from shared.services.errors import Conflict, NotFound, ValidationFailed
from shared.services.validation import N_, say
from shared.timekeeping import local_date, utc_now

KINDS = ("transfer", "pre_order", "substitute")
HOLD_REASON = N_("Out of stock: waits for the customer's choice among the offers")
PRE_ORDER_HOLD = N_("Pre-ordered: waits for the receipt expected on %(date)s")
SUMMARY = N_("%(order_no)s is out of stock for %(skus)s: %(count)s offers wait for a choice")
NO_OFFER = N_("No stock offer %(offer)s")
OFFER_CLOSED = N_("This offer is %(status)s already: nothing was changed")
ORDER_NOT_WAITING = N_("%(order_no)s no longer waits for stock (it is %(status)s): nothing was changed")
SUBSTITUTE_GONE = N_("%(sku)s is no longer in stock for %(quantity)s units: nothing was changed; choose another offer")
TRANSFER_GONE = N_("The %(quantity)s units of %(sku)s are no longer free in %(warehouse)s: nothing was changed; "
                   "choose another offer")
RECEIPT_FULL = N_("The receipt of %(date)s has no room left for %(quantity)s units of %(sku)s: nothing was changed")
STALE = N_("The stock of %(sku)s arrived meanwhile: the line was reserved as ordered and the offers are no longer "
           "needed")
ACCEPTED = N_("Offer accepted: %(offer)s")
TRANSFER_HELD = N_("The transfer waits for approval %(approval)s; the line is reserved once the units have arrived "
                   "(check stock again)")
RESOLVED = N_("Every short line of %(order_no)s is settled: %(how)s")
COUPON_REASON = N_("pre-order coupon of offer %(offer)s")
SUBSTITUTE_REASON = N_("substitute %(sku)s of offer %(offer)s")
TRANSFER_REASON = N_("stock offer %(offer)s for %(order_no)s")
DESCRIBE = {
    "transfer": N_("transfer %(quantity)s × %(sku)s from %(source)s to %(target)s (%(days)s extra days)"),
    "pre_order": N_("pre-order %(quantity)s × %(sku)s on the receipt of %(date)s, coupon %(coupon)s %(currency)s"),
    "substitute": N_("substitute %(quantity)s × %(sku)s at %(price)s %(currency)s (difference %(difference)s per "
                     "unit)"),
}
BAD_DAYS = N_("%(field)s is a whole number from %(low)s to %(high)s")
BAD_COUPON_KIND = N_("The coupon rule is percent, fixed or none")
BAD_PERCENT = N_("A percent coupon is from 0 to 100")
SAME_SKU = N_("A SKU cannot stand in for itself")
PAST_DATE = N_("The expected date is in the past")
BAD_DATE = N_("The expected date is YYYY-MM-DD")
UNKNOWN_TIER = N_("No customer tier %(tier)s")


@dataclass
class Outcome:
    """What an accept (or a look at the stock again) did: `accepted`, `stale` (reserved normally), or
    `waiting_approval` (the transfer waits for an approver); `released` when the order is on its way again."""

    status: str
    message: str
    released: bool = False


# --- configuration as data ----------------------------------------------------------------------------------------

def settings() -> StockOfferSettings:
    """The offer settings (the row seeded by migration 0013; defaults if it was removed)."""
    row = db.session.get(StockOfferSettings, 1)
    return row if row is not None else StockOfferSettings(id=1, transfer_handling_days=1, transfer_km_per_day=500,
                                                          coupon_kind=None, coupon_value=Decimal("0"))


def tier(code: str | None) -> CustomerTier | None:
    return db.session.get(CustomerTier, code) if code else None


def tiers() -> list[CustomerTier]:
    return list(db.session.execute(select(CustomerTier).order_by(CustomerTier.code)).scalars())


def _whole(value, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not str(value).strip().isdigit() or not low <= int(str(value)) <= high:
        raise ValidationFailed(say(BAD_DAYS, field=field, low=low, high=high), field=field, code="invalid_number")
    return int(str(value))


def configure(handling_days, km_per_day, coupon_kind, coupon_value, actor: Actor) -> StockOfferSettings:
    """Set how offers are computed: a transfer's handling days and km per day, and the pre-order coupon rule."""
    handling = _whole(handling_days, "transfer_handling_days", 0, 60)
    per_day = _whole(km_per_day, "transfer_km_per_day", 1, 5000)
    kind = (coupon_kind or "").strip() or None
    if kind not in (None, "percent", "fixed"):
        raise ValidationFailed(say(BAD_COUPON_KIND), field="coupon_kind", code="invalid_coupon")
    value = parse_money(coupon_value if kind else "0", "coupon_value")
    if kind == "percent" and value > 100:
        raise ValidationFailed(say(BAD_PERCENT), field="coupon_value", code="invalid_coupon")
    row = db.session.get(StockOfferSettings, 1)
    if row is None:
        row = StockOfferSettings(id=1)
        db.session.add(row)
        before = None
    else:
        before = _settings_values(row)
    row.transfer_handling_days, row.transfer_km_per_day = handling, per_day
    row.coupon_kind, row.coupon_value, row.updated_at = kind, value, utc_now()
    db.session.flush()
    audit.record(actor, "stock_offer.settings", "stock_offer_settings", 1, before=before, after=_settings_values(row))
    return row


def _settings_values(row: StockOfferSettings) -> dict:
    return {"transfer_handling_days": row.transfer_handling_days, "transfer_km_per_day": row.transfer_km_per_day,
            "coupon_kind": row.coupon_kind, "coupon_value": str(row.coupon_value)}


def set_tier_rule(code: str, priority: bool, offers_on_site: bool, actor: Actor) -> CustomerTier:
    """Whether a tier's out-of-stock orders wait with offers, and whether its customers see them on the site."""
    row = tier((code or "").strip())
    if row is None:
        raise NotFound(say(UNKNOWN_TIER, tier=str(code)[:16]), field="tier", code="unknown_tier")
    before = {"priority": row.priority, "offers_on_site": row.offers_on_site}
    row.priority, row.offers_on_site, row.updated_at = bool(priority), bool(offers_on_site), utc_now()
    db.session.flush()
    audit.record(actor, "stock_offer.tier", "customer_tier", row.code, before=before,
                 after={"priority": row.priority, "offers_on_site": row.offers_on_site})
    return row


def mark_substitute(sku_code: str, substitute_code: str, unit_price, actor: Actor, currency: str = "CNY",
                    rank: int = 0) -> SkuSubstitute:
    """Mark a SKU as standing in for another when it is out of stock, at its own unit price (set again: updated)."""
    sku, substitute = stock_service.get_sku(sku_code), stock_service.get_sku(substitute_code)
    if sku.id == substitute.id:
        raise ValidationFailed(say(SAME_SKU), field="substitute", code="same_sku")
    price = parse_money(unit_price, "unit_price")
    row = db.session.execute(select(SkuSubstitute).where(SkuSubstitute.sku_id == sku.id,
                                                         SkuSubstitute.substitute_id == substitute.id)
                             ).scalar_one_or_none()
    if row is None:
        row = SkuSubstitute(sku_id=sku.id, substitute_id=substitute.id)
        db.session.add(row)
    row.unit_price, row.currency, row.rank = price, (currency or "CNY").upper()[:3], int(rank)
    db.session.flush()
    audit.record(actor, "stock_offer.substitute", "sku", sku.code,
                 after={"substitute": substitute.code, "unit_price": str(price), "currency": row.currency})
    return row


def expect_receipt(sku_code: str, warehouse_code: str, expected_on, quantity, actor: Actor,
                   reference: str | None = None) -> ExpectedReceipt:
    """Record an inbound receipt on its way (a supplier's ASN, a purchase): SKU, warehouse, date, quantity."""
    sku, warehouse = stock_service.get_sku(sku_code), stock_service.get_warehouse(warehouse_code)
    if isinstance(expected_on, str):
        try:
            expected_on = date.fromisoformat(expected_on.strip())
        except ValueError:
            raise ValidationFailed(say(BAD_DATE), field="expected_on", code="invalid_date") from None
    if not isinstance(expected_on, date):
        raise ValidationFailed(say(BAD_DATE), field="expected_on", code="invalid_date")
    if expected_on < _today():
        raise ValidationFailed(say(PAST_DATE), field="expected_on", code="past_date")
    quantity = _whole(quantity, "quantity", 1, 10_000_000)
    row = ExpectedReceipt(sku_id=sku.id, warehouse_id=warehouse.id, expected_on=expected_on, quantity=quantity,
                          promised=0, reference=(reference or "").strip()[:64] or None, created_at=utc_now())
    db.session.add(row)
    db.session.flush()
    audit.record(actor, "stock_offer.receipt", "expected_receipt", row.id,
                 after={"sku": sku.code, "warehouse": warehouse.code, "expected_on": expected_on.isoformat(),
                        "quantity": quantity, "reference": row.reference})
    return row


def _today() -> date:
    return local_date(utc_now(), current_app.config["MERCHANT_TIMEZONE"])


# --- the hook: an order that would be refused for stock waits instead ------------------------------------------

def _priority_tier(data: dict) -> CustomerTier | None:
    """The tier of the known customer an order's data names, when it is a priority tier (a first order is not)."""
    try:
        clean = order_service.validate_order_data(data)
    except (ValidationFailed, NotFound):
        return None
    index = customers.contact_index(clean["customer_phone"], clean["protected"])
    code = db.session.execute(select(Customer.tier).where(Customer.phone_index == index)
                              .order_by(Customer.id).limit(1)).scalar()
    found = tier(code)
    return found if found is not None and found.priority else None


def wait_instead(data, actor: Actor, direct_only: bool = False, auto_confirm: bool | None = None) -> Order | None:
    """Called by orders.create_order when it refuses for stock: for a priority customer, make the order anyway with
    what can be reserved now, hold it, compute the offers for the short lines, raise the exception and (when the
    tier says so) tell the customer. None: the refusal stands (not a priority customer, or the refused attempt
    already wrote the order and the caller rolls it back)."""
    if not isinstance(data, dict):
        return None
    tier_row = _priority_tier(data)
    if tier_row is None:
        return None
    try:
        with db.session.begin_nested():
            order = order_service.create_order(data, actor, direct_only=direct_only, reserve=False,
                                               auto_confirm=auto_confirm)
            short = _reserve_what_is_free(order)
            if short:
                _hold_with_offers(order, short, actor, tier_row)
    except Conflict as refused:
        if refused.code == "duplicate_order":  # the standalone attempt's rows are still there: refuse as before
            return None
        raise
    return order


def _reserve_what_is_free(order: Order) -> list:
    """Reserve every line that has its units free somewhere (stock service); the lines left short."""
    now, rows, short = utc_now(), [], []
    for line in sorted(order.lines, key=lambda line: line.sku_id):
        taken = stock_service.place_line(line.sku_id, line.quantity, [], now)
        if taken is None:
            short.append(line)
        else:
            rows.append({"order_id": order.id, "order_line_id": line.id, "sku_id": line.sku_id,
                         "warehouse_id": taken, "quantity": line.quantity, "expires_at": None})
    order_service.insert_reservations(rows)
    if rows and order.warehouse_id is None:
        order.warehouse_id = rows[0]["warehouse_id"]
        db.session.flush()
        db.session.expire(order, ["warehouse"])
    return short


def _hold_with_offers(order: Order, short: list, actor: Actor, tier_row: CustomerTier) -> None:
    from shared.services import exceptions

    order_service.transition_order(order, OrderStatus.ON_HOLD, SYSTEM, reason=str(HOLD_REASON))
    offers = _compute(order, short)
    db.session.add_all(offers)
    db.session.flush()
    skus = ", ".join(line.sku.code for line in short)
    row = exceptions.raise_exception(
        "out_of_stock", f"stock_offers:order:{order.id}",
        say(SUMMARY, order_no=order.order_no, skus=skus, count=len(offers))[:300], SYSTEM,
        order_id=order.id, sku_id=short[0].sku_id, buyer_index=order.receiver_phone_index,
        details={"offers": [offer.id for offer in offers]})
    for offer in offers:
        offer.exception_id = row.id
    db.session.flush()
    audit.record(actor, "stock_offer.made", "order", order.order_no,
                 after={"exception": row.id, "lines": [line.sku.code for line in short],
                        "offers": [{"id": o.id, "kind": o.kind} for o in offers]})
    if tier_row.offers_on_site:
        from shared.services import notifications

        notifications.notify_customer(order, "stock_offers")


def _places() -> tuple[list[Warehouse], dict]:
    warehouses = db.session.execute(select(Warehouse).where(Warehouse.active).order_by(Warehouse.id)).scalars().all()
    return warehouses, {w.id: locate(w.province, w.city) for w in warehouses}


def coupon_for(rule: StockOfferSettings, line_total: Decimal) -> Decimal:
    """The pre-order coupon of a line by the configured rule (never more than the line)."""
    if rule.coupon_kind == "percent":
        amount = (line_total * Decimal(rule.coupon_value) / 100).quantize(Decimal("0.01"), ROUND_HALF_UP)
    elif rule.coupon_kind == "fixed":
        amount = Decimal(rule.coupon_value)
    else:
        amount = Decimal("0.00")
    return min(amount, line_total).quantize(Decimal("0.01"))


def _compute(order: Order, lines: list) -> list[StockOffer]:
    """The offers for each short line, from one read of the free stock (the lines' SKUs and their substitutes)."""
    rule, today = settings(), _today()
    warehouses, places = _places()
    receiver = locate(order.province, order.city)
    substitutes = {}
    for row in db.session.execute(select(SkuSubstitute).where(
            SkuSubstitute.sku_id.in_([line.sku_id for line in lines]))
            .order_by(SkuSubstitute.rank, SkuSubstitute.id)).scalars():
        substitutes.setdefault(row.sku_id, []).append(row)
    free = stock_service.free_stock({line.sku_id for line in lines} |
                                    {s.substitute_id for rows in substitutes.values() for s in rows})
    offers = []
    for line in lines:
        base = {"order_id": order.id, "order_line_id": line.id, "status": "open", "currency": order.currency,
                "created_at": utc_now()}
        usable = [w for w in warehouses if w.cold_chain or not line.sku.cold_chain]
        if usable:  # transfer: what the nearest warehouse lacks, from the nearest other one that has it free
            target = min(usable, key=lambda w: (distance_km(places[w.id], receiver), w.id))
            missing = line.quantity - max(free.get((line.sku_id, target.id), 0), 0)
            sources = sorted((distance_km(places[w.id], places[target.id]), w.id, w) for w in usable
                             if w.id != target.id and free.get((line.sku_id, w.id), 0) >= missing)
            if 0 < missing and sources:
                km, _id, source = sources[0]
                days = rule.transfer_handling_days + math.ceil(km / rule.transfer_km_per_day)
                offers.append(StockOffer(**base, kind="transfer", sku_id=line.sku_id, quantity=missing,
                                         from_warehouse_id=source.id, to_warehouse_id=target.id, extra_days=days))
        receipt = db.session.execute(
            select(ExpectedReceipt).where(ExpectedReceipt.sku_id == line.sku_id, ExpectedReceipt.expected_on >= today,
                                          ExpectedReceipt.quantity - ExpectedReceipt.promised >= line.quantity)
            .order_by(ExpectedReceipt.expected_on, ExpectedReceipt.id).limit(1)).scalar_one_or_none()
        if receipt is not None:
            offers.append(StockOffer(**base, kind="pre_order", sku_id=line.sku_id, quantity=line.quantity,
                                     receipt_id=receipt.id, expected_on=receipt.expected_on,
                                     to_warehouse_id=receipt.warehouse_id,
                                     coupon=coupon_for(rule, Decimal(line.line_total))))
        for row in substitutes.get(line.sku_id, []):
            enough = any(free.get((row.substitute_id, w.id), 0) >= line.quantity for w in warehouses
                         if w.cold_chain or not row.substitute.cold_chain)
            if enough and row.substitute.active and row.currency == order.currency:
                offers.append(StockOffer(**base, kind="substitute", sku_id=row.substitute_id, quantity=line.quantity,
                                         unit_price=row.unit_price,
                                         price_difference=Decimal(row.unit_price) - Decimal(line.unit_price)))
    return offers


# --- reading ------------------------------------------------------------------------------------------------------

def offers_of(order_id: int, open_only: bool = False) -> list[StockOffer]:
    query = select(StockOffer).where(StockOffer.order_id == order_id).order_by(StockOffer.order_line_id,
                                                                              StockOffer.id)
    if open_only:
        query = query.where(StockOffer.status == "open")
    return list(db.session.execute(query).scalars())


def offers_for_exception(row: ExceptionCase) -> list[StockOffer]:
    return list(db.session.execute(select(StockOffer).where(StockOffer.exception_id == row.id)
                                   .order_by(StockOffer.order_line_id, StockOffer.id)).scalars())


def shown_to_customer(order: Order) -> list[StockOffer]:
    """The open offers the customer may choose from on the customer site: only where their tier says so."""
    found = tier(order.customer.tier if order.customer else None)
    if found is None or not found.priority or not found.offers_on_site:
        return []
    return offers_of(order.id, open_only=True)


def describe(offer: StockOffer) -> str:
    """The offer in words (the reader's language)."""
    if offer.kind == "transfer":
        return say(DESCRIBE["transfer"], quantity=offer.quantity, sku=offer.sku.code,
                   source=offer.from_warehouse.name, target=offer.to_warehouse.name, days=offer.extra_days)
    if offer.kind == "pre_order":
        return say(DESCRIBE["pre_order"], quantity=offer.quantity, sku=offer.sku.code,
                   date=offer.expected_on.isoformat(), coupon=offer.coupon, currency=offer.currency)
    return say(DESCRIBE["substitute"], quantity=offer.quantity, sku=f"{offer.sku.code} {offer.sku.name}",
               price=offer.unit_price, currency=offer.currency, difference=_signed(offer.price_difference))


def _signed(amount) -> str:
    amount = Decimal(amount or 0)
    return f"+{amount}" if amount > 0 else str(amount)


def get_offer(offer_id) -> StockOffer:
    row = None
    if str(offer_id or "").strip().isdigit() and int(str(offer_id).strip()) < 2 ** 31:
        row = db.session.get(StockOffer, int(str(offer_id).strip()))
    if row is None:
        raise NotFound(say(NO_OFFER, offer=str(offer_id)[:20]), field="offer", code="offer_not_found")
    return row


def offer_of_order(order: Order, offer_id) -> StockOffer:
    """An offer of this order only (another order's offer is not found)."""
    row = get_offer(offer_id)
    if row.order_id != order.id:
        raise NotFound(say(NO_OFFER, offer=str(offer_id)[:20]), field="offer", code="offer_not_found")
    return row


# --- accepting ----------------------------------------------------------------------------------------------------

def _acting(actor: Actor) -> Actor:
    """The system acting on behalf of whoever accepted (a customer may not change prices or release holds)."""
    return Actor(id=None, label=f"system ({actor.label})"[:120], role=SYSTEM.role, ip=actor.ip)


def _waiting_lines(order: Order) -> list:
    held = {r.order_line_id for r in stock_service.active_reservations([order.id])}
    return [line for line in order.lines if line.id not in held]


def _reserve_line(order: Order, line, preferred: list[int]) -> int | None:
    taken = stock_service.place_line(line.sku_id, line.quantity, preferred)
    if taken is not None:
        order_service.insert_reservations([{"order_id": order.id, "order_line_id": line.id, "sku_id": line.sku_id,
                                            "warehouse_id": taken, "quantity": line.quantity, "expires_at": None}])
        if order.warehouse_id is None:
            order.warehouse_id = taken
    return taken


def _close_line_offers(order: Order, line_id: int, status: str, actor: Actor, keep: int | None = None) -> None:
    now = utc_now()
    for offer in offers_of(order.id, open_only=True):
        if offer.order_line_id == line_id and offer.id != keep:
            offer.status, offer.decided_at, offer.decided_by = status, now, actor.label[:120]


def accept(offer: StockOffer, actor: Actor) -> Outcome:
    """Accept one offer (customer service on the portal, or the customer on the site). Refused, nothing changed: an
    offer no longer open (accepting twice), an order that no longer waits, a substitute or transfer whose stock went
    meanwhile, a receipt already promised in full. Stock that arrived anyway: the line is reserved as ordered, the
    offers go stale and the customer is told."""
    order = order_service.get_order(offer.order.order_no, for_update=True)  # two accepts of one order queue here
    db.session.refresh(offer)
    if offer.status != "open":
        raise Conflict(say(OFFER_CLOSED, status=offer.status), field="offer", code="offer_closed")
    if order.status != OrderStatus.ON_HOLD:
        raise Conflict(say(ORDER_NOT_WAITING, order_no=order.order_no, status=order.status), field="offer",
                       code="order_not_waiting")
    line = offer.line
    system = _acting(actor)
    with db.session.begin_nested():
        if line.id not in {l.id for l in _waiting_lines(order)} or _reserve_line(order, line, []) is not None:
            message = say(STALE, sku=line.sku.code)
            _close_line_offers(order, line.id, "stale", actor)
            audit.record(actor, "stock_offer.stale", "order", order.order_no,
                         after={"offer": offer.id, "sku": line.sku.code})
            _tell(order, "stock_arrived", f"stale:{line.id}", sku=line.sku.code)
            _note(order, actor, message)
            released = _settle(order, actor, system, message)
            return Outcome("stale", message, released)
        described = describe(offer)
        status = ACCEPT[offer.kind](order, offer, line, system)
        offer.status, offer.decided_at, offer.decided_by = "accepted", utc_now(), actor.label[:120]
        _close_line_offers(order, line.id, "withdrawn", actor, keep=offer.id)
        db.session.flush()
        audit.record(actor, "stock_offer.accept", "order", order.order_no,
                     after={"offer": offer.id, "kind": offer.kind, "offer_text": described, "outcome": status})
        message = say(ACCEPTED, offer=described)
        if status == "waiting_approval":
            message = f"{message} — {offer.note}"
        _note(order, actor, message)
        _tell(order, "stock_offer_accepted", f"offer:{offer.id}", offer=described)
        released = _settle(order, actor, system, message)
    return Outcome(status, message, released)


def _accept_transfer(order: Order, offer: StockOffer, line, system: Actor) -> str:
    from shared.services import stock_ops

    sku, source, target = line.sku.code, offer.from_warehouse, offer.to_warehouse
    free = stock_service.free_stock([line.sku_id]).get((line.sku_id, source.id), 0)
    if free < offer.quantity:
        raise Conflict(say(TRANSFER_GONE, quantity=offer.quantity, sku=sku, warehouse=source.name), field="offer",
                       code="transfer_stock_gone")
    held = stock_ops.transfer(sku, source.code, target.code, offer.quantity,
                              say(TRANSFER_REASON, offer=offer.id, order_no=order.order_no), system)
    if held is not None:  # an approval rule holds every transfer: the line waits for the units
        offer.note = say(TRANSFER_HELD, approval=held.id)[:300]
        return "waiting_approval"
    if _reserve_line(order, line, [target.id]) is None:
        raise Conflict(say(TRANSFER_GONE, quantity=line.quantity, sku=sku, warehouse=target.name), field="offer",
                       code="transfer_stock_gone")
    return "accepted"


def _accept_pre_order(order: Order, offer: StockOffer, line, system: Actor) -> str:
    promised = db.session.execute(
        update(ExpectedReceipt).where(ExpectedReceipt.id == offer.receipt_id,
                                      ExpectedReceipt.promised + offer.quantity <= ExpectedReceipt.quantity)
        .values(promised=ExpectedReceipt.promised + offer.quantity).execution_options(synchronize_session=False))
    if promised.rowcount != 1:
        raise Conflict(say(RECEIPT_FULL, date=offer.expected_on.isoformat(), quantity=offer.quantity,
                           sku=line.sku.code), field="offer", code="receipt_full")
    coupon = Decimal(offer.coupon or 0)
    if coupon > 0:
        reason = say(COUPON_REASON, offer=offer.id)
        if order.payment_status == "unpaid":  # off the order's price, by the price-change rule
            order_service.change_price(order, {"discount": str(Decimal(order.discount) + coupon)}, system, reason)
        else:  # paid: given back through the refund service
            from shared.services import refunds

            refunds.refund(order.order_no, str(coupon), reason, system)
    order.hold_reason = say(PRE_ORDER_HOLD, date=offer.expected_on.isoformat())[:500]
    return "accepted"


def _accept_substitute(order: Order, offer: StockOffer, line, system: Actor) -> str:
    substitute = offer.sku
    taken = stock_service.place_line(substitute.id, line.quantity, [])
    if taken is None:
        raise Conflict(say(SUBSTITUTE_GONE, sku=substitute.code, quantity=line.quantity), field="offer",
                       code="substitute_gone")
    line.sku_id, line.sku = substitute.id, substitute  # the line now names the SKU the customer chose
    db.session.flush()
    order_service.insert_reservations([{"order_id": order.id, "order_line_id": line.id, "sku_id": substitute.id,
                                        "warehouse_id": taken, "quantity": line.quantity, "expires_at": None}])
    if order.warehouse_id is None:
        order.warehouse_id = taken
    if order.payment_status == "unpaid" and Decimal(offer.unit_price) != Decimal(line.unit_price):
        order_service.change_price(order, {"lines": [{"id": line.id, "unit_price": str(offer.unit_price)}]}, system,
                                   say(SUBSTITUTE_REASON, sku=substitute.code, offer=offer.id))
    return "accepted"


ACCEPT = {"transfer": _accept_transfer, "pre_order": _accept_pre_order, "substitute": _accept_substitute}


def check_stock_again(order: Order, actor: Actor) -> Outcome | None:
    """Reserve, as ordered, every waiting line whose stock has arrived (a pre-ordered receipt, a transfer made after
    its approval, stock received anyway): its open offers go stale and the customer is told; the order goes on when
    nothing waits any more. None when nothing could be reserved."""
    order = order_service.get_order(order.order_no, for_update=True)
    if order.status != OrderStatus.ON_HOLD or not offers_of(order.id):
        return None
    reserved = []
    with db.session.begin_nested():
        for line in _waiting_lines(order):
            if _reserve_line(order, line, []) is not None:
                reserved.append(line.sku.code)
                _close_line_offers(order, line.id, "stale", actor)
                _tell(order, "stock_arrived", f"stale:{line.id}", sku=line.sku.code)
        if not reserved:
            return None
        message = say(STALE, sku=", ".join(reserved))
        audit.record(actor, "stock_offer.stale", "order", order.order_no, after={"skus": reserved})
        _note(order, actor, message)
        released = _settle(order, actor, _acting(actor), message)
    return Outcome("stale", message, released)


def waiting_order_ids(limit: int = 500) -> list[int]:
    """Orders on hold that have offers (the periodic look at the stock takes these)."""
    return db.session.execute(select(Order.id).join(StockOffer, StockOffer.order_id == Order.id)
                              .where(Order.status == OrderStatus.ON_HOLD).group_by(Order.id).order_by(Order.id)
                              .limit(limit)).scalars().all()


def _exception(order: Order) -> ExceptionCase | None:
    exception_id = db.session.execute(select(StockOffer.exception_id).where(
        StockOffer.order_id == order.id, StockOffer.exception_id.is_not(None)).order_by(StockOffer.id.desc())
        .limit(1)).scalar()
    return db.session.get(ExceptionCase, exception_id) if exception_id else None


def _note(order: Order, actor: Actor, text: str) -> None:
    from shared.services import exceptions

    row = _exception(order)
    if row is not None:
        exceptions.note(row, actor, text[:1000])


def _tell(order: Order, event: str, dedupe: str, **params) -> None:
    from shared.services import notifications

    notifications.notify_customer(order, event, dedupe=dedupe, **params)


def _settle(order: Order, actor: Actor, system: Actor, how: str) -> bool:
    """When no line waits for a choice any more, the exception is resolved; when every line holds its stock, the
    hold is released too (the order goes on as any other). True when released."""
    from shared.exception_lifecycle import DONE
    from shared.services import exceptions

    waiting = _waiting_lines(order)
    open_lines = {o.order_line_id for o in offers_of(order.id, open_only=True)}
    row = _exception(order)
    if row is not None and row.status not in DONE and not (open_lines & {line.id for line in waiting}):
        exceptions.transition(row, "resolved", system, comment=say(RESOLVED, order_no=order.order_no,
                                                                    how=how)[:1000])
    if waiting:
        return False
    order_service.release_hold(order, system, how[:500])
    return True
