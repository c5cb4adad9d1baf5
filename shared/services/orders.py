"""Orders: creation with all-or-nothing reservation, the lifecycle state machine, hold, payment, expiry, and the
changes staff make later (address, prices)."""
import json
from datetime import datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import NamedTuple

from flask import current_app

from sqlalchemy import bindparam, event, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, make_transient_to_detached, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from shared import cash_on_delivery, order_numbers, pending, sets
from shared.actors import SYSTEM, Actor
from shared.database import insert_rows, send_rows
from shared.extensions import db
from shared.labels import STATUS, label, role_name
from shared.lifecycle import (RELEASE_HOLD_NEEDS_REASON, TRANSITIONS, OrderStatus, Transition, find_transition,
                              may_fire, transitions_from)
from shared.models import Channel, Order, OrderLine, Reservation, Warehouse
from shared.models.channel import DIRECT_KINDS
from shared.money import MAX_AMOUNT, parse_money
from shared.security import crypto
from shared.security.masking import masked_address, masked_name, masked_phone
from shared.security.permissions import can
from shared.services import audit, customers, outbox
from shared.services import stock as stock_service
from shared.services import validation as check
from shared.services.validation import N_, say
from shared.services.errors import (Conflict, Forbidden, InsufficientStock, InvalidTransition, NotFound,
                                   ValidationFailed)
from shared.timekeeping import local_date, parse_aware, utc_now

CURRENCIES = ("CNY", "USD", "EUR", "HKD", "JPY", "GBP")
MAX_LINES = 200

UNKNOWN_CHANNEL = N_("No channel \"%(channel)s\" (or it is switched off)")
NO_ORDER = N_("No order %(order_no)s")
NO_LINES = N_("An order needs at least one line")
TOO_MANY_LINES = N_("An order has at most %(limit)s lines")
BAD_LINE_QUANTITY = N_("%(field)s must be a positive whole number")
LINE_QUANTITY_TOO_LARGE = N_("%(field)s is too large")
UNSUPPORTED_CURRENCY = N_("The currency \"%(currency)s\" is not supported (%(known)s)")
PLACED_IN_FUTURE = N_("The order's time (placed_at) is in the future")
DISCOUNT_TOO_LARGE = N_("The discount is larger than the order")
TOTAL_TOO_LARGE = N_("The order total is too large")
NEW_CANNOT_BECOME = N_("A new order cannot become %(target)s")
GUARD_REFUSED = N_("%(order_no)s cannot become %(target)s: %(problem)s")
GUARD_NO_LINES = N_("the order has no lines")
GUARD_NOT_PAID = N_("the order is not paid")
GUARD_NOT_RESERVED = N_("some lines hold no stock reservation")
NOT_ENOUGH_STOCK = N_("Not enough stock of %(sku)s: %(wanted)s wanted, %(available)s available")
NOT_DIRECT_CHANNEL = N_("Orders of %(channel)s arrive through channel sync, not through this API")
DUPLICATE_ORDER = N_("Channel order %(channel_order_id)s is already order %(order_no)s")
CANNOT_BECOME = N_("An order that is %(status)s cannot become %(target)s")
ROLE_MAY_NOT_MOVE_TO = N_("The %(role)s role may not move an order to %(target)s")
ROLE_MAY_NOT_MOVE = N_("The %(role)s role may not move an order from %(status)s to %(target)s")
CHANGED_MEANWHILE = N_("Changed by someone else meanwhile, nothing moved: %(orders)s")
NOT_A_STATUS = N_("\"%(target)s\" is not an order status")
NEEDS_REASON = N_("This change needs a reason")
CUSTOMER_CANCEL_TOO_LATE = N_("%(order_no)s is %(status)s: only an order not yet allocated is cancelled at once")
NOT_ON_HOLD = N_("%(order_no)s is not on hold")
ROLE_MAY_NOT_RELEASE = N_("The %(role)s role may not release a hold")
ROLE_MAY_NOT_PAY = N_("The %(role)s role may not record payments")
ALREADY_PAID = N_("%(order_no)s is already paid")
ORDER_IS_CLOSED = N_("%(order_no)s is %(status)s")
NOT_A_REFUND_STATUS = N_("\"%(status)s\" is not a refund status")
CANNOT_RECORD_AS = N_("%(order_no)s cannot be recorded as %(status)s")
SAME_ADDRESS = N_("The new address is the one the order has")
PRICE_LINES_SHAPE = N_("lines must be a list of {id, unit_price}")


def _status(code) -> str:
    """An order status in the reader's words (the refusals name states as the pages do)."""
    return label(STATUS, getattr(code, "value", code))


def get_channel(code: str) -> Channel:
    channel = db.session.execute(select(Channel).where(Channel.code == _channel_code(code))).scalar_one_or_none()
    return _open_channel(channel, code)


class ChannelRef(NamedTuple):
    """A channel as a new order of the standalone path needs it: read by Core, in no session."""
    id: int
    code: str
    name: str
    kind: str
    active: bool

    @property
    def is_direct(self) -> bool:
        return self.kind in DIRECT_KINDS


_CHANNELS = Channel.__table__
_CHANNEL_BY_CODE = select(_CHANNELS.c.id, _CHANNELS.c.code, _CHANNELS.c.name, _CHANNELS.c.kind,
                          _CHANNELS.c.active).where(_CHANNELS.c.code == bindparam("code"))


def channel_ref(code: str) -> ChannelRef:
    """`get_channel` as one Core statement built once, answering a ChannelRef."""
    row = db.session.connection().execute(_CHANNEL_BY_CODE, {"code": _channel_code(code)}).first()
    return _open_channel(ChannelRef(*row) if row is not None else None, code)


def _channel_code(code: str) -> str:
    return (code or "").strip().upper()


def _open_channel(channel, code: str):
    """The channel orders may name: it exists and is active."""
    if channel is None or not channel.active:
        raise NotFound(say(UNKNOWN_CHANNEL, channel=str(code)[:40]), field="channel", code="unknown_channel")
    return channel


def get_order(order_no: str, for_update: bool = False) -> Order:
    """Load an order by its number; the check character is verified before any look-up."""
    number = order_numbers.validate(order_no)
    query = select(Order).where(Order.order_no == number)
    order = db.session.execute(query.with_for_update(of=Order) if for_update else query).scalar_one_or_none()
    if order is None:
        raise NotFound(say(NO_ORDER, order_no=str(number)[:40]), field="order_no", code="order_not_found")
    return order


def _read_lines(raw_lines, known_skus: dict | None = None) -> list[tuple]:
    if not isinstance(raw_lines, list) or not raw_lines:
        raise ValidationFailed(say(NO_LINES), field="lines", code="required")
    if len(raw_lines) > MAX_LINES:
        raise ValidationFailed(say(TOO_MANY_LINES, limit=MAX_LINES), field="lines")
    lines = []
    for index, raw in enumerate(raw_lines):
        field = f"lines[{index}]"
        check.mapping(raw, field)
        code = check.text(raw.get("sku"), f"{field}.sku", 64)
        quantity = raw.get("quantity")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
            raise ValidationFailed(say(BAD_LINE_QUANTITY, field=f"{field}.quantity"), field=f"{field}.quantity",
                                   code="invalid_quantity")
        if quantity > 100_000:
            raise ValidationFailed(say(LINE_QUANTITY_TOO_LARGE, field=f"{field}.quantity"),
                                   field=f"{field}.quantity", code="invalid_quantity")
        unit_price = parse_money(raw.get("unit_price"), f"{field}.unit_price")
        lines.append((code, quantity, unit_price))
    codes = [code for code, _qty, _price in lines]
    if known_skus is not None and all(code in known_skus for code in codes):
        skus = known_skus  # the caller loaded them once for a whole batch
    else:
        skus = stock_service.get_skus(codes)  # one query for every line
    return [(skus[code], quantity, price) for code, quantity, price in lines]


