"""Batches and their faults: one bad order in an ingest batch, a batch that loses the race for its last unit,
a wave release killed halfway, expiry of unpaid reservations in sets, the stock module's batch primitives,
and no oversell on a hot SKU under concurrent API clients. SQLite and PostgreSQL, unless marked."""
import re
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from shared.extensions import db
from shared.models import InboxItem, Lot, Order, OrderLine, PickTask, Reservation, Shipment, StockLevel, Wave
from shared.services import allocation, bulk_orders, inbox, orders, stock, waves
from shared.timekeeping import utc_now
from tests import channel_payloads as p
from tests.factories import ADMIN, count_queries, open_shop, order_payload
from tests.test_channel_sync import ingest, order_of
from jobs.sync import process_inbox
from tests import test_fulfilment
from tests.test_fulfilment import SHENZHEN, TODAY, order_to, put

floor = test_fulfilment.floor  # the fulfilment tests' fixture: warehouses, bins, SKUs


def _level(sku: str) -> StockLevel:
    return db.session.execute(select(StockLevel).join(StockLevel.sku).where(StockLevel.sku.has(code=sku))
                              ).scalar_one()


def _spy_bulk(monkeypatch) -> list:
    """Record what the batch path created (so a test can tell it from the one-at-a-time path)."""
    made = []
    real = bulk_orders.create_new

    def spy(context, entries):
        created, left = real(context, entries)
        made.extend(order.channel_order_id for _item, order in created)
        return created, left

    monkeypatch.setattr(bulk_orders, "create_new", spy)
    return made


# --- ingest batches ------------------------------------------------------------------------------------

def test_a_batch_with_one_bad_order_commits_the_others_and_sends_the_bad_one_to_review(sync_channels, monkeypatch):
    made = _spy_bulk(monkeypatch)
    channel = sync_channels["taobao"]
    items = ingest(channel, p.taobao(tid="5001", sku="SKU-0001", num=1), p.taobao(tid="5002", sku="NOT-MAPPED"),
                   p.taobao(tid="5003", sku="SKU-0002", num=3))
    assert [i.status for i in items] == ["done", "review", "done"]
    assert items[1].error_code and "NOT-MAPPED" in items[1].last_error
    assert sorted(made) == ["5001", "5003"]  # the good ones went together, in one transaction
    assert order_of(channel, "5002") is None
    assert order_of(channel, "5001").status == order_of(channel, "5003").status == "confirmed"
    assert _level("SKU-0001").reserved == 1 and _level("SKU-0002").reserved == 3


def test_a_batch_that_loses_the_race_for_its_last_unit_refuses_only_that_order(sync_channels, monkeypatch):
    """Another worker takes a unit between the batch's plan (a plain read) and its reservation UPDATE: the
    planning read is made to report one unit more than there is, as it would have just before the other
    worker's commit. The batch is redone from locked rows; only the last order is short, and refused."""
    stock.adjust_stock("SKU-0001", "HZ1", -97, "leave three", ADMIN)
    db.session.commit()
    made = _spy_bulk(monkeypatch)
    real, calls = stock.free_stock, []

    def stale_first_read(sku_ids, warehouses=None):
        figures = real(sku_ids, warehouses)
        calls.append(dict(figures))
        return {key: free + 1 for key, free in figures.items()} if len(calls) == 1 else figures

    monkeypatch.setattr(stock, "free_stock", stale_first_read)
    channel = sync_channels["taobao"]
    items = ingest(channel, *[p.taobao(tid=f"600{n}", sku="SKU-0001", num=1) for n in range(1, 5)])
    assert [i.status for i in items] == ["done", "done", "done", "review"]
    assert items[3].error_code == "insufficient_stock"
    assert sorted(made) == ["6001", "6002", "6003"]
    level = _level("SKU-0001")
    assert (level.on_hand, level.reserved, level.available) == (3, 3, 0)
    assert order_of(channel, "6004") is None
    assert db.session.scalar(select(func.sum(Reservation.quantity)).where(Reservation.status == "active")) == 3


