"""After-sales requests (售后): the one writer of `after_sales` and its lines, photos, reasons and return windows.

A request names an order, a type (shared.after_sales_lifecycle.TYPES) and lines (SKU, quantity, reason). It is
eligible when the order is paid and, for every line, the SKU is on the order, not final sale, inside its return
window and not asked for beyond what was bought less what live requests already claim. Refusals are 422 with the
codes `not_delivered`, `outside_return_window`, `final_sale`, `quantity_exceeds_returnable` (and `not_paid`).

Delivery and the window: the window (days after delivery, per channel and SKU: `after_sale_policies`, the most
specific row wins, the seeded default 7 days, 七天无理由) counts from the parcel's delivery as the carrier reported it,
or, for an order completed without a delivery event, from its shipping (earlier, so never a longer window). Before
delivery only `refund_only` is taken, and only for a shipped order (未收到货 / a lost parcel: nothing can come back yet,
and no window runs); an order not yet shipped is cancelled instead (issue 13 item 3), so it is `not_delivered` here.
Final-sale SKUs are excluded from every type that gives money or goods back for goods delivered (refund_only after
delivery, return_refund, exchange); `resend` (补寄, something missing from the parcel) is not a return and is not
excluded, nor is a refund for a parcel that never arrived.

Every move goes through `transition` against the declared table (shared.after_sales_lifecycle), audited as
`after_sale.<target>` with the state before and after; inspection restocks through stock_ops.restock_return; the
refund is `issue_refund`, the one seam to the refund service. The merchant's side of each state has a due time
(SLA_HOURS); `check_slas` raises the request as an exception (category after_sales) once per state that passed it.
"""
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, or_, select, update

from shared import after_sales_lifecycle as lifecycle
from shared.actors import SYSTEM, Actor
from shared.extensions import db
from shared.models import (AfterSale, AfterSaleLine, AfterSalePhoto, AfterSalePolicy, AfterSaleReason, Order,
                           Shipment)
from shared.security.permissions import SYSTEM_ROLE
from shared.services import audit
from shared.services import validation as check
from shared.services.errors import Conflict, Forbidden, NotFound, ServiceError, ValidationFailed
from shared.services.validation import N_, say
NOT_AN_OBJECT = N_("%(field)s must be an object")
NO_REQUEST = N_("No after-sales request \"%(id)s\"")
UNKNOWN_SORT = N_("Unknown sort \"%(sort)s\"")
from shared.timekeeping import as_utc, parse_aware, utc_now

DEFAULT_RETURN_DAYS = 7  # when no policy row applies (the migration seeds the same default as a row)
MAX_PHOTOS = 3
MAX_PHOTO_BYTES = 5 * 1024 * 1024
MAX_LINES = 100
# How long the merchant has for its side of each state (hours from entering it); states not named are the customer's
# turn (approved for a return: book it; awaiting_return: send it) or finished. A refund is due within 48 h of the
# warehouse receiving the goods, so `inspected` is due 48 h after `received`, not after the inspection.
SLA_HOURS = {"requested": 24, "received": 24}  # `inspected`: the refund promise (refund_promise_hours)
DEFAULT_REFUND_HOURS = 48  # "refund within 48 h of the warehouse receiving it" (AFTER_SALES_REFUND_HOURS)
SLA_HOURS_NO_RETURN = {"approved": 24}  # refund_only and resend: refund or send within a day of approving
REFUNDABLE_STATES = ("refunded",)

NOT_PAID = N_("order %(order_no)s is not paid: there is nothing to refund or replace")
NOT_DELIVERED = N_("order %(order_no)s has not been delivered yet")
NOT_SHIPPED_REFUND = N_("order %(order_no)s has not shipped: cancel the order instead of asking for a refund")
OUTSIDE_WINDOW = N_("%(sku)s could be returned until %(until)s (%(days)s days after delivery)")
FINAL_SALE = N_("%(sku)s is final sale and cannot be returned or exchanged")
QUANTITY_EXCEEDS = N_("%(sku)s: %(asked)s asked for, %(left)s of %(bought)s can still be asked for")
UNKNOWN_TYPE = N_("%(type)s is not a kind of after-sales request")
UNKNOWN_SKU = N_("%(sku)s is not on order %(order_no)s")
UNKNOWN_REASON = N_("choose a reason from the list")
DUPLICATE_LINE = N_("%(sku)s is named twice: give one line per item")
NO_LINES = N_("choose at least one item")
BAD_QUANTITY = N_("the quantity is a whole number of at least 1")
TOO_MANY_PHOTOS = N_("at most %(limit)s photos")
PHOTO_TOO_LARGE = N_("a photo may be at most %(limit)s MB")
PHOTO_NOT_IMAGE = N_("a photo must be a JPEG, PNG or WebP image")
NOT_A_MOVE = N_("an after-sales request that is %(source)s cannot become %(target)s")
NOT_YOURS = N_("your role may not move an after-sales request to %(target)s")
REASON_REQUIRED = N_("give a reason")
BAD_METHOD = N_("choose pickup, drop-off or no return shipment")
PICKUP_IN_PAST = N_("the pickup time must be in the future")
PICKUP_REQUIRED = N_("choose a pickup time")
INSPECT_EVERY_LINE = N_("give an inspection result for every item")
RESTOCK_FAILED = N_("%(sku)s failed inspection and cannot go back on the shelf")
NOTE_REQUIRED = N_("%(sku)s: say why it is not restocked")
NOTHING_PASSED = N_("no item passed inspection: close the request with a reason instead")
SOMETHING_PASSED = N_("an item passed inspection: refund or replace it")
ALREADY_REFUNDED = N_("this after-sales request was refunded already")
NO_WAREHOUSE = N_("order %(order_no)s has no warehouse to take the goods back into")
BAD_DAYS = N_("the return window is a whole number of days from 0 to 365")
BAD_REASON_CODE = N_("a reason code is lower-case letters, digits and _ (at most 32)")
ALREADY_REPLACED = N_("after-sales request %(id)s has its replacement already: order %(order_no)s")
REPLACEMENT_SHORT = N_("not enough stock to send the replacement: %(sku)s, %(wanted)s wanted, %(available)s "
                       "available; nothing was changed")
REPLACEMENT_PLATFORM_ADDRESS = N_("the address of order %(order_no)s is held by the platform: send the replacement "
                                  "through the platform's own after-sales")
NOTHING_TO_REPLACE = N_("after-sales request %(id)s has nothing to send out again")
PICKUP_ONE_OF = N_("give the pickup as a time (at) or as one of the offered slots (slot), not both")
REPLACEMENT_CHANNEL_NAME = "售后补发 After-sales replacements"  # a channel's name is the merchant's data, not a message


def _refuse(message: str, code: str, field: str | None = None, **params):
    raise ValidationFailed(say(message, **params), field=field, code=code)


# --- reasons and return windows: the merchant's data ----------------------------------------------------------------