def validate_order_data(data: dict, channel: Channel | None = None, skus: dict | None = None) -> dict:
    """Check a canonical order before anything is written; the first problem is reported with its field.

    A batch passes its `channel` and its `skus` (code → Sku) once, instead of a look-up per order.
    """
    check.mapping(data, "body")
    if channel is None:
        channel = get_channel(check.text(data.get("channel"), "channel", 8))
    customer = check.mapping(data.get("customer"), "customer")
    address = check.mapping(data.get("shipping_address"), "shipping_address")
    currency = check.text(data.get("currency"), "currency", 3).upper()
    if currency not in CURRENCIES:
        raise ValidationFailed(say(UNSUPPORTED_CURRENCY, currency=str(currency)[:12], known=", ".join(CURRENCIES)),
                               field="currency", code="invalid_currency")
    protected = data.get("platform_protected")
    # Platform ciphertext arrives with the platform's masked forms in place of the phones ("136*******5"):
    # they are shown, never dialled, so they are checked as text, not as phone numbers.
    phone_of = (lambda value, name: check.text(value, name, 32)) if protected else check.phone
    clean = {
        "channel": channel,
        "channel_order_id": check.text(data.get("channel_order_id"), "channel_order_id", 64),
        "placed_at": parse_aware(data.get("placed_at") or "", "placed_at"),
        "paid_at": parse_aware(data["paid_at"], "paid_at") if data.get("paid_at") else None,
        "currency": currency,
        "customer_name": check.text(customer.get("name"), "customer.name", 60),
        "customer_phone": phone_of(customer.get("phone"), "customer.phone"),
        "customer_email": check.email(customer.get("email"), "customer.email"),
        **read_address(address, phone_of),
        "lines": _read_lines(data.get("lines"), skus),
        "shipping_fee": parse_money(data.get("shipping_fee", "0.00"), "shipping_fee"),
        "discount": parse_money(data.get("discount", "0.00"), "discount"),
        "tax": parse_money(data.get("tax", "0.00"), "tax"),
        "protected": protected or None,  # {"kind", "ciphertext", "buyer_key"} from channel sync only
        "fees": parse_money(data.get("fees", "0.00"), "fees"),
        "cash_on_delivery": data.get("cash_on_delivery") is True,
    }
    if clean["placed_at"] > utc_now() + timedelta(minutes=5):
        raise ValidationFailed(say(PLACED_IN_FUTURE), field="placed_at", code="future_timestamp")
    clean["goods_total"], clean["total"] = order_totals(
        [(qty, price) for _, qty, price in clean["lines"]], clean["shipping_fee"], clean["discount"], clean["fees"],
        clean["tax"])
    return clean


def read_address(address: dict, phone_of=check.phone) -> dict:
    """A shipping address as an order keeps it (receiver, phone, province/city/district, street, postal code):
    the one set of rules for a new order's address and for an address changed later (`change_address`)."""
    return {
        "receiver": check.text(address.get("receiver"), "shipping_address.receiver", 60),
        "receiver_phone": phone_of(address.get("phone"), "shipping_address.phone"),
        "province": check.text(address.get("province"), "shipping_address.province", 40),
        "city": check.text(address.get("city"), "shipping_address.city", 40),
        "district": check.text(address.get("district"), "shipping_address.district", 40),
        "street": check.text(address.get("street"), "shipping_address.street", 200),
        "postal_code": check.text(address.get("postal_code"), "shipping_address.postal_code", 12, required=False),
    }


def line_total(quantity: int, unit_price: Decimal) -> Decimal:
    return unit_price * quantity


def order_totals(lines, shipping_fee: Decimal, discount: Decimal, fees: Decimal, tax: Decimal
                 ) -> tuple[Decimal, Decimal]:
    """(goods total, order total) of lines given as (quantity, unit price): the one money rule of an order's
    totals, for a new order and for a price change (`change_price`). A total below zero or too large is refused."""
    goods = sum((line_total(qty, price) for qty, price in lines), Decimal("0.00"))
    total = goods + shipping_fee - discount + fees + tax
    if total < 0:
        raise ValidationFailed(say(DISCOUNT_TOO_LARGE), field="discount", code="invalid_amount")
    if total > MAX_AMOUNT:
        raise ValidationFailed(say(TOTAL_TOO_LARGE), field="lines", code="invalid_amount")
    return goods, total


def new_order_values(clean: dict, customer_id: int, order_no: str, now: datetime, warehouse_id: int | None,
                     paid: bool, refund_status: str = "none", platform_status: str | None = None,
                     platform_modified_at: datetime | None = None) -> dict:
    """The one shape of a new order row, from validated data (`validate_order_data`): pending review, every
    column set (nothing left to a default or a reload). `build_order` makes the ORM object of it, the API's
    standalone path INSERTs it as it is."""
    return {
        "order_no": order_no, "channel_id": clean["channel"].id, "channel_order_id": clean["channel_order_id"],
        "customer_id": customer_id, "warehouse_id": warehouse_id, "status": OrderStatus.PENDING_REVIEW,
        "status_before_hold": None, "hold_reason": None, "cancel_reason": None,
        "payment_status": "paid" if paid else "unpaid", "refund_status": refund_status, "currency": clean["currency"],
        "goods_total": clean["goods_total"], "shipping_fee": clean["shipping_fee"], "discount": clean["discount"],
        "tax": clean["tax"], "fees": clean["fees"], "total": clean["total"],
        "cash_on_delivery": clean["cash_on_delivery"],
        "receiver_name": clean["receiver"], "receiver_phone": clean["receiver_phone"],
        "receiver_phone_index": customers.contact_index(clean["receiver_phone"], clean["protected"]),
        **customers.receiver_search_indexes(clean["receiver"], clean["receiver_phone"], clean["protected"]),
        "platform_ciphertext": None, "platform_buyer_key": None, **customers.protected_columns(clean["protected"]),
        "province": clean["province"], "city": clean["city"], "district": clean["district"],
        "street": clean["street"], "postal_code": clean["postal_code"], "placed_at": clean["placed_at"],
        "paid_at": clean["paid_at"], "shipped_at": None, "created_at": now, "updated_at": now, "version": 1,
        "platform_status": platform_status, "platform_modified_at": platform_modified_at, "anonymised_at": None}


def new_line_values(clean: dict) -> list[dict]:
    """The rows of a new order's lines (order_id still to be set), in the order given."""
    return [{"sku_id": sku.id, "quantity": qty, "unit_price": price, "line_total": line_total(qty, price)}
            for sku, qty, price in clean["lines"]]


def build_order(clean: dict, customer, order_no: str, now: datetime, warehouse_id: int | None,
                paid: bool, refund_status: str = "none", platform_status: str | None = None,
                platform_modified_at: datetime | None = None, warehouse=None) -> Order:
    """A new order and its lines as ORM objects (`new_order_values`), for the single and the batch path alike."""
    lines = [OrderLine(**values, sku=sku) for values, (sku, _q, _p) in zip(new_line_values(clean), clean["lines"])]
    order = Order(**new_order_values(clean, customer.id, order_no, now, warehouse_id, paid, refund_status,
                                     platform_status, platform_modified_at),
                  channel=clean["channel"], customer=customer, lines=lines)
    if warehouse is not None:  # known from the planning read: no load of it for the order's JSON
        set_committed_value(order, "warehouse", warehouse)
    return order


_ORDER_COLUMNS = [column.key for column in Order.__table__.columns if column.key != "id"]
_LINE_COLUMNS = [column.key for column in OrderLine.__table__.columns if column.key != "id"]


def write_new_orders(orders: list[Order]) -> None:
    """Write built orders and their lines, each as one executemany of a fixed statement text
    (`shared.database.insert_rows`), and set their ids; the objects themselves stay as they are (out of the
    session). The one way a new order's rows are written, for the single and the batch path."""
    order_ids = insert_rows(Order.__table__, [{key: getattr(order, key) for key in _ORDER_COLUMNS}
                                              for order in orders], ids=True)
    lines, line_rows = [], []
    for order, order_id in zip(orders, order_ids):
        order.id = order_id
        for line in order.lines:
            line.order_id = order_id
            lines.append(line)
            line_rows.append({key: getattr(line, key) for key in _LINE_COLUMNS})
    for line, line_id in zip(lines, insert_rows(OrderLine.__table__, line_rows, ids=True)):
        line.id = line_id


