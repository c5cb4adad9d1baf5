"""Creating many new channel orders in one transaction: the ingest fast path.

One order at a time costs about fifteen round trips and a commit (measured ~25 ms, `orderloom bench ingest`);
a batch shares them. For the new orders of a batch this path does, in a fixed number of statements:
one look-up of which orders already exist, one of the customers by phone index, one counter upsert per
channel and day for a range of order numbers, one conditional reservation UPDATE per SKU for the batch's
total (in SKU order, so concurrent batches never deadlock; issued last, just before the commit), and
multi-row INSERTs for customers, orders, lines, reservations, audit events and outbox rows. Each order is
validated exactly as `create_order` validates it.

Anything it cannot do as a whole (stock short for a SKU's total, a row a parallel worker created meanwhile)
is left to the one-order-at-a-time path, which gives each order its own outcome.
"""
from collections import defaultdict
from datetime import timedelta

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite

from shared import cash_on_delivery, order_numbers
from shared.actors import SYSTEM
from shared.channels.canonical import CanonicalOrder
from shared.extensions import db
from shared.lifecycle import OrderStatus
from shared.models import Customer, Order, OrderLine, OrderNumberSequence, Reservation, StockLevel
from shared.services import audit, outbox
from shared.services.customers import buyer_key_label, contact_index, protected_columns
from shared.services.channel_orders import (PLATFORM_HOLD, ChannelContext, check, order_data, payment_of,
                                            refund_of)
from shared.services.orders import audit_snapshot, validate_order_data
from shared.timekeeping import local_date, utc_now

S = OrderStatus
RESERVING = (S.PENDING_REVIEW, S.CONFIRMED, S.ON_HOLD)  # open orders hold stock
BULK_TARGETS = RESERVING + (S.CANCELLED, S.SHIPPED, S.COMPLETED)  # first seen closed or shipped: recorded only


class BatchConflict(Exception):
    """The batch cannot be created as a whole; every order of it goes the one-at-a-time way instead."""


def existing_ids(channel_id: int, channel_order_ids: list[str]) -> set[str]:
    return set(db.session.execute(select(Order.channel_order_id).where(
        Order.channel_id == channel_id, Order.channel_order_id.in_(channel_order_ids))).scalars())


def _number_range(channel_code: str, day, count: int) -> list[str]:
    """`count` consecutive order numbers from one atomic counter upsert."""
    bind = db.session.get_bind()
    insert = postgresql.insert if bind.dialect.name == "postgresql" else sqlite.insert
    table = OrderNumberSequence.__table__
    statement = insert(table).values(channel_code=channel_code, local_date=day, last_value=count) \
        .on_conflict_do_update(index_elements=[table.c.channel_code, table.c.local_date],
                               set_={"last_value": table.c.last_value + count}).returning(table.c.last_value)
    if bind.dialect.name == "postgresql":
        with order_numbers._counter_engine(getattr(bind, "engine", bind)).connect() as connection:
            last = connection.execute(statement).scalar_one()
    else:
        last = db.session.execute(statement).scalar_one()
    if last > 999_999:
        raise BatchConflict("the channel's daily order number range is exhausted")
    return [order_numbers.compose(channel_code, day, value) for value in range(last - count + 1, last + 1)]


def _plan_stock(cleaned: list[dict]) -> tuple[dict[int, int], set[int]]:
    """A warehouse per SKU that holds the batch's total now (a plain read); orders needing a SKU no single
    warehouse can cover are left out (index into `cleaned`), and the totals recomputed without them."""
    excluded: set[int] = set()
    while True:
        totals: dict[int, int] = defaultdict(int)
        for index, clean in enumerate(cleaned):
            if index not in excluded:
                for sku, quantity, _price in clean["lines"]:
                    totals[sku.id] += quantity
        if not totals:
            return {}, excluded
        available = StockLevel.on_hand - StockLevel.reserved - StockLevel.held
        rows = db.session.execute(select(StockLevel.sku_id, StockLevel.warehouse_id, available)
                                  .where(StockLevel.sku_id.in_(list(totals)))
                                  .order_by(StockLevel.sku_id, available.desc(), StockLevel.warehouse_id)).all()
        chosen: dict[int, int] = {}
        for sku_id, warehouse_id, free in rows:
            if sku_id not in chosen and free >= totals[sku_id]:
                chosen[sku_id] = warehouse_id
        short = set(totals) - set(chosen)
        if not short:
            return chosen, excluded
        excluded |= {i for i, clean in enumerate(cleaned) if i not in excluded
                     and any(sku.id in short for sku, _q, _p in clean["lines"])}


