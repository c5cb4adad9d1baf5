"""Fulfilment services on both databases: allocation by stock, distance and cold chain; lots and first expiry
first out; waves and pick lists; pick scans and their refusals."""
from datetime import date, timedelta

import pytest

from shared.security import role_table
from sqlalchemy import func, select

from shared.database import EXECUTEMANY_FROM
from shared.extensions import db
from shared.models import Bin, Lot, Order, OutboxEvent, PickTask, Reservation, Shipment, StockLevel
from shared.services import allocation, catalog, lots, orders, scans, stock, waves
from shared.services.errors import Conflict, Forbidden, ValidationFailed
from tests.factories import ADMIN, order_payload

TODAY = date(2026, 11, 21)


@pytest.fixture
def floor(session):
    """Warehouses in Hangzhou (cold chain), Shenzhen and Chengdu; bins; SKUs; a direct channel; a handheld."""
    catalog.create_channel("OS", "官网商城", "own_shop", ADMIN)
    for code, name, province, city in (("HZ1", "杭州仓", "浙江省", "杭州市"), ("SZ1", "深圳仓", "广东省", "深圳市"),
                                       ("CD1", "成都仓", "四川省", "成都市")):
        catalog.create_warehouse({"code": code, "name": name, "province": province, "city": city}, ADMIN)
        for walk, bin_code in enumerate(("C-03", "A-01", "B-02")):
            db.session.add(Bin(warehouse_id=stock.get_warehouse(code).id, code=bin_code,
                               walk_order={"A-01": 1, "B-02": 2, "C-03": 3}[bin_code], capacity=500))
    stock.get_warehouse("HZ1").cold_chain = True
    catalog.create_sku({"sku": "TEA", "name": "龙井茶"}, ADMIN)
    milk = catalog.create_sku({"sku": "MILK", "name": "鲜牛奶", "batch_tracked": True}, ADMIN)
    milk.cold_chain = True
    db.session.flush()
    device, token = scans.register_device("PDA-07", "SZ1", ADMIN)
    db.session.commit()
    return {"device": device, "token": token}


def put(sku, warehouse, bin_code, quantity, lot=None, expires=None, received_days_ago=0):
    made = lots.receive(sku, warehouse, bin_code, quantity, ADMIN, lot_no=lot, expires_on=expires,
                              today=TODAY)
    made.received_at = made.received_at - timedelta(days=received_days_ago)
    return made


def order_to(city_province, lines, number="O-1"):
    province, city, district = city_province
    payload = order_payload(channel_order_id=number, lines=lines)
    payload["shipping_address"] |= {"province": province, "city": city, "district": district}
    order = orders.create_order(payload, ADMIN)
    db.session.commit()
    return order


SHENZHEN = ("广东省", "深圳市", "南山区")
BEIJING = ("北京市", "北京市", "朝阳区")


def test_an_order_goes_to_the_nearest_warehouse_that_holds_every_line(floor):
    put("TEA", "HZ1", "A-01", 50)
    put("TEA", "SZ1", "A-01", 50)
    order = order_to(SHENZHEN, [{"sku": "TEA", "quantity": 2, "unit_price": "50.00"}])
    shipment = allocation.allocate(order, ADMIN)
    db.session.commit()
    assert shipment.warehouse.code == "SZ1" and order.status == "allocated" and order.warehouse_id == shipment.warehouse_id
    reservation = db.session.execute(select(Reservation).where(Reservation.order_id == order.id)).scalar_one()
    assert reservation.warehouse_id == shipment.warehouse_id  # the reservation followed the order
    levels = {lvl.warehouse.code: lvl.reserved for lvl in db.session.execute(select(StockLevel)).scalars()}
    assert levels == {"HZ1": 0, "SZ1": 2}


def test_cold_chain_lines_only_go_to_cold_warehouses(floor):
    put("MILK", "SZ1", "A-01", 20, lot="M-1", expires=TODAY + timedelta(days=10))
    put("MILK", "HZ1", "A-01", 20, lot="M-2", expires=TODAY + timedelta(days=10))
    order = order_to(SHENZHEN, [{"sku": "MILK", "quantity": 1, "unit_price": "9.90"}])
    assert allocation.allocate(order, ADMIN).warehouse.code == "HZ1"  # farther, but it keeps milk cold