def test_a_batch_whose_stock_runs_out_leaves_only_the_orders_past_the_last_unit(sync_channels, monkeypatch):
    stock.adjust_stock("SKU-0003", "HZ1", -95, "leave five", ADMIN)
    db.session.commit()
    made = _spy_bulk(monkeypatch)
    items = ingest(sync_channels["taobao"], *[p.taobao(tid=f"700{n}", sku="SKU-0003", num=2) for n in range(1, 5)])
    assert [i.status for i in items] == ["done", "done", "review", "review"]  # 2 + 2 of 5 units; 1 is left
    assert sorted(made) == ["7001", "7002"]
    assert _level("SKU-0003").reserved == 4


def _batch_statements(channel, first_tid: int, count: int) -> tuple[list[str], list[InboxItem]]:
    """The statements one processing job sends for a batch of `count` new paid orders, each from a new buyer."""
    bodies = [p.body(p.taobao(tid=str(first_tid + n), sku=("SKU-0001", "SKU-0002")[n % 2], num=1,
                              mobile=f"139{first_tid + n:08d}"[:11])) for n in range(count)]
    ids = inbox.store(channel, "poll", bodies)
    db.session.commit()
    with count_queries() as statements:
        process_inbox(ids)
    return statements, [db.session.get(InboxItem, item_id) for item_id in ids]


def test_a_batch_takes_the_same_statements_whatever_its_number_of_orders(sync_channels, monkeypatch):
    """Customers, orders, lines, reservations, outbox rows, audit events and the inbox rows' outcome are written as
    sets: 60 orders cost exactly the statements of 25 (no statement per order, no text that grows with them)."""
    made = _spy_bulk(monkeypatch)
    channel = sync_channels["taobao"]
    small, small_items = _batch_statements(channel, 81_000, 25)
    large, large_items = _batch_statements(channel, 82_000, 60)
    assert len(made) == 85 and all(i.status == "done" and i.outcome == "created" for i in small_items + large_items)
    # Ids taken in one call and rows written by executemany still line up: each row names its own order, whose
    # line and customer are its own.
    for item in large_items:
        order = db.session.get(Order, item.order_id)
        assert order.channel_order_id == item.external_id
        assert [line.sku.code for line in order.lines] == [("SKU-0001", "SKU-0002")[int(item.external_id) % 2]]
        assert order.customer.phone == f"139{int(item.external_id):08d}"

    def shape(statement: str) -> str:
        return re.sub(r"sa_savepoint_\d+", "sa_savepoint", " ".join(statement.split()[:3]))

    assert [shape(s) for s in large] == [shape(s) for s in small], [shape(s) for s in large]
    # Every write has the same text for 25 orders as for 60: no multi-row VALUES that grows with the batch (only
    # the reads' IN lists do).
    def writes(statements: list[str]) -> list[str]:
        return [re.sub(r" IN \((?:[^()]|\([^()]*\))*\)", " IN (…)", s) for s in statements
                if s.lstrip().startswith(("INSERT", "UPDATE"))]

    assert writes(large) == writes(small)
    assert len({o.customer_id for o in db.session.execute(select(Order)).scalars()}) == 85
    assert db.session.scalar(select(func.count()).select_from(OrderLine)) == 85
    assert _level("SKU-0001").reserved + _level("SKU-0002").reserved == 85


# --- the stock module's batch primitives ------------------------------------------------------------------

