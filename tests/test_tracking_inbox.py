"""Carrier tracking pushes go through an inbox like channel webhooks: verified, stored raw before anything else,
answered, processed in batches by a job, failures kept with their reason and replayable from the portal; both
17TRACK push shapes (track_info with or without provider events, and the older `track`) produce events."""
import hashlib
import json
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from shared.carriers.signing import kuaidi100_push_sign, track17_sign
from shared.carriers.tracking import read_17track_push
from shared.extensions import db
from shared.models import AuditEvent, Order, Shipment, TrackingEvent, TrackingPush, WebhookRejection
from shared.services import inbox, orders, tracking
from shared.timekeeping import utc_now
from tests.factories import ADMIN, open_shop, order_payload
from tests.portal_client import csrf_token

FIXTURES = Path(__file__).parent / "fixtures" / "carriers"
KEY, SALT = "orderloom-fixture-key", "orderloom-fixture-salt"


def number_of(name: str) -> str:
    """The parcel a 17TRACK fixture is about."""
    return json.loads((FIXTURES / "17track" / name).read_text(encoding="utf-8"))["data"]["number"]


@pytest.fixture
def carriers_configured(portal):
    saved = {name: portal.config.get(name) for name in ("TRACK17_KEY", "KUAIDI100_SALT")}
    portal.config.update(TRACK17_KEY=KEY, KUAIDI100_SALT=SALT)
    yield portal
    portal.config.update(saved)


def shipped_parcel(waybill_no: str) -> tuple[Order, Shipment]:
    """An order of our own shop on its way with parcel `waybill_no` (set-up: the floor's scans are tested elsewhere)."""
    open_shop()
    order = orders.create_order(order_payload(channel_order_id=f"T-{waybill_no}"), ADMIN)
    db.session.flush()
    shipment = Shipment(order_id=order.id, warehouse_id=order.warehouse_id or _warehouse_id(), status="shipped",
                        priority=0, carrier_code="SF", waybill_no=waybill_no, shipped_at=utc_now() - timedelta(days=1))
    db.session.add(shipment)
    order.status = "shipped"  # set-up only: as if packed and loaded
    db.session.commit()
    return order, shipment


def _warehouse_id() -> int:
    from shared.services import stock
    return stock.get_warehouse("HZ1").id


def push_17track(client, name: str, key: str = KEY):
    raw = (FIXTURES / "17track" / name).read_bytes()
    return client.post("/hooks/tracking/17track", data=raw,
                       headers={"Content-Type": "application/json", "sign": track17_sign(raw, key)})


def push_kuaidi100(client, name: str, salt: str = SALT):
    param = (FIXTURES / "kuaidi100" / name).read_text(encoding="utf-8")
    body = urlencode({"param": param, "sign": kuaidi100_push_sign(param, salt)})
    return client.post("/hooks/tracking/kuaidi100", data=body,
                       headers={"Content-Type": "application/x-www-form-urlencoded"})


def count(model) -> int:
    return db.session.execute(select(func.count()).select_from(model)).scalar()


def fresh(model, ident):
    db.session.expire_all()
    return db.session.get(model, ident)


# --- both 17TRACK shapes ----------------------------------------------------------------------------------

def test_a_push_with_only_latest_event_yields_that_event():
    raw = (FIXTURES / "17track" / "push_latest_event_only.json").read_bytes()
    body = json.loads(raw)
    assert body["data"]["track_info"]["tracking"]["providers"][0]["events"] == []  # the shape the issue saw
    [event] = read_17track_push(raw)
    assert (event.waybill_no, event.step, event.raw_status) == (number_of("push_latest_event_only.json"),
                                                                "out_for_delivery", "OutForDelivery_Other")
    assert event.occurred_at.isoformat() == "2025-11-13T00:55:27+00:00"