def _reserve_totals(chosen: dict[int, int], totals: dict[int, int]) -> None:
    now = utc_now()
    for sku_id in sorted(totals):  # one lock order for every batch: no deadlock between workers
        warehouse_id, quantity = chosen[sku_id], totals[sku_id]
        taken = db.session.execute(
            update(StockLevel).where(StockLevel.sku_id == sku_id, StockLevel.warehouse_id == warehouse_id,
                                     StockLevel.on_hand - StockLevel.reserved - StockLevel.held >= quantity)
            .values(reserved=StockLevel.reserved + quantity, updated_at=now)
            .execution_options(synchronize_session=False)).rowcount
        if taken != 1:
            raise BatchConflict(f"stock of SKU {sku_id} was taken meanwhile")


def _customers(cleaned: list[dict]) -> dict[str, Customer]:
    """Existing customers by phone index, and new ones (each audited) for phones seen for the first time."""
    indexes = {contact_index(clean["customer_phone"], clean["protected"]) for clean in cleaned}
    found: dict[str, Customer] = {}
    for customer in db.session.execute(select(Customer).where(Customer.phone_index.in_(list(indexes)))
                                       .order_by(Customer.id)).scalars():
        found.setdefault(customer.phone_index, customer)
    created = []
    for clean in cleaned:
        index = contact_index(clean["customer_phone"], clean["protected"])
        if index not in found:
            # An email is kept off a new customer here: checking its uniqueness would cost a query per order.
            found[index] = Customer(name=clean["customer_name"], phone=clean["customer_phone"], phone_index=index,
                                    platform_buyer_key=buyer_key_label(clean["protected"]))
            created.append(found[index])
    if created:
        db.session.add_all(created)
        db.session.flush()
        for customer in created:
            audit.record(SYSTEM, "customer.create", "customer", customer.id, after={"created": True})
    return found


def _settle(order: Order, target: str, ships: bool, reason: str) -> None:
    """Bring a new order to where the platform says it is, with the audit events `create_order` and the
    lifecycle would have written one call at a time."""
    def move(status: str, action: str = "order.transition", why: str = reason) -> None:
        before = audit_snapshot(order)
        order.status = status
        audit.record(SYSTEM, action, "order", order.order_no, before=before, after=audit_snapshot(order), reason=why)

    if ships and target != S.PENDING_REVIEW:
        move(S.CONFIRMED, why="paid order passed auto-review")
    if target == S.ON_HOLD:
        order.status_before_hold, order.hold_reason = order.status, reason
        move(S.ON_HOLD)
    elif target == S.CANCELLED:
        order.cancel_reason = reason
        move(S.CANCELLED)
    elif target in (S.SHIPPED, S.COMPLETED):
        move(target, "order.platform_state", f"first seen {target} on the platform")