def test_batch_reservation_takes_what_is_free_and_names_what_is_not(floor):
    put("TEA", "SZ1", "A-01", 5)
    put("TEA", "HZ1", "A-01", 1)
    tea = stock.get_sku("TEA").id
    sz1, hz1 = stock.get_warehouse("SZ1").id, stock.get_warehouse("HZ1").id
    refused = stock.reserve_many({(tea, sz1): 5, (tea, hz1): 2})
    assert refused == [(tea, hz1)]
    assert stock.free_stock([tea]) == {(tea, sz1): 0, (tea, hz1): 1}  # the refused key is untouched
    stock.release_many({(tea, sz1): 3})
    assert stock.free_stock([tea])[(tea, sz1)] == 3
    assert db.session.scalar(select(func.sum(StockLevel.available)).where(StockLevel.sku_id == tea)) == 4


@pytest.mark.parametrize("standalone", [False, True], ids=["in_savepoint", "standalone"])
def test_creating_an_order_takes_a_fixed_handful_of_statements(floor, backend, standalone):
    put("TEA", "SZ1", "A-01", 50)
    put("MILK", "HZ1", "A-01", 50, lot="M-1", expires=TODAY + timedelta(days=30))
    order_to(SHENZHEN, [{"sku": "TEA", "quantity": 1, "unit_price": "50.00"}], number="WARM-1")
    payload = order_payload(channel_order_id="COUNT-1", phone="13900000001",
                            lines=[{"sku": "TEA", "quantity": 1, "unit_price": "50.00"},
                                   {"sku": "MILK", "quantity": 1, "unit_price": "9.90"}])
    with count_queries() as statements:
        order = orders.create_order(payload, ADMIN, standalone=standalone)
    shapes = [" ".join(s.split()[:3]) for s in statements]
    # In a savepoint (channel sync): the channel, the SKUs, one stock plan for all lines, the customer by phone.
    # Standalone (the API): the SKUs with their free stock in one read, then the channel and the customer, and
    # no savepoint at all. Then either way: a new customer, the order, its lines (one multi-row statement on
    # PostgreSQL; SQLite returns ids row by row), one conditional stock UPDATE per line (each where the plan saw
    # the stock: no doomed attempt), the reservations in one statement, the outbox row; nothing read back. The
    # standalone path writes the reservations, the outbox row and the audit events before the UPDATEs, so a hot
    # stock row stays locked only to the COMMIT. (The savepoint path writes its audit events at commit; on
    # PostgreSQL the order number comes from its own connection, outside this count.)
    reads = (["SELECT skus.id, skus.code,", "SELECT channels.id, channels.code,"] if standalone else
             ["SELECT channels.id, channels.code,", "SELECT skus.id, skus.code,",
              "SELECT stock_levels.sku_id, stock_levels.warehouse_id,"])
    updates, rest = ["UPDATE stock_levels SET"] * 2, ["INSERT INTO reservations", "INSERT INTO outbox_events"]
    if standalone:
        rest.append("INSERT INTO audit_events")
    expected = [*reads, "SELECT customers.id, customers.name,",
                "INSERT INTO customers", "INSERT INTO orders",
                *["INSERT INTO order_lines"] * (1 if backend == "postgresql" else 2),
                *([*rest, *updates] if standalone else [*updates, *rest])]
    counted = [shape for shape in shapes if "SAVEPOINT" not in shape and "order_number_sequences" not in shape]
    assert counted == expected, shapes
    # (The test session's own savepoint, standing for the request's transaction, may open the list.)
    assert standalone is not any("SAVEPOINT" in shape for shape in shapes[1:])
    assert order.status == "confirmed" and len(order.lines) == 2
    reservations = db.session.execute(select(Reservation).where(Reservation.order_id == order.id)).scalars().all()
    assert {r.sku.code for r in reservations} == {"TEA", "MILK"}
    assert {r.warehouse.code for r in reservations} == {"SZ1", "HZ1"}
    assert {r.order_line_id for r in reservations} == {line.id for line in order.lines}