def insert_new_orders(orders: list[Order]) -> None:
    """`write_new_orders`, then make the objects persistent in the session as they are, without the unit of work
    or a reload."""
    if not orders:
        return
    write_new_orders(orders)
    lines = [line for order in orders for line in order.lines]
    for line in lines:
        make_transient_to_detached(line)
    for order in orders:
        make_transient_to_detached(order)
        db.session.add(order)
    db.session.add_all(lines)
    session = db.session()
    transaction = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault(_ATTACHED, []).append((transaction, [*orders, *lines]))


# Objects attached as already persistent are not forgotten by a rollback as new ones are: a savepoint or a
# transaction that rolls back their INSERTs must take them out of the session too (their ids may come again).
_ATTACHED = "orderloom_attached_rows"


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, previous_transaction) -> None:
    if not session.info.get(_ATTACHED):
        return
    kept = []
    for transaction, objects in session.info[_ATTACHED]:
        if pending.within(transaction, previous_transaction):
            for obj in objects:
                if obj in session:
                    session.expunge(obj)
        else:
            kept.append((transaction, objects))
    session.info[_ATTACHED] = kept


@event.listens_for(Session, "after_commit")
def _attached_rows_committed(session: Session) -> None:
    if not session.in_nested_transaction():
        session.info.pop(_ATTACHED, None)


_INSERT_RESERVATIONS = insert(Reservation.__table__)


def insert_reservations(rows: list[dict]) -> None:
    """Reservation rows (order_id, order_line_id, sku_id, warehouse_id, quantity, expires_at) in one INSERT."""
    if rows:
        now = utc_now()
        send_rows(db.session.connection(), _INSERT_RESERVATIONS, [
            {**row, "status": "active", "created_at": now, "closed_at": None} for row in rows])


def settle_new(order: Order, target: str, actor: Actor, reason: str | None, paid: bool) -> None:
    """Bring a just-built order from pending review to where it belongs, through the transition table (declared
    move, the actor's role, in-memory guards) with the audit events the one-at-a-time moves write. A new order
    holds nothing yet, so the effects (release, consume) have nothing to do."""
    def fire(to: str, why: str | None) -> None:
        transition = find_transition(order.status, to)
        if transition is None or not may_fire(transition, actor.role):
            raise InvalidTransition(say(NEW_CANNOT_BECOME, target=_status(to)), field="to", code="invalid_transition")
        for guard in transition.guards:
            problem = GUARDS[guard](order) if guard in IN_MEMORY_GUARDS else None
            if problem:
                raise InvalidTransition(say(GUARD_REFUSED, order_no=order.order_no, target=_status(to),
                                            problem=problem),
                                        field="to",
                                        code="guard_failed")
        before = audit_snapshot(order)
        if to == OrderStatus.ON_HOLD:
            order.status_before_hold, order.hold_reason = order.status, why
        if to == OrderStatus.CANCELLED:
            order.cancel_reason = why
        order.status = transition.target
        audit.record(actor, "order.transition", "order", order.order_no, before=before, after=audit_snapshot(order),
                     reason=why)

    if paid and target != OrderStatus.PENDING_REVIEW:
        fire(OrderStatus.CONFIRMED, "paid order passed auto-review")
    if target in (OrderStatus.ON_HOLD, OrderStatus.CANCELLED):
        fire(target, reason)
    elif target in (OrderStatus.SHIPPED, OrderStatus.COMPLETED):
        # First seen shipped or done elsewhere: recorded as the platform says, not a move of ours.
        before = audit_snapshot(order)
        order.status = target
        audit.record(actor, "order.platform_state", "order", order.order_no, before=before,
                     after=audit_snapshot(order), reason=f"first seen {target} on the platform")


def create_order(data: dict, actor: Actor, direct_only: bool = False, reserve: bool = True,
                 auto_confirm: bool | None = None, standalone: bool = False):
    """Create an order and reserve every line, or nothing at all.

    `reserve=False` records an order first seen after it left the warehouse or was closed (channel sync);
    `auto_confirm` defaults to "it is paid".

    `standalone=True` (the API's hot path): the caller's transaction holds nothing else and is rolled back on any
    refusal, so no savepoint is taken and everything is written with Core statements; the answer is a `NewOrder`
    view (the order's JSON needs nothing more), not an ORM object. Otherwise the order is made in a savepoint
    (rolled back on a refusal, the caller's transaction kept) and returned as a persistent ORM `Order`.

    Either way a fixed handful of statements (see docs/PERFORMANCE.md). Stock rows are the contended resource,
    so everything that does not need them happens first and the conditional reservation UPDATEs come last: a
    hot SKU's row stays locked only from its reservation to the commit.

    Refused for stock: an order of a priority customer waits with offers instead (shared.services.stock_offers).
    """
    try:
        if standalone and reserve:
            return _create_standalone(data, actor, direct_only, auto_confirm)
        return _create_reserved(data, actor, direct_only, reserve, auto_confirm)
    except InsufficientStock:
        if not reserve:
            raise
        from shared.services import stock_offers

        waiting = stock_offers.wait_instead(data, actor, direct_only=direct_only, auto_confirm=auto_confirm)
        if waiting is None:
            raise
        return waiting


def _create_reserved(data: dict, actor: Actor, direct_only: bool, reserve: bool, auto_confirm: bool | None):
    """`create_order` in a savepoint, returning a persistent ORM `Order`."""
    clean = validate_order_data(data)
    channel = clean["channel"]
    _check_direct(channel, direct_only)
    planned_in: dict = {}  # the warehouses the plan read, by id
    plans = stock_service.plan_lines([(sku, qty) for sku, qty, _price in clean["lines"]], planned_in) if reserve else []
    warehouse_id = stock_service.common_warehouse(plans) if reserve else None
    now = utc_now()
    expires_at = _expiry(clean, now)
    if auto_confirm is None:
        auto_confirm = clean["paid_at"] is not None
    held = _approval_rule(clean, actor)
    if held is not None:
        auto_confirm = False  # held in pending review until approved (approvals.APPLY confirms a paid one)
    try:
        with db.session.begin_nested():
            customer = customers.find_or_create(clean["customer_name"], clean["customer_phone"],
                                                clean["customer_email"], actor, protected=clean["protected"])
            order = build_order(clean, customer, _number(clean), now, warehouse_id, paid=clean["paid_at"] is not None,
                                warehouse=planned_in.get(warehouse_id))
            audit.record(actor, "order.create", "order", order.order_no, after=audit_snapshot(order))
            if auto_confirm:
                settle_new(order, OrderStatus.CONFIRMED, SYSTEM, None, paid=True)
            insert_new_orders([order])  # the unique (channel, channel order id) refuses a duplicate here
            if reserve:
                first = _reserve_lines(order, plans, warehouse_id, now, expires_at)
                if first != warehouse_id:  # another order took the planned stock meanwhile
                    order.warehouse_id = first
                    if first in planned_in:
                        set_committed_value(order, "warehouse", planned_in[first])
            outbox.order_event(order, "order.created")
            if held is not None:
                order.approval_request = _hold_for_approval(order.order_no, clean, held, actor)
    except IntegrityError:
        existing = _existing_order_no(channel.id, clean["channel_order_id"])
        if existing is None:
            raise
        raise _duplicate(clean, existing)
    return order


def _approval_context(clean: dict) -> dict:
    """What the approval rules of order creation look at (approvals.CONDITIONS)."""
    from shared.services import approvals

    context = {"amount": clean["total"], "currency": clean["currency"], "channel": clean["channel"].code}
    if approvals.rules_look_at("order.create", "custom_made"):  # one read, only when a rule asks
        from shared.models import Sku

        ids = [sku.id for sku, _qty, _price in clean["lines"]]
        context["custom_made"] = bool(db.session.execute(select(Sku.id).where(
            Sku.id.in_(ids), Sku.custom_made.is_(True)).limit(1)).first())
    return context


def _approval_rule(clean: dict, actor: Actor):
    """The approval rule a staff member's new order falls under (None: none, or made by the system/a platform).
    Answered from the process's copy of the rules: no statement unless a rule needs the SKUs' custom-made flag."""
    if actor.id is None:
        return None
    from shared.services import approvals

    return approvals.required("order.create", _approval_context(clean))