def reasons(active_only: bool = True) -> list[AfterSaleReason]:
    query = select(AfterSaleReason).order_by(AfterSaleReason.position, AfterSaleReason.code)
    if active_only:
        query = query.where(AfterSaleReason.active.is_(True))
    return list(db.session.execute(query).scalars())


def reason_label(row: AfterSaleReason | None, language: str) -> str:
    if row is None:
        return ""
    return row.label_zh if language.startswith("zh") else row.label_en


def save_reason(code: str, label_zh: str, label_en: str, active: bool, actor: Actor,
                position: int | None = None) -> AfterSaleReason:
    """Add or change a reason customers may choose (a reason in use is switched off, never deleted)."""
    import re

    code = check.text(code, "code", 32)
    if not re.fullmatch(r"[a-z0-9_]{1,32}", code):
        _refuse(BAD_REASON_CODE, "invalid_code", "code")
    label_zh, label_en = check.text(label_zh, "label_zh", 60), check.text(label_en, "label_en", 80)
    row = db.session.get(AfterSaleReason, code)
    before = None
    if row is None:
        last = db.session.execute(select(func.max(AfterSaleReason.position))).scalar() or 0
        row = AfterSaleReason(code=code, position=last + 1 if position is None else position)
        db.session.add(row)
    else:
        before = {"label_zh": row.label_zh, "label_en": row.label_en, "active": row.active}
        if position is not None:
            row.position = position
    row.label_zh, row.label_en, row.active, row.updated_at = label_zh, label_en, bool(active), utc_now()
    db.session.flush()
    audit.record(actor, "after_sale.reason", "after_sale_reason", code, before=before,
                 after={"label_zh": label_zh, "label_en": label_en, "active": bool(active)})
    return row


def set_policy(channel_code: str | None, sku_code: str | None, return_days, final_sale: bool,
               actor: Actor) -> AfterSalePolicy:
    """The return window and final-sale flag for a channel, a SKU, both, or the default (neither)."""
    from shared.services import orders, stock

    if isinstance(return_days, bool) or not isinstance(return_days, int) or not 0 <= return_days <= 365:
        _refuse(BAD_DAYS, "invalid_return_days", "return_days")
    channel_id = orders.get_channel(channel_code).id if channel_code else None
    sku_id = stock.get_sku(sku_code).id if sku_code else None
    row = db.session.execute(select(AfterSalePolicy).where(
        AfterSalePolicy.channel_id.is_(None) if channel_id is None else AfterSalePolicy.channel_id == channel_id,
        AfterSalePolicy.sku_id.is_(None) if sku_id is None else AfterSalePolicy.sku_id == sku_id)
    ).scalar_one_or_none()
    before = None
    if row is None:
        row = AfterSalePolicy(channel_id=channel_id, sku_id=sku_id)
        db.session.add(row)
    else:
        before = {"return_days": row.return_days, "final_sale": row.final_sale}
    row.return_days, row.final_sale, row.updated_at = return_days, bool(final_sale), utc_now()
    db.session.flush()
    audit.record(actor, "after_sale.policy", "after_sale_policy", row.id, before=before,
                 after={"channel": channel_code, "sku": sku_code, "return_days": return_days,
                        "final_sale": bool(final_sale)})
    return row


@dataclass(frozen=True)
class Policy:
    return_days: int
    final_sale: bool


def policies_for(order: Order, sku_ids) -> dict[int, Policy]:
    """Each SKU's policy on this order's channel (one query): channel+SKU, SKU, channel, default, else 7 days."""
    sku_ids = set(sku_ids)
    rows = db.session.execute(select(AfterSalePolicy).where(
        or_(AfterSalePolicy.channel_id.is_(None), AfterSalePolicy.channel_id == order.channel_id),
        or_(AfterSalePolicy.sku_id.is_(None), AfterSalePolicy.sku_id.in_(sku_ids)))).scalars().all()

    def rank(row):
        return (row.sku_id is not None) * 2 + (row.channel_id is not None)

    found = {}
    for sku_id in sku_ids:
        best = max((r for r in rows if r.sku_id in (None, sku_id)), key=rank, default=None)
        found[sku_id] = Policy(best.return_days, best.final_sale) if best else Policy(DEFAULT_RETURN_DAYS, False)
    return found


# --- eligibility --------------------------------------------------------------------------------------------------

def delivered_at(order: Order) -> datetime | None:
    """When the order reached the customer: its last parcel's delivery, or, completed without a delivery event, its
    shipping; None while it is on its way or not shipped."""
    delivered = db.session.execute(select(func.max(Shipment.delivered_at)).where(
        Shipment.order_id == order.id, Shipment.status != "cancelled")).scalar()
    if delivered is not None:
        return as_utc(delivered)
    if order.status in ("completed", "closed") and order.shipped_at is not None:
        return as_utc(order.shipped_at)
    return None


def claimed(order: Order, exclude_id: int | None = None) -> dict[int, int]:
    """Units of each SKU of the order that live requests (neither declined nor cancelled) ask for or got."""
    query = (select(AfterSaleLine.sku_id, func.sum(AfterSaleLine.quantity))
             .join(AfterSale, AfterSale.id == AfterSaleLine.after_sale_id)
             .where(AfterSale.order_id == order.id, AfterSale.status.not_in(lifecycle.RELEASED))
             .group_by(AfterSaleLine.sku_id))
    if exclude_id is not None:
        query = query.where(AfterSale.id != exclude_id)
    return {sku_id: int(total) for sku_id, total in db.session.execute(query).all()}


def bought(order: Order) -> dict[int, int]:
    units: dict[int, int] = {}
    for line in order.lines:
        units[line.sku_id] = units.get(line.sku_id, 0) + line.quantity
    return units


def returnable(order: Order) -> dict[int, int]:
    """What may still be asked for, per SKU: bought less what live requests claim."""
    taken = claimed(order)
    return {sku_id: units - taken.get(sku_id, 0) for sku_id, units in bought(order).items()}


@dataclass
class AskedLine:
    order_line_id: int
    sku_id: int
    sku_code: str
    quantity: int
    reason_code: str


def _read_lines(order: Order, raw_lines) -> list[AskedLine]:
    if not isinstance(raw_lines, list) or not raw_lines:
        _refuse(NO_LINES, "required", "lines")
    if len(raw_lines) > MAX_LINES:
        _refuse(NO_LINES, "too_many_lines", "lines")
    by_code = {}
    for line in order.lines:
        by_code.setdefault(line.sku.code, line)
    active = {row.code for row in reasons()}
    asked, seen = [], set()
    for index, raw in enumerate(raw_lines):
        field = f"lines[{index}]"
        if not isinstance(raw, dict):
            raise ValidationFailed(say(NOT_AN_OBJECT, field=field), field=field, code="invalid_type")
        code = check.text(raw.get("sku"), f"{field}.sku", 64)
        line = by_code.get(code) or by_code.get(code.upper())
        if line is None:
            _refuse(UNKNOWN_SKU, "unknown_sku", f"{field}.sku", sku=code, order_no=order.order_no)
        if line.sku_id in seen:
            _refuse(DUPLICATE_LINE, "duplicate_line", f"{field}.sku", sku=line.sku.code)
        seen.add(line.sku_id)
        quantity = raw.get("quantity")
        if isinstance(quantity, str) and quantity.strip().isdigit():
            quantity = int(quantity.strip())
        if isinstance(quantity, Decimal) and quantity == quantity.to_integral_value():
            quantity = int(quantity)
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            _refuse(BAD_QUANTITY, "invalid_quantity", f"{field}.quantity")
        reason = raw.get("reason")
        if not isinstance(reason, str) or reason not in active:
            _refuse(UNKNOWN_REASON, "invalid_reason", f"{field}.reason")
        asked.append(AskedLine(line.id, line.sku_id, line.sku.code, quantity, reason))
    return asked