@pytest.mark.parametrize("standalone", [False, True], ids=["in_savepoint", "standalone"])
def test_stock_taken_between_the_plan_and_the_update_moves_the_order_to_where_it_was_reserved(
        floor, monkeypatch, standalone):
    """The plan (a plain read) saw TEA free in SZ1, but it was set aside meanwhile: the conditional UPDATE there
    takes nothing and the line is reserved in HZ1. The reservation row, the order's warehouse and the outbox
    event all say HZ1 (the standalone path wrote them before the UPDATEs and corrects them)."""
    from shared.models import OutboxEvent

    put("TEA", "SZ1", "A-01", 10)
    put("TEA", "HZ1", "A-01", 5)
    db.session.commit()
    sz1 = stock.get_warehouse("SZ1").id
    real_read, real_free = stock.skus_with_free_stock, stock.free_stock

    def stale(figures):
        return {key: (10 if key[1] == sz1 else free) for key, free in figures.items()}

    def stale_read(codes):
        skus, free, warehouses = real_read(codes)
        return skus, stale(free), warehouses

    def stale_free(sku_ids, warehouses=None):
        return stale(real_free(sku_ids, warehouses))

    monkeypatch.setattr(stock, "skus_with_free_stock", stale_read)
    monkeypatch.setattr(stock, "free_stock", stale_free)
    stock.set_held("TEA", "SZ1", 10, "promotion pool", ADMIN)
    order = orders.create_order(order_payload(channel_order_id="MOVED-1", lines=[
        {"sku": "TEA", "quantity": 2, "unit_price": "50.00"}]), ADMIN, standalone=standalone)
    db.session.commit()
    hz1 = stock.get_warehouse("HZ1").id
    assert order.warehouse_id == hz1 and order.warehouse.code == "HZ1"
    assert db.session.scalar(select(Order.warehouse_id).where(Order.id == order.id)) == hz1
    assert db.session.scalars(select(Reservation.warehouse_id).where(Reservation.order_id == order.id)).all() == [hz1]
    event = db.session.scalars(select(OutboxEvent).where(OutboxEvent.order_id == order.id)).one()
    assert event.payload["order"]["warehouse"] == "HZ1" and event.payload["event_id"] == event.event_id
    level = db.session.execute(select(StockLevel).where(StockLevel.warehouse_id == hz1)).scalar_one()
    assert (level.reserved, level.available) == (2, 3)


# --- a wave release killed halfway --------------------------------------------------------------------------

def test_a_wave_release_killed_halfway_finishes_on_rerun_with_no_task_twice(floor, monkeypatch):
    from jobs.fulfilment import release_wave

    put("TEA", "SZ1", "A-01", 40, lot="T-1")
    made = [order_to(SHENZHEN, [{"sku": "TEA", "quantity": n, "unit_price": "50.00"}], number=f"W-{n}")
            for n in range(1, 7)]
    for order in made:
        allocation.allocate(order, ADMIN)
    db.session.commit()
    [wave] = waves.plan_waves("SZ1", ADMIN)
    waves.start_release(wave.id, ADMIN)
    db.session.commit()
    wave_id = wave.id
    assert waves.release_chunk(wave_id, TODAY, limit=2) == 2
    db.session.commit()

    def killed(*_args, **_kwargs):
        raise RuntimeError("worker killed")

    monkeypatch.setattr(waves.order_service, "transition_many", killed)
    with pytest.raises(RuntimeError):
        waves.release_chunk(wave_id, TODAY, limit=2)  # tasks written, then the worker dies before the commit
    db.session.rollback()
    monkeypatch.undo()
    assert db.session.scalar(select(func.count()).select_from(PickTask)) == 2  # only the committed chunk

    assert release_wave(wave_id, chunk=2) == 4  # the re-run takes exactly the rest
    wave = db.session.get(Wave, wave_id)
    assert (wave.status, wave.released_count, wave.task_count, wave.short_count) == ("released", 6, 6, 0)
    per_shipment = dict(db.session.execute(select(PickTask.shipment_id, func.sum(PickTask.quantity))
                                           .group_by(PickTask.shipment_id)).all())
    wanted = dict(db.session.execute(select(Shipment.id, func.sum(OrderLine.quantity))
                                     .join(OrderLine, OrderLine.order_id == Shipment.order_id)
                                     .group_by(Shipment.id)).all())
    assert per_shipment == wanted  # every shipment's units once
    assert db.session.scalar(select(Lot.allocated).where(Lot.lot_no == "T-1")) == 21  # 1 + 2 + ... + 6
    assert {o.status for o in db.session.execute(select(Order)).scalars()} == {"picking"}


