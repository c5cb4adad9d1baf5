"""The JSON API /api/v1: bearer tokens, each endpoint's answers, refusals that change nothing, masking, OpenAPI."""
import json
import re
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select, update

from shared import models, order_numbers
from shared.extensions import db
from shared.models import AccessLogEntry, ApiToken, AuditEvent, Order, Sku, StockLevel, Warehouse
from shared.services import staff, stock
from shared.timekeeping import utc_now
from tests.factories import ADMIN, count_queries, order_payload
from tests.portal_client import current_code, sign_in

PHONE, MASKED_PHONE, STREET = "13812345678", "138****5678", "文三路 90 号 3 幢 501"
COUNTED = (models.Order, models.OrderLine, models.Reservation, models.Customer, models.StockMovement, models.Sku,
           models.Warehouse, models.AuditEvent, models.AccessLogEntry)


class ApiClient:
    """A test client that speaks JSON to /api/v1 with one bearer token."""

    def __init__(self, client, token: str | None):
        self.client, self.token = client, token

    def _headers(self, extra=None) -> dict:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        headers.update(extra or {})
        return headers

    def get(self, path: str, **kwargs):
        return self.client.get(f"/api/v1{path}", headers=self._headers(kwargs.pop("headers", None)), **kwargs)

    def post(self, path: str, body=None, **kwargs):
        if body is not None:
            kwargs["json"] = body
        return self.client.post(f"/api/v1{path}", headers=self._headers(kwargs.pop("headers", None)), **kwargs)


@pytest.fixture
def token_for(create_user):
    """Issue a token for a new user of the given role."""
    def make(role: str = "admin") -> str:
        user = create_user(f"api-{role}", role)
        token = staff.issue_token(user, ADMIN)
        db.session.commit()
        return token
    return make


@pytest.fixture
def api_as(portal, token_for):
    def make(role: str = "admin") -> ApiClient:
        return ApiClient(portal.test_client(), token_for(role))
    return make


@pytest.fixture
def api(api_as) -> ApiClient:
    return api_as("admin")


def state() -> dict:
    """Row counts and stock levels: what a refused call must leave exactly as it was."""
    db.session.expire_all()
    counts = {model.__name__: db.session.scalar(select(func.count()).select_from(model)) for model in COUNTED}
    # A refusal of the permission table leaves its own audit event (access.forbidden), counted apart: `refusals()`.
    counts["AuditEvent"] = db.session.scalar(select(func.count()).select_from(models.AuditEvent)
                                             .where(models.AuditEvent.action != "access.forbidden"))
    counts["levels"] = db.session.execute(
        select(StockLevel.sku_id, StockLevel.warehouse_id, StockLevel.on_hand, StockLevel.reserved, StockLevel.held)
        .order_by(StockLevel.id)).all()
    counts["statuses"] = db.session.execute(select(Order.order_no, Order.status).order_by(Order.id)).all()
    return counts


def refusals() -> list[tuple[str, str]]:
    """(path, resource:action) of every 403 the permission table answered, from the audit chain."""
    db.session.expire_all()
    return [(event.after["path"], event.entity_id) for event in db.session.execute(
        select(AuditEvent).where(AuditEvent.action == "access.forbidden").order_by(AuditEvent.id)).scalars()]


def level(sku: str = "SKU-1", warehouse: str = "HZ1") -> tuple[int, int]:
    """(on hand, reserved) of a SKU in a warehouse, read fresh from the database."""
    db.session.expire_all()
    row = db.session.execute(
        select(StockLevel.on_hand, StockLevel.reserved).join(Sku, Sku.id == StockLevel.sku_id)
        .join(Warehouse, Warehouse.id == StockLevel.warehouse_id).where(Sku.code == sku, Warehouse.code == warehouse)
    ).one()
    return tuple(row)


def assert_error(response, status: int, code: str, field: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == code, error
    assert error["message"]
    if field:
        assert error.get("field") == field, error
    return error


def spec() -> dict:
    from portal.api_docs import SPEC_PATH

    return json.loads(SPEC_PATH.read_text())


def assert_has_required(body: dict, schema_name: str) -> None:
    """The answer carries every property the OpenAPI schema calls required (allOf followed)."""
    schemas = spec()["components"]["schemas"]
    parts = schemas[schema_name].get("allOf", [schemas[schema_name]])
    for part in parts:
        part = schemas[part["$ref"].rsplit("/", 1)[1]] if "$ref" in part else part
        missing = set(part.get("required", ())) - set(body)
        assert not missing, (schema_name, missing)


# Authentication ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("header, code", [
    (None, "unauthenticated"),
    ("Basic YWRtaW46cGFzc3dvcmQ=", "unauthenticated"),
    ("Bearer ", "unauthenticated"),
    ("Bearer olt_not-a-token-we-issued", "invalid_token"),
    ("Bearer abc", "invalid_token"),
])
def test_calls_without_a_valid_token_are_refused(portal, stocked, header, code):
    headers = {"Authorization": header} if header else {}
    response = portal.test_client().get("/api/v1/stock/SKU-1", headers=headers)
    assert_error(response, 401, code)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_expired_token_is_refused(portal, stocked, token_for):
    token = token_for("admin")
    db.session.execute(update(ApiToken).values(expires_at=utc_now() - timedelta(seconds=1)))
    db.session.commit()
    before = state()
    response = ApiClient(portal.test_client(), token).post("/stock/adjustments", {
        "sku": "SKU-1", "warehouse": "HZ1", "delta": 5, "reason": "count"})
    assert_error(response, 401, "token_expired")
    assert state() == before