def _hold_for_approval(order_no: str, clean: dict, rule, actor: Actor):
    """The new order stays pending review, locked, with an approval request (its id answered as `approval_id`)."""
    from shared.services import approvals

    return approvals.request("order.create", order_no, _approval_context(clean), {"order_no": order_no}, actor,
                             rule=rule, summary=f"{order_no} {clean['currency']} {clean['total']}")


class NewOrder(SimpleNamespace):
    """An order just written by the standalone path: its columns (`new_order_values`), `id`, and what its JSON
    names (`channel`, `customer`, `warehouse`, `lines` with their `sku`), read by the same serializer as an Order."""

    @property
    def platform_protected(self) -> bool:
        return self.platform_ciphertext is not None


_ORDERS, _LINES = Order.__table__, OrderLine.__table__
# Built once per dialect: the duplicate is refused by the unique (channel, channel order id), no row returned.
_INSERT_ORDER = {name: dialect_insert(_ORDERS).on_conflict_do_nothing(
                     index_elements=[_ORDERS.c.channel_id, _ORDERS.c.channel_order_id]).returning(_ORDERS.c.id)
                 for name, dialect_insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))}
_INSERT_LINES = insert(_LINES).returning(_LINES.c.id, sort_by_parameter_order=True)


def _create_standalone(data: dict, actor: Actor, direct_only: bool, auto_confirm: bool | None) -> NewOrder:
    """`create_order(..., standalone=True)`: SKUs and their free stock in one read, the channel, the customer found
    or made, then the order (INSERT ... ON CONFLICT DO NOTHING: a duplicate writes nothing), its lines, the
    reservations, the outbox row and the audit events as Core statements, and last the conditional stock UPDATEs
    (stock module)."""
    raw_lines = data.get("lines") if isinstance(data, dict) else None
    codes = [line["sku"].strip() for line in raw_lines if isinstance(line, dict) and isinstance(line.get("sku"), str)
             ] if isinstance(raw_lines, list) and len(raw_lines) <= MAX_LINES else []
    skus, free, warehouses = stock_service.skus_with_free_stock(codes) if codes else ({}, {}, {})
    channel = channel_ref(check.text(data.get("channel"), "channel", 8)) if isinstance(data, dict) else None
    clean = validate_order_data(data, channel=channel, skus=skus)
    channel = clean["channel"]
    _check_direct(channel, direct_only)
    if any(skus.get(sku.code) is not sku for sku, _qty, _price in clean["lines"]):
        free = None  # the lines name SKUs the first read did not see: the plan reads them itself
    plans = stock_service.plan_lines([(sku, qty) for sku, qty, _price in clean["lines"]], warehouses, free)
    warehouse_id = stock_service.common_warehouse(plans)
    now = utc_now()
    expires_at = _expiry(clean, now)
    paid = clean["paid_at"] is not None
    customer = customers.find_or_create_ref(clean["customer_name"], clean["customer_phone"],
                                            clean["customer_email"], actor, protected=clean["protected"])
    line_rows = new_line_values(clean)
    values = new_order_values(clean, customer.id, _number(clean, block=True), now, warehouse_id, paid)
    order = NewOrder(**values, id=None, channel=channel, customer=customer, warehouse=warehouses.get(warehouse_id),
                     lines=[SimpleNamespace(id=None, sku=sku, **row)
                            for row, (sku, _qty, _price) in zip(line_rows, clean["lines"])])
    audit.record(actor, "order.create", "order", order.order_no, after=audit_snapshot(order))
    held = _approval_rule(clean, actor)
    if held is None and (paid if auto_confirm is None else auto_confirm):
        settle_new(order, OrderStatus.CONFIRMED, SYSTEM, None, paid=True)
    order.approval_request = _hold_for_approval(order.order_no, clean, held, actor) if held is not None else None
    connection = db.session.connection()
    order.id = connection.execute(_INSERT_ORDER[connection.dialect.name],
                                  {key: getattr(order, key) for key in _ORDER_COLUMNS}).scalar_one_or_none()
    if order.id is None:  # the unique (channel, channel order id) refused it: the caller rolls back
        raise _duplicate(clean, _existing_order_no(channel.id, clean["channel_order_id"]))
    for row in line_rows:
        row["order_id"] = order.id
    for line, line_id in zip(order.lines, connection.execute(_INSERT_LINES, line_rows).scalars().all()):
        line.id, line.order_id = line_id, order.id
    # Every other write goes in before the conditional UPDATEs, as the plan expects them to land: a hot SKU's
    # row is then locked from its UPDATE to the COMMIT only.
    rows = [{"order_id": order.id, "order_line_id": line.id, "sku_id": line.sku_id,
             "warehouse_id": _preferred(plan, warehouse_id)[0], "quantity": line.quantity, "expires_at": expires_at}
            for line, plan in zip(order.lines, plans)]
    insert_reservations(rows)
    event_id = outbox.order_event(order, "order.created")
    audit.write_pending()  # the audit INSERT too: after the UPDATEs, only the COMMIT
    moved = {}
    for line, plan, row in sorted(zip(order.lines, plans, rows), key=lambda triple: triple[0].sku_id):
        taken = stock_service.place_line(line.sku_id, line.quantity, _preferred(plan, warehouse_id), now)
        if taken is None:
            raise _short(line)
        if taken != row["warehouse_id"]:
            moved[line.id] = taken
    if moved:  # rare: another order took the planned stock between the plan and the UPDATE
        _correct_placement(order, moved, event_id, warehouses)
    return order


_MOVE_RESERVATION = (update(Reservation.__table__)
                     .where(Reservation.__table__.c.order_line_id == bindparam("line_id"))
                     .values(warehouse_id=bindparam("warehouse_id")))
_MOVE_ORDER = (update(_ORDERS).where(_ORDERS.c.id == bindparam("order_id"))
               .values(warehouse_id=bindparam("warehouse_id")))


def _correct_placement(order: NewOrder, moved: dict[int, int], event_id: str, warehouses: dict) -> None:
    """The standalone path wrote its reservations, order and event where the plan expected the stock; some lines
    were taken elsewhere (`moved`: line id → warehouse): the rows say so now, and so does the event."""
    connection = db.session.connection()
    connection.execute(_MOVE_RESERVATION, [{"line_id": line_id, "warehouse_id": warehouse_id}
                                           for line_id, warehouse_id in moved.items()])
    first = moved.get(order.lines[0].id)
    if first is not None and first != order.warehouse_id:
        order.warehouse_id = first
        order.warehouse = warehouses.get(first) or db.session.get(Warehouse, first)
        connection.execute(_MOVE_ORDER, {"order_id": order.id, "warehouse_id": first})
        outbox.replace_snapshot(event_id, "order.created", order)


def _preferred(plan: list[int], warehouse_id: int | None) -> list[int]:
    """The order's warehouse first where the plan saw the line there, then the rest of the plan."""
    return [warehouse_id, *plan] if warehouse_id in plan else plan


def _short(line) -> InsufficientStock:
    return InsufficientStock(say(NOT_ENOUGH_STOCK, sku=line.sku.code, wanted=line.quantity,
                                 available=stock_service.available_for(line.sku_id)), field="lines",
                             code="insufficient_stock")


def _check_direct(channel: Channel, direct_only: bool) -> None:
    if direct_only and not channel.is_direct:
        raise ValidationFailed(say(NOT_DIRECT_CHANNEL, channel=channel.name),
                               field="channel", code="channel_not_direct")


def _expiry(clean: dict, now: datetime) -> datetime | None:
    """When an unpaid order's reservation runs out. Platforms close their own unpaid orders (and tell us); only
    direct channels expire here (a cash-on-delivery order is paid at the door: it holds its stock until then)."""
    if clean["paid_at"] is None and clean["channel"].is_direct and not clean["cash_on_delivery"]:
        return now + timedelta(minutes=current_app.config["UNPAID_RESERVATION_MINUTES"])
    return None


