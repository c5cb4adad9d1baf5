"""Tracking pushes are processed as sets: a batch of N deliveries costs the same handful of statements as a batch of
two, duplicate events are stored once, a push for an unknown parcel goes to review without stopping the others,
delivered parcels complete their orders (one versioned UPDATE for the set, `orders.transition_many`), and an order
changed meanwhile is skipped or refuses the set, as asked."""
import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from shared.actors import SYSTEM
from shared.carriers.tracking import TrackingEvent as Event
from shared.extensions import db
from shared.lifecycle import OrderStatus
from shared.models import AuditEvent, Order, OutboxEvent, Shipment, TrackingEvent, TrackingPush
from shared.services import orders, tracking
from shared.services.errors import Conflict, InvalidTransition
from shared.timekeeping import utc_now
from tests.factories import ADMIN, count_queries, open_shop, order_payload

START = utc_now() - timedelta(hours=30)
JOURNEY = (("PickedUp", "in_transit"), ("Arrival", "in_transit"), ("OutForDelivery", "out_for_delivery"),
           ("Delivered", "delivered"))


@pytest.fixture
def shop(session):
    open_shop(units=500)
    db.session.flush()


def shipped_orders(count: int, tag: str, parcels_each: int = 1) -> list[tuple[Order, list[Shipment]]]:
    """`count` orders on their way, each with `parcels_each` shipped parcels (set-up: the floor is tested elsewhere)."""
    made = []
    warehouse_id = None
    for index in range(count):
        order = orders.create_order(order_payload(channel_order_id=f"B-{tag}-{index}"), ADMIN)
        db.session.flush()
        warehouse_id = order.warehouse_id or warehouse_id or _warehouse_id()
        parcels = []
        for parcel in range(parcels_each):
            if parcel:  # a split order: its further parcels come from other warehouses (one open parcel each)
                warehouse_id = _other_warehouse(parcel)
            shipment = Shipment(order_id=order.id, warehouse_id=warehouse_id, status="shipped", priority=0,
                                carrier_code="SF", waybill_no=f"SF{tag}{index:03d}{parcel}",
                                shipped_at=utc_now() - timedelta(days=1))
            db.session.add(shipment)
            parcels.append(shipment)
        order.status = "shipped"  # set-up only: as if packed and loaded
        made.append((order, parcels))
    db.session.commit()
    return made


def _warehouse_id() -> int:
    from shared.services import stock
    return stock.get_warehouse("HZ1").id


def _other_warehouse(index: int) -> int:
    from shared.services import catalog, stock
    code = f"W{index}"
    try:
        return stock.get_warehouse(code).id
    except Exception:  # noqa: BLE001 — not there yet
        return catalog.create_warehouse({"code": code, "name": f"仓{index}", "province": "广东省", "city": "广州市"},
                                        ADMIN).id


def journey(waybill_no: str, steps=JOURNEY) -> list[Event]:
    return [Event(waybill_no=waybill_no, carrier="SF", occurred_at=START + timedelta(hours=index * 3),
                  description=f"{stage} {waybill_no}", location="深圳市", source="17track", raw_status=stage,
                  step=step, flag=None) for index, (stage, step) in enumerate(steps)]


def push_body(waybill_no: str, steps=JOURNEY) -> bytes:
    """A 17TRACK TRACKING_UPDATED push carrying the parcel's whole history so far, newest first, as 17TRACK sends."""
    events = [{"time_utc": event.occurred_at.isoformat(), "description": event.description, "location": "深圳市",
               "stage": event.raw_status, "sub_status": None} for event in reversed(journey(waybill_no, steps))]
    status = "Delivered" if steps[-1][1] == "delivered" else "InTransit"
    return json.dumps({"event": "TRACKING_UPDATED", "data": {
        "number": waybill_no, "carrier": 100012, "track_info": {
            "latest_status": {"status": status, "sub_status": None},
            "tracking": {"providers": [{"events": events}]}}}}, ensure_ascii=False).encode()


def receive(bodies: list[bytes]) -> list[int]:
    ids = [tracking.receive_push("17track", body, "application/json") for body in bodies]
    db.session.commit()
    return tracking.claim(ids)


def count(model, *where) -> int:
    return db.session.execute(select(func.count()).select_from(model).where(*where)).scalar()


def deliver_batch(made) -> list[str]:
    """Every parcel's whole journey in one batch of pushes (each push repeating the history, as 17TRACK does),
    processed and committed; returns the statements sent."""
    bodies = [push_body(parcel.waybill_no, JOURNEY[:length]) for _order, parcels in made for parcel in parcels
              for length in range(1, len(JOURNEY) + 1)]
    ids = receive(bodies)
    with count_queries() as statements:
        tally = tracking.process_pushes(ids)
        db.session.commit()
    assert tally == {"done": len(bodies)}
    return statements