def test_revoked_token_is_refused(portal, stocked, token_for):
    token = token_for("admin")
    staff.revoke_tokens(staff.get_user("api-admin"), ADMIN)
    db.session.commit()
    assert_error(ApiClient(portal.test_client(), token).get("/stock/SKU-1"), 401, "invalid_token")


def test_a_revoked_token_or_a_changed_user_counts_from_the_very_next_request(portal, stocked, token_for,
                                                                             create_user):
    """Nothing about a token or its user is cached between requests: each one reads both afresh."""
    create_user("keeper", "admin")  # another admin: the last one's power cannot be taken away
    client = ApiClient(portal.test_client(), token_for("admin"))
    assert client.get("/stock/SKU-1").status_code == 200
    user = staff.get_user("api-admin")
    staff.update_user(user, ADMIN, role="auditor")  # may read stock, may not change it
    db.session.commit()
    body = {"sku": "SKU-1", "warehouse": "HZ1", "delta": 5, "reason": "count"}
    assert_error(client.post("/stock/adjustments", body), 403, "forbidden")
    staff.update_user(user, ADMIN, role="admin", active=False)
    db.session.commit()
    assert_error(client.get("/stock/SKU-1"), 401, "invalid_token")
    staff.update_user(user, ADMIN, active=True)
    db.session.commit()
    assert client.get("/stock/SKU-1").status_code == 200
    staff.revoke_tokens(user, ADMIN)
    db.session.commit()
    before = state()
    assert_error(client.post("/stock/adjustments", body), 401, "invalid_token")
    assert state() == before


def test_the_token_user_is_a_light_value_in_no_session(portal, stocked, token_for):
    token = token_for("ops_manager")
    user = staff.user_for_token(token)
    assert isinstance(user, staff.TokenUser) and not hasattr(user, "_sa_instance_state")  # no ORM object
    assert (user.username, user.role, user.active, user.is_authenticated) == ("api-ops_manager", "ops_manager", True,
                                                                             True)
    with pytest.raises(AttributeError):
        user.role = "admin"  # frozen: a request cannot widen its own role


def test_token_use_is_recorded(api):
    assert api.get("/orders").status_code == 200
    db.session.expire_all()
    assert db.session.execute(select(ApiToken.last_used_at)).scalar_one() is not None


def test_the_session_cookie_never_authenticates_the_api(portal, stocked, create_user):
    create_user("boss", "admin")
    client = portal.test_client()
    signed_in = sign_in(client, "boss")  # password and second factor, through the real forms
    assert signed_in.status_code == 302
    assert client.get("/stock/SKU-1").status_code == 200  # the cookie does sign in the portal
    before = state()
    assert_error(client.get("/api/v1/stock/SKU-1"), 401, "unauthenticated")
    assert_error(client.post("/api/v1/stock/adjustments", json={
        "sku": "SKU-1", "warehouse": "HZ1", "delta": 5, "reason": "count"}), 401, "unauthenticated")
    assert state() == before


# Catalog and stock ------------------------------------------------------------------------------------------------

def test_create_warehouse_sku_adjust_and_read_stock(api, session):
    response = api.post("/warehouses", {"code": "SH1", "name": "上海仓", "province": "上海市", "city": "上海市"})
    assert response.status_code == 201, response.text
    assert response.get_json() | {"created_at": None} == {
        "code": "SH1", "name": "上海仓", "province": "上海市", "city": "上海市", "active": True, "created_at": None}
    assert_has_required(response.get_json(), "Warehouse")

    response = api.post("/skus", {"sku": "TEA-9", "name": "白茶 100g", "safety_stock": 3, "batch_tracked": True})
    assert response.status_code == 201, response.text
    body = response.get_json()
    assert (body["sku"], body["safety_stock"], body["batch_tracked"]) == ("TEA-9", 3, True)
    assert response.headers["Location"].endswith("/api/v1/stock/TEA-9")
    assert_has_required(body, "Sku")

    response = api.post("/stock/adjustments", {"sku": "TEA-9", "warehouse": "SH1", "delta": 12, "reason": "收货"})
    assert response.status_code == 201, response.text
    movement = response.get_json()
    assert (movement["delta"], movement["on_hand_after"], movement["reason"]) == (12, 12, "收货")
    assert movement["created_at"].endswith("+00:00")
    assert_has_required(movement, "StockMovement")
    response = api.post("/stock/adjustments", {"sku": "TEA-9", "warehouse": "SH1", "delta": -2, "reason": "破损"})
    assert response.get_json()["on_hand_after"] == 10

    summary = api.get("/stock/TEA-9").get_json()
    assert summary["sku"] == "TEA-9" and summary["available"] == 10
    assert summary["warehouses"] == [{"warehouse": "SH1", "on_hand": 10, "reserved": 0, "held": 0, "available": 10}]
    assert_has_required(summary, "StockSummary")
    assert level("TEA-9", "SH1") == (10, 0)


