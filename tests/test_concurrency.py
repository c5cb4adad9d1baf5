"""No oversell under concurrent writers, on SQLite and PostgreSQL, with real commits."""
import threading

from sqlalchemy import func, select

from shared.extensions import db
from shared.models import Order, Reservation, StockLevel
from shared.services import audit, orders, stock
from shared.services.errors import InsufficientStock
from tests.factories import ADMIN, open_shop, order_payload

CLIENTS = 50
UNITS = 20


def test_fifty_parallel_orders_for_twenty_units_sell_exactly_twenty(live_apps):
    app = live_apps.core
    with app.app_context():
        open_shop("HOT-1", UNITS, "限量礼盒")
        db.session.commit()

    start = threading.Barrier(CLIENTS)
    outcomes: list[str] = []
    lock = threading.Lock()

    def client(number: int):
        with app.app_context():
            payload = order_payload(channel_order_id=f"RUSH-{number}",
                                    lines=[{"sku": "HOT-1", "quantity": 1, "unit_price": "99.00"}])
            start.wait()
            try:
                orders.create_order(payload, ADMIN)
                db.session.commit()
                result = "sold"
            except InsufficientStock:
                db.session.rollback()
                result = "refused"
            except Exception as exc:  # anything else is a bug the assertion below will show
                db.session.rollback()
                result = f"error: {exc!r}"
            finally:
                db.session.remove()
            with lock:
                outcomes.append(result)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert sorted(set(outcomes)) == ["refused", "sold"], outcomes
    assert outcomes.count("sold") == UNITS and outcomes.count("refused") == CLIENTS - UNITS
    with app.app_context():
        level = db.session.execute(select(StockLevel)).scalar_one()
        assert (level.on_hand, level.reserved, level.held) == (UNITS, UNITS, 0)
        assert level.available == 0
        assert db.session.scalar(select(func.count()).select_from(Order)) == UNITS
        assert db.session.scalar(select(func.sum(Reservation.quantity)).where(Reservation.status == "active")) == UNITS
        assert stock.ledger_on_hand(level.sku_id, level.warehouse_id) == level.on_hand
        numbers = db.session.execute(select(Order.order_no)).scalars().all()
        assert len(set(numbers)) == UNITS  # daily sequence never hands out a number twice
        intact, checked, problem = audit.verify_chain()
        assert intact, problem
        assert checked >= 4 + UNITS * 2  # set-up events, then a create and a confirm per sold order