def test_allocating_twice_is_refused_and_changes_nothing(floor):
    put("TEA", "SZ1", "A-01", 50)
    order = order_to(SHENZHEN, [{"sku": "TEA", "quantity": 1, "unit_price": "50.00"}])
    allocation.allocate(order, ADMIN)
    db.session.commit()
    with pytest.raises(Conflict) as refused:
        allocation.allocate(order, ADMIN)
    assert refused.value.code == "already_allocated"
    db.session.rollback()
    assert db.session.execute(select(func.count()).select_from(Shipment)).scalar() == 1


def test_no_warehouse_with_every_line_is_a_clear_refusal(floor):
    put("TEA", "SZ1", "A-01", 1)
    put("MILK", "HZ1", "A-01", 5, lot="M-1", expires=TODAY + timedelta(days=10))
    order = order_to(BEIJING, [{"sku": "TEA", "quantity": 1, "unit_price": "50.00"},
                               {"sku": "MILK", "quantity": 1, "unit_price": "9.90"}])
    with pytest.raises(Conflict) as refused:
        allocation.allocate(order, ADMIN)
    assert refused.value.code == "no_warehouse" and "cold-chain" in refused.value.message
    db.session.rollback()
    assert order.status == "confirmed"


def test_receipts_of_batch_tracked_skus_need_a_batch_and_a_future_expiry(floor):
    with pytest.raises(ValidationFailed) as refused:
        lots.receive("MILK", "HZ1", "A-01", 10, ADMIN, today=TODAY)
    assert refused.value.code == "batch_required"
    with pytest.raises(ValidationFailed) as refused:
        lots.receive("MILK", "HZ1", "A-01", 10, ADMIN, lot_no="OLD", expires_on=TODAY, today=TODAY)
    assert refused.value.code == "expired_batch"
    with pytest.raises(Conflict) as refused:
        lots.receive("TEA", "HZ1", "A-01", 501, ADMIN, today=TODAY)
    assert refused.value.code == "bin_full"
    assert db.session.execute(select(func.count()).select_from(Lot)).scalar() == 0


def test_waves_pick_first_expiry_first_and_list_by_bin(floor):
    late = put("MILK", "HZ1", "A-01", 10, lot="LATE", expires=TODAY + timedelta(days=60))
    soon = put("MILK", "HZ1", "C-03", 3, lot="SOON", expires=TODAY + timedelta(days=5))
    put("TEA", "HZ1", "B-02", 10)
    first = order_to(SHENZHEN, [{"sku": "MILK", "quantity": 5, "unit_price": "9.90"},
                                {"sku": "TEA", "quantity": 1, "unit_price": "50.00"}], "O-1")
    allocation.allocate(first, ADMIN)
    [wave] = waves.plan_waves("HZ1", ADMIN)
    waves.start_release(wave.id, ADMIN)
    assert waves.release_chunk(wave.id, TODAY) == 1
    waves.finish_release(wave.id)
    db.session.commit()
    tasks = waves.pick_list(wave.id)
    assert [(t.bin.code, t.lot.lot_no, t.quantity) for t in tasks] == [("A-01", "LATE", 2), ("B-02", "-", 1),
                                                                       ("C-03", "SOON", 3)]
    assert (soon.allocated, late.allocated) == (3, 2) and first.status == "picking" and wave.status == "released"
    near = lots.near_expiry("HZ1", 30, today=TODAY)
    assert [lot.lot_no for lot in near] == ["SOON"]


def test_a_wave_leaves_short_orders_allocated_for_the_next_one(floor):
    put("TEA", "SZ1", "A-01", 2)
    order = order_to(SHENZHEN, [{"sku": "TEA", "quantity": 2, "unit_price": "50.00"}])
    allocation.allocate(order, ADMIN)
    db.session.execute(Lot.__table__.update().values(quantity=1))  # a miscount: the bin holds one
    [wave] = waves.plan_waves("SZ1", ADMIN)
    waves.start_release(wave.id, ADMIN)
    waves.release_chunk(wave.id, TODAY)
    shipment = db.session.execute(select(Shipment)).scalar_one()
    assert (wave.short_count, shipment.status, shipment.wave_id, order.status) == (1, "allocated", None, "allocated")


def _released(floor, quantity=3, expires=None):
    put("TEA", "SZ1", "A-01", 10, lot="T-9", expires=expires)
    order = order_to(SHENZHEN, [{"sku": "TEA", "quantity": quantity, "unit_price": "50.00"}])
    allocation.allocate(order, ADMIN)
    [wave] = waves.plan_waves("SZ1", ADMIN)
    waves.start_release(wave.id, ADMIN)
    waves.release_chunk(wave.id, TODAY)
    db.session.commit()
    return order, waves.pick_list(wave.id)[0]


