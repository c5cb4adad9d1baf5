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
from sqlalchemy import select

from shared import cash_on_delivery, order_numbers
from shared.actors import SYSTEM
from shared.channels.canonical import CanonicalOrder
from shared.extensions import db
from shared.lifecycle import OrderStatus
from shared.database import insert_rows
from shared.models import Customer, Order, Warehouse
from shared.services import audit, outbox, stock
from shared.services import orders as order_service
from shared.services.customers import buyer_key_label, contact_index
from shared.services.channel_orders import (PLATFORM_HOLD, ChannelContext, check, order_data, payment_of,
                                            refund_of)
from shared.services.orders import validate_order_data
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
    """`count` consecutive order numbers from one atomic counter upsert (`order_numbers.take_range`)."""
    last = order_numbers.take_range(channel_code, day, count)
    if last > 999_999:
        raise BatchConflict("the channel's daily order number range is exhausted")
    return [order_numbers.compose(channel_code, day, value) for value in range(last - count + 1, last + 1)]


def _plan_stock(cleaned: list[dict], locked: dict | None = None,
                excluded: set[int] | None = None) -> tuple[dict[int, int], set[int]]:
    """A warehouse per SKU that holds the batch's total (from one plain read, or the `locked` figures); orders
    needing a SKU no single warehouse can cover are left out (index into `cleaned`), the last of the batch
    first, until the rest fits: an order short of the last unit is the only one refused."""
    excluded = set(excluded or ())
    free = locked
    while True:
        totals: dict[int, int] = defaultdict(int)
        for index, clean in enumerate(cleaned):
            if index not in excluded:
                for sku, quantity, _price in clean["lines"]:
                    totals[sku.id] += quantity
        if not totals:
            return {}, excluded
        if free is None:
            free = stock.free_stock(totals)
        chosen: dict[int, int] = {}
        for (sku_id, warehouse_id), units in sorted(free.items(), key=lambda kv: (kv[0][0], -kv[1], kv[0][1])):
            if sku_id in totals and sku_id not in chosen and units >= totals[sku_id]:
                chosen[sku_id] = warehouse_id
        short = set(totals) - set(chosen)
        if not short:
            return chosen, excluded
        excluded.add(max(i for i, clean in enumerate(cleaned) if i not in excluded
                         and any(sku.id in short for sku, _q, _p in clean["lines"])))


def _customers(cleaned: list[dict]) -> dict[str, Customer]:
    """Existing customers by phone index, and new ones (each audited) for phones seen for the first time."""
    indexes = {contact_index(clean["customer_phone"], clean["protected"]) for clean in cleaned}
    found: dict[str, Customer] = {}
    for customer in db.session.execute(select(Customer).where(Customer.phone_index.in_(list(indexes)))
                                       .order_by(Customer.id)).scalars():
        found.setdefault(customer.phone_index, customer)
    rows = []
    for clean in cleaned:
        index = contact_index(clean["customer_phone"], clean["protected"])
        if index not in found:
            # An email is kept off a new customer here: checking its uniqueness would cost a query per order.
            rows.append({"name": clean["customer_name"], "phone": clean["customer_phone"], "phone_index": index,
                         "platform_buyer_key": buyer_key_label(clean["protected"])})
            found[index] = None
    insert_rows(Customer.__table__, rows, ids=True)  # one executemany; the ORM's flush cost ~1 ms per customer
    for row in rows:
        # Not added to the session: the batch's orders only need the id and the fields their JSON shows.
        found[row["phone_index"]] = Customer(**row)
        audit.record(SYSTEM, "customer.create", "customer", row["id"], after={"created": True})
    return found


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
    zone = current_app.config["MERCHANT_TIMEZONE"]
    by_day: dict = defaultdict(list)
    for index, (_item, canonical, _mapping, _clean, _paid) in enumerate(fresh):
        by_day[local_date(canonical.placed_at, zone)].append(index)
    numbers: dict[int, str] = {}
    for day, indexes in by_day.items():
        numbers.update(zip(indexes, _number_range(channel.code, day, len(indexes))))
    reserving = [i for i, c in enumerate(fresh) if c[2].lifecycle in RESERVING]
    locked, excluded = None, set()
    for _attempt in range(3):
        chosen, short = _plan_stock([fresh[i][3] for i in reserving], locked, excluded)
        excluded = short
        left_out = {reserving[i] for i in short}
        batch = [(index, c) for index, c in enumerate(fresh) if index not in left_out]
        if not batch:
            return [], left + [(c[0], c[1]) for c in fresh]
        try:
            with db.session.begin_nested():
                orders = _write(context, batch, chosen, numbers)
        except _Refused as refused:
            # Another worker took stock between the plan and the UPDATEs: everything of this attempt is undone;
            # the short rows are read again under lock, so the next plan is exact for them.
            locked = {**stock.free_stock(totals_skus(fresh, reserving)), **_lock_levels(refused.keys)}
            continue
        left += [(fresh[index][0], fresh[index][1]) for index in sorted(left_out)]
        return orders, left
    raise BatchConflict("the batch's stock kept moving meanwhile")