def test_stock_counts_reservations(api, create_order):
    create_order()
    summary = api.get("/stock/SKU-1").get_json()
    assert summary["warehouses"][0] | {} == {"warehouse": "HZ1", "on_hand": 20, "reserved": 1, "held": 0,
                                             "available": 19}
    assert summary["available"] == 19


def test_sku_codes_with_a_slash_are_reachable(api, stocked):
    created = api.post("/skus", {"sku": "TEA/250G", "name": "龙井 250g"})
    assert created.status_code == 201, created.text
    assert created.headers["Location"].endswith("/api/v1/stock/TEA/250G")
    assert api.get("/stock/TEA/250G").get_json()["sku"] == "TEA/250G"


def test_unknown_sku_stock_is_404(api, stocked):
    assert_error(api.get("/stock/NO-SUCH"), 404, "unknown_sku", "sku")


@pytest.mark.parametrize("path, body, status, code, field", [
    ("/warehouses", {"code": "HZ1", "name": "又一个", "province": "浙江省", "city": "杭州市"}, 409,
     "duplicate_warehouse", "code"),
    ("/warehouses", {"code": "HZ 2", "name": "x", "province": "浙江省", "city": "杭州市"}, 422, "invalid", "code"),
    ("/warehouses", {"code": "HZ2", "name": "x", "province": "浙江省"}, 422, "required", "city"),
    ("/skus", {"sku": "SKU-1", "name": "重复"}, 409, "duplicate_sku", "sku"),
    ("/skus", {"sku": "SKU 2", "name": "空格"}, 422, "invalid_sku", "sku"),
    ("/skus", {"sku": "SKU-2", "name": "x", "safety_stock": -1}, 422, "invalid_quantity", "safety_stock"),
    ("/skus", {"sku": "SKU-2", "name": "x", "safety_stock": 1.5}, 422, "invalid_quantity", "safety_stock"),
    ("/skus", {"sku": "SKU-2", "name": "x", "batch_tracked": "yes"}, 422, "invalid_type", "batch_tracked"),
    ("/stock/adjustments", {"sku": "NO-SUCH", "warehouse": "HZ1", "delta": 1, "reason": "r"}, 404, "unknown_sku",
     "sku"),
    ("/stock/adjustments", {"sku": "SKU-1", "warehouse": "XX9", "delta": 1, "reason": "r"}, 404,
     "unknown_warehouse", "warehouse"),
    ("/stock/adjustments", {"sku": "SKU-1", "warehouse": "HZ1", "delta": 0, "reason": "r"}, 422,
     "invalid_quantity", "delta"),
    ("/stock/adjustments", {"sku": "SKU-1", "warehouse": "HZ1", "delta": 1.5, "reason": "r"}, 422,
     "invalid_quantity", "delta"),
    ("/stock/adjustments", {"sku": "SKU-1", "warehouse": "HZ1", "delta": 1, "reason": " "}, 422, "reason_required",
     "reason"),
    ("/stock/adjustments", {"sku": "SKU-1", "warehouse": "HZ1", "delta": -21, "reason": "r"}, 409,
     "stock_below_zero", "delta"),
])
def test_bad_catalog_and_stock_input_changes_nothing(api, stocked, path, body, status, code, field):
    before = state()
    assert_error(api.post(path, body), status, code, field)
    assert state() == before


def test_stock_cannot_go_below_what_is_reserved(api, create_order):
    create_order(lines=[{"sku": "SKU-1", "quantity": 15, "unit_price": "10.00"}])
    before = state()
    error = assert_error(api.post("/stock/adjustments", {"sku": "SKU-1", "warehouse": "HZ1", "delta": -6,
                                                         "reason": "盘亏"}), 409, "stock_below_zero")
    assert "预占 15" in error["message"]  # the caller's language: Chinese by default
    assert state() == before and level() == (20, 15)


@pytest.mark.parametrize("role, path, body", [
    ("customer_service", "/skus", {"sku": "SKU-2", "name": "x"}),
    ("finance", "/warehouses", {"code": "SH1", "name": "x", "province": "上海市", "city": "上海市"}),
    ("finance", "/stock/adjustments", {"sku": "SKU-1", "warehouse": "HZ1", "delta": 1, "reason": "r"}),
    ("auditor", "/orders", order_payload()),
])
def test_roles_without_the_permission_are_refused(api_as, stocked, role, path, body):
    client = api_as(role)
    before = state()
    assert_error(client.post(path, body), 403, "forbidden")
    assert state() == before
    assert [refused_path for refused_path, _permission in refusals()] == [f"/api/v1{path}"]