@pytest.mark.parametrize("change, field, words", [
    ({"bin": "B-02"}, "bin", "wrong bin"), ({"sku": "MILK"}, "sku", "wrong SKU"), ({"lot": "X-1"}, "lot", "wrong batch"),
    ({"quantity": 4}, "quantity", "over-pick"), ({"quantity": 0}, "quantity", "positive"),
    ({"task": 99999}, "task", "no pick task"),
])
def test_wrong_picks_are_refused_with_a_clear_message_and_change_nothing(floor, change, field, words):
    _order, task = _released(floor)
    payload = {"task": task.id, "bin": "A-01", "sku": "TEA", "lot": "T-9", "quantity": 3, "operator": "王五"} | change
    with pytest.raises(scans.ScanRefused) as refused:
        scans.pick(floor["device"], payload, today=TODAY)
    assert refused.value.field == field and words in refused.value.message
    db.session.rollback()
    assert (task.picked, task.lot.quantity, task.status) == (0, 10, "open")


def test_a_pick_larger_than_the_bin_holds_and_an_expired_batch_are_refused(floor):
    _order, task = _released(floor, expires=TODAY + timedelta(days=3))
    with pytest.raises(scans.ScanRefused, match="holds only 10"):
        scans.pick(floor["device"], {"task": task.id, "bin": "A-01", "sku": "TEA", "lot": "T-9", "quantity": 11},
                        today=TODAY)
    db.session.rollback()
    with pytest.raises(scans.ScanRefused, match="has expired"):
        scans.pick(floor["device"], {"task": task.id, "bin": "A-01", "sku": "TEA", "lot": "T-9", "quantity": 1},
                        today=TODAY + timedelta(days=3))


def test_picking_in_two_scans_completes_the_task_and_the_shipment(floor):
    order, task = _released(floor)
    base = {"task": task.id, "bin": "A-01", "sku": "TEA", "lot": "T-9"}
    scans.pick(floor["device"], base | {"quantity": 1}, today=TODAY)
    shipment = db.session.execute(select(Shipment)).scalar_one()
    assert (task.status, shipment.status) == ("picking", "picking")
    scans.pick(floor["device"], base | {"quantity": 2}, today=TODAY)
    assert (task.status, task.picked, shipment.status, task.lot.quantity) == ("done", 3, "picked", 7)
    with pytest.raises(scans.ScanRefused, match="already picked"):
        scans.pick(floor["device"], base | {"quantity": 1}, today=TODAY)


def test_device_tokens_are_checked(floor):
    assert scans.device_for_token(floor["token"]).name == "PDA-07"
    with pytest.raises(Forbidden):
        scans.device_for_token("not-a-token")
    assert db.session.execute(select(func.count()).select_from(PickTask)).scalar() == 0
    assert db.session.execute(select(func.count()).select_from(Order)).scalar() == 0


# --- time limits ------------------------------------------------------------------------------------------

def test_confirmed_but_not_packed_in_four_hours_raises_one_alarm_until_packed(floor):
    from datetime import UTC, datetime

    from shared.models import FulfilmentAlarm
    from shared.services import alarms
    put("TEA", "SZ1", "A-01", 10)
    order = order_to(SHENZHEN, [{"sku": "TEA", "quantity": 1, "unit_price": "50.00"}])
    assert alarms.check(datetime.now(UTC) + timedelta(hours=3)) == []
    as_of = datetime.now(UTC) + timedelta(hours=4, minutes=10)
    [alarm] = alarms.check(as_of)
    assert (alarm.kind, alarm.role, alarm.order_id) == ("not_packed_in_time", "warehouse", order.id)
    assert order.order_no in alarm.message and alarms.check(as_of) == []  # raised once
    orders.transition_order(order, "cancelled", ADMIN, reason="customer cancelled")
    alarms.check(as_of)
    db.session.refresh(alarm)
    assert alarm.resolved_at is not None
    assert db.session.execute(select(func.count()).select_from(FulfilmentAlarm)).scalar() == 1