def _merchant_date(moment: datetime) -> str:
    from flask import current_app, has_app_context

    from shared.timekeeping import local_date

    zone = current_app.config.get("MERCHANT_TIMEZONE", "Asia/Shanghai") if has_app_context() else "Asia/Shanghai"
    return local_date(moment, zone).isoformat()


def check_eligible(order: Order, kind: str, asked: list[AskedLine], now: datetime,
                   exclude_id: int | None = None) -> None:
    """Refuse (422 with the code) a request the order does not allow; nothing is written either way."""
    if order.payment_status != "paid":
        _refuse(NOT_PAID, "not_paid", "order_no", order_no=order.order_no)
    delivered = delivered_at(order)
    in_transit = delivered is None and order.status == "shipped"
    if delivered is None and not (kind == "refund_only" and in_transit):
        message = NOT_SHIPPED_REFUND if kind == "refund_only" else NOT_DELIVERED
        _refuse(message, "not_delivered", "order_no", order_no=order.order_no)
    policies = policies_for(order, [line.sku_id for line in asked])
    if delivered is not None:
        for index, line in enumerate(asked):
            policy = policies[line.sku_id]
            until = delivered + timedelta(days=policy.return_days)
            if now > until:
                _refuse(OUTSIDE_WINDOW, "outside_return_window", f"lines[{index}].sku", sku=line.sku_code,
                        until=_merchant_date(until), days=policy.return_days)
            if policy.final_sale and kind != "resend":
                _refuse(FINAL_SALE, "final_sale", f"lines[{index}].sku", sku=line.sku_code)
    units, taken = bought(order), claimed(order, exclude_id)
    for index, line in enumerate(asked):
        left = units[line.sku_id] - taken.get(line.sku_id, 0)
        if line.quantity > left:
            _refuse(QUANTITY_EXCEEDS, "quantity_exceeds_returnable", f"lines[{index}].quantity", sku=line.sku_code,
                    asked=line.quantity, left=max(left, 0), bought=units[line.sku_id])


# --- photos -------------------------------------------------------------------------------------------------------