def create_new(context: ChannelContext, entries: list[tuple[object, CanonicalOrder]]) -> tuple[list, list]:
    """Create the new orders of `entries` (item, canonical) in the current transaction.

    Returns (created [(item, order)], left [(item, canonical)] for the one-at-a-time path). Raises
    BatchConflict or a database error when the batch must be undone; the caller rolls back.
    """
    channel = context.channel
    left, candidates = [], []
    for item, canonical in entries:
        mapping = context.statuses.get(canonical.status_key)
        paid = mapping is not None and payment_of(mapping, canonical) == "paid"
        try:
            if mapping is None or mapping.lifecycle not in BULK_TARGETS:
                raise LookupError
            mapping = check(context, canonical)  # cash on delivery may move the lifecycle target
            if mapping.lifecycle not in BULK_TARGETS:
                raise LookupError
            clean = validate_order_data(order_data(context, canonical, paid), channel=channel,
                                        skus=context.sku_objects)
        except Exception:  # review reasons, unusual states: the one-at-a-time path says what happened
            left.append((item, canonical))
            continue
        candidates.append((item, canonical, mapping, clean, paid))
    if not candidates:
        return [], left
    present = existing_ids(channel.id, [c[1].channel_order_id for c in candidates])
    fresh = [c for c in candidates if c[1].channel_order_id not in present]
    left += [(c[0], c[1]) for c in candidates if c[1].channel_order_id in present]
    reserving = [c for c in fresh if c[2].lifecycle in RESERVING]
    chosen, excluded = _plan_stock([c[3] for c in reserving])
    excluded_items = {id(c[0]) for i, c in enumerate(reserving) if i in excluded}
    left += [(c[0], c[1]) for c in fresh if id(c[0]) in excluded_items]
    fresh = [c for c in fresh if id(c[0]) not in excluded_items]
    if not fresh:
        return [], left
    totals: dict[int, int] = defaultdict(int)
    for _item, _canonical, mapping, clean, _paid in fresh:
        if mapping.lifecycle in RESERVING:
            for sku, quantity, _price in clean["lines"]:
                totals[sku.id] += quantity
    customers = _customers([c[3] for c in fresh])
    zone = current_app.config["MERCHANT_TIMEZONE"]
    by_day: dict = defaultdict(list)
    for index, (_item, canonical, _mapping, _clean, _paid) in enumerate(fresh):
        by_day[local_date(canonical.placed_at, zone)].append(index)
    numbers: dict[int, str] = {}
    for day, indexes in by_day.items():
        numbers.update(zip(indexes, _number_range(channel.code, day, len(indexes))))
    now = utc_now()
    unpaid_minutes = current_app.config["UNPAID_RESERVATION_MINUTES"]
    orders = []
    for index, (item, canonical, mapping, clean, paid) in enumerate(fresh):
        lines = [OrderLine(sku_id=sku.id, sku=sku, quantity=qty, unit_price=price, line_total=price * qty)
                 for sku, qty, price in clean["lines"]]
        order = Order(
            order_no=numbers[index], channel_id=channel.id, channel=channel,
            channel_order_id=canonical.channel_order_id,
            customer=customers[contact_index(clean["customer_phone"], clean["protected"])],
            warehouse_id=chosen[lines[0].sku_id] if mapping.lifecycle in RESERVING else None,
            status=OrderStatus.PENDING_REVIEW,
            payment_status="paid" if paid else "unpaid", refund_status=refund_of(mapping, canonical),
            currency=clean["currency"], goods_total=clean["goods_total"], shipping_fee=clean["shipping_fee"],
            discount=clean["discount"], tax=clean["tax"], fees=clean["fees"], total=clean["total"],
            cash_on_delivery=clean["cash_on_delivery"], receiver_name=clean["receiver"],
            receiver_phone=clean["receiver_phone"],
            receiver_phone_index=contact_index(clean["receiver_phone"], clean["protected"]),
            **protected_columns(clean["protected"]),
            province=clean["province"], city=clean["city"], district=clean["district"], street=clean["street"],
            postal_code=clean["postal_code"], placed_at=clean["placed_at"], paid_at=clean["paid_at"],
            created_at=now, updated_at=now, platform_status=canonical.status_key,
            platform_modified_at=canonical.modified_at, lines=lines)
        audit.record(SYSTEM, "order.create", "order", order.order_no, after=audit_snapshot(order))
        _settle(order, mapping.lifecycle, cash_on_delivery.may_ship(order), f"{PLATFORM_HOLD} {channel.name} status {canonical.status_key}")
        orders.append((item, order, paid))
    db.session.add_all([order for _item, order, _paid in orders])
    db.session.flush()  # multi-row INSERTs (SQLAlchemy's insertmanyvalues), ids returned
    expires = now + timedelta(minutes=unpaid_minutes) if channel.is_direct else None
    db.session.add_all([
        Reservation(order_id=order.id, order_line_id=line.id, sku_id=line.sku_id,
                    warehouse_id=chosen[line.sku_id], quantity=line.quantity, status="active",
                    expires_at=None if paid else expires, created_at=now)
        for _item, order, paid in orders if order.warehouse_id is not None for line in order.lines])
    for _item, order, _paid in orders:
        outbox.order_event(order, "order.created")
    db.session.flush()
    # Last, so the hot stock rows stay locked only from here to the commit: the inserts above took most of
    # the batch's time, and another worker's batch could take the same SKUs meanwhile.
    _reserve_totals(chosen, totals)
    return [(item, order) for item, order, _paid in orders], left