def test_a_batch_of_deliveries_costs_a_fixed_number_of_statements(shop):
    deliver_batch(shipped_orders(1, "W"))  # warm-up: reference rows the first batch reads once
    small, large = shipped_orders(2, "S"), shipped_orders(9, "L")
    few, many = deliver_batch(small), deliver_batch(large)
    assert len(many) == len(few), "\n".join(many)
    assert len(many) <= 25
    for made in (small, large):
        for order, parcels in made:
            db.session.refresh(order)
            assert order.status == OrderStatus.COMPLETED
            for parcel in parcels:
                db.session.refresh(parcel)
                assert (parcel.status, parcel.tracking_step) == ("delivered", "delivered")
                assert parcel.delivered_at == START + timedelta(hours=9)
                assert count(TrackingEvent, TrackingEvent.shipment_id == parcel.id) == len(JOURNEY)


def test_duplicate_events_are_stored_once_within_a_batch_and_across_batches(shop):
    [(order, [parcel])] = shipped_orders(1, "D")
    first = tracking.ingest(journey(parcel.waybill_no)[:2] * 3)  # the same two events three times
    assert first["stored"] == 2 and first["new_by_number"] == {parcel.waybill_no: 2}
    again = tracking.ingest(journey(parcel.waybill_no)[:3])  # history repeated, one new event
    assert again["stored"] == 1
    db.session.commit()
    assert count(TrackingEvent, TrackingEvent.shipment_id == parcel.id) == 3
    db.session.refresh(parcel)
    assert parcel.tracking_step == "out_for_delivery" and parcel.status == "shipped"
    assert tracking.ingest(journey(parcel.waybill_no)[:3])["stored"] == 0


def test_a_late_event_older_than_the_last_is_summarized_with_what_is_stored(shop):
    [(order, [parcel])] = shipped_orders(1, "O")
    steps = journey(parcel.waybill_no)
    tracking.ingest([steps[0], steps[3]])  # picked up, then delivered
    tracking.ingest([steps[2]])  # "out for delivery" arrives late: a delivered parcel stays delivered
    db.session.commit()
    db.session.refresh(parcel)
    db.session.refresh(order)
    assert (parcel.tracking_step, parcel.status, order.status) == ("delivered", "delivered", "completed")
    assert parcel.last_event_at == steps[3].occurred_at


def test_a_push_for_an_unknown_parcel_goes_to_review_and_the_others_are_done(shop):
    made = shipped_orders(2, "U")
    known = [push_body(parcels[0].waybill_no) for _order, parcels in made]
    ids = receive([known[0], push_body("SF9999999999"), known[1]])
    assert tracking.process_pushes(ids) == {"done": 2, "review": 1}
    db.session.commit()
    pushes = {push.waybill_no: push for push in db.session.execute(
        select(TrackingPush).where(TrackingPush.id.in_(ids))).scalars()}
    assert (pushes["SF9999999999"].status, pushes["SF9999999999"].error_code) == ("review", "unknown_tracking_number")
    for order, [parcel] in made:
        push = pushes[parcel.waybill_no]
        assert (push.status, push.outcome, push.events_stored) == ("done", "stored", len(JOURNEY))
        db.session.refresh(order)
        assert order.status == OrderStatus.COMPLETED


def test_delivered_parcels_complete_their_orders_with_an_audit_event_and_an_outbox_row_each(shop):
    (one, [only]), (split, [first, second]) = shipped_orders(1, "P")[0], shipped_orders(1, "Q", parcels_each=2)[0]
    tracking.ingest(journey(only.waybill_no) + journey(first.waybill_no))
    db.session.commit()
    db.session.refresh(one)
    db.session.refresh(split)
    # The split order still has a parcel on its way: it stays shipped.
    assert (one.status, split.status) == (OrderStatus.COMPLETED, OrderStatus.SHIPPED)
    tracking.ingest(journey(second.waybill_no))
    db.session.commit()
    db.session.refresh(split)
    assert split.status == OrderStatus.COMPLETED
    for order in (one, split):
        assert count(OutboxEvent, OutboxEvent.order_id == order.id, OutboxEvent.event_type == "order.completed") == 1
        moves = db.session.execute(select(AuditEvent).where(
            AuditEvent.entity_id == order.order_no, AuditEvent.action == "order.transition")).scalars().all()
        completed = [row for row in moves if row.after["status"] == "completed"]
        assert len(completed) == 1 and completed[0].before["status"] == "shipped"
        assert completed[0].reason == tracking.COMPLETED_BY_CARRIER and completed[0].actor_label == SYSTEM.label
        payload = db.session.execute(select(OutboxEvent.payload).where(OutboxEvent.order_id == order.id)
                                     .order_by(OutboxEvent.id.desc())).scalars().first()
        assert payload["order"]["status"] == "completed" and "*" in payload["order"]["shipping_address"]["phone"]


def _made_stale(order: Order) -> None:
    """Another transaction changed the order after it was read: its version moved on behind this session's back."""
    db.session.execute(text("UPDATE orders SET version = version + 1, hold_reason = 'changed' WHERE id = :id"),
                       {"id": order.id})


