"""Faults answered, not crashed (issue 9, item 3): Redis that stops or comes back, a database that does not answer,
JSON errors for every machine caller, validated paging and filter parameters, typed JSON bodies, and signed webhook
bodies no parser can read. Every case runs on SQLite and PostgreSQL."""
import base64
import json
import socket
import threading
from urllib.parse import quote, urlsplit

import pytest
from sqlalchemy import func, select

from shared import dispatch
from shared.extensions import db
from shared.models import InboxItem, Order, TrackingEvent
from tests import channel_payloads as p
from tests.conftest import BACKENDS, REDIS_URL, app_config
from tests.test_api import api, api_as, assert_error, state, token_for  # noqa: F401  (fixtures)
from tests.test_shipping import carriers, picked_order, portal_with_carriers, scan  # noqa: F401  (fixtures)
from tests.test_fulfilment import floor  # noqa: F401  (fixture)

CHECK_SECONDS = getattr(dispatch, "REDIS_CHECK_SECONDS", 3)
BANNER = "Background jobs run inline: no Redis is reachable."


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def count(model) -> int:
    return db.session.execute(select(func.count()).select_from(model)).scalar()


class RedisProxy:
    """A TCP forwarder in front of the real Redis that can be stopped (connections cut, port closed) and
    started again on the same port: Redis going away and coming back, without touching the real server."""

    def __init__(self, target: str = REDIS_URL):
        parts = urlsplit(target)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self.db = parts.path.lstrip("/") or "0"
        self.port = closed_port()
        self.listener = None
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/{self.db}"

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source, sink) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        """Redis goes away: the port closes and every open connection is cut."""
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        except OSError:
            pass
        self.listener.close()
        with self.lock:
            for sock in self.sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self.sockets.clear()