def test_the_older_track_shape_reads_z1_events_in_beijing_time_and_e_on_the_newest():
    events = read_17track_push((FIXTURES / "17track" / "push_v1_track.json").read_bytes())
    assert len(events) == 7 and [e.step for e in events[:-1]] == [None] * 6
    newest = events[-1]
    assert (newest.step, newest.raw_status, newest.carrier) == ("delivered", "v1:40", "SF")
    assert newest.occurred_at.isoformat() == "2025-11-13T03:02:00+00:00"  # 11:02 Beijing time
    assert events[0].description == "顺丰已收到您的电子运单信息，待快递员揽收"


def test_an_old_shape_time_of_an_unknown_carrier_is_refused_not_guessed():
    from shared.carriers.tracking import TrackingPayloadError

    body = json.loads((FIXTURES / "17track" / "push_v1_track.json").read_text(encoding="utf-8"))
    body["data"]["track"]["w1"] = 21051  # USPS: its local zone is not ours to guess
    with pytest.raises(TrackingPayloadError) as refused:
        read_17track_push(json.dumps(body).encode())
    assert refused.value.code == "invalid_timestamp"


@pytest.mark.parametrize("name, events, step, order_status", [
    ("push_Delivered.json", 7, "delivered", "completed"),
    ("push_v1_track.json", 7, "delivered", "completed"),
    ("push_latest_event_only.json", 1, "out_for_delivery", "shipped"),
])
def test_each_17track_shape_stores_events_through_the_inbox(carriers_configured, name, events, step, order_status):
    order, shipment = shipped_parcel(number_of(name))
    answer = push_17track(carriers_configured.test_client(), name)
    assert answer.status_code == 200 and answer.get_json()["code"] == 0
    push = fresh(TrackingPush, answer.get_json()["received"])
    assert (push.status, push.outcome, push.events_stored, push.waybill_no) == ("done", "stored", events,
                                                                                  number_of(name))
    assert count(TrackingEvent) == events
    assert fresh(Shipment, shipment.id).tracking_step == step
    assert fresh(Order, order.id).status == order_status


# --- stored before processing -----------------------------------------------------------------------------

def test_a_push_is_stored_raw_before_processing_and_a_failing_processor_leaves_it_replayable(
        carriers_configured, client_for, monkeypatch):
    _order, shipment = shipped_parcel(number_of("push_Delivered.json"))

    def broken(events, now=None):
        raise RuntimeError("tracking store unavailable")

    monkeypatch.setattr(tracking, "ingest", broken)
    answer = push_17track(carriers_configured.test_client(), "push_Delivered.json")
    assert answer.status_code == 200  # stored: 17TRACK need not send it again
    push = fresh(TrackingPush, answer.get_json()["received"])
    raw = (FIXTURES / "17track" / "push_Delivered.json").read_text(encoding="utf-8")
    assert push.body == raw and push.content_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert (push.status, push.attempts, push.error_code) == ("retry", 1, "processing_failed")
    assert "RuntimeError: tracking store unavailable" in push.last_error and count(TrackingEvent) == 0
    for _ in range(inbox.MAX_ATTEMPTS - 1):  # the sweeper hands it back until it is dead-lettered
        ids = tracking.sweep_pushes(utc_now() + timedelta(hours=1))
        assert ids == [push.id]
        tracking.process_pushes(tracking.claim(ids))
        db.session.commit()
    push = fresh(TrackingPush, push.id)
    assert (push.status, push.attempts) == ("dead", inbox.MAX_ATTEMPTS) and count(TrackingEvent) == 0

    monkeypatch.undo()  # the bug is fixed: replay from the portal's inbox page
    admin = client_for("admin")
    page = admin.get("/channels/inbox/tracking")
    assert page.status_code == 200 and f'data-testid="push-row-{push.id}"' in page.text
    replayed = admin.post(f"/channels/inbox/tracking/{push.id}/replay", data={"csrf_token": csrf_token(admin)})
    assert replayed.status_code == 303
    push = fresh(TrackingPush, push.id)
    assert (push.status, push.outcome, push.events_stored) == ("done", "stored", 7)
    assert fresh(Shipment, shipment.id).status == "delivered"
    replay_audit = db.session.execute(select(AuditEvent).where(AuditEvent.entity_type == "tracking_push",
                                                               AuditEvent.entity_id == str(push.id))).scalar_one()
    assert replay_audit.action == "inbox.replay" and replay_audit.before["status"] == "dead"