def photo_type(data: bytes) -> str | None:
    """The image type by its first bytes (never by a name or a declared type): JPEG, PNG or WebP, else None."""
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def check_photos(photos) -> list[tuple[str, bytes]]:
    """(content type, bytes) of each photo, or a refusal: at most 3, each at most 5 MB and an image by its bytes."""
    photos = [p for p in (photos or []) if p]
    if len(photos) > MAX_PHOTOS:
        _refuse(TOO_MANY_PHOTOS, "too_many_photos", "photos", limit=MAX_PHOTOS)
    checked = []
    for data in photos:
        data = bytes(data)
        if len(data) > MAX_PHOTO_BYTES:
            _refuse(PHOTO_TOO_LARGE, "photo_too_large", "photos", limit=MAX_PHOTO_BYTES // (1024 * 1024))
        kind = photo_type(data)
        if kind is None:
            _refuse(PHOTO_NOT_IMAGE, "photo_not_image", "photos")
        checked.append((kind, data))
    return checked


# --- requests -----------------------------------------------------------------------------------------------------

def _due(case: AfterSale, now: datetime) -> datetime | None:
    promised = refund_deadline(case)
    if case.status == "inspected" and case.received_at is not None:
        return as_utc(case.received_at) + timedelta(hours=refund_promise_hours())
    hours = SLA_HOURS.get(case.status)
    if hours is None and case.type not in lifecycle.RETURNS:
        hours = SLA_HOURS_NO_RETURN.get(case.status)
    due = now + timedelta(hours=hours) if hours else None
    if case.status == "received" and promised is not None and due is not None:
        due = min(due, promised)  # a promise shorter than the inspection's day is still kept
    return due


def refund_promise_hours() -> int:
    """The hours within which a return is refunded once the warehouse receives it (configuration
    AFTER_SALES_REFUND_HOURS, default 48): the customer's countdown and the refund's SLA are both this number."""
    from flask import current_app, has_app_context

    if has_app_context():
        return int(current_app.config.get("AFTER_SALES_REFUND_HOURS") or DEFAULT_REFUND_HOURS)
    return DEFAULT_REFUND_HOURS


def refund_deadline(case: AfterSale) -> datetime | None:
    """When the refund of a return is due: received_at plus the promised hours (None before the goods are
    received, and for requests that refund nothing after a return)."""
    if case.type != "return_refund" or case.received_at is None:
        return None
    return as_utc(case.received_at) + timedelta(hours=refund_promise_hours())


@dataclass(frozen=True)
class Countdown:
    deadline: datetime
    hours: int  # whole hours left (0 once due)
    minutes: int  # and minutes
    overdue: bool


def refund_countdown(case: AfterSale, now: datetime | None = None) -> Countdown | None:
    """What the customer's countdown shows: the deadline and the time left, while the refund is still to come."""
    deadline = refund_deadline(case)
    if deadline is None or case.refund_amount is not None or case.status in lifecycle.FINAL:
        return None
    left = max(int((deadline - (now or utc_now())).total_seconds()), 0)
    return Countdown(deadline, left // 3600, left % 3600 // 60, left == 0)


def _read_pickup(value, now: datetime) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, dict):
        value = value.get("at")
    if value in (None, ""):
        _refuse(PICKUP_REQUIRED, "required", "pickup.at")
    at = parse_aware(value, "pickup.at")
    if at <= now:
        _refuse(PICKUP_IN_PAST, "pickup_in_past", "pickup.at")
    return at


def _pickup_slot(order: Order, pickup, now: datetime) -> str | None:
    """The carrier slot a request's `pickup` names: `{"slot": "2026-12-05 09:00-12:00"}` (one of the offered slots,
    Beijing time, as the customer site offers them) or `{"at": ISO time}` (the slot of the warehouse's pickup
    carrier holding that time). A time or slot already past is 422 `pickup_in_past`; one the carrier's rules do not
    offer is return_pickups' refusal (`invalid_slot`, `slot_not_bookable`)."""
    from shared.services import return_pickups

    if pickup is None:
        return None
    if not isinstance(pickup, dict):
        pickup = {"at": pickup}
    slot, at = pickup.get("slot"), pickup.get("at")
    if slot not in (None, "") and at not in (None, ""):
        _refuse(PICKUP_ONE_OF, "invalid_pickup", "pickup")
    if slot in (None, ""):
        moment = _read_pickup({"at": at}, now)
        return return_pickups.slot_holding(order, moment)
    return return_pickups.check_slot(order, slot, now, PICKUP_IN_PAST)


def request_after_sale(order: Order, kind: str, lines, actor: Actor, *, photos=None, pickup=None, client=None,
                       now: datetime | None = None) -> AfterSale:
    """Open an after-sales request on the customer's order (by the customer, or by staff on their behalf).

    With `pickup` (a time or a slot, _pickup_slot) the courier is booked with the carrier at once, through
    return_pickups.book as the customer's own booking is (book_pickup): the request waits for its decision with the
    pickup booked, moves on to awaiting_return when approved and cancels the pickup when declined or cancelled.
    Refused with nothing written (a savepoint) when the carrier says no (422 `pickup_refused`) or cannot be
    reached (503 `carrier_unavailable`), as the customer's booking is."""
    now = now or utc_now()
    if pickup is not None:
        with db.session.begin_nested():  # the request and its booking, or neither
            return _request(order, kind, lines, actor, photos=photos, pickup=pickup, client=client, now=now)
    return _request(order, kind, lines, actor, photos=photos, pickup=None, client=None, now=now)


def _request(order: Order, kind: str, lines, actor: Actor, *, photos, pickup, client, now: datetime) -> AfterSale:
    from shared.services import orders

    if kind not in lifecycle.TYPES:
        _refuse(UNKNOWN_TYPE, "invalid_type", "type", type=str(kind)[:40])
    if actor.role != "customer" and actor.role != SYSTEM_ROLE:
        from shared.security.permissions import can

        if not can(actor.role, *lifecycle.WORK):
            raise Forbidden(say(NOT_YOURS, target="requested"), code="forbidden")
    order = orders.get_order(order.order_no, for_update=True)  # two requests at once count each other's units
    asked = _read_lines(order, lines)
    if pickup is not None and kind not in lifecycle.RETURNS:
        _refuse(BAD_METHOD, "invalid_return_method", "pickup")
    checked = check_photos(photos)
    check_eligible(order, kind, asked, now)
    slot = _pickup_slot(order, pickup, now)
    case = AfterSale(order_id=order.id, customer_id=order.customer_id, type=kind, status=lifecycle.INITIAL,
                     requested_by=actor.label, via="customer" if actor.role == "customer" else "staff",
                     currency=order.currency, created_at=now, updated_at=now,
                     return_method="pickup" if slot else None)
    case.due_at = _due(case, now)
    db.session.add(case)
    db.session.flush()
    for line in asked:
        db.session.add(AfterSaleLine(after_sale_id=case.id, order_line_id=line.order_line_id, sku_id=line.sku_id,
                                     quantity=line.quantity, reason_code=line.reason_code))
    for content_type, data in checked:
        db.session.add(AfterSalePhoto(after_sale_id=case.id, content_type=content_type, size=len(data),
                                      sha256=hashlib.sha256(data).hexdigest(), data=data, created_at=now))
    db.session.flush()
    db.session.refresh(case)
    audit.record(actor, "after_sale.requested", "after_sale", case.id, before=None, after={
        "order_no": order.order_no, "type": kind, "status": case.status, "photos": len(checked),
        "lines": [{"sku": line.sku_code, "quantity": line.quantity, "reason": line.reason_code} for line in asked]})
    if slot:
        _book_with_request(case, slot, actor, client, now)
    return case


def _book_with_request(case: AfterSale, slot: str, actor: Actor, client, now: datetime) -> None:
    """The courier booked for a request as it is opened (return_pickups.book, after_sale_id = the request), the
    customer mailed the waybill and slot as for their own booking."""
    from shared.services import return_pickups
    from shared.services.notifications import notify_customer

    summary = "、".join(f"{line.sku.name}×{line.quantity}" for line in case.lines)[:300]
    booking = return_pickups.book(case.order.order_no, pickup_address(case.order), slot, summary, actor,
                                  after_sale_id=case.id, client=client, now=now)
    case.pickup_at = booking.slot_start
    db.session.flush()
    notify_customer(case.order, "pickup_booked", dedupe=f"{case.id}:{booking.id}", waybill_no=booking.waybill_no,
                    slot=slot_text(booking))


def get_after_sale(after_sale_id, for_update: bool = False) -> AfterSale:
    row = None
    if str(after_sale_id or "").isdigit() and int(after_sale_id) < 2 ** 31:
        query = select(AfterSale).where(AfterSale.id == int(after_sale_id))
        row = db.session.execute(query.with_for_update(of=AfterSale) if for_update else query).scalar_one_or_none()
    if row is None:
        raise NotFound(say(NO_REQUEST, id=str(after_sale_id)[:40]), field="id", code="after_sale_not_found")
    return row


def for_customer(customer_id: int, after_sale_id: int) -> AfterSale | None:
    """The customer's own request (scoped in SQL); anyone else's is None."""
    return db.session.execute(select(AfterSale).where(AfterSale.id == after_sale_id,
                                                      AfterSale.customer_id == customer_id)).scalar_one_or_none()


def for_order(order_id: int) -> list[AfterSale]:
    return list(db.session.execute(select(AfterSale).where(AfterSale.order_id == order_id)
                                   .order_by(AfterSale.id.desc())).scalars())


def photo_of(case: AfterSale, photo_id: int) -> AfterSalePhoto | None:
    return db.session.execute(select(AfterSalePhoto).where(AfterSalePhoto.id == photo_id,
                                                           AfterSalePhoto.after_sale_id == case.id)
                              ).scalar_one_or_none()


# --- moves --------------------------------------------------------------------------------------------------------

def allowed_targets(case: AfterSale, role: str) -> list[str]:
    """The moves `role` may offer on this request (the portal's and the customer site's buttons)."""
    return [m.target for m in lifecycle.moves_from(case.type, case.status) if lifecycle.may_fire(m, role)
            and not _guard_refusal(case, m)]


def _guard_refusal(case: AfterSale, move: lifecycle.Move) -> str | None:
    for guard in move.guards:
        refusal = GUARDS[guard](case)
        if refusal:
            return refusal
    return None


def _guard_some_passed(case: AfterSale) -> str | None:
    return None if any(line.passed for line in case.lines) else NOTHING_PASSED


def _guard_none_passed(case: AfterSale) -> str | None:
    return SOMETHING_PASSED if any(line.passed for line in case.lines) else None


GUARDS = {"some_passed": _guard_some_passed, "none_passed": _guard_none_passed}


def _state(case: AfterSale) -> dict:
    return {"status": case.status, "return_method": case.return_method,
            "refund_amount": None if case.refund_amount is None else str(case.refund_amount)}


def transition(case: AfterSale, target, actor: Actor, reason: str | None = None, *, return_method: str | None = None,
               pickup_at=None, inspection=None, booking=None, now: datetime | None = None) -> AfterSale:
    """Move a request along the declared table; refused (409, 403, 422) with nothing changed. `booking`: the
    carrier's pickup booked for this request (book_pickup). Cancelling a request cancels its pickup at the carrier
    (refused, with nothing changed, once the courier has the parcel). The customer is mailed the decision, the
    return's arrival and the refund (shared.services.notifications)."""
    now = now or utc_now()
    source = case.status
    if not isinstance(target, str) or target not in lifecycle.STATES:
        raise Conflict(say(NOT_A_MOVE, source=source, target=str(target)[:40]), field="to",
                       code="invalid_transition")
    move = lifecycle.find_move(case.type, source, target)
    if move is None:
        raise Conflict(say(NOT_A_MOVE, source=source, target=target), field="to", code="invalid_transition")
    if not lifecycle.may_fire(move, actor.role):
        raise Forbidden(say(NOT_YOURS, target=target), code="forbidden")
    reason = check.text(reason, "reason", 500, required=False)
    if move.needs_reason and not reason:
        _refuse(REASON_REQUIRED, "required", "reason")
    before = _state(case)
    for effect in move.effects:
        if effect == "inspect":
            _inspect(case, inspection, actor)
    refusal = _guard_refusal(case, move)
    if refusal:
        raise Conflict(say(refusal), field="to", code="guard_failed")
    if "book_return" in move.effects:
        _book_return(case, return_method, pickup_at, now, booking)
    if target in ("cancelled", "declined"):
        _cancel_pickup(case, actor)
    if "send_replacement" in move.effects:
        send_replacement(case, actor, now=now)
    case.status, case.updated_at = target, now
    if target in ("approved", "declined"):
        case.decided_at = now
    if target == "declined":
        case.decline_reason = reason
    elif target == "cancelled":
        case.cancel_reason = reason
    elif target == "closed":
        case.close_reason, case.closed_at = reason, now
    elif target == "received":
        case.received_at = now
    elif target == "inspected":
        case.inspected_at = now
    if "refund" in move.effects:
        issue_refund(case, actor, now=now)
    case.due_at = _due(case, now)
    db.session.flush()
    audit.record(actor, f"after_sale.{target}", "after_sale", case.id, before=before, after={
        **_state(case), "order_no": case.order.order_no,
        **({"inspection": [{"sku": line.sku.code, "passed": line.passed, "restocked": line.restocked}
                           for line in case.lines]} if target == "inspected" else {}),
        **({"replacement_order_no": case.replacement.order_no} if "send_replacement" in move.effects else {})},
        reason=reason)
    _notify(case, target, reason)
    if target == "approved":
        _return_already_booked(case, actor, now)
    return case


def _return_already_booked(case: AfterSale, actor: Actor, now: datetime) -> None:
    """A request opened with its pickup booked (the API's `pickup`, request_after_sale) waits for the goods as soon as
    it is approved: the courier is coming already, so the move to awaiting_return follows the approval at once."""
    from shared.services import return_pickups

    booking = pickup_of(case)
    if booking is None or booking.status not in return_pickups.LIVE:
        return
    move = lifecycle.find_move(case.type, case.status, "awaiting_return")
    if move is None:
        return
    transition(case, "awaiting_return", actor if lifecycle.may_fire(move, actor.role) else SYSTEM,
               return_method="pickup", booking=booking, now=now)


def _notify(case: AfterSale, target: str, reason: str | None) -> None:
    """The customer's mail about a move (queued in this transaction, sent after the commit; once per request)."""
    from shared.services.notifications import notify_customer

    order, key = case.order, str(case.id)
    if target == "approved":
        notify_customer(order, "after_sales_approved", dedupe=key, reason=reason or "")
    elif target == "declined":
        notify_customer(order, "after_sales_declined", dedupe=key, reason=reason or "")
    elif target == "received":
        notify_customer(order, "return_received", dedupe=key, hours=refund_promise_hours())
    if target == "refunded" and case.refunded_at is not None:
        from shared.money import format_money

        notify_customer(order, "refunded", dedupe=f"after_sale:{case.id}", amount=format_money(case.refund_amount),
                        currency=case.currency)


def return_address(case: AfterSale) -> str | None:
    """Where a drop-off goes: the return address of the warehouse that shipped the order (its receiver, phone and
    street address, return_pickups.return_address), or the warehouse's name and city while it has none."""
    return printed_return_address(case.order)


def printed_return_address(order: Order) -> str | None:
    from shared.services import return_pickups

    warehouse = order.warehouse
    if warehouse is None:
        return None
    row = return_pickups.return_address(warehouse.id)
    if row is None:
        return f"{warehouse.name} · {warehouse.province}{warehouse.city}"[:300]
    return f"{row.receiver} {row.phone} · {row.province}{row.city}{row.district}{row.street}"[:300]


def _book_return(case: AfterSale, method, pickup_at, now: datetime, booking=None) -> None:
    method = method or case.return_method or "drop_off"
    if method not in lifecycle.RETURN_METHODS:
        _refuse(BAD_METHOD, "invalid_return_method", "return_method")
    if method == "pickup" and booking is not None:
        case.pickup_at = booking.slot_start  # the carrier judged the slot (return_pickups.book)
    elif method == "pickup":
        at = _read_pickup(pickup_at, now) if pickup_at is not None else case.pickup_at
        if at is None:
            _refuse(PICKUP_REQUIRED, "required", "pickup_at")
        if as_utc(at) <= now:
            _refuse(PICKUP_IN_PAST, "pickup_in_past", "pickup_at")
        case.pickup_at = at
    else:
        case.pickup_at = None
    case.return_method = method
    case.return_address = return_address(case) if method == "drop_off" else None


# --- the return parcel: a door pickup, a drop-off code, the arrival -------------------------------------------------

def pickup_of(case: AfterSale):
    """The request's return pickup (the newest booking made for it), or None."""
    from shared.models import ReturnPickup

    return db.session.execute(select(ReturnPickup).where(ReturnPickup.after_sale_id == case.id,
                                                         ReturnPickup.order_id == case.order_id)
                              .order_by(ReturnPickup.id.desc()).limit(1)).scalar_one_or_none()


def pickup_address(order: Order) -> dict:
    """Where the courier collects: the order's shipping address (the customer as the return's sender)."""
    return {"name": order.receiver_name, "phone": order.receiver_phone, "province": order.province,
            "city": order.city, "district": order.district, "street": order.street}


def pickup_slots(case: AfterSale, now: datetime | None = None) -> list:
    """The pickup times the customer may choose for this request (return_pickups.slots)."""
    from shared.services import return_pickups

    return return_pickups.slots(case.order, pickup_address(case.order), now)


def book_pickup(case: AfterSale, slot: str, actor: Actor, *, client=None, now: datetime | None = None):
    """The customer (or staff for them) books the courier for an approved return: the carrier's booking through
    return_pickups.book (after_sale_id = this request) and the move to awaiting_return, in the caller's transaction.
    Refused with nothing changed when the move is not open (409/403), the slot is gone or the carrier says no."""
    from shared.services import return_pickups

    now = now or utc_now()
    move = lifecycle.find_move(case.type, case.status, "awaiting_return")
    if move is None:
        raise Conflict(say(NOT_A_MOVE, source=case.status, target="awaiting_return"), field="to",
                       code="invalid_transition")
    if not lifecycle.may_fire(move, actor.role):
        raise Forbidden(say(NOT_YOURS, target="awaiting_return"), code="forbidden")
    summary = "、".join(f"{line.sku.name}×{line.quantity}" for line in case.lines)[:300]
    booking = return_pickups.book(case.order.order_no, pickup_address(case.order), slot, summary, actor,
                                  after_sale_id=case.id, client=client, now=now)
    transition(case, "awaiting_return", actor, return_method="pickup", booking=booking, now=now)
    from shared.services.notifications import notify_customer

    notify_customer(case.order, "pickup_booked", dedupe=f"{case.id}:{booking.id}", waybill_no=booking.waybill_no,
                    slot=slot_text(booking))
    return booking


def slot_text(booking) -> str:
    """A booking's slot in the merchant's zone, e.g. 2026-12-05 09:00–12:00."""
    from flask import current_app, has_app_context

    from shared.timekeeping import to_zone

    zone = current_app.config.get("MERCHANT_TIMEZONE", "Asia/Shanghai") if has_app_context() else "Asia/Shanghai"
    start, end = to_zone(booking.slot_start, zone), to_zone(booking.slot_end, zone)
    return f"{start:%Y-%m-%d %H:%M}–{end:%H:%M}"


def _cancel_pickup(case: AfterSale, actor: Actor) -> None:
    """Cancelling a request cancels its pickup at the carrier; once the courier has the parcel the carrier refuses
    and so the request is not cancelled either (the goods are on their way back)."""
    from shared.services import return_pickups

    booking = pickup_of(case)
    if booking is not None and booking.status in return_pickups.LIVE:
        return_pickups.cancel(booking, actor, reason=f"售后申请 {case.id} 已取消")


def receive_returned(booking, actor: Actor = SYSTEM) -> AfterSale | None:
    """The return parcel of a pickup was delivered to the warehouse (the carrier's `delivered`): its request is
    marked received at the delivery time, which starts the refund countdown; the warehouse then inspects. Nothing
    happens when the request no longer awaits the return (cancelled meanwhile, or received by hand already)."""
    if booking.after_sale_id is None or booking.received_at is None:
        return None
    case = db.session.get(AfterSale, booking.after_sale_id)
    if case is None or case.order_id != booking.order_id or case.status != "awaiting_return":
        return None
    return transition(case, "received", actor, now=min(as_utc(booking.received_at), utc_now()))


def return_reference(case: AfterSale) -> str:
    """What the warehouse scans to match a parcel to the request: the return waybill when a courier collects it,
    otherwise the request's own reference (AS<id>-<order_no>), written on the parcel by the customer."""
    booking = pickup_of(case)
    if booking is not None and booking.waybill_no and booking.status != "cancelled":
        return booking.waybill_no
    return f"AS{case.id}-{case.order.order_no}"


def return_code_payload(case: AfterSale) -> str:
    return f"ORDERLOOM-RETURN;AS={case.id};ORDER={case.order.order_no};REF={return_reference(case)}"


def return_code_svg(case: AfterSale) -> str:
    """The return's QR code (request number and reference) as one SVG path, drawn like the second-factor code."""
    from shared.services.second_factor import qr_svg

    return qr_svg(return_code_payload(case))


@dataclass(frozen=True)
class ReturnTerms:
    sku: str
    name: str
    return_days: int
    final_sale: bool


def return_package(order: Order) -> dict | None:
    """The prepared return of a paid order (from payment on): where returns go, each item's window or final sale,
    and the refund promise. None before payment."""
    if order.payment_status != "paid":
        return None
    skus = {}
    for line in order.lines:
        skus.setdefault(line.sku_id, line.sku)
    policies = policies_for(order, skus)
    terms = [ReturnTerms(sku.code, sku.name, policies[sku_id].return_days, policies[sku_id].final_sale)
             for sku_id, sku in skus.items()]
    return {"address": printed_return_address(order), "terms": terms, "refund_hours": refund_promise_hours(),
            "final_sale": [t.name for t in terms if t.final_sale]}


def _inspect(case: AfterSale, inspection, actor: Actor) -> None:
    """Each line passed or failed, restocked or not, through stock-ops' returns (the one writer of returned stock)."""
    from shared.services import stock_ops

    results = {}
    for index, raw in enumerate(inspection or []):
        if not isinstance(raw, dict):
            raise ValidationFailed(say(NOT_AN_OBJECT, field=f"inspection[{index}]"), field="inspection", code="invalid_type")
        results[str(raw.get("sku") or "").strip().upper()] = raw
    if set(results) != {line.sku.code.upper() for line in case.lines}:
        _refuse(INSPECT_EVERY_LINE, "inspection_incomplete", "inspection")
    warehouse = case.order.warehouse
    if warehouse is None:
        raise Conflict(say(NO_WAREHOUSE, order_no=case.order.order_no), code="no_warehouse")
    plans = []
    for line in case.lines:
        raw = results[line.sku.code.upper()]
        passed = raw.get("passed") is True
        restock = raw.get("restock", passed) is True
        note = check.text(raw.get("note"), "note", 500, required=False)
        if restock and not passed:
            _refuse(RESTOCK_FAILED, "restock_failed", "inspection", sku=line.sku.code)
        if not restock and not note:
            _refuse(NOTE_REQUIRED, "required", "inspection", sku=line.sku.code)
        plans.append((line, passed, restock, note))
    for line, passed, restock, note in plans:
        stock_ops.restock_return(case.order.order_no, line.sku.code, warehouse.code, line.quantity, restock, actor,
                                 note=note if not restock else (note or f"after-sales {case.id}"))
        line.passed, line.restocked, line.inspection_note = passed, restock, note


# --- the refund ---------------------------------------------------------------------------------------------------

def line_nets(order: Order) -> dict[int, tuple[Decimal, int]]:
    """Per SKU of the order: what was paid for its lines (unit price × quantity less the order discount shared pro
    rata over the lines' amounts in whole cents, invoice_math's largest-remainder rule) and the units bought."""
    from shared.finance.invoice_math import allocate

    lines = list(order.lines)
    amounts = [Decimal(line.line_total) for line in lines]
    discount = Decimal(order.discount or 0)
    shares = allocate(discount, amounts) if discount and sum(amounts) > 0 else [Decimal("0.00")] * len(lines)
    nets: dict[int, tuple[Decimal, int]] = {}
    for line, amount, share in zip(lines, amounts, shares):
        paid, units = nets.get(line.sku_id, (Decimal("0.00"), 0))
        nets[line.sku_id] = (paid + amount - share, units + line.quantity)
    return nets


def refund_amount(case: AfterSale) -> Decimal:
    """What the request refunds: each line's units at what was paid for them (a part of a line by the largest
    remainder, so the parts of a line never add up to more than the line). A return refunds the lines that passed
    inspection; a refund-only request every line. Shipping is not refunded."""
    from shared.finance.invoice_math import allocate

    nets = line_nets(case.order)
    total = Decimal("0.00")
    for line in case.lines:
        if case.type in lifecycle.RETURNS and not line.passed:
            continue
        paid, units = nets[line.sku_id]
        total += paid if line.quantity >= units else allocate(paid, [Decimal(line.quantity),
                                                                     Decimal(units - line.quantity)])[0]
    return total


def issue_refund(case: AfterSale, actor: Actor, now: datetime | None = None) -> Decimal:
    """The one seam between after-sales and the refund service: the amount from the lines (refund_amount), recorded
    on the request, and refunded through shared.services.refunds.refund — the provider's refund API for a direct
    channel, the platform's refund API on Shopify and WooCommerce, the platform's own report on the others. The refund
    service keeps the order's refund status, cancels an order refunded in full before shipping (its stock released)
    and opens the red-letter reversals of issued invoices; approval rules on `order.refund` hold it where they apply.
    Twice for one request is refused (409 `already_refunded`)."""
    from shared.services import refunds

    now = now or utc_now()
    if case.refund_amount is not None:
        raise Conflict(say(ALREADY_REFUNDED), code="already_refunded")
    amount = refund_amount(case)
    lines = [{"sku": line.sku.code, "quantity": line.quantity} for line in case.lines
             if case.type not in lifecycle.RETURNS or line.passed]
    order = case.order
    refund = refunds.refund(order.order_no, amount, f"after-sales request {case.id}", actor, lines=lines,
                            goods_returned=case.type in lifecycle.RETURNS, after_sale_id=case.id)
    case.refund_amount, case.refunded_at = amount, now
    db.session.flush()
    audit.record(actor, "after_sale.refund", "after_sale", case.id, after={
        "amount": str(amount), "currency": case.currency, "order_no": order.order_no, "lines": lines,
        "out_refund_no": refund.out_refund_no, "status": refund.status})
    return amount


# --- the replacement: exchange → replaced, resend → resent ----------------------------------------------------------

def replacement_lines(case: AfterSale) -> list[AfterSaleLine]:
    """What goes out again: an exchange replaces the lines that passed inspection, a re-send every line."""
    return [line for line in case.lines if case.type != "exchange" or line.passed]


def replacement_channel():
    """The channel replacement orders belong to (configuration AFTER_SALES_CHANNEL, default AS): an offline channel
    of our own, made the first time it is needed, so a replacement is never mistaken for the platform's order (the
    platform's reconciliation does not see it) whichever channel the original came from."""
    from flask import current_app, has_app_context

    from shared.models import Channel
    from shared.services import catalog

    from sqlalchemy.exc import IntegrityError

    code = (current_app.config.get("AFTER_SALES_CHANNEL") if has_app_context() else None) or "AS"
    query = select(Channel).where(Channel.code == code)
    channel = db.session.execute(query).scalar_one_or_none()
    if channel is None:
        try:
            with db.session.begin_nested():  # two first replacements at once: one makes it, the other reads it
                channel = catalog.create_channel(code, REPLACEMENT_CHANNEL_NAME, "offline", SYSTEM)
        except IntegrityError:
            channel = db.session.execute(query).scalar_one()
    return channel


def send_replacement(case: AfterSale, actor: Actor, now: datetime | None = None) -> Order:
    """Send the goods of an exchange or a re-send out again: a replacement order on the after-sales channel for the
    same customer and address, at zero price and paid, its stock reserved by orders.create_order (all lines or
    nothing) and allocated to the nearest warehouse that can ship it (allocation.allocate), so the floor waves,
    picks, packs and loads it like any other order; linked from the request (one per request) and audited on both.
    Refused with nothing changed: a second replacement (409 `already_replaced`), too little stock (409
    `insufficient_stock`), an address only the platform holds (422 `platform_address`)."""
    from shared.services import allocation, orders
    from shared.services import stock as stock_service
    from shared.services.errors import InsufficientStock

    now = now or utc_now()
    if case.replacement_order_id is not None:
        raise Conflict(say(ALREADY_REPLACED, id=case.id, order_no=case.replacement.order_no), field="to",
                       code="already_replaced")
    original = case.order
    if original.platform_ciphertext is not None:
        _refuse(REPLACEMENT_PLATFORM_ADDRESS, "platform_address", "to", order_no=original.order_no)
    lines = replacement_lines(case)
    if not lines:
        raise Conflict(say(NOTHING_TO_REPLACE, id=case.id), field="to", code="guard_failed")
    customer = original.customer
    placed = min(now, utc_now()).isoformat()
    data = {
        "channel_order_id": f"AS{case.id}", "placed_at": placed, "paid_at": placed, "currency": original.currency,
        "customer": {"name": customer.name, "phone": customer.phone, "email": customer.email},
        "shipping_address": {"receiver": original.receiver_name, "phone": original.receiver_phone,
                             "province": original.province, "city": original.city, "district": original.district,
                             "street": original.street, "postal_code": original.postal_code},
        "lines": [{"sku": line.sku.code, "quantity": line.quantity, "unit_price": "0.00"} for line in lines],
        "shipping_fee": "0.00", "discount": "0.00"}
    with db.session.begin_nested():  # the channel made for it, the order, its stock: all, or nothing on a refusal
        data["channel"] = replacement_channel().code
        try:
            replacement = orders.create_order(data, actor, auto_confirm=True)
        except InsufficientStock:
            short = next((line for line in lines if stock_service.available_for(line.sku_id) < line.quantity),
                         lines[0])
            raise Conflict(say(REPLACEMENT_SHORT, sku=short.sku.code, wanted=short.quantity,
                               available=max(stock_service.available_for(short.sku_id), 0)), field="lines",
                           code="insufficient_stock") from None
        try:
            allocation.allocate(replacement, SYSTEM, now)
        except ServiceError:
            pass  # held for approval, or no one warehouse holds it all: confirmed with its stock, the floor allocates
        case.replacement = replacement
        db.session.flush()
    sent = [{"sku": line.sku.code, "quantity": line.quantity} for line in lines]
    audit.record(actor, "after_sale.replacement", "after_sale", case.id, after={
        "order_no": original.order_no, "replacement_order_no": replacement.order_no, "lines": sent})
    audit.record(actor, "order.replacement", "order", replacement.order_no, after={
        "after_sale_id": case.id, "original_order_no": original.order_no, "lines": sent})
    return replacement


@dataclass(frozen=True)
class ReplacementParcel:
    carrier_code: str | None
    waybill_no: str | None
    status: str
    tracking_step: str | None
    shipped_at: datetime | None


@dataclass(frozen=True)
class Replacement:
    order: Order
    parcels: list[ReplacementParcel]

    @property
    def waybills(self) -> list[str]:
        return [parcel.waybill_no for parcel in self.parcels if parcel.waybill_no]


def replacement_of(case: AfterSale) -> Replacement | None:
    """The request's replacement order and its parcels (status, carrier, waybill once packed), or None."""
    from shared.services import allocation

    order = case.replacement
    if order is None:
        return None
    return Replacement(order, [ReplacementParcel(row.carrier_code, row.waybill_no, row.status, row.tracking_step,
                                                 row.shipped_at) for row in allocation.open_parcels(order.id)])


def replaced_for(order: Order) -> AfterSale | None:
    """The request this order is the replacement of (None for any other order)."""
    return db.session.execute(select(AfterSale).where(AfterSale.replacement_order_id == order.id)
                              ).scalar_one_or_none()


def replacement_json(case: AfterSale) -> dict | None:
    from shared.order_payloads import iso_time

    found = replacement_of(case)
    if found is None:
        return None
    return {"order_no": found.order.order_no, "status": found.order.status,
            "lines": [{"sku": line.sku.code, "quantity": line.quantity} for line in found.order.lines],
            "parcels": [{"carrier": p.carrier_code, "waybill_no": p.waybill_no, "status": p.status,
                         "tracking_step": p.tracking_step, "shipped_at": iso_time(p.shipped_at)}
                        for p in found.parcels]}


def pickup_json(case: AfterSale) -> dict | None:
    """The request's carrier pickup as the API shows it (None when none was booked)."""
    from shared.order_payloads import iso_time

    booking = pickup_of(case)
    if booking is None:
        return None
    return {"id": booking.id, "carrier": booking.carrier_code, "waybill_no": booking.waybill_no,
            "status": booking.status, "slot_start": iso_time(booking.slot_start),
            "slot_end": iso_time(booking.slot_end), "courier_name": booking.courier_name}


# --- lists and the SLA --------------------------------------------------------------------------------------------

SORTS = {"newest": (AfterSale.created_at.desc(), AfterSale.id.desc()),
         "oldest": (AfterSale.created_at, AfterSale.id),
         "due": (AfterSale.due_at.is_(None), AfterSale.due_at, AfterSale.id)}
QUEUE_LIMIT = 200


@dataclass
class Filters:
    type: str | None = None
    state: str | None = None
    order_no: str | None = None
    overdue: bool = False
    sort: str = "newest"


def parse_filters(args) -> Filters:
    """The queue's filters from query parameters; an unknown type, state or sort is a 422."""
    kind, state = args.get("type") or None, args.get("state") or None
    sort = args.get("sort") or "newest"
    if kind is not None and kind not in lifecycle.TYPES:
        _refuse(UNKNOWN_TYPE, "invalid_type", "type", type=str(kind)[:40])
    if state is not None and state not in lifecycle.STATES:
        raise ValidationFailed(say(NOT_A_MOVE, source="?", target=str(state)[:40]), field="state",
                               code="unknown_state")
    if sort not in SORTS:
        raise ValidationFailed(say(UNKNOWN_SORT, sort=str(sort)[:20]), field="sort", code="invalid_sort")
    order_no = (args.get("order_no") or "").strip().upper() or None
    return Filters(kind, state, order_no[:40] if order_no else None, args.get("overdue") in ("1", "true", "yes"),
                   sort)


def list_query(filters: Filters, now: datetime | None = None):
    now = now or utc_now()
    query = select(AfterSale)
    if filters.type:
        query = query.where(AfterSale.type == filters.type)
    if filters.state:
        query = query.where(AfterSale.status == filters.state)
    if filters.order_no:
        query = query.join(Order, Order.id == AfterSale.order_id).where(Order.order_no == filters.order_no)
    if filters.overdue:
        query = query.where(AfterSale.due_at <= now, AfterSale.status.not_in(lifecycle.FINAL))
    return query


def queue(filters: Filters, now: datetime | None = None) -> list[AfterSale]:
    return list(db.session.execute(list_query(filters, now).order_by(*SORTS[filters.sort]).limit(QUEUE_LIMIT))
                .scalars())


def overdue(case: AfterSale, now: datetime | None = None) -> bool:
    return case.due_at is not None and as_utc(case.due_at) <= (now or utc_now()) and case.status not in lifecycle.FINAL


def check_slas(now: datetime | None = None, actor: Actor = SYSTEM) -> list[int]:
    """Requests whose merchant side is past due: raised once per request and state as an exception (category
    after_sales, kind after_sales_overdue, owner team and SLA clock from the exception center's tables)."""
    from shared.services import exceptions

    now = now or utc_now()
    rows = db.session.execute(select(AfterSale.id, AfterSale.order_id, AfterSale.type, AfterSale.status,
                                     AfterSale.due_at)
                              .where(AfterSale.due_at <= now, AfterSale.status.not_in(lifecycle.FINAL),
                                     or_(AfterSale.overdue_state.is_(None),
                                         AfterSale.overdue_state != AfterSale.status))
                              .order_by(AfterSale.id).limit(5000)).all()
    if not rows:
        return []
    problems = [exceptions.Problem(
        "after_sales_overdue", f"after_sales_overdue:{row.id}:{row.status}",
        f"after-sales request {row.id} ({row.type}) is {row.status} past its due time", as_utc(row.due_at),
        order_id=row.order_id, details={"after_sale_id": row.id, "state": row.status, "type": row.type})
        for row in rows]
    exceptions.raise_many(problems, actor, now)
    for row in rows:  # one UPDATE per request: the state it was raised for (not the ORM, the version stays)
        db.session.execute(update(AfterSale).where(AfterSale.id == row.id, AfterSale.status == row.status)
                           .values(overdue_state=row.status).execution_options(synchronize_session=False))
    return [row.id for row in rows]


# --- what the API and pages show ----------------------------------------------------------------------------------

def case_json(case: AfterSale) -> dict:
    from shared.money import format_money
    from shared.order_payloads import iso_time

    return {
        "id": case.id, "order_no": case.order.order_no, "type": case.type, "state": case.status,
        "via": case.via, "requested_by": case.requested_by,
        "lines": [{"sku": line.sku.code, "quantity": line.quantity, "reason": line.reason_code,
                   "passed": line.passed, "restocked": line.restocked} for line in case.lines],
        "photos": len(case.photos), "decline_reason": case.decline_reason, "cancel_reason": case.cancel_reason,
        "close_reason": case.close_reason, "return_method": case.return_method,
        "pickup_at": iso_time(case.pickup_at), "return_address": case.return_address,
        "refund_amount": format_money(case.refund_amount), "currency": case.currency,
        "created_at": iso_time(case.created_at), "updated_at": iso_time(case.updated_at),
        "due_at": iso_time(case.due_at), "overdue": overdue(case),
        "pickup": pickup_json(case), "replacement": replacement_json(case),
    }