class Clock:
    """dispatch's monotonic clock, moved by hand: "within seconds" without sleeping or timing anything."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(dispatch, "_clock", fake, raising=False)
    return fake


@pytest.fixture
def redis_at(portal, monkeypatch):
    """Point the portal at a Redis URL, jobs decided by whether it answers (as in production)."""
    def configure(url: str):
        monkeypatch.setitem(portal.config, "REDIS_URL", url)
        monkeypatch.setitem(portal.config, "JOBS_INLINE", None)
        for key in ("orderloom_redis", "orderloom_redis_down_until"):  # the latter: what the code before kept
            portal.extensions.pop(key, None)
    yield configure
    for key in ("orderloom_redis", "orderloom_redis_down_until"):
        portal.extensions.pop(key, None)


@pytest.fixture
def proxy():
    server = RedisProxy()
    server.start()
    yield server
    try:
        server.stop()
    except OSError:
        pass


def jobs_inline(app) -> bool:
    with app.app_context():
        return dispatch.jobs_run_inline()


def banner_shown(client) -> bool:
    page = client.get("/")
    assert page.status_code == 200
    return BANNER in page.text


def signed_webhook(client, order=None):
    raw = p.body(order or p.shopify())
    return client.post("/hooks/SH", data=raw, headers=p.signed_headers("shopify", raw))


# --- Redis -----------------------------------------------------------------------------------------------------

def test_with_redis_unreachable_webhooks_are_stored_processed_inline_and_the_banner_shows(
        portal, sync_channels, redis_at, client_for):
    staff = client_for("admin")
    redis_at(f"redis://127.0.0.1:{closed_port()}/0")
    response = signed_webhook(portal.test_client())
    assert response.status_code == 202, response.get_data(as_text=True)
    item = db.session.get(InboxItem, response.get_json()["received"])
    assert item.status == "done" and item.order_id is not None  # the drain job ran inline
    assert banner_shown(staff)
    health = portal.test_client().get("/healthz")
    assert health.status_code == 200
    assert health.get_json() == {"status": "degraded", "down": ["redis"], "database": "up", "redis": "down"}


def test_redis_that_stops_is_noticed_at_once_and_one_that_comes_back_within_seconds(
        portal, sync_channels, redis_at, client_for, proxy, clock):
    staff = client_for("admin")
    redis_at(proxy.url)
    assert not jobs_inline(portal) and not banner_shown(staff)  # Redis answers: jobs are queued

    proxy.stop()
    # No Redis command has failed yet; the last "up" answer is trusted for REDIS_CHECK_SECONDS at most.
    clock.advance(CHECK_SECONDS)
    assert jobs_inline(portal) and banner_shown(staff)

    proxy.start()
    assert jobs_inline(portal)  # asked a moment ago: not asked again yet
    clock.advance(CHECK_SECONDS)
    assert not jobs_inline(portal) and not banner_shown(staff)


def test_a_webhook_arriving_just_after_redis_stopped_is_stored_and_answered_202(
        portal, sync_channels, redis_at, client_for, proxy, clock):
    staff = client_for("admin")
    redis_at(proxy.url)
    assert not jobs_inline(portal)  # "Redis is up" is now the last answer
    proxy.stop()
    response = signed_webhook(portal.test_client())  # the enqueue fails: the drain runs inline instead
    assert response.status_code == 202, response.get_data(as_text=True)
    item = db.session.get(InboxItem, response.get_json()["received"])
    assert item.status == "done" and count(Order) == 1
    assert banner_shown(staff)  # the failed command marked Redis down at once, before any re-check


def test_tracking_pushes_with_redis_gone_are_stored_and_their_follow_up_left_for_the_sweeper(
        floor, portal_with_carriers, carriers, redis_at, proxy, clock):  # noqa: F811
    from shared.carriers.signing import kuaidi100_push_sign
    from shared.carriers.tracking import KUAIDI100_COMPANIES
    from shared.models import Shipment

    order, task = picked_order(floor)
    client, token = portal_with_carriers.test_client(), floor["token"]
    scan(client, token, "pick", task=task.id, bin="A-01", sku="TEA", lot="T-9", quantity=2)
    waybill = scan(client, token, "pack", order=order.order_no, box="B").get_json()["waybill"]
    scan(client, token, "load", parcel=waybill, truck="T-1")
    carrier = db.session.execute(select(Shipment.carrier_code).where(Shipment.waybill_no == waybill)).scalar_one()
    redis_at(proxy.url)
    assert not jobs_inline(portal_with_carriers)
    proxy.stop()
    param = json.dumps({"status": "polling", "lastResult": {
        "message": "ok", "state": "3", "status": "200", "ischeck": "1", "com": KUAIDI100_COMPANIES[carrier],
        "nu": waybill, "data": [{"context": "已签收", "time": "2026-11-22 10:00:00", "ftime": "2026-11-22 10:00:00",
                                 "status": "签收"}]}}, ensure_ascii=False)
    salt = portal_with_carriers.config["KUAIDI100_SALT"]
    response = client.post("/hooks/tracking/kuaidi100", data={"param": param, "sign": kuaidi100_push_sign(param, salt)})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["result"] is True
    assert count(TrackingEvent) == 1


# --- the database ------------------------------------------------------------------------------------------------

def unreachable_database(kind: str, tmp_path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'no-such-folder' / 'orderloom.sqlite3'}"
    return f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/test"


@pytest.fixture(params=BACKENDS)
def apps_without_database(request, tmp_path):
    from customer_site import create_app as create_customer
    from portal import create_app as create_portal

    config = app_config(unreachable_database(request.param, tmp_path)) | {"TRACK17_KEY": "k",
                                                                          "PROPAGATE_EXCEPTIONS": False}
    portal, customer = create_portal(config), create_customer(config)
    yield portal, customer
    for app in (portal, customer):
        with app.app_context():
            db.engine.dispose()


def test_healthz_says_which_part_is_down(apps_without_database):
    for app in apps_without_database:
        answer = app.test_client().get("/healthz")
        assert answer.status_code == 503 and answer.mimetype == "application/json"
        assert answer.get_json() == {"status": "unavailable", "down": ["database"], "database": "down",
                                     "redis": "not_configured"}
        assert answer.headers["Retry-After"]


def test_healthz_is_ok_when_every_part_answers(portal, customer_app):
    for app in (portal, customer_app):
        answer = app.test_client().get("/healthz")
        assert answer.status_code == 200
        assert answer.get_json() == {"status": "ok", "down": [], "database": "up", "redis": "not_configured"}


@pytest.mark.parametrize("method, path, kwargs", [
    ("get", "/api/v1/orders", {"headers": {"Authorization": "Bearer olt_some-token"}}),
    ("post", "/api/v1/stock/adjustments", {"headers": {"Authorization": "Bearer olt_some-token"},
                                           "json": {"sku": "A", "warehouse": "B", "delta": 1, "reason": "r"}}),
    ("get", "/scan/v1/tasks", {"headers": {"Authorization": "Bearer device-token"}}),
    ("post", "/scan/v1/pick", {"headers": {"Authorization": "Bearer device-token"}, "json": {"operator": "王五"}}),
    ("post", "/hooks/SH", {"data": b'{"id": 1}', "headers": {"Content-Type": "application/json"}}),
    ("post", "/hooks/tracking/17track", {"data": b'{"event": "TRACKING_UPDATED"}',
                                          "headers": {"Content-Type": "application/json", "sign": "x"}}),
    ("post", "/hooks/tracking/kuaidi100", {"data": {"param": "{}", "sign": "x"}}),
])
def test_every_api_and_hook_answers_json_503_while_the_database_is_down(apps_without_database, method, path,
                                                                        kwargs):
    portal, _customer = apps_without_database
    answer = getattr(portal.test_client(), method)(path, **kwargs)
    assert answer.status_code == 503, answer.get_data(as_text=True)
    assert answer.mimetype == "application/json"
    assert answer.get_json()["error"]["code"] == "database_unavailable"
    assert answer.headers["Retry-After"]


def test_a_signed_in_page_answers_503_not_500_while_the_database_is_down(apps_without_database):
    from flask_login.utils import _create_identifier

    portal, _customer = apps_without_database
    client = portal.test_client()
    with portal.test_request_context(environ_base=client.environ_base):  # the same address and browser
        identifier = _create_identifier()
    with client.session_transaction() as cookie:  # a staff member signed in before the database went away
        cookie.update({"_user_id": "staff:1", "_fresh": True, "_id": identifier})
    answer = client.get("/orders/")
    assert answer.status_code == 503 and answer.headers["Retry-After"]
    assert "database" in answer.get_data(as_text=True).lower() or "数据库" in answer.get_data(as_text=True)


# --- every machine caller gets JSON errors -------------------------------------------------------------------

@pytest.mark.parametrize("method, path, status, code", [
    ("get", "/api/v1/no-such-thing", 404, "not_found"),
    ("delete", "/api/v1/orders", 405, "method_not_allowed"),
    ("put", "/api/v1/warehouses", 405, "method_not_allowed"),
    ("get", "/scan/v1/pick", 405, "method_not_allowed"),
    ("get", "/scan/v1/a/b", 404, "not_found"),
    ("get", "/hooks/SH", 405, "method_not_allowed"),
    ("post", "/hooks/tracking/nobody", 404, "not_found"),
    ("post", "/hooks/a/b/c", 404, "not_found"),
])
def test_routing_errors_under_api_scan_and_hooks_are_json(portal, method, path, status, code):
    answer = getattr(portal.test_client(), method)(path)
    assert answer.status_code == status and answer.mimetype == "application/json", answer.get_data(as_text=True)
    assert answer.get_json()["error"]["code"] == code and answer.get_json()["error"]["message"]


def test_error_messages_follow_accept_language(portal):
    client = portal.test_client()
    chinese = client.get("/api/v1/no-such-thing", headers={"Accept-Language": "zh-CN"}).get_json()["error"]
    english = client.get("/api/v1/no-such-thing", headers={"Accept-Language": "en"}).get_json()["error"]
    assert chinese["code"] == english["code"] == "not_found"
    assert english["message"] == "Not found." and chinese["message"] != english["message"]
    assert any("\u4e00" <= char <= "\u9fff" for char in chinese["message"])


@pytest.mark.parametrize("authorization, code", [(None, "unauthenticated"), ("Bearer olt_forged", "invalid_token")])
def test_token_refusals_follow_accept_language(portal, authorization, code):
    headers = {"Authorization": authorization} if authorization else {}
    said = {language: portal.test_client().get("/api/v1/orders", headers=headers | {"Accept-Language": language})
            for language in ("en", "zh-CN")}
    errors = {language: answer.get_json()["error"] for language, answer in said.items()}
    assert {answer.status_code for answer in said.values()} == {401}
    assert errors["en"]["code"] == errors["zh-CN"]["code"] == code
    assert errors["en"]["message"].isascii() and not errors["zh-CN"]["message"].isascii()


def test_a_body_over_the_limit_is_a_json_413(api, stocked):  # noqa: F811
    before = state()
    answer = api.post("/orders", data=b"{" + b" " * (2 * 1024 * 1024) + b"}",
                      headers={"Content-Type": "application/json"})
    assert_error(answer, 413, "too_large")
    assert state() == before


def break_it(monkeypatch, portal, module, name: str) -> None:
    """Make `module.name` raise as a bug would, and let the app answer it as in production (no propagation)."""
    def broken(*_args, **_kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(module, name, broken)
    monkeypatch.setitem(portal.config, "PROPAGATE_EXCEPTIONS", False)


def test_a_bug_in_the_api_is_a_json_500_without_internals(portal, api, stocked, monkeypatch):  # noqa: F811
    from shared.services import stock

    break_it(monkeypatch, portal, stock, "stock_summary")
    answer = api.get("/stock/SKU-1")
    assert_error(answer, 500, "internal_error")
    assert "secret internals" not in answer.get_data(as_text=True)


def test_a_bug_in_a_hook_is_a_json_500_without_internals(portal, sync_channels, monkeypatch):
    from shared.services import inbox

    break_it(monkeypatch, portal, inbox, "receive_one")
    raw = p.body(p.shopify())
    answer = portal.test_client().post("/hooks/SH", data=raw, headers=p.signed_headers("shopify", raw))
    assert_error(answer, 500, "internal_error")
    assert "secret internals" not in answer.get_data(as_text=True)


# --- paging and filter parameters --------------------------------------------------------------------------------

def cursor(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize("query, code, field", [
    (f"cursor={cursor([[1, 2], 5])}", "invalid_cursor", "cursor"),  # a list where a time should be
    (f"cursor={cursor([{'t': '2026-01-01T00:00:00'}, 5])}", "invalid_cursor", "cursor"),  # no zone
    (f"cursor={cursor([{'t': '0001-01-01T00:00:00+08:00'}, 5])}", "invalid_cursor", "cursor"),  # before year 1 UTC
    (f"cursor={cursor([{'d': '12.50'}, 5])}", "invalid_cursor", "cursor"),  # an amount cursor on a time sort
    (f"sort=total_desc&cursor={cursor([{'d': '1e999999'}, 5])}", "invalid_cursor", "cursor"),
    (f"sort=total_desc&cursor={cursor([{'d': 'NaN'}, 5])}", "invalid_cursor", "cursor"),
    (f"cursor={cursor([{'t': '2026-01-01T00:00:00+00:00'}, 2 ** 70])}", "invalid_cursor", "cursor"),
    (f"cursor={cursor([{'t': '2026-01-01T00:00:00+00:00'}, True])}", "invalid_cursor", "cursor"),
    ("cursor=" + "A" * 5000, "invalid_cursor", "cursor"),
    ("cursor=%FF%FE", "invalid_cursor", "cursor"),
    ("limit=" + "9" * 5000, "invalid_limit", "limit"),
    ("limit=%EF%BC%91%EF%BC%90", "invalid_limit", "limit"),  # full-width digits
    ("limit=-5", "invalid_limit", "limit"),
    ("limit=1000000", "invalid", "limit"),
    ("status=%00", "invalid_characters", "status"),
    ("channel=O%00S", "invalid_characters", "channel"),
    ("warehouse=" + "W" * 500, "too_long", "warehouse"),
    ("q=138%00", "invalid_characters", "q"),
    ("date_to=9999-12-31", "invalid_date", "date_to"),
    ("date_from=0001-01-01", "invalid_date", "date_from"),
    ("updated_since=0001-01-01T00:00:00%2B08:00", "invalid_timestamp", "updated_since"),
    ("status=lost", "unknown_status", "status"),
])
def test_crafted_paging_and_filter_parameters_are_422_with_the_field(api, create_order, query, code, field):  # noqa: F811
    create_order()
    assert_error(api.get(f"/orders?{query}"), 422, code, field)


def test_cursors_made_by_the_api_still_page_through_every_sort(api, create_order):  # noqa: F811
    for n in range(3):
        create_order(channel_order_id=f"P-{n}")
    for sort in ("updated_asc", "placed_desc", "total_desc"):
        seen, page = [], api.get(f"/orders?limit=1&sort={sort}").get_json()
        while True:
            seen += [item["order_no"] for item in page["items"]]
            if not page["next_cursor"]:
                break
            page = api.get(f"/orders?limit=1&sort={sort}&cursor={quote(page['next_cursor'])}").get_json()
        assert len(seen) == len(set(seen)) == 3, sort


@pytest.mark.parametrize("path, field", [("/stock/SKU%00", "sku"), ("/orders/OL%00", "order_no")])
def test_path_parameters_with_control_characters_are_422(api, stocked, path, field):  # noqa: F811
    assert_error(api.get(path), 422, "invalid_characters", field)


# --- every JSON field type-checked before use ----------------------------------------------------------------

ADJUSTMENT = {"sku": "SKU-1", "warehouse": "HZ1", "delta": 1, "reason": "盘盈"}


@pytest.mark.parametrize("path, body, code, field", [
    ("/stock/adjustments", ADJUSTMENT | {"sku": 123}, "invalid_type", "sku"),
    ("/stock/adjustments", ADJUSTMENT | {"sku": ["SKU-1"]}, "invalid_type", "sku"),
    ("/stock/adjustments", ADJUSTMENT | {"warehouse": {"code": "HZ1"}}, "invalid_type", "warehouse"),
    ("/stock/adjustments", ADJUSTMENT | {"reason": 5}, "invalid_type", "reason"),
    ("/stock/adjustments", ADJUSTMENT | {"reason": ["a", "b"]}, "invalid_type", "reason"),
    ("/stock/adjustments", ADJUSTMENT | {"delta": "5"}, "invalid_quantity", "delta"),
    ("/stock/adjustments", ADJUSTMENT | {"delta": True}, "invalid_quantity", "delta"),
    ("/stock/adjustments", ADJUSTMENT | {"delta": [1]}, "invalid_quantity", "delta"),
    ("/stock/adjustments", ADJUSTMENT | {"sku": "SKU-1\u0000"}, "invalid_characters", "sku"),
    ("/warehouses", {"code": 7, "name": "x", "province": "浙江省", "city": "杭州市"}, "invalid_type", "code"),
    ("/warehouses", {"code": "SH1", "name": {"zh": "上海"}, "province": "上海市", "city": "上海市"}, "invalid_type",
     "name"),
    ("/skus", {"sku": "SKU-9", "name": ["x"]}, "invalid_type", "name"),
    ("/skus", {"sku": "SKU-9", "name": "x", "safety_stock": "3"}, "invalid_quantity", "safety_stock"),
    ("/orders", {"channel": ["OS"]}, "invalid_type", "channel"),
])
def test_fields_of_the_wrong_type_are_422_and_change_nothing(api, stocked, path, body, code, field):  # noqa: F811
    before = state()
    assert_error(api.post(path, body), 422, code, field)
    assert state() == before


@pytest.mark.parametrize("change, code, field", [
    (lambda o: o["customer"].update(name=5), "invalid_type", "customer.name"),
    (lambda o: o.update(customer="张三"), "invalid_type", "customer"),
    (lambda o: o["shipping_address"].update(street={"a": 1}), "invalid_type", "shipping_address.street"),
    (lambda o: o.update(lines="SKU-1"), "invalid_type", "lines"),
    (lambda o: o.update(lines=["SKU-1"]), "invalid_type", "lines[0]"),
    (lambda o: o["lines"][0].update(sku=1), "invalid_type", "lines[0].sku"),
    (lambda o: o["lines"][0].update(unit_price=[1]), "invalid_amount", "lines[0].unit_price"),
    (lambda o: o.update(placed_at=20261121), "invalid_type", "placed_at"),
    (lambda o: o.update(shipping_fee=True), "invalid_amount", "shipping_fee"),
])
def test_order_fields_of_the_wrong_type_are_422_and_change_nothing(api, stocked, change, code, field):  # noqa: F811
    from tests.factories import order_payload

    body = order_payload()
    change(body)
    before = state()
    assert_error(api.post("/orders", body), 422, code, field)
    assert state() == before


def test_a_transition_with_a_non_text_target_is_422(api, create_order):  # noqa: F811
    order_no = create_order().order_no
    before = state()
    assert_error(api.post(f"/orders/{order_no}/transitions", {"to": ["confirmed"]}), 422, "invalid_type", "to")
    assert state() == before


def test_type_errors_are_said_in_the_callers_language(api, stocked):  # noqa: F811
    english = api.post("/stock/adjustments", ADJUSTMENT | {"sku": 1}, headers={"Accept-Language": "en"})
    chinese = api.post("/stock/adjustments", ADJUSTMENT | {"sku": 1}, headers={"Accept-Language": "zh-CN"})
    assert english.get_json()["error"]["message"] == "sku must be text"
    assert chinese.get_json()["error"]["message"] != "sku must be text"
    assert any("\u4e00" <= char <= "\u9fff" for char in chinese.get_json()["error"]["message"])


# --- signed bodies no parser can read ------------------------------------------------------------------------------

@pytest.mark.parametrize("depth", [100, 100_000])  # deeper than MAX_DEPTH; deeper than Python's recursion limit
def test_a_signed_deeply_nested_webhook_is_stored_and_sent_to_review(portal, sync_channels, depth):
    raw = b'{"id": 1, "x": ' + b"[" * depth + b"]" * depth + b"}"
    answer = portal.test_client().post("/hooks/SH", data=raw, headers=p.signed_headers("shopify", raw))
    assert answer.status_code == 202, answer.get_data(as_text=True)
    assert answer.get_json()["review"] == "too_deep"
    item = db.session.get(InboxItem, answer.get_json()["received"])
    assert item.body == raw.decode() and item.status == "review" and item.error_code == "too_deep"
    assert "nested deeper than 64 levels" in item.last_error
    assert count(Order) == 0


def test_a_nested_body_within_the_depth_limit_still_flows(portal, sync_channels):
    order = p.shopify()
    order["note_attributes"] = [{"name": "gift", "value": [[["ok"]]]}]
    response = signed_webhook(portal.test_client(), order)
    assert response.status_code == 202 and "review" not in response.get_json()
    assert db.session.get(InboxItem, response.get_json()["received"]).status == "done"


@pytest.mark.parametrize("kind, payload, code, field", [
    ("pick", {"task": "1"}, "invalid_type", "task"),
    ("pick", {"task": 1, "bin": ["A-01"]}, "invalid_type", "bin"),
    ("pick", {"task": 1, "quantity": "2"}, "invalid_quantity", "quantity"),
    ("pack", {"order": {"no": 1}, "box": "B"}, "invalid_type", "order"),
    ("load", {"parcel": "SF1\u0000", "truck": "T-1"}, "invalid_characters", "parcel"),
    ("load", {"parcel": "SF1", "truck": "T-1", "station": 5}, "invalid_type", "station"),
])
def test_scan_fields_of_the_wrong_type_are_422_and_record_nothing(floor, portal, kind, payload, code,  # noqa: F811
                                                                   field):
    from shared.models import ScanEvent

    answer = portal.test_client().post(f"/scan/v1/{kind}", json={"operator": "王五"} | payload,
                                       headers={"Authorization": f"Bearer {floor['token']}"})
    assert_error(answer, 422, code, field)
    assert count(ScanEvent) == 0


def test_a_deeply_nested_scan_body_is_refused_not_a_500(floor, portal):  # noqa: F811
    raw = b'{"operator": "x", "n": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    answer = portal.test_client().post("/scan/v1/pick", data=raw, headers={
        "Authorization": f"Bearer {floor['token']}", "Content-Type": "application/json"})
    assert_error(answer, 422, "required", "operator")