def test_a_push_that_is_done_is_not_replayed(carriers_configured, client_for):
    shipped_parcel(number_of("push_InTransit.json"))
    push_id = push_17track(carriers_configured.test_client(), "push_InTransit.json").get_json()["received"]
    admin = client_for("admin")
    admin.post(f"/channels/inbox/tracking/{push_id}/replay", data={"csrf_token": csrf_token(admin)})
    assert fresh(TrackingPush, push_id).attempts == 1 and fresh(TrackingPush, push_id).status == "done"
    assert db.session.execute(select(AuditEvent).where(AuditEvent.entity_type == "tracking_push")).first() is None


def test_a_push_for_an_unknown_parcel_waits_in_review_and_replays_once_the_parcel_exists(carriers_configured):
    client = carriers_configured.test_client()
    push_id = push_kuaidi100(client, "push_state_5.json").get_json()["received"]
    push = fresh(TrackingPush, push_id)
    assert (push.status, push.error_code, push.source) == ("review", "unknown_tracking_number", "kuaidi100")
    waybill = push.waybill_no
    _order, shipment = shipped_parcel(waybill)
    tracking.replay_push(push_id, ADMIN)
    db.session.commit()
    tracking.process_pushes(tracking.claim([push_id]))
    db.session.commit()
    push = fresh(TrackingPush, push_id)
    assert push.status == "done" and push.events_stored > 0
    assert fresh(Shipment, shipment.id).tracking_step == "out_for_delivery"


def test_the_same_push_twice_is_one_row_and_adds_nothing(carriers_configured):
    shipped_parcel(number_of("push_Delivered.json"))
    client = carriers_configured.test_client()
    first = push_17track(client, "push_Delivered.json").get_json()["received"]
    again = push_17track(client, "push_Delivered.json").get_json()["received"]
    assert first == again and fresh(TrackingPush, first).times_received == 2 and count(TrackingEvent) == 7


def test_a_signed_push_that_is_not_json_is_kept_for_review(carriers_configured):
    raw = b'{"event":"TRACKING_UPDATED","data":{"number":"SF14'
    answer = carriers_configured.test_client().post(
        "/hooks/tracking/17track", data=raw, headers={"Content-Type": "application/json", "sign": track17_sign(raw, KEY)})
    push = fresh(TrackingPush, answer.get_json()["received"])
    assert (push.status, push.error_code, push.body) == ("review", "invalid_json", raw.decode())


@pytest.mark.parametrize("send, reason, status", [
    (lambda c: push_17track(c, "push_Delivered.json", key="wrong-key"), "bad_signature", 401),
    (lambda c: push_kuaidi100(c, "push_state_3.json", salt="wrong-salt"), "bad_signature", 401),
    (lambda c: c.post("/hooks/tracking/17track", data=b"x" * 600_000,
                      headers={"Content-Type": "application/json", "sign": "0" * 64}), "too_large", 413),
])
def test_forged_or_oversized_pushes_store_nothing(carriers_configured, send, reason, status):
    answer = send(carriers_configured.test_client())
    assert answer.status_code == status and answer.get_json()["error"]["code"] == reason
    assert count(TrackingPush) == 0 and count(TrackingEvent) == 0
    assert db.session.execute(select(WebhookRejection.reason)).scalar_one() == reason


# --- a real worker ----------------------------------------------------------------------------------------