def totals_skus(fresh: list, reserving: list[int]) -> set[int]:
    return {sku.id for i in reserving for sku, _q, _p in fresh[i][3]["lines"]}


def _lock_levels(keys: list[tuple[int, int]]) -> dict[tuple[int, int], int]:
    """The free units of these stock rows, read under a row lock (in key order) until this transaction ends."""
    from shared.models import StockLevel

    query = select(StockLevel.sku_id, StockLevel.warehouse_id, StockLevel.available).where(
        StockLevel.sku_id.in_({k[0] for k in keys})).order_by(StockLevel.sku_id, StockLevel.warehouse_id)
    if db.session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    return {(s, w): free for s, w, free in db.session.execute(query).all()}


class _Refused(Exception):
    def __init__(self, keys):
        super().__init__(f"refused: {keys}")
        self.keys = keys


def _write(context: ChannelContext, batch: list[tuple[int, tuple]], chosen: dict[int, int],
           numbers: dict[int, str]) -> list:
    """Customers, orders, lines, audit events, outbox rows, reservations for the batch; reservations last."""
    channel = context.channel
    customers = _customers([c[3] for _i, c in batch])
    now = utc_now()
    unpaid_minutes = current_app.config["UNPAID_RESERVATION_MINUTES"]
    # The batch's warehouses in one read: each order's JSON (the outbox event) names its warehouse.
    warehouses = {w.id: w for w in db.session.execute(
        select(Warehouse).where(Warehouse.id.in_(set(chosen.values())))).scalars()} if chosen else {}
    built = []
    for index, (item, canonical, mapping, clean, paid) in batch:
        holds = mapping.lifecycle in RESERVING
        warehouse_id = chosen[clean["lines"][0][0].id] if holds else None
        order = order_service.build_order(
            clean, customers[contact_index(clean["customer_phone"], clean["protected"])], numbers[index], now,
            warehouse_id, paid=paid, refund_status=refund_of(mapping, canonical),
            platform_status=canonical.status_key, platform_modified_at=canonical.modified_at,
            warehouse=warehouses.get(warehouse_id))
        audit.record(SYSTEM, "order.create", "order", order.order_no, after=order_service.audit_snapshot(order))
        order_service.settle_new(order, mapping.lifecycle, SYSTEM,
                                 f"{PLATFORM_HOLD} {channel.name} status {canonical.status_key}",
                                 cash_on_delivery.may_ship(order))
        built.append((item, order, paid, holds))
    order_service.write_new_orders([order for _item, order, _paid, _holds in built])
    expires = now + timedelta(minutes=unpaid_minutes) if channel.is_direct else None
    order_service.insert_reservations([
        {"order_id": order.id, "order_line_id": line.id, "sku_id": line.sku_id, "warehouse_id": chosen[line.sku_id],
         "quantity": line.quantity, "expires_at": None if paid else expires}
        for _item, order, paid, holds in built if holds for line in order.lines])
    outbox.order_events([order for _item, order, _paid, _holds in built], "order.created")
    # Last, so the hot stock rows stay locked only from here to the commit: the inserts above took most of
    # the batch's time, and another worker's batch could take the same SKUs meanwhile.
    refused = stock.reserve_many(stock.totals_of(
        (line.sku_id, chosen[line.sku_id], line.quantity)
        for _item, order, _paid, holds in built if holds for line in order.lines), now)
    if refused:
        raise _Refused(refused)
    return [(item, order) for item, order, _paid, _holds in built]