def test_picked_but_not_packed_in_twelve_minutes_goes_back_to_the_pool(floor):
    from datetime import UTC, datetime

    from shared.services import alarms
    _order, task = _released(floor)
    scans.pick(floor["device"], {"task": task.id, "bin": "A-01", "sku": "TEA", "lot": "T-9", "quantity": 3},
                    today=TODAY)
    db.session.commit()
    assert task.device_id == floor["device"].id
    assert [a.kind for a in alarms.check(datetime.now(UTC) + timedelta(minutes=11))] == []
    raised = alarms.check(datetime.now(UTC) + timedelta(minutes=13))
    assert [a.kind for a in raised] == ["pick_not_packed"] and "packing pool" in raised[0].message
    db.session.refresh(task)
    assert task.device_id is None


def test_a_wave_stopped_midway_can_be_released_again_and_a_released_one_cannot(floor):
    put("TEA", "SZ1", "A-01", 10)
    order = order_to(SHENZHEN, [{"sku": "TEA", "quantity": 1, "unit_price": "50.00"}])
    allocation.allocate(order, ADMIN)
    [wave] = waves.plan_waves("SZ1", ADMIN)
    waves.start_release(wave.id, ADMIN)
    db.session.commit()  # the job died here
    waves.start_release(wave.id, ADMIN)
    assert waves.release_chunk(wave.id, TODAY) == 1 and waves.release_chunk(wave.id, TODAY) == 0
    waves.finish_release(wave.id)
    with pytest.raises(Conflict):
        waves.start_release(wave.id, ADMIN)
    assert waves.plan_waves("SZ1", ADMIN) == []  # nothing allocated is left to plan twice


# --- stock operations ---------------------------------------------------------------------------------------

def as_role(role: str, label: str):
    from shared.actors import Actor
    return Actor(id=None, label=label, role=role, ip="127.0.0.1")


def test_a_stock_take_adjusts_only_after_a_manager_approves(floor):
    from shared.models import StockMovement
    from shared.services import stock_ops
    put("TEA", "SZ1", "A-01", 10)
    counter, manager = as_role("warehouse", "counter1"), as_role("ops_manager", "boss1")
    take = stock_ops.start_stock_take("SZ1", counter)
    stock_ops.record_count(take.id, "TEA", 8, counter)
    with pytest.raises(Conflict):  # not submitted: nothing to approve yet
        stock_ops.decide(take.id, True, manager)
    stock_ops.submit(take.id, counter)
    with pytest.raises(Forbidden):  # the warehouse may count, not approve
        stock_ops.decide(take.id, True, counter)
    level = db.session.execute(select(StockLevel).where(StockLevel.sku.has(code="TEA"))).scalar_one()
    assert level.on_hand == 10 and take.status == "submitted"
    stock_ops.decide(take.id, True, manager)
    db.session.refresh(level)
    movement = db.session.execute(select(StockMovement).where(StockMovement.kind == "stocktake")).scalar_one()
    assert (level.on_hand, movement.delta, take.status, take.decided_by) == (8, -2, "approved", "boss1")


def test_a_rejected_stock_take_needs_a_reason_and_changes_no_stock(floor):
    from shared.services import stock_ops
    put("TEA", "SZ1", "A-01", 10)
    counter, manager = as_role("warehouse", "counter1"), as_role("ops_manager", "boss1")
    take = stock_ops.start_stock_take("SZ1", counter)
    stock_ops.record_count(take.id, "TEA", 3, counter)
    stock_ops.submit(take.id, counter)
    with pytest.raises(ValidationFailed):
        stock_ops.decide(take.id, False, manager)
    stock_ops.decide(take.id, False, manager, note="count again: shelf B was missed")
    level = db.session.execute(select(StockLevel).where(StockLevel.sku.has(code="TEA"))).scalar_one()
    assert level.on_hand == 10 and take.status == "rejected"


def test_transfers_move_free_stock_only_and_write_both_movements(floor):
    from shared.models import StockMovement
    from shared.services import stock_ops
    put("TEA", "SZ1", "A-01", 10)
    order_to(SHENZHEN, [{"sku": "TEA", "quantity": 7, "unit_price": "50.00"}])  # 7 reserved in SZ1
    with pytest.raises(Conflict):
        stock_ops.transfer("TEA", "SZ1", "CD1", 4, "rebalance", ADMIN)
    db.session.rollback()
    stock_ops.transfer("TEA", "SZ1", "CD1", 3, "rebalance", ADMIN)
    kinds = db.session.execute(select(StockMovement.kind, StockMovement.delta).where(
        StockMovement.kind.in_(("transfer_out", "transfer_in"))).order_by(StockMovement.id)).all()
    assert kinds == [("transfer_out", -3), ("transfer_in", 3)]
    with pytest.raises(ValidationFailed):
        stock_ops.transfer("TEA", "SZ1", "SZ1", 1, "nothing", ADMIN)