def _number(clean: dict, block: bool = False) -> str:
    return order_numbers.next_number(clean["channel"].code,
                                     local_date(clean["placed_at"], current_app.config["MERCHANT_TIMEZONE"]), block)


def _reserve_lines(order, plans: list[list[int]], warehouse_id: int | None, now: datetime,
                   expires_at: datetime | None) -> int:
    """Reserve every line of a just-written order (stock module) and write its reservation rows; the warehouse of
    the first line. Stock rows are locked in SKU order, so two orders naming the same SKUs never wait on each
    other in a circle (a deadlock)."""
    rows = []
    for line, plan in sorted(zip(order.lines, plans), key=lambda pair: pair[0].sku_id):
        taken = stock_service.place_line(line.sku_id, line.quantity, _preferred(plan, warehouse_id), now)
        if taken is None:
            raise _short(line)
        rows.append({"order_id": order.id, "order_line_id": line.id, "sku_id": line.sku_id,
                     "warehouse_id": taken, "quantity": line.quantity, "expires_at": expires_at})
    insert_reservations(rows)
    return next(r["warehouse_id"] for r in rows if r["order_line_id"] == order.lines[0].id)


def _existing_order_no(channel_id: int, channel_order_id: str) -> str | None:
    return db.session.execute(select(Order.order_no).where(
        Order.channel_id == channel_id, Order.channel_order_id == channel_order_id)).scalar_one_or_none()


def _duplicate(clean: dict, existing: str | None) -> Conflict:
    return Conflict(say(DUPLICATE_ORDER, channel_order_id=clean['channel_order_id'], order_no=existing),
                    field="channel_order_id", code="duplicate_order")


def audit_snapshot(order: Order) -> dict:
    return {"status": order.status, "payment_status": order.payment_status, "refund_status": order.refund_status,
            "total": order.total, "currency": order.currency, "warehouse_id": order.warehouse_id}


# Guards: each returns None when the move may go ahead, or the reason it may not.
def _guard_has_lines(order: Order) -> str | None:
    return None if order.lines else say(GUARD_NO_LINES)


def _guard_is_paid(order: Order) -> str | None:
    return None if cash_on_delivery.may_ship(order) else say(GUARD_NOT_PAID)


def _guard_stock_reserved(order: Order) -> str | None:
    reserved = db.session.execute(
        select(Reservation.order_line_id).where(Reservation.order_id == order.id, Reservation.status == "active")
    ).scalars().all()
    missing = {line.id for line in order.lines} - set(reserved)
    return say(GUARD_NOT_RESERVED) if missing else None


GUARDS = {"has_lines": _guard_has_lines, "is_paid": _guard_is_paid, "stock_reserved": _guard_stock_reserved}
IN_MEMORY_GUARDS = frozenset({"has_lines", "is_paid"})  # answered from the loaded order, no query


def _effect_release_stock(order: Order, actor: Actor) -> None:
    stock_service.release_reservations(order)


def _effect_consume_stock(order: Order, actor: Actor) -> None:
    stock_service.consume_reservations(order, actor)
    order.shipped_at = utc_now()


EFFECTS = {"release_stock": _effect_release_stock, "consume_stock": _effect_consume_stock}


def _apply(order: Order, transition: Transition, actor: Actor, reason: str | None) -> Order:
    for guard in transition.guards:
        problem = GUARDS[guard](order)
        if problem:
            raise InvalidTransition(say(GUARD_REFUSED, order_no=order.order_no, target=_status(transition.target),
                                        problem=problem),
                                    field="to", code="guard_failed")
    before = audit_snapshot(order)
    for effect in transition.effects:
        EFFECTS[effect](order, actor)
    if transition.target == OrderStatus.ON_HOLD:
        order.status_before_hold, order.hold_reason = order.status, reason
    if transition.target == OrderStatus.CANCELLED:
        order.cancel_reason, order.status_before_hold = reason, None
    order.status = transition.target
    order.updated_at = utc_now()
    db.session.flush()
    audit.record(actor, "order.transition", "order", order.order_no, before=before, after=audit_snapshot(order),
                 reason=reason)
    outbox.order_event(order, f"order.{order.status}")
    return order


def transition_many(orders: list[Order], target: str, actor: Actor, reason: str | None = None,
                    guards_checked: bool = False, skip_stale: bool = False, values: dict | None = None) -> list[Order]:
    """One lifecycle move for many orders as a set (allocation, wave release, delivered parcels), in a fixed
    number of statements: every move checked against the transition table in memory, then one versioned UPDATE
    for the whole set, one audit parameter set, one outbox INSERT. Returns the orders moved.

    An order changed since it was read (its version moved on) refuses the whole set with Conflict
    `order_changed`, nothing moved; with `skip_stale` it is left out and the others move. Only for declared
    moves without effects; a move with guards needs the caller to have checked them for every order
    (`guards_checked`), as the batch allocation does from the rows it already holds. `values`: further columns
    set on every order of the set (the warehouse allocation chose), in the same UPDATE."""
    orders = list(dict.fromkeys(orders))  # an order named twice moves once
    if not orders:
        return []
    now = utc_now()
    planned = []
    for order in orders:
        transition = find_transition(order.status, target)
        if transition is None:
            raise InvalidTransition(say(CANNOT_BECOME, status=_status(order.status), target=_status(target)),
                                    field="to",
                                    code="invalid_transition")
        if not may_fire(transition, actor.role):
            raise Forbidden(say(ROLE_MAY_NOT_MOVE_TO, role=role_name(actor.role), target=_status(target)),
                            code="transition_forbidden")
        if transition.effects or (transition.guards and not guards_checked):
            raise ValueError(f"{order.status} → {target} has guards or effects: move these orders one at a time")
        planned.append((order, transition, audit_snapshot(order)))
    db.session.flush()  # changes the caller made (a warehouse chosen) go first: the versions below are current
    values = values or {}
    columns = ["status", "updated_at", *values]
    rows = [{"id": order.id, "version": order.version, "status": transition.target.value, "updated_at": now,
             **values} for order, transition, _before in planned]
    if skip_stale:
        moved_ids = {row_id for (row_id,) in sets.update_rows(Order, rows, columns,
                                                              match=("id", "version"), increment="version",
                                                              returning=["id"], expire=False)}
    else:
        with db.session.begin_nested():  # a short count rolls the savepoint back: nothing moved
            moved_ids = {row_id for (row_id,) in sets.update_rows(Order, rows, columns,
                                                                  match=("id", "version"), increment="version",
                                                                  returning=["id"], expire=False)}
            if len(moved_ids) < len(rows):
                stale = sorted(order.order_no for order, _t, _b in planned if order.id not in moved_ids)
                raise Conflict(say(CHANGED_MEANWHILE, orders=", ".join(stale[:10])), code="order_changed")
    moved = []
    for order, transition, before in planned:
        if order.id in moved_ids:
            for key, value in (("status", transition.target), ("updated_at", now), ("version", order.version + 1),
                               *values.items()):
                set_committed_value(order, key, value)
            moved.append((order, before))
    audit.record_many(actor, "order.transition", "order",
                      [(order.order_no, before, audit_snapshot(order)) for order, before in moved], reason=reason)
    by_event: dict[str, list[Order]] = {}
    for order, _before in moved:
        by_event.setdefault(f"order.{order.status}", []).append(order)
    for event_type, group in by_event.items():
        outbox.order_events(group, event_type)
    return [order for order, _before in moved]


