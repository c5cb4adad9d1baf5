"""Handhelds at the same bin at the same moment, with real commits on PostgreSQL: no unit is lost or
counted twice, and an order is allocated once however many allocators run."""
import threading
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from shared.extensions import db
from shared.models import Bin, Lot, Order, PickTask, Shipment
from shared.services import allocation, catalog, lots, orders, scans, stock, waves
from tests.factories import ADMIN, order_payload

pytestmark = [pytest.mark.live, pytest.mark.parametrize("live_apps", ["postgresql"], indirect=True)]
CLIENTS = 6


def _floor(app, orders_wanted: int) -> tuple[list[int], int]:
    with app.app_context():
        catalog.create_channel("OS", "官网商城", "own_shop", ADMIN)
        catalog.create_warehouse({"code": "SZ1", "name": "深圳仓", "province": "广东省", "city": "深圳市"}, ADMIN)
        db.session.add(Bin(warehouse_id=stock.get_warehouse("SZ1").id, code="A-01", walk_order=1, capacity=1000))
        catalog.create_sku({"sku": "TEA", "name": "龙井茶"}, ADMIN)
        db.session.flush()
        lots.receive("TEA", "SZ1", "A-01", orders_wanted, ADMIN, lot_no="T-1",
                           expires_on=date.today() + timedelta(days=100))
        made = []
        for number in range(orders_wanted):
            order = orders.create_order(order_payload(channel_order_id=f"C-{number}",
                                                      lines=[{"sku": "TEA", "quantity": 1, "unit_price": "9.00"}]),
                                        ADMIN)
            made.append(order.id)
        _device, token = scans.register_device("PDA-1", "SZ1", ADMIN)
        db.session.commit()
        return made, scans.device_for_token(token).id


def _in_parallel(app, work) -> list[str]:
    start, outcomes, lock = threading.Barrier(CLIENTS), [], threading.Lock()

    def client(number: int):
        with app.app_context():
            start.wait()
            try:
                result = work(number)
                db.session.commit()
            except Exception as error:  # noqa: BLE001  (every outcome is asserted below)
                db.session.rollback()
                result = type(error).__name__
            finally:
                db.session.remove()
            with lock:
                outcomes.append(result)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_six_allocators_at_once_allocate_each_order_once(live_apps):
    app = live_apps.core
    made, _device = _floor(app, CLIENTS)
    outcomes = _in_parallel(app, lambda n: len(allocation.allocate_many(made, ADMIN)[0]))
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(Shipment)).scalar() == CLIENTS
        assert sum(o for o in outcomes if isinstance(o, int)) == CLIENTS, outcomes


def test_six_handhelds_picking_one_bin_at_once_lose_no_unit(live_apps):
    app = live_apps.core
    made, device_id = _floor(app, CLIENTS)
    with app.app_context():
        for order_id in made:
            allocation.allocate(db.session.get(orders.Order, order_id), ADMIN)
        [wave] = waves.plan_waves("SZ1", ADMIN)
        waves.start_release(wave.id, ADMIN)
        waves.release_chunk(wave.id, date.today())
        db.session.commit()
        tasks = [task.id for task in waves.pick_list(wave.id)]

    def pick(number: int) -> str:
        from shared.models import Device
        device = db.session.get(Device, device_id)
        scans.pick(device, {"task": tasks[number], "bin": "A-01", "sku": "TEA", "lot": "T-1", "quantity": 1})
        return "picked"

    outcomes = _in_parallel(app, pick)
    assert outcomes == ["picked"] * CLIENTS
    with app.app_context():
        lot = db.session.execute(select(Lot)).scalar_one()
        assert (lot.quantity, lot.allocated) == (0, 0)
        assert db.session.execute(select(func.count()).select_from(PickTask).where(PickTask.status == "done")
                                  ).scalar() == CLIENTS


def test_a_real_worker_allocates_and_releases_a_wave_through_redis(live_apps):
    """`orderloom worker --burst` runs the allocation job and a wave release sent through RQ."""
    import subprocess
    import sys
    from pathlib import Path

    from rq import Queue

    from jobs import queues
    from tests.test_worker import _redis, _worker_env

    app = live_apps.core
    made, _device = _floor(app, CLIENTS)
    redis = _redis()
    redis.flushdb()
    Queue(queues.DEFAULT, connection=redis).enqueue("jobs.fulfilment.allocate_confirmed")
    command = [str(Path(sys.executable).parent / "orderloom"), "worker", "--burst", "--simple"]
    root = Path(__file__).resolve().parent.parent
    finished = subprocess.run(command, env=_worker_env(live_apps.url), capture_output=True, text=True, timeout=120,
                              cwd=root)
    assert finished.returncode == 0, finished.stderr
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(Shipment)).scalar() == CLIENTS
        [wave] = waves.plan_waves("SZ1", ADMIN)
        waves.start_release(wave.id, ADMIN)
        db.session.commit()
        wave_id = wave.id
    Queue(queues.DEFAULT, connection=redis).enqueue("jobs.fulfilment.release_wave", wave_id)
    finished = subprocess.run(command, env=_worker_env(live_apps.url), capture_output=True, text=True, timeout=120,
                              cwd=root)
    assert finished.returncode == 0, finished.stderr
    with app.app_context():
        from shared.models import Wave
        wave = db.session.get(Wave, wave_id)
        assert (wave.status, wave.released_count, wave.task_count) == ("released", CLIENTS, CLIENTS)
        assert db.session.execute(select(func.count()).select_from(Order)
                                  .where(Order.status == "picking")).scalar() == CLIENTS