@pytest.mark.live
@pytest.mark.parametrize("live_apps", ["sqlite", "postgresql"], indirect=True)
def test_a_real_worker_drains_tracking_pushes_in_batches(live_apps):
    """With Redis, the hook only stores and enqueues; `orderloom worker --burst` drains every push."""
    from portal import create_app as create_portal
    from tests.conftest import REDIS_URL, app_config
    from tests.test_worker import _redis, _run_worker

    redis = _redis()
    redis.flushdb()  # only the test database (TEST_REDIS_URL), never FLUSHALL
    numbers = [f"SF14023188700{n:02d}" for n in range(10, 16)]
    with live_apps.core.app_context():
        open_shop(units=50)
        db.session.commit()
        for number in numbers:
            order = orders.create_order(order_payload(channel_order_id=f"W-{number}"), ADMIN)
            db.session.flush()
            db.session.add(Shipment(order_id=order.id, warehouse_id=order.warehouse_id or _warehouse_id(),
                                    status="shipped", priority=0, carrier_code="SF", waybill_no=number,
                                    shipped_at=utc_now() - timedelta(days=1)))
            order.status = "shipped"  # set-up only
        db.session.commit()
    portal = create_portal(app_config(live_apps.url) | {"JOBS_INLINE": False, "REDIS_URL": REDIS_URL,
                                                         "TRACK17_KEY": KEY})
    template = json.loads((FIXTURES / "17track" / "push_Delivered.json").read_text(encoding="utf-8"))
    client = portal.test_client()
    for number in numbers:
        template["data"]["number"] = number
        raw = json.dumps(template, ensure_ascii=False).encode()
        answer = client.post("/hooks/tracking/17track", data=raw,
                             headers={"Content-Type": "application/json", "sign": track17_sign(raw, KEY)})
        assert answer.status_code == 200
    with live_apps.core.app_context():
        assert {p.status for p in db.session.execute(select(TrackingPush)).scalars()} == {"received"}
        assert count(TrackingEvent) == 0  # nothing processed inside the requests
    with portal.app_context():
        db.engine.dispose()

    finished = _run_worker(live_apps.url)

    assert finished.returncode == 0, f"{finished.stdout}\n{finished.stderr}"
    with live_apps.core.app_context():
        pushes = db.session.execute(select(TrackingPush)).scalars().all()
        assert [(p.status, p.events_stored) for p in pushes] == [("done", 7)] * len(numbers)
        assert count(TrackingEvent) == 7 * len(numbers)
        assert set(db.session.execute(select(Order.status)).scalars()) == {"completed"}
    assert redis.llen("rq:queue:sync") == 0


# --- the carrier simulator pushes every shape -------------------------------------------------------------

@pytest.mark.parametrize("shape, stored, step", [("track_info", 4, "delivered"), ("latest_event", 1, "delivered"),
                                                 ("v1", 4, "delivered")])
def test_the_carrier_simulator_pushes_each_17track_shape_over_http(portal, shape, stored, step):
    from devtools.simulators.carriers import CarrierSimulator
    from tests.live_servers import LiveServer

    simulator = CarrierSimulator(seed=11)
    simulator.start()
    saved = portal.config.get("TRACK17_KEY")
    portal.config["TRACK17_KEY"] = simulator.credentials["17track"]["key"]
    server = LiveServer(portal)
    try:
        waybill = simulator.add_parcel("SF")
        for kind in ("collected", "in_transit", "out_for_delivery", "delivered"):
            simulator.advance_parcel(waybill, kind)
        order, shipment = shipped_parcel(waybill)
        [result] = simulator.push_17track(f"{server.url}/hooks/tracking/17track", waybill_no=waybill, shape=shape)
        assert result.accepted and result.status == 200
    finally:
        server.stop()
        simulator.stop()
        portal.config["TRACK17_KEY"] = saved
    db.session.expire_all()
    push = db.session.execute(select(TrackingPush)).scalar_one()
    assert (push.status, push.events_stored) == ("done", stored)
    assert fresh(Shipment, shipment.id).tracking_step == step and fresh(Order, order.id).status == "completed"