def transition_order(order: Order, target: str, actor: Actor, reason: str | None = None, *,
                     tell_customer: bool = True) -> Order:
    """Fire one lifecycle transition: declared, allowed for the actor's role, guards passed, audited."""
    reason = check.text(reason, "reason", 500, required=False)
    try:
        target_status = OrderStatus(target)
    except ValueError:
        raise ValidationFailed(say(NOT_A_STATUS, target=str(target)[:40]), field="to", code="unknown_status")
    if order.status == OrderStatus.ON_HOLD and target_status == order.status_before_hold:
        return release_hold(order, actor, reason)
    transition = find_transition(order.status, target_status)
    if transition is None:
        raise InvalidTransition(say(CANNOT_BECOME, status=_status(order.status), target=_status(target_status)),
                                field="to", code="invalid_transition")
    if not may_fire(transition, actor.role):
        raise Forbidden(say(ROLE_MAY_NOT_MOVE, role=role_name(actor.role), status=_status(order.status),
                            target=_status(target_status)),
                        field="to", code="transition_forbidden")
    if transition.needs_reason and not reason:
        raise ValidationFailed(say(NEEDS_REASON), field="reason", code="reason_required")
    held = order.approval_request = _approval_gate(order, target_status, actor, reason)
    if held is not None:  # nothing moved: the move waits for approval
        return order
    _apply(order, transition, actor, reason)
    # One mail per cancel: a caller that tells the customer itself (the answer to their own request) says so.
    if target_status == OrderStatus.CANCELLED and tell_customer and cancel_notifies(order, actor):
        from shared.services import notifications

        notifications.notify_customer(order, "cancelled_by_shop")
    return order


class CancelConsequence(NamedTuple):
    """What cancelling an order does besides changing its status: the reserved units given back to stock, whether
    the customer gets a mail, whether it was paid (so a refund follows), whether an approval rule may hold it."""

    released_units: int
    customer_told: bool
    paid: bool


def cancel_notifies(order: Order, actor: Actor) -> bool:
    """A cancel by staff tells the customer by mail when there is an address to mail (a platform's own cancel, made
    by the system from the channel's sync, is told by the platform)."""
    from shared.services import notifications

    return actor.role != SYSTEM.role and notifications.reaches_customer(order)


def cancel_consequence(order: Order, actor: Actor) -> CancelConsequence:
    """What a cancel of this order by `actor` would do now, for the confirmation asked before it."""
    units = sum(r.quantity for r in order.reservations if r.status == "active")
    return CancelConsequence(units, cancel_notifies(order, actor), order.payment_status == "paid")


# Moves a role could make from other states that this order's state no longer allows: shown disabled, with why.
CLOSED_FOR_MOVES = (OrderStatus.SHIPPED, OrderStatus.COMPLETED)
WHY_NOT = {
    (OrderStatus.CANCELLED, "shipped"): N_("The order has shipped: it can no longer be cancelled. The customer "
                                           "sends it back through an after-sales return."),
    (OrderStatus.ON_HOLD, "shipped"): N_("The order has shipped: there is nothing left to hold."),
    (OrderStatus.CANCELLED, "manager"): N_("Picking has started: only a manager may cancel now, because the goods "
                                           "must go back to the shelf."),
}


def blocked_moves(order: Order, role: str) -> list[dict]:
    """Cancel and hold where this role could make them on an open order, but not on this one: {"to", "why"}."""
    offered = {m["to"] for m in allowed_moves(order, role)}
    blocked = []
    for target in (OrderStatus.CANCELLED, OrderStatus.ON_HOLD):
        if target.value in offered or not any(t.target == target and may_fire(t, role) for t in TRANSITIONS):
            continue
        if order.status in CLOSED_FOR_MOVES:
            blocked.append({"to": target.value, "why": say(WHY_NOT[(target, "shipped")])})
        elif target == OrderStatus.CANCELLED and find_transition(order.status, target) is not None:
            blocked.append({"to": target.value, "why": say(WHY_NOT[(target, "manager")])})
    return blocked


def _approval_gate(order: Order, target: OrderStatus, actor: Actor, reason: str | None):
    """An order with a pending approval does not move (409 approval_pending); one whose creation was held is
    confirmed only once approved; confirming, or cancelling a paid order, may itself need approval."""
    from shared.services import approvals

    approvals.assert_not_locked("order", order.order_no, ("status",))
    if target == OrderStatus.CONFIRMED:
        approvals.assert_granted("order", order.order_no, "order.create")
        operation = "order.confirm"
    elif target == OrderStatus.CANCELLED and order.payment_status == "paid":
        operation = "order.cancel_paid"
    else:
        return None
    context = {"amount": order.total, "currency": order.currency, "channel": order.channel.code}
    return approvals.gate(operation, order.order_no, context, {"to": target.value, "reason": reason}, actor,
                          summary=f"{order.order_no} → {target.value}", lock_checked=True)


# A customer cancels by themselves until stock is allocated to a warehouse; later the warehouse decides
# (shared/services/customer_requests.py).
CUSTOMER_CANCELLABLE = (OrderStatus.PENDING_REVIEW, OrderStatus.CONFIRMED)


def standing_status(order: Order) -> str:
    """The status that counts for what may still be done to an order (on hold: where it was before the hold)."""
    return _standing(order)


def cancel_for_customer(order: Order, actor: Actor, reason: str) -> Order:
    """The customer cancels their own order before allocation: the declared move to cancelled with its effects (the
    stock reservation released), audited with the customer as actor. Who may is the owner, which the customer site
    checks by loading the order owner-scoped, so the staff permission of the move is not asked; an approval
    pending on the order still stops it, and the approval rules do not hold a customer's own cancel (approvals
    gate staff users only)."""
    reason = check.text(reason, "reason", 500)
    if _standing(order) not in CUSTOMER_CANCELLABLE:
        raise InvalidTransition(say(CUSTOMER_CANCEL_TOO_LATE, order_no=order.order_no, status=_status(order.status)),
                                field="to", code="invalid_transition")
    transition = find_transition(order.status, OrderStatus.CANCELLED)
    if transition is None:
        raise InvalidTransition(say(CANNOT_BECOME, status=_status(order.status), target=_status(OrderStatus.CANCELLED)),
                                field="to",
                                code="invalid_transition")
    from shared.services import approvals

    approvals.assert_not_locked("order", order.order_no, ("status",))
    return _apply(order, transition, actor, reason)


def release_hold(order: Order, actor: Actor, reason: str | None) -> Order:
    if order.status != OrderStatus.ON_HOLD:
        raise InvalidTransition(say(NOT_ON_HOLD, order_no=order.order_no), field="to", code="invalid_transition")
    if not can(actor.role, "holds", "approve"):
        raise Forbidden(say(ROLE_MAY_NOT_RELEASE, role=role_name(actor.role)), field="to", code="transition_forbidden")
    reason = check.text(reason, "reason", 500, required=RELEASE_HOLD_NEEDS_REASON)
    before = audit_snapshot(order)
    order.status, order.status_before_hold, order.hold_reason = order.status_before_hold, None, None
    order.updated_at = utc_now()
    db.session.flush()
    audit.record(actor, "order.release_hold", "order", order.order_no, before=before, after=audit_snapshot(order),
                 reason=reason)
    outbox.order_event(order, "order.hold_released")
    return order


def allowed_moves(order: Order, role: str) -> list[dict]:
    """The moves a role may offer on this order: used to show only the buttons that will work."""
    moves = [{"to": t.target.value, "needs_reason": t.needs_reason}
             for t in transitions_from(order.status) if may_fire(t, role)]
    if order.status == OrderStatus.ON_HOLD and can(role, "holds", "approve"):
        moves.append({"to": order.status_before_hold, "needs_reason": RELEASE_HOLD_NEEDS_REASON, "release": True})
    return moves


def record_payment(order: Order, paid_at: datetime, actor: Actor) -> Order:
    """Mark an order paid (e.g. a bank transfer to the own shop); its reservation no longer expires."""
    if not can(actor.role, "payments", "edit"):
        raise Forbidden(say(ROLE_MAY_NOT_PAY, role=role_name(actor.role)), code="payment_forbidden")
    if order.payment_status == "paid":
        raise Conflict(say(ALREADY_PAID, order_no=order.order_no), code="already_paid")
    if order.status in (OrderStatus.CANCELLED, OrderStatus.CLOSED):
        raise Conflict(say(ORDER_IS_CLOSED, order_no=order.order_no, status=_status(order.status)), code="order_closed")
    before = audit_snapshot(order)
    order.payment_status, order.paid_at, order.updated_at = "paid", paid_at, utc_now()
    for reservation in order.reservations:
        if reservation.status == "active":
            reservation.expires_at = None
    db.session.flush()
    audit.record(actor, "order.payment", "order", order.order_no, before=before, after=audit_snapshot(order))
    outbox.order_event(order, "order.paid")
    return order