def test_falling_to_safety_stock_alerts_purchasing_once_until_restocked(floor):
    from datetime import UTC, datetime

    from shared.services import alarms
    put("TEA", "SZ1", "A-01", 12)
    stock.get_sku("TEA").safety_stock = 10
    order_to(SHENZHEN, [{"sku": "TEA", "quantity": 3, "unit_price": "50.00"}])  # 9 free
    now = datetime.now(UTC)
    [alarm] = [a for a in alarms.check(now) if a.kind == "low_stock"]
    assert alarm.role == "ops_manager" and "TEA" in alarm.message and "9 free" in alarm.message
    assert [a for a in alarms.check(now) if a.kind == "low_stock"] == []
    put("TEA", "SZ1", "B-02", 20)
    alarms.check(now)
    db.session.refresh(alarm)
    assert alarm.resolved_at is not None


# --- allocation in batches gives what one at a time gives ----------------------------------------------------

def _allocation_of(order) -> tuple:
    shipment = db.session.execute(select(Shipment).where(Shipment.order_id == order.id)).scalar_one_or_none()
    reserved_in = sorted({r.warehouse.code for r in db.session.execute(
        select(Reservation).where(Reservation.order_id == order.id, Reservation.status == "active")).scalars()})
    return (order.status, shipment.warehouse.code if shipment else None, reserved_in)


def test_batch_allocation_agrees_with_one_at_a_time(floor):
    put("TEA", "HZ1", "A-01", 30)
    put("TEA", "SZ1", "A-01", 3)
    put("MILK", "HZ1", "B-02", 30, lot="M-1", expires=TODAY + timedelta(days=30))
    put("MILK", "SZ1", "B-02", 30, lot="M-2", expires=TODAY + timedelta(days=30))
    cases = [(SHENZHEN, [{"sku": "TEA", "quantity": 2, "unit_price": "50.00"}]),       # near, has it
             (SHENZHEN, [{"sku": "TEA", "quantity": 2, "unit_price": "50.00"}]),       # near is short now: far
             (SHENZHEN, [{"sku": "MILK", "quantity": 1, "unit_price": "9.90"}]),       # cold: HZ1 only
             (BEIJING, [{"sku": "TEA", "quantity": 1, "unit_price": "50.00"},
                        {"sku": "MILK", "quantity": 1, "unit_price": "9.90"}])]
    one, batch = [], []
    for number, (place, lines) in enumerate(cases):
        one.append(order_to(place, lines, f"ONE-{number}"))
    for order in one:
        allocation.allocate(order, ADMIN)
    expected = [_allocation_of(order) for order in one]
    db.session.rollback()  # undo: the same orders, now in one batch
    batch = one
    shipments, left = allocation.allocate_many([o.id for o in batch], ADMIN)
    assert left == [] and len(shipments) == len(cases)
    assert [_allocation_of(order) for order in batch] == expected
    assert [e[1] for e in expected] == ["SZ1", "HZ1", "HZ1", "HZ1"]
    levels = {(lvl.warehouse.code, lvl.sku.code): lvl.reserved for lvl in db.session.execute(select(StockLevel))
              .scalars()}
    assert levels[("SZ1", "TEA")] == 2 and levels[("HZ1", "TEA")] == 3 and levels[("SZ1", "MILK")] == 0
    again, left = allocation.allocate_many([o.id for o in batch], ADMIN)
    assert again == [] and left == sorted(o.id for o in batch)  # already allocated: nothing twice


def test_batch_allocation_leaves_what_no_warehouse_can_ship(floor):
    put("TEA", "SZ1", "A-01", 1)
    fits = order_to(SHENZHEN, [{"sku": "TEA", "quantity": 1, "unit_price": "50.00"}], "FIT")
    put("MILK", "SZ1", "B-02", 5, lot="M-1", expires=TODAY + timedelta(days=30))
    cold = order_to(SHENZHEN, [{"sku": "MILK", "quantity": 1, "unit_price": "9.90"}], "COLD")  # no cold warehouse holds it
    shipments, left = allocation.allocate_many([fits.id, cold.id], ADMIN)
    assert [s.order_id for s in shipments] == [fits.id] and left == [cold.id] and cold.status == "confirmed"


