"""The demo's warehouse floor: bins, stock placed on them, one handheld per warehouse, and a loop that plans
and releases waves, then picks, packs and loads through the real scan API, while the carrier simulator issues
waybills and moves parcels, pushing Kuaidi100 tracking to the portal. Confirmed → delivered, end to end."""
import logging
import os
import threading

import httpx
from sqlalchemy import select

from shared.extensions import db
from shared.models import Bin, Order, Shipment, Warehouse
from shared.services import lots, scans, waves
from shared.timekeeping import utc_now

log = logging.getLogger("orderloom.demo.floor")
BINS = ("A-01", "A-02", "B-01", "B-02", "C-01")
FLOOR_SECONDS = 15
CARRIER_STEP_SECONDS = 20


def configure_carriers(host: str, port: int, portal_url: str | None = None) -> None:
    """Point the apps (created after this) at the carrier simulator, through the environment they read: waybills,
    tracking pushes and door pickups of returns (商家寄件, whose order callbacks go to the portal's hook)."""
    from devtools.simulators.carriers import DEFAULT_CREDENTIALS

    os.environ.setdefault("ORDERLOOM_CARRIER_API_URL", f"http://{host}:{port}")
    os.environ.setdefault("ORDERLOOM_CARRIER_BUSINESS_ID", DEFAULT_CREDENTIALS["kdniao"]["business_id"])
    os.environ.setdefault("ORDERLOOM_CARRIER_APP_KEY", DEFAULT_CREDENTIALS["kdniao"]["app_key"])
    os.environ.setdefault("ORDERLOOM_KUAIDI100_SALT", DEFAULT_CREDENTIALS["kuaidi100"]["salt"])
    os.environ.setdefault("ORDERLOOM_TRACK17_KEY", DEFAULT_CREDENTIALS["17track"]["key"])
    os.environ.setdefault("ORDERLOOM_KUAIDI100_API_URL", f"http://{host}:{port}")
    os.environ.setdefault("ORDERLOOM_KUAIDI100_KEY", DEFAULT_CREDENTIALS["kuaidi100"]["key"])
    os.environ.setdefault("ORDERLOOM_KUAIDI100_SECRET", DEFAULT_CREDENTIALS["kuaidi100"]["secret"])
    os.environ.setdefault("ORDERLOOM_PICKUP_SALT", "demo-pickup-salt")
    os.environ.setdefault("ORDERLOOM_CARRIER_LOAD_CHECK", "1")  # the 运力 query before each waybill (set_load)
    if portal_url:
        os.environ.setdefault("ORDERLOOM_PICKUP_CALLBACK_URL", f"{portal_url}/hooks/pickups/kuaidi100")


def prepare(actor) -> dict[str, str]:
    """Bins in every warehouse, the counted stock put on the first bin, and a handheld per warehouse (idempotent).

    Returns warehouse code → device token (new tokens each start: a token is shown once)."""
    tokens = {}
    for index, warehouse in enumerate(db.session.execute(select(Warehouse).order_by(Warehouse.id)).scalars()):
        existing = set(db.session.execute(select(Bin.code).where(Bin.warehouse_id == warehouse.id)).scalars())
        for walk, code in enumerate(BINS):
            if code not in existing:
                db.session.add(Bin(warehouse_id=warehouse.id, code=code, walk_order=walk, capacity=100_000))
        db.session.flush()
        lots.shelve_unplaced(warehouse.code, BINS[0], actor)
        if index == 0:
            warehouse.cold_chain = True
        _device, token = scans.register_device(f"PDA-{warehouse.code}-{utc_now():%H%M%S}", warehouse.code, actor)
        tokens[warehouse.code] = token
    return tokens


class Floor(threading.Thread):
    """Waves and handheld scans every few seconds, as a warehouse crew would."""

    def __init__(self, app, portal_url: str, tokens: dict[str, str], actor):
        super().__init__(name="orderloom-floor", daemon=True)
        self.app, self.portal_url, self.tokens, self.actor = app, portal_url, tokens, actor
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(FLOOR_SECONDS):
            try:
                with self.app.app_context():
                    self.shift()
            except Exception:  # the demo keeps going; the log says what went wrong
                log.exception("floor shift failed")

    def stop(self) -> None:
        self.stopping.set()

    def shift(self) -> None:
        from shared import dispatch

        for code in self.tokens:
            for wave in waves.plan_waves(code, self.actor):
                waves.start_release(wave.id, self.actor)
                db.session.commit()
                dispatch.send("jobs.fulfilment.release_wave", wave.id, queue="default")
        db.session.commit()
        db.session.rollback()
        with httpx.Client(base_url=self.portal_url, timeout=30) as client:
            for code, token in self.tokens.items():
                headers = {"Authorization": f"Bearer {token}"}
                for task in client.get("/scan/v1/tasks", headers=headers).json().get("items", [])[:60]:
                    client.post("/scan/v1/pick", headers=headers, json={
                        "operator": "拣货员 小李", "station": f"{code}-PICK", "task": task["task"], "bin": task["bin"],
                        "sku": task["sku"], "lot": task["lot"], "quantity": task["quantity"]})
                warehouse_id = db.session.execute(select(Warehouse.id).where(Warehouse.code == code)).scalar_one()
                db.session.rollback()
                for order_no, _waybill in self._shipments(warehouse_id, "picked"):
                    client.post("/scan/v1/pack", headers=headers, json={
                        "operator": "打包员 小王", "station": f"{code}-PACK", "order": order_no, "box": "BOX-M"})
                for _order_no, waybill in self._shipments(warehouse_id, "packed"):
                    client.post("/scan/v1/load", headers=headers, json={
                        "operator": "装车员 小张", "station": f"{code}-DOCK", "parcel": waybill,
                        "truck": f"{code}-TRUCK-1"})
        db.session.rollback()

    @staticmethod
    def _shipments(warehouse_id: int, status: str) -> list[tuple[str, str | None]]:
        """Plain values, and the transaction ended before any request: on SQLite every transaction takes the
        write lock, and a scan request waiting for it while we wait for the scan would never finish."""
        rows = db.session.execute(select(Order.order_no, Shipment.waybill_no).join(Order, Order.id == Shipment.order_id)
                                  .where(Shipment.warehouse_id == warehouse_id, Shipment.status == status)
                                  .limit(60)).all()
        db.session.rollback()
        return [tuple(row) for row in rows]


def start_carriers(host: str, port: int, portal_url: str) -> tuple[threading.Thread, threading.Event]:
    """The carrier simulator: waybills for the pack scans, parcels moving a step every few seconds, Kuaidi100
    pushes to the portal's tracking hook."""
    from devtools.simulators.carriers import DEFAULT_CREDENTIALS
    from devtools.simulators.carriers.run import run

    stop = threading.Event()
    thread = threading.Thread(target=run, name="orderloom-carriers", daemon=True, kwargs={
        "host": host, "port": port, "stop": stop, "step_seconds": CARRIER_STEP_SECONDS,
        "kuaidi100_target": (f"{portal_url}/hooks/tracking/kuaidi100", DEFAULT_CREDENTIALS["kuaidi100"]["salt"])})
    thread.start()
    return thread, stop