REFUND_STATUSES = ("none", "requested", "partially_refunded", "refunded")


def record_refund_status(order: Order, refund_status: str, actor: Actor, reason: str) -> Order:
    """The platform's refund state (requested, partly or fully refunded), audited and announced."""
    if refund_status not in REFUND_STATUSES:
        raise ValidationFailed(say(NOT_A_REFUND_STATUS, status=str(refund_status)[:40]), field="refund_status")
    before = audit_snapshot(order)
    order.refund_status, order.updated_at = refund_status, utc_now()
    audit.record(actor, "order.refund_status", "order", order.order_no, before=before, after=audit_snapshot(order),
                 reason=reason)
    outbox.order_event(order, "order.refund_changed")
    return order


def record_platform_state(order: Order, status: str, actor: Actor, reason: str) -> Order:
    """An order first seen already shipped or completed elsewhere: recorded as such, with no stock moved."""
    if status not in (OrderStatus.SHIPPED, OrderStatus.COMPLETED) or order.reservations:
        raise InvalidTransition(say(CANNOT_RECORD_AS, order_no=order.order_no, status=_status(status)),
                                code="invalid_transition")
    before = audit_snapshot(order)
    order.status, order.updated_at = status, utc_now()
    audit.record(actor, "order.platform_state", "order", order.order_no, before=before, after=audit_snapshot(order),
                 reason=reason)
    outbox.order_event(order, f"order.{status}")
    return order


def address_changed(order: Order, actor: Actor, before: dict, after: dict, fields: list[str],
                    reason: str | None = None) -> None:
    """Audit an address change (personal values masked) and announce it; the caller has set the fields.

    The phone's blind index follows the phone here, so a search by the new number finds the order."""
    order.receiver_phone_index = crypto.blind_index("phone", order.receiver_phone)
    for column, value in customers.receiver_search_indexes(order.receiver_name, order.receiver_phone, None).items():
        setattr(order, column, value)
    order.updated_at = utc_now()
    audit.record(actor, "order.address_change", "order", order.order_no, before=before,
                 after={**after, "fields": sorted(fields)},
                 reason=reason or f"changed on the platform: {', '.join(fields)}")
    outbox.order_event(order, "order.address_changed")


RECEIVER_COLUMNS = ("receiver_name", "receiver_phone", "province", "city", "district", "street", "postal_code")


def masked_receiver(values) -> dict:
    """The receiver as audit rows keep it (plain JSON): personal fields masked, never in full. `values` is an
    Order or a mapping of its receiver columns."""
    get = values.get if isinstance(values, dict) else lambda name: getattr(values, name)
    return {"receiver": masked_name(get("receiver_name")), "phone": masked_phone(get("receiver_phone")),
            "address": masked_address(get("province"), get("city"), get("district"))}


# --- changes staff make to an order: its address, its prices ----------------------------------------------------

# Until the parcel is packed the label can still be printed again; after that the goods are in a box with a label.
ADDRESS_EDITABLE = (OrderStatus.PENDING_REVIEW, OrderStatus.CONFIRMED, OrderStatus.ALLOCATED, OrderStatus.PICKING)
# Shipped (a cash-on-delivery order is unpaid until the courier collects): the price the buyer pays is on its way.
PRICE_CLOSED = (OrderStatus.SHIPPED, OrderStatus.COMPLETED, OrderStatus.CANCELLED, OrderStatus.CLOSED)
PRICE_CHANGE_KEYS = ("lines", "discount", "shipping_fee")

ADDRESS_LOCKED = N_("the address of %(order)s cannot change any more: the order is %(status)s (an address changes "
                    "only until the parcel is packed)")
PLATFORM_ADDRESS = N_("the address of %(order)s is held by the platform (encrypted there): the buyer or the shop "
                      "changes it on the platform, and the change arrives with the next sync")
PRICE_PAID = N_("%(order)s is paid: its price no longer changes here; a refund is the way to give money back")
PRICE_CLOSED_MESSAGE = N_("%(order)s is %(status)s: its price no longer changes")
UNKNOWN_LINE = N_("line %(line)s is not a line of %(order)s")
LINE_TWICE = N_("line %(line)s is named twice")
NO_PRICE_CHANGE = N_("nothing to change: give new line prices, a discount or a shipping fee that differ from now")
UNKNOWN_CHANGE = N_("%(name)s cannot be changed here (lines, discount, shipping_fee)")
REASON_NEEDED = N_("say why the order is changed (a reason is required)")


def _reason(reason) -> str:
    if reason is None or (isinstance(reason, str) and not reason.strip()):
        raise ValidationFailed(say(REASON_NEEDED), field="reason", code="reason_required")
    return check.text(reason, "reason", 500)


def _standing(order: Order) -> str:
    """The status that counts for an edit: an order on hold counts as where it was before the hold."""
    if order.status == OrderStatus.ON_HOLD and order.status_before_hold:
        return order.status_before_hold
    return order.status


def _edit_context(order: Order, amount: Decimal) -> dict:
    """What the approval rules of an order edit look at (approvals.CONDITIONS)."""
    warehouse = order.warehouse.code if order.warehouse is not None else None
    return {"amount": amount, "currency": order.currency, "channel": order.channel.code, "warehouse": warehouse,
            "warehouses": [warehouse] if warehouse else []}


def address_editable(order: Order) -> str | None:
    """None when staff may change this order's address now, else the code of the refusal (for the page)."""
    if order.platform_protected:
        return "platform_protected"
    if _standing(order) not in ADDRESS_EDITABLE:
        return "address_locked"
    return None


def _check_address_editable(order: Order) -> None:
    refusal = address_editable(order)
    if refusal == "platform_protected":
        raise Conflict(say(PLATFORM_ADDRESS, order=order.order_no), field="shipping_address",
                       code="platform_protected")
    if refusal == "address_locked":
        raise Conflict(say(ADDRESS_LOCKED, order=order.order_no, status=order.status), field="shipping_address",
                       code="address_locked")


def change_address(order: Order, address: dict, actor: Actor, reason: str) -> Order:
    """Staff change the shipping address (the buyer asked): until the parcel is packed, never for an address the
    platform holds encrypted. Checked as a new order's address is (`read_address`). Before confirmation the change
    is made at once; after it, an approval rule may hold it (`order.address_change`), and it is then made when the
    request is approved (approvals.APPLY), with `order.approval_request` set meanwhile. The values are encrypted at
    rest by their columns, the phone's blind index follows, and the audit event keeps masked forms only."""
    from shared.services import approvals

    reason = _reason(reason)
    _check_address_editable(order)
    new = read_address(check.mapping(address, "shipping_address"))
    values = {"receiver_name": new["receiver"], **{k: new[k] for k in RECEIVER_COLUMNS if k != "receiver_name"}}
    approvals.assert_not_locked("order", order.order_no, ("address",))
    changed = sorted(name for name in RECEIVER_COLUMNS if (getattr(order, name) or None) != (values[name] or None))
    if not changed:
        raise ValidationFailed(say(SAME_ADDRESS), field="shipping_address",
                               code="no_change")
    order.approval_request = None
    if _standing(order) != OrderStatus.PENDING_REVIEW:
        # The approval request keeps the new address encrypted, as the order will: never plain in a JSON column.
        payload = {"address": crypto.encrypt(json.dumps(values, ensure_ascii=False)), "reason": reason}
        held = approvals.gate("order.address_change", order.order_no, _edit_context(order, order.total), payload,
                              actor, summary=_address_summary(order.order_no, values, changed), lock_checked=True)
        if held is not None:
            order.approval_request = held
            return order
    before = masked_receiver(order)
    for name, value in values.items():
        setattr(order, name, value)
    address_changed(order, actor, before, masked_receiver(order), changed, reason=reason)
    db.session.flush()
    return order


def _address_summary(order_no: str, values: dict, changed: list[str]) -> str:
    """What the approver reads of a held address change: the fields and the new receiver, masked."""
    shown = masked_receiver(values)
    return f"{order_no}: {', '.join(changed)} → {shown['receiver']} {shown['phone']} {shown['address']}"[:200]