# Request bodies ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("data, content_type, status, code", [
    (b'{"channel": "OS", "lines": [', "application/json", 400, "invalid_json"),
    (b"", "application/json", 400, "invalid_json"),
    (b'{"shipping_fee": NaN}', "application/json", 400, "invalid_json"),
    (b"\xff\xfe\x00garbage", "application/json", 400, "invalid_json"),
    (b"[" * 100_000, "application/json", 400, "invalid_json"),
    (b"channel=OS&channel_order_id=1", "application/x-www-form-urlencoded", 415, "invalid_json"),
    (b'{"channel": "OS"}', "text/plain", 415, "invalid_json"),
    (b"[1, 2]", "application/json", 422, "invalid_type"),
    (b'"an order"', "application/json", 422, "invalid_type"),
    (b"null", "application/json", 422, "invalid_type"),
])
def test_unreadable_bodies_are_refused(api, stocked, data, content_type, status, code):
    before = state()
    response = api.client.post("/api/v1/orders", data=data, content_type=content_type, headers=api._headers())
    assert_error(response, status, code)
    assert state() == before


def test_a_body_over_one_mebibyte_is_refused(api, stocked):
    before = state()
    body = json.dumps(order_payload(channel_order_id="x" * (1024 * 1024)))
    response = api.client.post("/api/v1/orders", data=body, content_type="application/json", headers=api._headers())
    assert_error(response, 413, "too_large")
    assert state() == before


# Orders: creation -------------------------------------------------------------------------------------------------

def test_create_order_with_tax_on_top(api, stocked):
    payload = order_payload(channel_order_id="OS-TAX", lines=[{"sku": "SKU-1", "quantity": 1, "unit_price": "100.00"}],
                            shipping_fee="0.00", tax="13.00")
    order = api.post("/orders", payload).get_json()
    assert (order["tax"], order["total"], order["platform_status"]) == ("13.00", "113.00", None)
    refused = api.post("/orders", {**payload, "channel_order_id": "OS-TAX2", "tax": "-1.00"})
    assert refused.status_code == 422 and refused.get_json()["error"]["field"] == "tax"


def test_create_order(api, stocked):
    payload = order_payload(channel_order_id="OS-1001", lines=[{"sku": "SKU-1", "quantity": 2, "unit_price": "59.90"}],
                            shipping_fee="8.00", discount="5.50")
    response = api.post("/orders", payload)
    assert response.status_code == 201, response.text
    order = response.get_json()
    assert response.headers["Location"].endswith(f"/api/v1/orders/{order['order_no']}")
    assert order_numbers.validate(order["order_no"]) == order["order_no"]
    assert order["order_no"].startswith("OS")
    assert (order["channel"], order["channel_order_id"], order["status"], order["payment_status"]) == (
        "OS", "OS-1001", "confirmed", "paid")
    assert (order["goods_total"], order["shipping_fee"], order["discount"], order["total"]) == (
        "119.80", "8.00", "5.50", "122.30")
    line_id = db.session.execute(select(models.OrderLine.id).join(Order).where(
        Order.order_no == order["order_no"])).scalar_one()
    assert order["lines"] == [{"id": line_id, "sku": "SKU-1", "name": "龙井茶 250g", "quantity": 2,
                               "unit_price": "59.90", "line_total": "119.80"}]
    assert order["warehouse"] == "HZ1" and order["currency"] == "CNY" and order["shipped_at"] is None
    for moment in ("placed_at", "paid_at", "created_at", "updated_at"):
        assert order[moment].endswith("+00:00"), moment
    assert order["shipping_address"]["phone"] == MASKED_PHONE  # the answer to a write reveals nothing
    assert_has_required(order, "Order")
    assert level() == (20, 2)


def test_unpaid_order_waits_for_review(api, stocked):
    response = api.post("/orders", order_payload(paid=False, placed_at="2026-01-05T09:30:00+08:00"))
    assert response.status_code == 201, response.text
    order = response.get_json()
    assert (order["status"], order["payment_status"], order["paid_at"]) == ("pending_review", "unpaid", None)
    assert order["placed_at"] == "2026-01-05T01:30:00+00:00"
    assert order["order_no"][2:10] == "20260105"  # the merchant-local date
    assert level() == (20, 1)


def line(**overrides) -> list[dict]:
    return [{"sku": "SKU-1", "quantity": 1, "unit_price": "59.90"} | overrides]