def test_a_stale_order_is_skipped_and_the_others_move(shop):
    (fresh_order, _p), (stale_order, _q) = shipped_orders(2, "K")
    _made_stale(stale_order)
    outbox_before = count(OutboxEvent)
    moved = orders.transition_many([fresh_order, stale_order], OrderStatus.COMPLETED, SYSTEM, "test",
                                   skip_stale=True)
    assert moved == [fresh_order]
    assert fresh_order.status == OrderStatus.COMPLETED
    db.session.commit()
    statuses = dict(db.session.execute(select(Order.id, Order.status).where(
        Order.id.in_([fresh_order.id, stale_order.id]))).all())
    assert statuses == {fresh_order.id: "completed", stale_order.id: "shipped"}
    assert count(OutboxEvent) == outbox_before + 1


def test_a_stale_order_refuses_the_whole_set_by_default_and_nothing_moves(shop):
    (fresh_order, _p), (stale_order, _q) = shipped_orders(2, "R")
    _made_stale(stale_order)
    outbox_before = count(OutboxEvent)
    with pytest.raises(Conflict) as refused:
        orders.transition_many([fresh_order, stale_order], OrderStatus.COMPLETED, SYSTEM, "test")
    assert refused.value.code == "order_changed" and stale_order.order_no in str(refused.value)
    statuses = set(db.session.execute(select(Order.status).where(
        Order.id.in_([fresh_order.id, stale_order.id]))).scalars())
    assert statuses == {"shipped"} and count(OutboxEvent) == outbox_before


def test_an_order_named_twice_in_the_set_moves_once(shop):
    [(again, _r)] = shipped_orders(1, "KK")
    version, outbox_before = again.version, count(OutboxEvent)
    assert orders.transition_many([again, again], OrderStatus.COMPLETED, SYSTEM, "twice") == [again]
    assert again.version == version + 1 and count(OutboxEvent) == outbox_before + 1
    db.session.commit()
    assert db.session.execute(select(Order.version).where(Order.id == again.id)).scalar() == version + 1


def test_an_undeclared_move_refuses_the_set_before_anything_is_written(shop):
    (shipped, _p), = shipped_orders(1, "X")
    with count_queries() as statements, pytest.raises(InvalidTransition):
        orders.transition_many([shipped], OrderStatus.CONFIRMED, SYSTEM)
    assert not [s for s in statements if s.lstrip().upper().startswith(("UPDATE", "INSERT"))]
    assert db.session.execute(select(Order.status).where(Order.id == shipped.id)).scalar() == "shipped"


def test_a_delivered_parcel_whose_order_changed_meanwhile_is_decided_again_on_its_fresh_state(shop, monkeypatch):
    """The set move skips an order changed since it was read; it is read again and completed alone if still
    shipped (nothing lost), or left as the other change made it."""
    (changed, [parcel]), = shipped_orders(1, "C")
    real = orders.transition_many

    def changed_just_before(orders_, *args, **kwargs):
        for order in orders_:
            _made_stale(order)
        return real(orders_, *args, **kwargs)

    monkeypatch.setattr(orders, "transition_many", changed_just_before)
    tracking.ingest(journey(parcel.waybill_no))
    db.session.commit()
    db.session.refresh(changed)
    assert changed.status == OrderStatus.COMPLETED and changed.hold_reason == "changed"
    assert count(OutboxEvent, OutboxEvent.order_id == changed.id, OutboxEvent.event_type == "order.completed") == 1


def test_set_updates_match_on_version_and_return_only_the_rows_they_changed(shop, monkeypatch):
    """shared/sets.update_rows: one statement for the set (SQLite: per chunk of its value limit, made tiny here),
    rows whose match columns no longer agree are left alone and not returned."""
    from shared import sets

    monkeypatch.setattr(sets, "SQLITE_MAX_VALUES", 8)  # 4 values a row: two rows per SQLite statement
    made = shipped_orders(5, "V")
    _made_stale(made[2][0])
    db.session.expire_all()
    rows = [{"id": order.id, "version": version, "status": "completed", "updated_at": utc_now()}
            for (order, _p), version in zip(made, db.session.execute(select(Order.version).where(
                Order.id.in_([order.id for order, _p in made])).order_by(Order.id)).scalars())]
    rows[2]["version"] -= 1  # read before the other transaction's change
    returned = sets.update_rows(Order, rows, ["status", "updated_at"], match=("id", "version"), increment="version",
                                returning=["id", "updated_at"])
    assert sorted(row_id for row_id, _at in returned) == sorted(row["id"] for row in rows if row is not rows[2])
    assert all(at.tzinfo is not None for _id, at in returned)
    statuses = dict(db.session.execute(select(Order.id, Order.status)
                                       .where(Order.id.in_([r["id"] for r in rows]))).all())
    assert [statuses[row["id"]] for row in rows] == ["completed", "completed", "shipped", "completed", "completed"]