def test_whoever_entered_counts_may_not_approve_them(floor):
    from shared.services import stock_ops
    put("TEA", "SZ1", "A-01", 10)
    starter, counting_manager, other = as_role("warehouse", "w1"), as_role("ops_manager", "m1"), \
        as_role("ops_manager", "m2")
    take = stock_ops.start_stock_take("SZ1", starter)
    stock_ops.record_count(take.id, "TEA", 9, counting_manager)
    stock_ops.submit(take.id, starter)
    with pytest.raises(Forbidden):
        stock_ops.decide(take.id, True, counting_manager)
    stock_ops.decide(take.id, True, other)
    assert take.status == "approved"


def test_transferred_units_travel_with_their_batch_and_can_be_picked_there(floor):
    from shared.services import stock_ops
    put("MILK", "HZ1", "A-01", 6, lot="M-7", expires=TODAY + timedelta(days=40))
    stock_ops.transfer("MILK", "HZ1", "SZ1", 4, "rebalance", ADMIN)
    lots = {(lot.warehouse_id, lot.lot_no): lot.quantity for lot in db.session.execute(select(Lot)).scalars()}
    hz, sz = stock.get_warehouse("HZ1").id, stock.get_warehouse("SZ1").id
    assert lots == {(hz, "M-7"): 2, (sz, "M-7"): 4}
    moved = db.session.execute(select(Lot).where(Lot.warehouse_id == sz)).scalar_one()
    assert moved.expires_on == TODAY + timedelta(days=40) and moved.bin.code == "A-01"  # the first bin walked


# --- sets: allocation and wave release without a statement per order ----------------------------------------

def _sent(statements) -> list[str]:
    return [s for s in statements if not s.lstrip().upper().startswith(("SAVEPOINT", "RELEASE"))]


def _assert_same_text(texts: dict) -> None:
    """On PostgreSQL an id set travels as one array parameter (`sets.among`), so the SQL text does not grow with the
    batch (psycopg re-parses a statement past 4 KB on every call, and 2,000 ids made one of 26 KB); only the
    eager loads SQLAlchemy writes itself (selectinload's IN list per 500 ids) may differ, and an INSERT of fewer
    than `EXECUTEMANY_FROM` rows (`shared.database.send_rows`: one multi-row VALUES, so bounded; from that many
    rows on, one executemany of a fixed text)."""
    if db.session.get_bind().dialect.name != "postgresql":
        return
    grown = [a for a, b in zip(texts[2], texts[12], strict=True) if a != b]
    few_rows = [a for a in grown if a.lstrip().startswith("INSERT INTO audit_events") and " RETURNING " in a
                and a.count("%(occurred_at__") < EXECUTEMANY_FROM]
    assert all((" IN (" in a and a.lstrip().startswith(("SELECT customers.", "SELECT order_lines.")))
               or a in few_rows for a in grown), grown


def _tea_orders(count: int, prefix: str) -> list:
    return [order_to(SHENZHEN, [{"sku": "TEA", "quantity": 1, "unit_price": "50.00"}], f"{prefix}-{n}")
            for n in range(count)]


def test_batch_allocation_sends_as_many_statements_for_many_orders_as_for_few(floor):
    from tests.factories import count_queries
    put("TEA", "HZ1", "A-01", 100)  # most free here: that is where the orders reserve when they are created
    put("TEA", "SZ1", "A-01", 50)   # nearest to Shenzhen: where allocation moves them
    role_table.current()  # the permission table's token is read once per request or job, not per batch
    counts, texts = {}, {}
    for size in (2, 12):
        batch = _tea_orders(size, f"N{size}")
        assert {r.warehouse.code for o in batch for r in o.reservations} == {"HZ1"}
        with count_queries() as statements:
            shipments, left = allocation.allocate_many([o.id for o in batch], ADMIN)
            db.session.commit()  # the audit events and anything left to flush are written here
        assert left == [] and len(shipments) == size
        assert {(o.status, o.warehouse.code) for o in batch} == {("allocated", "SZ1")}
        db.session.expire_all()
        assert {r.warehouse.code for o in batch for r in o.reservations} == {"SZ1"}  # the reservations moved
        texts[size] = _sent(statements)
        counts[size] = len(texts[size])
    assert counts[2] == counts[12], counts
    _assert_same_text(texts)
    levels = {lvl.warehouse.code: lvl.reserved for lvl in db.session.execute(select(StockLevel)).scalars()}
    assert levels == {"HZ1": 0, "SZ1": 14}
    events = db.session.execute(select(OutboxEvent.payload).where(OutboxEvent.event_type == "order.allocated")
                                ).scalars().all()
    assert len(events) == 14 and {e["order"]["status"] for e in events} == {"allocated"}
    assert {e["order"]["warehouse"] for e in events} == {"SZ1"}