@pytest.mark.parametrize("overrides, status, code, field", [
    ({"lines": line(sku="NO-SUCH")}, 404, "unknown_sku", "sku"),
    ({"lines": line(quantity=0)}, 422, "invalid_quantity", "lines[0].quantity"),
    ({"lines": line(quantity=-3)}, 422, "invalid_quantity", "lines[0].quantity"),
    ({"lines": line(quantity=1.5)}, 422, "invalid_quantity", "lines[0].quantity"),
    ({"lines": line(quantity="2")}, 422, "invalid_quantity", "lines[0].quantity"),
    ({"lines": line(unit_price="59.999")}, 422, "invalid_amount", "lines[0].unit_price"),
    ({"lines": line(unit_price=59.999)}, 422, "invalid_amount", "lines[0].unit_price"),
    ({"lines": line(unit_price="59,90")}, 422, "invalid_amount", "lines[0].unit_price"),
    ({"lines": line(unit_price="abc")}, 422, "invalid_amount", "lines[0].unit_price"),
    ({"lines": line(unit_price="-1.00")}, 422, "invalid_amount", "lines[0].unit_price"),
    ({"lines": line(unit_price=None)}, 422, "invalid_amount", "lines[0].unit_price"),
    ({"lines": []}, 422, "required", "lines"),
    ({"shipping_fee": "1.005"}, 422, "invalid_amount", "shipping_fee"),
    ({"discount": "500.00"}, 422, "invalid_amount", "discount"),
    ({"placed_at": "2026-01-05T09:30:00"}, 422, "naive_timestamp", "placed_at"),
    ({"paid_at": "2026-01-05 09:30"}, 422, "naive_timestamp", "paid_at"),
    ({"placed_at": "yesterday"}, 422, "invalid_timestamp", "placed_at"),
    ({"placed_at": (utc_now() + timedelta(days=1)).isoformat()}, 422, "future_timestamp", "placed_at"),
    ({"currency": "XBT"}, 422, "invalid_currency", "currency"),
    ({"channel": "ZZ"}, 404, "unknown_channel", "channel"),
    ({"channel_order_id": "  "}, 422, "required", "channel_order_id"),
    ({"customer": "张伟"}, 422, "invalid_type", "customer"),
    ({"customer": {"name": "张伟", "phone": "call me"}}, 422, "invalid_phone", "customer.phone"),
    ({"customer": {"name": "张\x00伟", "phone": PHONE}}, 422, "invalid_characters", "customer.name"),
])
def test_invalid_orders_are_refused_and_change_nothing(api, stocked, overrides, status, code, field):
    before = state()
    assert_error(api.post("/orders", order_payload(**overrides)), status, code, field)
    assert state() == before
    assert level() == (20, 0)


def test_more_than_available_is_refused_and_reserves_nothing(api, stocked, create_sku):
    create_sku("SKU-2", "碧螺春")
    db.session.commit()
    before = state()
    error = assert_error(api.post("/orders", order_payload(lines=line(quantity=21))), 409, "insufficient_stock")
    assert "可用 20 件" in error["message"]  # the caller's language: Chinese by default
    # All or nothing: the first line fits, the second (no stock at all) does not, so neither is reserved.
    two_lines = [{"sku": "SKU-1", "quantity": 5, "unit_price": "10.00"},
                 {"sku": "SKU-2", "quantity": 1, "unit_price": "10.00"}]
    assert_error(api.post("/orders", order_payload(lines=two_lines)), 409, "insufficient_stock")
    assert state() == before
    assert level() == (20, 0)


def test_duplicate_channel_order_is_refused(api, create_order):
    create_order(channel_order_id="OS-7")
    before = state()
    assert_error(api.post("/orders", order_payload(channel_order_id="OS-7")), 409, "duplicate_order",
                 "channel_order_id")
    assert state() == before


def test_a_duplicate_from_a_new_customer_is_refused_and_leaves_no_customer_behind(api, create_order):
    """The duplicate is found by the INSERT itself (ON CONFLICT DO NOTHING) after the new customer was written:
    the refusal rolls the whole request back, customer included, and names the existing order."""
    first = create_order(channel_order_id="OS-8")
    db.session.commit()
    before = state()
    error = assert_error(api.post("/orders", order_payload(channel_order_id="OS-8", phone="13700001111")), 409,
                         "duplicate_order", "channel_order_id")
    assert first.order_no in error["message"]
    assert state() == before
    assert level() == (20, 1)


def test_creating_an_order_through_the_api_takes_a_fixed_handful_of_statements(api, stocked, backend):
    api.get("/stock/SKU-1")  # the token's first use is recorded once; count the requests after it
    with count_queries() as statements:
        response = api.post("/orders", order_payload(channel_order_id="COUNT-API", phone="13900000009", lines=[
            {"sku": "SKU-1", "quantity": 2, "unit_price": "59.90"}]))
    assert response.status_code == 201, response.text
    shapes = [" ".join(s.split()[:3]) for s in statements if "SAVEPOINT" not in s]
    # The token with its user; the SKUs with their free stock; the channel; the customer by phone; then the
    # writes as Core statements: the new customer, the order (ON CONFLICT DO NOTHING), its lines, the reservations,
    # the outbox row, the audit events (one statement), and last the conditional stock UPDATE: a hot row is
    # locked from it to the COMMIT only. No savepoint of the service's own, nothing read back. On PostgreSQL the order number comes from the process's
    # block (its own connection, once per block); on SQLite it is an upsert in the transaction.
    expected = ["SELECT api_tokens.id, api_tokens.revoked_at,", "SELECT skus.id, skus.code,",
                "SELECT channels.id, channels.code,", "SELECT customers.id, customers.name,", "INSERT INTO customers",
                *(["INSERT INTO order_number_sequences"] if backend == "sqlite" else []),
                "INSERT INTO orders", "INSERT INTO order_lines", "INSERT INTO reservations",
                "INSERT INTO outbox_events", "INSERT INTO audit_events", "UPDATE stock_levels SET"]
    assert shapes == expected, shapes
    assert level() == (20, 2)


def test_platform_orders_cannot_be_created_through_the_api(api, stocked, create_channel):
    create_channel("TB", "淘宝", "taobao")
    db.session.commit()
    before = state()
    assert_error(api.post("/orders", order_payload(channel="TB")), 422, "channel_not_direct", "channel")
    assert state() == before


