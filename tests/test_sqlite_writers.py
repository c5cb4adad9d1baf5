"""The embedded SQLite database under the demo's kind of load: several request threads and a second process
(as `orderloom worker` is) writing at once. Every write lands and none is answered `database is locked`."""
import os
import subprocess
import sys
import threading

import pytest
from sqlalchemy import func, select

from shared.config import PROJECT_ROOT
from shared.database import upgrade
from shared.extensions import db
from shared.models import Order, StockLevel, StockMovement
from shared.services import catalog, staff, stock
from shared.services.stock import ledger_on_hand
from tests.conftest import app_config
from tests.factories import ADMIN, order_payload

WRITERS, ORDERS_EACH, READERS, WORKER_ADJUSTMENTS = 6, 12, 2, 40

WORKER = """
import sys
from shared.actors import Actor
from shared.appcore import create_core_app
from shared.extensions import db
from shared.services import stock
from tests.conftest import app_config

app = create_core_app("worker-like", app_config(sys.argv[1]))
with app.app_context():
    for n in range(int(sys.argv[2])):
        stock.adjust_stock("HOT", "HZ1", 1, f"receipt {n}", Actor(id=None, label="worker", role="system"),
                           kind="receipt")
        db.session.commit()
print("worker done")
"""


@pytest.mark.live
def test_request_threads_and_a_worker_process_write_one_sqlite_file_at_once(tmp_path):
    from portal import create_app

    url = f"sqlite:///{tmp_path / 'embedded.sqlite3'}"
    upgrade(url)
    app = create_app(app_config(url))
    with app.app_context():
        catalog.create_channel("OS", "官网商城", "own_shop", ADMIN)
        catalog.create_warehouse({"code": "HZ1", "name": "杭州仓", "province": "浙江省", "city": "杭州市"}, ADMIN)
        for code in ("HOT", "TEA"):
            catalog.create_sku({"sku": code, "name": code}, ADMIN)
            stock.adjust_stock(code, "HZ1", 1000, "opening stock", ADMIN, kind="receipt")
        user = staff.create_user("api-clerk", "a long enough password", "ops_manager", ADMIN)
        db.session.commit()
        token = staff.issue_token(user, ADMIN)
        db.session.commit()
        db.session.remove()
    headers = {"Authorization": f"Bearer {token}"}
    answers, lock = [], threading.Lock()
    start = threading.Barrier(WRITERS + READERS + 1)

    def writer(number: int):
        client = app.test_client()
        start.wait()
        for k in range(ORDERS_EACH):
            lines = [{"sku": "HOT", "quantity": 1, "unit_price": "9.00"}, {"sku": "TEA", "quantity": 2,
                                                                           "unit_price": "5.00"}]
            answer = client.post("/api/v1/orders", headers=headers,
                                 json=order_payload(channel_order_id=f"W{number}-{k}", lines=lines))
            with lock:
                answers.append((answer.status_code, answer.get_data(as_text=True)[:200]))

    def reader():
        client = app.test_client()
        start.wait()
        for _ in range(ORDERS_EACH):
            for path in ("/api/v1/orders?limit=20", "/api/v1/stock/HOT"):
                answer = client.get(path, headers=headers)
                with lock:
                    answers.append((answer.status_code, answer.get_data(as_text=True)[:200]))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    threads += [threading.Thread(target=reader) for _ in range(READERS)]
    for thread in threads:
        thread.start()
    start.wait()
    worker = subprocess.run([sys.executable, "-c", WORKER, url, str(WORKER_ADJUSTMENTS)], cwd=PROJECT_ROOT,
                            env=os.environ | {"PYTHONPATH": str(PROJECT_ROOT)}, capture_output=True, text=True,
                            timeout=300)
    for thread in threads:
        thread.join()
    assert worker.returncode == 0 and "worker done" in worker.stdout, worker.stderr[-2000:]
    failures = [answer for answer in answers if answer[0] >= 400]
    assert failures == [], failures[:3]
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(Order)).scalar() == WRITERS * ORDERS_EACH
        hot = db.session.execute(select(StockLevel).where(StockLevel.sku.has(code="HOT"))).scalar_one()
        assert hot.on_hand == 1000 + WORKER_ADJUSTMENTS and hot.reserved == WRITERS * ORDERS_EACH
        assert hot.on_hand == ledger_on_hand(hot.sku_id, hot.warehouse_id)
        assert db.session.execute(select(func.count()).select_from(StockMovement)).scalar() == 2 + WORKER_ADJUSTMENTS
        db.session.remove()
        db.engine.dispose()