def test_a_wave_chunk_sends_as_many_statements_for_many_parcels_as_for_few(floor):
    from tests.factories import count_queries
    put("TEA", "SZ1", "A-01", 100)
    counts, texts = {}, {}
    for size in (2, 12):
        allocation.allocate_many([o.id for o in _tea_orders(size, f"W{size}")], ADMIN)
        [wave] = waves.plan_waves("SZ1", ADMIN)
        waves.start_release(wave.id, ADMIN)
        db.session.commit()
        with count_queries() as statements:
            assert waves.release_chunk(wave.id, TODAY, limit=100) == size
            db.session.commit()
        texts[size] = _sent(statements)
        counts[size] = len(texts[size])
        assert wave.task_count == size
    assert counts[2] == counts[12], counts
    _assert_same_text(texts)


def _states(ids) -> dict:
    return dict(db.session.execute(select(Shipment.id, Shipment.status).where(Shipment.id.in_(ids))).all())


def test_a_set_move_checks_every_parcel_against_the_table_and_says_why_it_left_one(floor):
    from shared.floor_lifecycle import SHIPMENT
    put("TEA", "SZ1", "A-01", 10)
    allocation.allocate_many([o.id for o in _tea_orders(3, "S")], ADMIN)
    ready, picking, moved_meanwhile = db.session.execute(select(Shipment.id).order_by(Shipment.id)).scalars().all()
    SHIPMENT.move_set(Shipment, [(picking, "allocated")], "waved")
    SHIPMENT.move_set(Shipment, [(picking, "waved")], "picking")
    SHIPMENT.move_set(Shipment, [(moved_meanwhile, "allocated")], "waved")
    db.session.commit()
    # The caller read `moved_meanwhile` as allocated; it has been waved since.
    rows = [(ready, "allocated"), (picking, "picking"), (moved_meanwhile, "allocated")]
    with pytest.raises(Conflict) as refused:
        SHIPMENT.move_set(Shipment, rows, "waved", refuse=True)  # all or nothing: refused before any write
    assert refused.value.code == "invalid_shipment_transition" and "picking cannot become waved" in refused.value.message
    assert _states([ready, picking, moved_meanwhile]) == {ready: "allocated", picking: "picking",
                                                        moved_meanwhile: "waved"}
    result = SHIPMENT.move_set(Shipment, rows, "waved")  # skip what may not move, and say why
    assert result.moved == [ready]
    assert result.skipped == {picking: "A shipment that is picking cannot become waved",
                              moved_meanwhile: "The shipment changed meanwhile; it was not moved to waved: reload and "
                                               "try again"}
    assert _states([ready, picking, moved_meanwhile]) == {ready: "waved", picking: "picking", moved_meanwhile: "waved"}
    assert db.session.get(Shipment, ready).status == "waved"  # a loaded parcel says what its row says
    with pytest.raises(ValueError):
        SHIPMENT.move_set(Shipment, [(ready, "waved")], "lost")