def test_html_and_sql_in_text_are_stored_and_returned_verbatim(api_as, stocked):
    hostile = {"name": "<script>alert(1)</script>", "street": "1'); DROP TABLE orders;--",
               "id": "<b>OS</b>' OR '1'='1"}
    payload = order_payload(channel_order_id=hostile["id"], customer={"name": hostile["name"], "phone": PHONE})
    payload["shipping_address"] |= {"receiver": hostile["name"], "street": hostile["street"]}
    created = api_as("admin").post("/orders", payload)
    assert created.status_code == 201, created.text
    order_no = created.get_json()["order_no"]

    response = api_as("ops_manager").get(f"/orders/{order_no}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    order = response.get_json()
    assert order["channel_order_id"] == hostile["id"]
    assert order["customer"]["name"] == hostile["name"]
    assert order["shipping_address"]["receiver"] == hostile["name"]
    assert order["shipping_address"]["street"] == hostile["street"]
    assert "&lt;" not in response.text and "&#39;" not in response.text  # JSON is not HTML: no entity escaping
    db.session.expire_all()
    stored = db.session.execute(select(Order).where(Order.order_no == order_no)).scalar_one()
    assert (stored.channel_order_id, stored.receiver_name, stored.street) == (hostile["id"], hostile["name"],
                                                                              hostile["street"])


# Orders: reading --------------------------------------------------------------------------------------------------

def access_log(order_no: str) -> list[AccessLogEntry]:
    db.session.expire_all()
    return db.session.execute(select(AccessLogEntry).where(AccessLogEntry.entity_id == order_no)).scalars().all()


def test_customer_service_sees_masked_personal_data(api_as, create_order):
    order_no = create_order().order_no
    response = api_as("customer_service").get(f"/orders/{order_no}")
    assert response.status_code == 200
    order = response.get_json()
    assert order["shipping_address"]["phone"] == MASKED_PHONE and order["customer"]["phone"] == MASKED_PHONE
    assert order["shipping_address"]["receiver"] == "张*" and order["customer"]["name"] == "张*"
    assert order["shipping_address"]["address"] == "浙江省 杭州市 西湖区 ****"
    assert order["shipping_address"]["street"] is None and order["shipping_address"]["postal_code"] is None
    assert PHONE not in response.text and "文三路" not in response.text
    assert order["lines"][0]["sku"] == "SKU-1"
    assert access_log(order_no) == []


def test_ops_manager_sees_full_personal_data_and_the_view_is_logged(api_as, create_order):
    order_no = create_order().order_no
    response = api_as("ops_manager").get(f"/orders/{order_no}")
    assert response.status_code == 200
    order = response.get_json()
    assert order["shipping_address"]["phone"] == PHONE and order["customer"]["phone"] == PHONE
    assert order["shipping_address"]["receiver"] == "张伟"
    assert order["shipping_address"]["street"] == STREET and order["shipping_address"]["postal_code"] == "310012"
    assert STREET in order["shipping_address"]["address"]
    [entry] = access_log(order_no)
    assert (entry.actor_label, entry.action, entry.entity_type, entry.channel) == ("api-ops_manager", "view",
                                                                                    "order", "api")
    assert {"name", "phone", "address"} <= set(entry.fields.split(","))


def test_auditor_sees_no_personal_data(api_as, create_order):
    order_no = create_order().order_no
    response = api_as("auditor").get(f"/orders/{order_no}")
    assert response.status_code == 200
    order = response.get_json()
    assert set(order["customer"].values()) == {"—"}
    assert {order["shipping_address"][k] for k in ("receiver", "phone", "address", "province", "city",
                                                    "district")} == {"—"}
    # Timestamps carry digits of their own (".138274"), and so does the channel order id the factory makes from the
    # clock ("T1796321380159455"): both are left out of the search for leaked digits.
    text = re.sub(r'"\d{4}-\d\d-\d\dT[^"]*"', '""', response.text)
    text = re.sub(r'"channel_order_id":"[^"]*"', '"channel_order_id":""', text)
    for secret in ("5678", "138", "张", "西湖区", "文三路", "310012"):
        assert secret not in text, secret
    assert order["total"] == "67.90"  # the order itself is visible
    assert access_log(order_no) == []


@pytest.mark.parametrize("make_number, status, code", [
    (lambda real: "NOT-AN-ORDER", 422, "malformed_order_no"),
    (lambda real: real[:-1], 422, "malformed_order_no"),
    (lambda real: real[:12] + ("9" if real[12] != "9" else "8") + real[13:], 422, "order_no_check_failed"),
    (lambda real: order_numbers.compose("OS", date(2020, 1, 1), 999), 404, "order_not_found"),
])
def test_unknown_order_numbers(api, create_order, make_number, status, code):
    real = create_order().order_no
    before = state()
    assert_error(api.get(f"/orders/{make_number(real)}"), status, code, "order_no")
    assert_error(api.post(f"/orders/{make_number(real)}/transitions", {"to": "allocated"}), status, code)
    assert state() == before


def test_order_number_is_read_case_insensitively(api, create_order):
    order_no = create_order().order_no
    assert api.get(f"/orders/{order_no.lower()}").get_json()["order_no"] == order_no


# Orders: listing --------------------------------------------------------------------------------------------------

def test_list_pages_through_orders_in_the_order_they_changed(api, create_order):
    first, second, third = (create_order(channel_order_id=f"L-{n}").order_no for n in range(3))
    page = api.get("/orders?limit=2")
    assert page.status_code == 200, page.text
    body = page.get_json()
    assert [item["order_no"] for item in body["items"]] == [first, second]
    assert body["next_cursor"]
    last = api.get(f"/orders?limit=2&cursor={body['next_cursor']}").get_json()
    assert [item["order_no"] for item in last["items"]] == [third] and last["next_cursor"] is None
    item = body["items"][0]
    assert_has_required(item, "OrderSummary")
    assert "lines" not in item and "customer" not in item
    assert item["shipping_address"]["phone"] == MASKED_PHONE  # never revealed in a list, even to an admin
    assert item["total"] == "67.90" and item["warehouse"] == "HZ1" and item["channel"] == "OS"
    assert access_log(first) == []

    newest_first = api.get("/orders?sort=updated_desc").get_json()["items"]
    assert [item["order_no"] for item in newest_first] == [third, second, first]


def test_list_filters(api, create_order, create_channel):
    create_channel("WX", "小程序", "wechat")
    confirmed = create_order(channel_order_id="F-1").order_no
    shipped = create_order(channel_order_id="F-2", status="shipped").order_no
    wechat = create_order(channel="WX", channel_order_id="F-3").order_no

    def numbers(query: str) -> list[str]:
        response = api.get(f"/orders?{query}")
        assert response.status_code == 200, response.text
        return [item["order_no"] for item in response.get_json()["items"]]

    assert numbers("status=shipped") == [shipped]
    assert numbers("status=shipped&status=confirmed") == [confirmed, shipped, wechat]
    assert numbers("channel=wx") == [wechat]
    assert numbers("channel=JD") == []
    assert numbers(f"q={shipped}") == [shipped]
    future = (utc_now() + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert numbers(f"updated_since={future}") == []
    db.session.expire_all()
    updated_at = db.session.execute(select(Order.updated_at).where(Order.order_no == wechat)).scalar_one()
    assert numbers(f"updated_since={updated_at.isoformat().replace('+', '%2B')}") == [wechat]


@pytest.mark.parametrize("query, code, field", [
    ("status=teleported", "unknown_status", "status"),
    ("updated_since=2026-01-05T09:30:00", "naive_timestamp", "updated_since"),
    ("updated_since=soon", "invalid_timestamp", "updated_since"),
    ("limit=0", "invalid", "limit"),
    ("limit=201", "invalid", "limit"),
    ("limit=ten", "invalid_limit", "limit"),
    ("limit=-1", "invalid_limit", "limit"),
    ("sort=random", "invalid", "sort"),
    ("cursor=not-a-cursor", "invalid_cursor", "cursor"),
    ("date_from=21.11.2026", "invalid_date", "date_from"),
])
def test_bad_list_parameters_are_clear_errors(api, create_order, query, code, field):
    create_order()
    assert_error(api.get(f"/orders?{query}"), 422, code, field)


def test_list_issues_no_query_per_order(api, create_order, create_warehouse):
    create_order(channel_order_id="N-0")
    create_order(channel_order_id="N-1")
    api.get("/orders")  # the token's first use is recorded once; count the requests after it
    with count_queries() as few:
        assert len(api.get("/orders").get_json()["items"]) == 2
    create_warehouse("SH1", "上海仓", "上海市", "上海市")
    stock.adjust_stock("SKU-1", "SH1", 50, "receipt", ADMIN)
    db.session.commit()
    for n in range(2, 8):
        create_order(channel_order_id=f"N-{n}", lines=line(quantity=4))
    with count_queries() as many:
        items = api.get("/orders").get_json()["items"]
    assert len(items) == 8 and {item["warehouse"] for item in items} == {"HZ1", "SH1"}
    assert len(many) == len(few), many


# Orders: transitions ----------------------------------------------------------------------------------------------

def test_transitions_move_the_order(api_as, create_order):
    order_no = create_order().order_no
    floor = api_as("warehouse")
    for target in ("allocated", "picking", "packed", "shipped"):
        response = floor.post(f"/orders/{order_no}/transitions", {"to": target})
        assert response.status_code == 200, response.text
        assert response.get_json()["status"] == target
    order = response.get_json()
    assert order["shipped_at"].endswith("+00:00")
    assert_has_required(order, "Order")
    assert level() == (19, 0)  # shipping consumed the reservation
    db.session.expire_all()
    actions = db.session.execute(select(AuditEvent.actor_label).where(
        AuditEvent.entity_id == order_no, AuditEvent.action == "order.transition")).scalars().all()
    assert actions.count("api-warehouse") == 4


def test_cancel_with_reason_releases_stock(api, create_order):
    order_no = create_order(lines=line(quantity=3)).order_no
    assert level() == (20, 3)
    body = {"to": "cancelled", "reason": "客户要求取消"}
    # Voiding a paid order is sensitive: without a current second-factor code it is refused and nothing moves.
    assert_error(api.post(f"/orders/{order_no}/transitions", body), 403, "step_up_required")
    assert level() == (20, 3)
    code = current_code(staff.get_user("api-admin"))
    response = api.post(f"/orders/{order_no}/transitions", body, headers={"X-Orderloom-OTP": code})
    assert response.status_code == 200, response.text
    assert response.get_json()["status"] == "cancelled"
    assert level() == (20, 0)


@pytest.mark.parametrize("role, start, body, status, code", [
    ("admin", "confirmed", {"to": "shipped"}, 409, "invalid_transition"),
    ("admin", "shipped", {"to": "cancelled", "reason": "too late"}, 409, "invalid_transition"),
    ("admin", "confirmed", {"to": "teleported"}, 422, "unknown_status"),
    ("admin", "confirmed", {}, 422, "unknown_status"),
    ("admin", "confirmed", {"to": "cancelled"}, 422, "reason_required"),
    ("admin", "confirmed", {"to": "on_hold", "reason": ["not", "text"]}, 422, "invalid_type"),
    ("finance", "packed", {"to": "shipped"}, 403, "forbidden"),
    ("customer_service", "packed", {"to": "shipped"}, 403, "transition_forbidden"),
    ("customer_service", "picking", {"to": "cancelled", "reason": "changed mind"}, 403, "transition_forbidden"),
    ("auditor", "confirmed", {"to": "allocated"}, 403, "forbidden"),
])
def test_refused_transitions_change_nothing(api_as, create_order, role, start, body, status, code):
    order_no = create_order(status=start).order_no
    client = api_as(role)
    before = state()
    assert_error(client.post(f"/orders/{order_no}/transitions", body), status, code)
    assert state() == before
    assert client.get(f"/orders/{order_no}").get_json()["status"] == start


def test_a_failed_guard_is_a_conflict(api, create_order):
    order_no = create_order(paid=False, status="confirmed").order_no
    before = state()
    assert_error(api.post(f"/orders/{order_no}/transitions", {"to": "allocated"}), 409, "guard_failed", "to")
    assert state() == before


def test_hold_and_release(api, create_order):
    order_no = create_order(status="allocated").order_no
    url = f"/orders/{order_no}/transitions"
    assert_error(api.post(url, {"to": "on_hold"}), 422, "reason_required", "reason")  # holding says why
    assert api.post(url, {"to": "on_hold", "reason": "地址待核实"}).get_json()["status"] == "on_hold"
    # releasing needs no reason: the lifecycle asks for none (the hold's reason is what explains it)
    assert api.post(url, {"to": "allocated"}).get_json()["status"] == "allocated"


# OpenAPI ----------------------------------------------------------------------------------------------------------

def api_operations(app) -> dict[tuple[str, str], str]:
    """(method, OpenAPI path) of every /api/v1 route, mapped to its endpoint."""
    operations = {}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule.removeprefix("/api/v1"))
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            operations[(method.lower(), path)] = rule.endpoint
    return operations


def test_openapi_documents_exactly_the_routes(portal):
    document = spec()
    documented = {(method, path) for path, item in document["paths"].items() for method in item
                  if method in ("get", "post", "put", "patch", "delete")}
    routes = api_operations(portal)
    assert documented == set(routes)
    for (method, path), endpoint in routes.items():
        operation = document["paths"][path][method]
        permission = getattr(portal.view_functions[endpoint], "required_permission", None)
        if operation.get("security") == []:
            assert permission is None and endpoint.startswith("api_docs."), endpoint
            continue
        assert tuple(operation["x-permission"].split(":")) == permission, endpoint
        assert {"401", "403"} <= set(operation["responses"]), endpoint


def test_openapi_document_is_served_and_sound(portal):
    response = portal.test_client().get("/api/v1/openapi.json")  # public: no token
    assert response.status_code == 200 and response.mimetype == "application/json"
    document = json.loads(response.data)
    assert document == spec()
    assert document["openapi"].startswith("3.1")
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        **document["components"]["securitySchemes"]["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert document["security"] == [{"bearerAuth": []}]

    def refs(node):
        if isinstance(node, dict):
            yield from ([node["$ref"]] if "$ref" in node else [])
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for ref in set(refs(document)):
        target = document
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]  # a dangling reference raises KeyError here
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    error = document["components"]["schemas"]["Error"]
    assert error["properties"]["error"]["required"] == ["code", "message"]


def test_docs_page_lists_every_operation_without_outside_assets(portal):
    old_address = portal.test_client().get("/api/v1/docs")  # the page now lives in the portal's frame
    assert old_address.status_code == 302 and old_address.headers["Location"].endswith("/api-docs")
    response = portal.test_client().get("/api-docs")
    assert response.status_code == 200 and response.mimetype == "text/html"
    for method, path in api_operations(portal):
        assert f'class="method method-{method}">{method.upper()}</span> <code class="api-path">/api/v1{path}</code>' \
            in response.text, (method, path)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", response.text)