def approved_address(payload: dict) -> dict:
    """The new address an approval request carries (encrypted), in the shape `change_address` takes."""
    values = json.loads(crypto.decrypt(payload["address"]))
    return {"receiver": values["receiver_name"], "phone": values["receiver_phone"],
            **{k: values[k] for k in ("province", "city", "district", "street", "postal_code")}}


def price_editable(order: Order) -> str | None:
    """None when the order's prices may change now, else the code of the refusal (for the page)."""
    if order.status in PRICE_CLOSED:
        return "order_closed"
    if order.payment_status != "unpaid":
        return "paid"
    return None


def _read_price_changes(order: Order, changes) -> dict:
    """New unit prices by line id, and a new discount and shipping fee, each only where given; money as at
    creation (`parse_money`: two decimals, never negative)."""
    check.mapping(changes, "body")
    for name in changes:
        if name not in PRICE_CHANGE_KEYS:
            raise ValidationFailed(say(UNKNOWN_CHANGE, name=str(name)[:40]), field=str(name)[:40],
                                   code="unknown_field")
    own = {line.id: line for line in order.lines}
    prices = {}
    raw_lines = changes.get("lines") or []
    if not isinstance(raw_lines, list) or len(raw_lines) > MAX_LINES:
        raise ValidationFailed(say(PRICE_LINES_SHAPE), field="lines", code="invalid_type")
    for index, raw in enumerate(raw_lines):
        field = f"lines[{index}]"
        check.mapping(raw, field)
        line_id = raw.get("id")
        if isinstance(line_id, str) and line_id.strip().isdigit():
            line_id = int(line_id.strip())
        if isinstance(line_id, bool) or not isinstance(line_id, int) or line_id not in own:
            raise ValidationFailed(say(UNKNOWN_LINE, line=str(line_id)[:20], order=order.order_no),
                                   field=f"{field}.id", code="unknown_line")
        if line_id in prices:
            raise ValidationFailed(say(LINE_TWICE, line=line_id), field=f"{field}.id", code="duplicate_line")
        prices[line_id] = parse_money(raw.get("unit_price"), f"{field}.unit_price")
    clean = {"lines": prices}
    for name in ("discount", "shipping_fee"):
        if changes.get(name) is not None:
            clean[name] = parse_money(changes[name], name)
    return clean


def _amounts(order: Order) -> dict:
    return {"goods_total": order.goods_total, "shipping_fee": order.shipping_fee, "discount": order.discount,
            "total": order.total, "currency": order.currency,
            "lines": {str(line.id): line.unit_price for line in order.lines}}


def _plan_price_change(order: Order, changes, reason) -> tuple:
    """Every check of a price change, nothing written: (reason, clean changes, prices by line id, goods, total)."""
    from shared.services import approvals

    reason = _reason(reason)
    refusal = price_editable(order)
    if refusal == "order_closed":
        raise Conflict(say(PRICE_CLOSED_MESSAGE, order=order.order_no, status=order.status), field="order_no",
                       code="order_closed")
    if refusal == "paid":
        raise Conflict(say(PRICE_PAID, order=order.order_no), field="order_no", code="paid")
    clean = _read_price_changes(order, changes)
    shipping_fee = clean.get("shipping_fee", order.shipping_fee)
    discount = clean.get("discount", order.discount)
    prices = {line.id: clean["lines"].get(line.id, line.unit_price) for line in order.lines}
    goods, total = order_totals([(line.quantity, prices[line.id]) for line in order.lines], shipping_fee, discount,
                                order.fees, order.tax)
    if (all(prices[line.id] == line.unit_price for line in order.lines) and shipping_fee == order.shipping_fee
            and discount == order.discount):
        raise ValidationFailed(say(NO_PRICE_CHANGE), field="lines", code="no_change")
    approvals.assert_not_locked("order", order.order_no, ("amount",))
    return reason, clean, prices, goods, total


def check_price_change(order: Order, changes, reason) -> None:
    """Refuse a price change `change_price` would refuse, changing nothing: the API answers these before it asks
    for the second factor, as a lifecycle move does."""
    _plan_price_change(order, changes, reason)


def change_price(order: Order, changes: dict, actor: Actor, reason: str) -> Order:
    """改价: new unit prices for some lines and/or a new discount or shipping fee, while the order is unpaid and
    open; the totals are computed again by the rule of a new order (`order_totals`). Quantities, reservations and
    stock stay as they are. A sensitive operation: the edges ask for a step-up, and an approval rule may hold it
    (`order.amount_change`, amount = the new total), made when approved (approvals.APPLY). Audited with the
    amounts before and after, and the reason."""
    from shared.services import approvals

    reason, clean, prices, goods, total = _plan_price_change(order, changes, reason)
    shipping_fee = clean.get("shipping_fee", order.shipping_fee)
    discount = clean.get("discount", order.discount)
    order.approval_request = None
    payload = {"lines": [{"id": line_id, "unit_price": str(price)} for line_id, price in clean["lines"].items()],
               **{name: str(clean[name]) for name in ("discount", "shipping_fee") if name in clean},
               "reason": reason}
    context = {**_edit_context(order, total), "previous_amount": order.total, "change": total - order.total}
    held = approvals.gate("order.amount_change", order.order_no, context, payload, actor,
                          summary=f"{order.order_no} {order.currency} {order.total} → {total}", lock_checked=True)
    if held is not None:
        order.approval_request = held
        return order
    before = _amounts(order)
    for line in order.lines:
        line.unit_price, line.line_total = prices[line.id], line_total(line.quantity, prices[line.id])
    order.goods_total, order.shipping_fee, order.discount, order.total = goods, shipping_fee, discount, total
    order.updated_at = utc_now()
    db.session.flush()
    audit.record(actor, "order.price_change", "order", order.order_no, before=before, after=_amounts(order),
                 reason=reason)
    outbox.order_event(order, "order.price_changed")
    return order


def expired_unpaid_order_ids(now: datetime, limit: int = 500) -> list[int]:
    """Orders whose unpaid reservation has run out, oldest first."""
    return db.session.execute(
        select(Reservation.order_id).join(Order, Order.id == Reservation.order_id)
        .where(Reservation.status == "active", Reservation.expires_at <= now, Order.payment_status == "unpaid")
        .group_by(Reservation.order_id).order_by(Reservation.order_id).limit(limit)
    ).scalars().all()


def cancel_unpaid_many(order_ids: list[int], now: datetime) -> int:
    """Cancel expired unpaid orders as one set; returns how many were cancelled.

    Rows are locked in id order (on PostgreSQL skipping any another worker holds: the next run takes them),
    re-checked (paid meanwhile: left alone), released with one statement per (SKU, warehouse) for the whole
    set (the `release_stock` effect of the cancel transition), and each order moved through the transition
    table with its audit event and outbox row."""
    if not order_ids:
        return 0
    query = (select(Order).options(selectinload(Order.lines))
             .where(Order.id.in_(list(order_ids)), Order.payment_status == "unpaid").order_by(Order.id))
    postgres = db.session.get_bind().dialect.name == "postgresql"
    found = db.session.execute(query.with_for_update(of=Order, skip_locked=postgres)).scalars().all()
    movable = []
    for order in found:
        transition = find_transition(order.status, OrderStatus.CANCELLED)
        if transition is not None and not transition.guards \
                and set(transition.effects) <= {"release_stock"}:
            movable.append((order, transition))
    if not movable:
        return 0
    reason = f"unpaid after {current_app.config['UNPAID_RESERVATION_MINUTES']} minutes: reservation released"
    stock_service.release_for_orders([order.id for order, _t in movable], now)
    for order, transition in movable:
        before = audit_snapshot(order)
        order.cancel_reason, order.status_before_hold = reason, None
        order.status, order.updated_at = transition.target, now
        audit.record(SYSTEM, "order.transition", "order", order.order_no, before=before, after=audit_snapshot(order),
                     reason=reason)
        outbox.order_event(order, f"order.{order.status}")
    db.session.flush()
    return len(movable)


def cancel_unpaid(order_id: int, now: datetime) -> bool:
    """Cancel one unpaid order whose reservation expired; False if it was paid or changed meanwhile."""
    return cancel_unpaid_many([order_id], now) == 1