def test_a_wave_release_killed_halfway_is_finished_by_a_rerun_and_no_parcel_is_picked_twice(floor, monkeypatch):
    """An exception in the second chunk (after its tasks and lot updates were sent): the first chunk stays,
    the second leaves nothing, and a re-run releases exactly the rest: one set of tasks per parcel."""
    from jobs.fulfilment import release_wave
    from shared.models import Wave
    from shared.services import orders as order_service
    put("TEA", "SZ1", "A-01", 40, lot="T-1")
    put("TEA", "SZ1", "B-02", 40, lot="T-2")
    made = [order_to(SHENZHEN, [{"sku": "TEA", "quantity": 1 + n % 3, "unit_price": "50.00"}], f"K-{n}")
            for n in range(7)]
    allocation.allocate_many([o.id for o in made], ADMIN)
    [wave] = waves.plan_waves("SZ1", ADMIN)
    waves.start_release(wave.id, ADMIN)
    db.session.commit()
    real, calls = order_service.transition_many, []

    def dies_in_the_second_chunk(orders, target, *args, **kwargs):
        calls.append(len(orders))
        if len(calls) == 2:
            raise RuntimeError("worker killed")
        return real(orders, target, *args, **kwargs)

    monkeypatch.setattr(order_service, "transition_many", dies_in_the_second_chunk)
    with pytest.raises(RuntimeError):
        release_wave(wave.id, chunk=3)
    db.session.expire_all()
    assert db.session.execute(select(func.count()).select_from(PickTask)).scalar() == 3  # the first chunk only
    assert sorted(_states([s.id for s in db.session.execute(select(Shipment)).scalars()]).values()) == \
        ["picking"] * 3 + ["waved"] * 4
    assert db.session.get(Wave, wave.id).status == "releasing"
    monkeypatch.setattr(order_service, "transition_many", real)
    waves.start_release(wave.id, ADMIN)  # the operator (or the job's retry) resumes it
    db.session.commit()
    assert release_wave(wave.id, chunk=3) == 4
    db.session.expire_all()
    wave = db.session.get(Wave, wave.id)
    tasks = db.session.execute(select(PickTask)).scalars().all()
    per_parcel = {}
    for task in tasks:
        per_parcel[task.shipment_id] = per_parcel.get(task.shipment_id, 0) + task.quantity
    wanted = {s.id: sum(line.quantity for line in s.order.lines) for s in db.session.execute(select(Shipment)).scalars()}
    assert per_parcel == wanted  # every parcel's lines covered exactly once: no task twice, none missing
    assert (wave.status, wave.released_count, wave.task_count, wave.short_count) == ("released", 7, len(tasks), 0)
    assert sum(lot.allocated for lot in db.session.execute(select(Lot)).scalars()) == sum(wanted.values())
    assert {o.status for o in db.session.execute(select(Order)).scalars()} == {"picking"}
    picking_events = db.session.execute(select(OutboxEvent.order_id).where(OutboxEvent.event_type == "order.picking")
                                        ).scalars().all()
    assert sorted(picking_events) == sorted(o.id for o in made)  # one event per order, none from the dead chunk
    for task in tasks:  # and every parcel is picked, once
        scans.pick(floor["device"], {"task": task.id, "bin": task.bin.code, "sku": "TEA", "lot": task.lot.lot_no,
                                     "quantity": task.quantity}, today=TODAY)
    assert set(_states(list(wanted)).values()) == {"picked"}
    with pytest.raises(scans.ScanRefused, match="already picked"):
        scans.pick(floor["device"], {"task": tasks[0].id, "bin": tasks[0].bin.code, "sku": "TEA",
                                     "lot": tasks[0].lot.lot_no, "quantity": 1}, today=TODAY)


def test_a_set_move_of_orders_refuses_an_order_changed_since_it_was_read_or_leaves_it_out(floor):
    from shared.lifecycle import OrderStatus
    put("TEA", "SZ1", "A-01", 10)
    fresh, stale = _tea_orders(2, "V")
    allocation.allocate_many([fresh.id, stale.id], ADMIN)
    db.session.commit()
    db.session.execute(Order.__table__.update().where(Order.__table__.c.id == stale.id)  # another writer, meanwhile
                       .values(version=Order.__table__.c.version + 1))
    assert db.session.execute(select(Order.version).where(Order.id == stale.id)).scalar() == stale.version + 1
    with pytest.raises(Conflict) as refused:
        orders.transition_many([fresh, stale], OrderStatus.PICKING, ADMIN)
    assert refused.value.code == "order_changed" and stale.order_no in refused.value.message
    statuses = dict(db.session.execute(select(Order.id, Order.status)).all())
    assert statuses == {fresh.id: "allocated", stale.id: "allocated"}  # nothing moved
    assert orders.transition_many([fresh, stale], OrderStatus.PICKING, ADMIN, skip_stale=True) == [fresh]
    assert dict(db.session.execute(select(Order.id, Order.status)).all()) == {fresh.id: "picking", stale.id: "allocated"}
    assert fresh.status == "picking"
    events = db.session.execute(select(OutboxEvent.order_id).where(OutboxEvent.event_type == "order.picking")
                                ).scalars().all()
    assert events == [fresh.id]