# --- expiry of unpaid reservations in sets -------------------------------------------------------------------

def test_expired_unpaid_orders_are_cancelled_together_and_their_stock_released(floor):
    from jobs.reservations import release_expired_reservations

    put("TEA", "SZ1", "A-01", 10)
    unpaid = []
    for n in range(3):
        payload = order_payload(channel_order_id=f"UNPAID-{n}", paid=False,
                                lines=[{"sku": "TEA", "quantity": 2, "unit_price": "50.00"}])
        unpaid.append(orders.create_order(payload, ADMIN))
    paid = order_to(SHENZHEN, [{"sku": "TEA", "quantity": 1, "unit_price": "50.00"}], number="PAID-1")
    db.session.commit()
    assert _level("TEA").reserved == 7
    db.session.execute(Reservation.__table__.update().where(Reservation.order_id.in_([o.id for o in unpaid[:2]]))
                       .values(expires_at=utc_now() - timedelta(minutes=1)))
    db.session.commit()
    assert release_expired_reservations() == 2
    assert [db.session.get(Order, o.id).status for o in unpaid] == ["cancelled", "cancelled", "pending_review"]
    assert db.session.get(Order, paid.id).status == "confirmed"
    assert _level("TEA").reserved == 3
    assert release_expired_reservations() == 0  # idempotent: nothing left to expire


# --- no oversell on a hot SKU under concurrent API clients (real commits, PostgreSQL and SQLite) --------------

CLIENTS, UNITS, ATTEMPTS = 8, 12, 24


def test_concurrent_api_clients_never_oversell_a_hot_sku(live_apps):
    from shared.services import staff

    with live_apps.core.app_context():
        open_shop("HOT-API", UNITS)
        user = staff.create_user("api-rush", "a-long-password-1", "admin", ADMIN)
        token = staff.issue_token(user, ADMIN)
        db.session.commit()
    start = threading.Barrier(CLIENTS)
    answers: list[int] = []
    lock = threading.Lock()

    def client(number: int) -> None:
        web = live_apps.portal.test_client()
        start.wait()
        for attempt in range(ATTEMPTS // CLIENTS):
            payload = order_payload(channel_order_id=f"RUSH-{number}-{attempt}", phone=f"1390000{number:02d}{attempt:02d}",
                                    lines=[{"sku": "HOT-API", "quantity": 1, "unit_price": "99.00"}])
            response = web.post("/api/v1/orders", json=payload, headers={"Authorization": f"Bearer {token}"})
            with lock:
                answers.append(response.status_code if response.status_code != 409
                               or response.json["error"]["code"] == "insufficient_stock" else -1)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert sorted(set(answers)) == [201, 409], answers
    assert answers.count(201) == UNITS and answers.count(409) == ATTEMPTS - UNITS
    with live_apps.core.app_context():
        level = db.session.execute(select(StockLevel)).scalar_one()
        assert (level.on_hand, level.reserved, level.available) == (UNITS, UNITS, 0)
        assert db.session.scalar(select(func.count()).select_from(Order)) == UNITS
        assert db.session.scalar(select(func.sum(Reservation.quantity))
                                 .where(Reservation.status == "active")) == UNITS
        assert stock.ledger_on_hand(level.sku_id, level.warehouse_id) == level.on_hand


_ = (InboxItem, inbox)
