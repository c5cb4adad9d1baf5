"""A merchant's first day without the demo (issue 8, item 5): channels, warehouses with carriers, bins, SKU and
status mappings (with a spreadsheet import), by the API, the portal and the CLI, and every bad input refused
with nothing changed. The last test runs the README's first-day path on an empty database."""
import io
import os
import subprocess
import sys
import uuid

import pytest
from sqlalchemy import func, select, text

from shared.config import PROJECT_ROOT
from shared.extensions import db
from shared.models import AuditEvent, Bin, Channel, ChannelConnection, SkuMapping, StatusMapping, Warehouse
from shared.services import catalog, channel_settings, scans, stock
from shared.services.errors import ValidationFailed
from tests.factories import ADMIN
from tests.test_api import api_as, token_for  # noqa: F401  (fixtures)
from tests.portal_client import csrf_token


def counts() -> dict:
    """Row counts a refused request must leave as they were; the refusal's own audit event (access.forbidden, a 403
    of the permission table) is counted apart."""
    db.session.expire_all()
    found = {model.__name__: db.session.scalar(select(func.count()).select_from(model))
             for model in (Channel, ChannelConnection, Warehouse, Bin, SkuMapping, StatusMapping)}
    found["AuditEvent"] = db.session.scalar(select(func.count()).select_from(AuditEvent)
                                            .where(AuditEvent.action != "access.forbidden"))
    return found


def forbidden_paths() -> list[str]:
    db.session.expire_all()
    return [event.after["path"] for event in db.session.execute(
        select(AuditEvent).where(AuditEvent.action == "access.forbidden").order_by(AuditEvent.id)).scalars()]


def call(api, method: str, path: str, body=None):
    return getattr(api.client, method)(f"/api/v1{path}", json=body, headers={"Authorization": f"Bearer {api.token}"})


@pytest.fixture
def api(api_as):  # noqa: F811
    return api_as("admin")


@pytest.fixture
def warehouse(session):
    made = catalog.create_warehouse({"code": "HZ1", "name": "杭州仓", "province": "浙江省", "city": "杭州市"}, ADMIN)
    db.session.commit()
    return made


# --- channels through the API -------------------------------------------------------------------------------

def test_a_channel_is_created_through_the_api_with_its_platform_statuses(api):
    answer = call(api, "post", "/channels", {"code": "tm", "name": "天猫旗舰店", "kind": "taobao"})
    assert answer.status_code == 201, answer.get_json()
    body = answer.get_json()
    assert (body["code"], body["kind"], body["timezone"], body["currency"]) == ("TM", "taobao", "Asia/Shanghai", "CNY")
    assert answer.headers["Location"].endswith("/api/v1/channels/TM")
    channel = catalog.get_channel("TM")
    assert {row.platform_status for row in channel_settings.status_mappings(channel)} >= {"WAIT_SELLER_SEND_GOODS"}
    event = db.session.execute(select(AuditEvent).where(AuditEvent.action == "channel.create")).scalar_one()
    assert event.actor_label == "api-admin" and event.after["kind"] == "taobao"
    overseas = call(api, "post", "/channels", {"code": "SF", "name": "Shopify", "kind": "shopify",
                                               "timezone": "America/New_York", "currency": "usd"})
    assert overseas.status_code == 201 and overseas.get_json()["currency"] == "USD"


@pytest.mark.parametrize("body, status, code, field", [
    ({"code": "T", "name": "x", "kind": "taobao"}, 422, "invalid_channel_code", "code"),
    ({"code": "TMX", "name": "x", "kind": "taobao"}, 422, "invalid_channel_code", "code"),
    ({"code": "T1", "name": "x", "kind": "taobao"}, 422, "invalid_channel_code", "code"),
    ({"code": "天猫", "name": "x", "kind": "taobao"}, 422, "invalid_channel_code", "code"),
    ({"code": "OS", "name": "x", "kind": "taobao"}, 409, "duplicate_channel", "code"),
    ({"code": "os", "name": "x", "kind": "own_shop"}, 409, "duplicate_channel", "code"),
    ({"code": "TM", "name": "x", "kind": "ebay"}, 422, "invalid_kind", "kind"),
    ({"code": "TM", "name": "x", "kind": "taobao", "timezone": "Mars/Olympus"}, 422, "invalid_timezone", "timezone"),
    ({"code": "TM", "name": "x", "kind": "taobao", "currency": "RMB1"}, 422, "too_long", "currency"),
    ({"code": "TM", "name": "", "kind": "taobao"}, 422, "required", "name"),
])
def test_a_bad_channel_is_refused_and_nothing_changes(api, body, status, code, field):
    catalog.create_channel("OS", "官网商城", "own_shop", ADMIN)
    db.session.commit()
    before = counts()
    answer = call(api, "post", "/channels", body)
    assert answer.status_code == status, answer.get_json()
    assert answer.get_json()["error"]["code"] == code and answer.get_json()["error"]["field"] == field
    assert counts() == before


def test_connection_secrets_are_stored_encrypted_and_never_shown_back_in_full(api):
    call(api, "post", "/channels", {"code": "SF", "name": "Shopify", "kind": "shopify"})
    secret = "shpss_0123456789abcdef0123456789abcdef"
    answer = call(api, "put", "/channels/SF/connection", {
        "base_url": "https://tea-shop.myshopify.com", "app_key": "key-1", "access_token": "shpat_secret_token_1",
        "webhook_secret": secret, "poll_minutes": 10})
    assert answer.status_code == 200, answer.get_json()
    shown = answer.get_data(as_text=True)
    assert secret not in shown and "shpat_secret_token_1" not in shown
    connection = answer.get_json()["connection"]
    assert connection["webhook_secret"] == {"set": True, "ends_with": "cdef"}
    assert connection["app_secret"] == {"set": False} and connection["poll_minutes"] == 10
    raw = db.session.execute(text("SELECT webhook_secret FROM channel_connections")).scalar_one()
    assert secret not in raw  # encrypted at rest
    assert channel_settings.connection_for(catalog.get_channel("SF")).webhook_secret == secret
    event = db.session.execute(select(AuditEvent).where(AuditEvent.action == "channel.connect")).scalar_one()
    assert secret not in str(event.after) and "webhook_secret" in event.after["secrets_changed"]
    refused = call(api, "put", "/channels/SF/connection", {"base_url": "ftp://nope"})
    assert refused.status_code == 422 and refused.get_json()["error"]["field"] == "base_url"
    unknown = call(api, "put", "/channels/SF/connection", {"watermark": "2020-01-01"})
    assert unknown.status_code == 422 and unknown.get_json()["error"]["code"] == "unknown_field"


def test_a_channel_is_renamed_and_switched_off_but_keeps_its_code(api):
    call(api, "post", "/channels", {"code": "JD", "name": "京东", "kind": "jd"})
    answer = call(api, "patch", "/channels/JD", {"name": "京东自营旗舰店", "active": False})
    assert answer.status_code == 200 and answer.get_json()["name"] == "京东自营旗舰店"
    assert answer.get_json()["active"] is False
    before = counts()
    refused = call(api, "patch", "/channels/JD", {"code": "JX"})
    assert refused.status_code == 422 and counts() == before
    assert call(api, "patch", "/channels/ZZ", {"name": "x"}).status_code == 404


def test_a_role_that_may_not_edit_channels_is_refused(api_as):  # noqa: F811
    service = api_as("customer_service")
    before = counts()
    answer = call(service, "post", "/channels", {"code": "TM", "name": "x", "kind": "taobao"})
    assert answer.status_code == 403 and counts() == before
    assert forbidden_paths() == ["/api/v1/channels"]  # the refusal itself is audited
    assert call(service, "get", "/channels").status_code == 200  # they may look


# --- warehouses, carriers, bins -----------------------------------------------------------------------------

def test_warehouse_carriers_and_cold_chain_are_set_and_used_in_that_order(api, warehouse):
    answer = call(api, "patch", "/warehouses/HZ1", {"carriers": ["zto", "SF", "EMS"], "cold_chain": True})
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["carriers"] == ["ZTO", "SF", "EMS"] and body["backup_carriers"] == ["SF", "EMS"]
    assert body["cold_chain"] is True
    event = db.session.execute(select(AuditEvent).where(AuditEvent.action == "warehouse.update")).scalar_one()
    assert event.before["carriers"] == "SF,YTO" and event.after["carriers"] == "ZTO,SF,EMS"


@pytest.mark.parametrize("body, code", [
    ({"carriers": ["DHL"]}, "unknown_carrier"), ({"carriers": []}, "invalid_carriers"),
    ({"carriers": ["SF", "sf"]}, "duplicate_carrier"), ({"cold_chain": "yes"}, "invalid_type"),
    ({"code": "HZ2"}, "unknown_field"),
])
def test_bad_warehouse_changes_are_refused_and_nothing_changes(api, warehouse, body, code):
    before = counts()
    answer = call(api, "patch", "/warehouses/HZ1", body)
    assert answer.status_code == 422 and answer.get_json()["error"]["code"] == code
    assert counts() == before
    db.session.refresh(warehouse)
    assert (warehouse.carriers, warehouse.cold_chain) == ("SF,YTO", False)


def test_bins_are_created_through_the_api_and_a_pick_walks_them(api, warehouse):
    for code, walk in (("B-02", 2), ("A-01", 1)):
        answer = call(api, "post", "/warehouses/HZ1/bins", {"code": code, "walk_order": walk, "capacity": 500})
        assert answer.status_code == 201, answer.get_json()
    listed = call(api, "get", "/warehouses/HZ1/bins").get_json()["items"]
    assert [row["code"] for row in listed] == ["A-01", "B-02"]
    assert db.session.execute(select(func.count()).select_from(AuditEvent)
                              .where(AuditEvent.action == "bin.create")).scalar() == 2


@pytest.mark.parametrize("body, status, code", [
    ({"code": "<b>"}, 422, "invalid_bin"), ({"code": "A-01<script>"}, 422, "invalid_bin"),
    ({"code": "A 01"}, 422, "invalid_bin"), ({"code": ""}, 422, "required"),
    ({"code": "A-01", "capacity": 0}, 422, "invalid_quantity"), ({"code": "A-01", "walk_order": -1}, 422,
                                                                  "invalid_quantity"),
    ({"code": "X-01"}, 409, "duplicate_bin"),
])
def test_a_bad_bin_is_refused_and_nothing_changes(api, warehouse, body, status, code):
    catalog.create_bin(warehouse, {"code": "X-01"}, ADMIN)
    db.session.commit()
    before = counts()
    answer = call(api, "post", "/warehouses/HZ1/bins", body)
    assert answer.status_code == status and answer.get_json()["error"]["code"] == code
    assert counts() == before
    assert call(api, "post", "/warehouses/NOPE/bins", {"code": "A-01"}).status_code == 404


# --- the mapping import -------------------------------------------------------------------------------------

@pytest.fixture
def shop(session):
    channel = catalog.create_channel("TM", "天猫旗舰店", "taobao", ADMIN)
    for code in ("TEA-1", "TEA-2"):
        catalog.create_sku({"sku": code, "name": code}, ADMIN)
    db.session.commit()
    return channel


def test_a_sku_mapping_csv_is_imported_whole_and_audited(shop):
    data = "channel_sku,sku\r\n5566-A,TEA-1\r\n\r\n5566-B,TEA-2\r\n".encode("utf-8-sig")
    result = channel_settings.import_mappings(shop, "map.csv", data, ADMIN)
    db.session.commit()
    assert result == {"kind": "sku", "rows": 2}
    assert {(row.channel_sku, row.sku.code) for row in channel_settings.sku_mappings(shop)} == {
        ("5566-A", "TEA-1"), ("5566-B", "TEA-2")}
    actions = db.session.execute(select(AuditEvent.action).where(AuditEvent.action.like("channel.%"))).scalars().all()
    assert actions.count("channel.sku_mapping") == 2 and "channel.mapping_import" in actions


def test_a_mapping_import_keys_rows_by_variant_id_and_refuses_a_bad_id_with_its_line(shop):
    good = "channel_sku,sku,key_kind\r\n5566-A,TEA-1,\r\n4471,TEA-2,variant\r\n4471,TEA-1,product\r\n".encode()
    assert channel_settings.import_mappings(shop, "map.csv", good, ADMIN) == {"kind": "sku", "rows": 3}
    db.session.commit()
    keyed = {(row.key_kind, row.channel_sku, row.sku.code) for row in channel_settings.sku_mappings(shop)}
    assert keyed == {("code", "5566-A", "TEA-1"), ("variant", "4471", "TEA-2"), ("product", "4471", "TEA-1")}
    before = counts()
    bad = "channel_sku,sku,key_kind\r\n9001,TEA-1,variant\r\nV-9,TEA-2,variant\r\n9001,TEA-2,colour\r\n".encode()
    with pytest.raises(channel_settings.MappingImportRefused) as refused:
        channel_settings.import_mappings(shop, "map.csv", bad, ADMIN)
    assert [line for line, _problem in refused.value.problems] == [3, 4]  # digits only; an unknown key kind
    assert counts() == before


def test_a_status_mapping_xlsx_is_imported(shop):
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["platform_status", "lifecycle", "payment_status", "refund_status", "note"])
    sheet.append(["WAIT_BUYER_PAY", "pending_review", "unpaid", "", "not paid yet"])
    sheet.append(["PAID_FORBID_CONSIGN", "on_hold", "paid", "requested", "拼团中"])
    buffer = io.BytesIO()
    book.save(buffer)
    result = channel_settings.import_mappings(shop, "statuses.xlsx", buffer.getvalue(), ADMIN)
    assert result == {"kind": "status", "rows": 2}
    rows = {row.platform_status: row for row in channel_settings.status_mappings(shop)}
    assert (rows["PAID_FORBID_CONSIGN"].lifecycle, rows["PAID_FORBID_CONSIGN"].refund_status) == ("on_hold",
                                                                                                  "requested")


def test_a_mapping_file_with_unknown_skus_or_duplicate_rows_is_refused_with_line_numbers(shop):
    channel_settings.map_sku(shop, "OLD", "TEA-1", ADMIN)
    db.session.commit()
    before = counts()
    data = ("channel_sku,sku\n"
            "5566-A,TEA-1\n"  # line 2: fine, but must not be applied either
            "5566-B,NOPE\n"  # line 3: unknown SKU
            "5566-A,TEA-2\n"  # line 4: 5566-A twice
            ",TEA-1\n").encode()  # line 5: no channel SKU
    with pytest.raises(channel_settings.MappingImportRefused) as refused:
        channel_settings.import_mappings(shop, "map.csv", data, ADMIN)
    db.session.rollback()
    assert refused.value.problems == [(3, 'Unknown SKU "NOPE"'), (4, "5566-A is also on line 2"),
                                      (5, "channel_sku is empty")]
    assert "line 3" in refused.value.message and "nothing imported" in refused.value.message
    assert counts() == before
    assert [row.channel_sku for row in channel_settings.sku_mappings(shop)] == ["OLD"]


@pytest.mark.parametrize("name, data, code", [
    ("map.txt", b"channel_sku,sku\nA,TEA-1\n", "unreadable_file"),
    ("map.csv", b"", "unreadable_file"),
    ("map.csv", b"foo,bar\n1,2\n", "unknown_mapping_file"),
    ("map.csv", b"platform_status,lifecycle\nX,shipped_to_mars\n", "mapping_import_refused"),
])
def test_an_unreadable_mapping_file_is_refused(shop, name, data, code):
    before = counts()
    with pytest.raises(ValidationFailed) as refused:
        channel_settings.import_mappings(shop, name, data, ADMIN)
    db.session.rollback()
    assert refused.value.code == code and counts() == before


# --- the portal pages ---------------------------------------------------------------------------------------

def test_getting_started_lists_what_is_missing_with_links_then_shows_it_done(client_for):
    admin = client_for("admin")
    page = admin.get("/setup/").get_data(as_text=True)
    for key in ("warehouse", "bins", "sku", "stock", "channel", "connection", "mappings", "staff", "handhelds",
                "worker"):
        assert f'data-testid="step-{key}" data-done="no"' in page, key
    assert 'href="/setup/channels/new"' in page and 'href="/catalog/"' in page
    warehouse = catalog.create_warehouse({"code": "HZ1", "name": "杭州仓", "province": "浙江省", "city": "杭州市"},
                                         ADMIN)
    catalog.create_bin(warehouse, {"code": "A-01"}, ADMIN)
    scans.register_device("PDA-1", "HZ1", ADMIN)
    catalog.create_sku({"sku": "TEA-1", "name": "龙井"}, ADMIN)
    stock.adjust_stock("TEA-1", "HZ1", 10, "opening stock", ADMIN, kind="receipt")
    channel = catalog.create_channel("TM", "天猫", "taobao", ADMIN)
    db.session.commit()
    page = admin.get("/setup/").get_data(as_text=True)
    for key in ("warehouse", "bins", "sku", "stock", "channel", "handhelds"):
        assert f'data-testid="step-{key}" data-done="yes"' in page, key
    assert 'data-testid="step-connection" data-done="no"' in page and "/channels/TM#connection" in page
    channel_settings.connect(channel, ADMIN, base_url="https://eco.taobao.com/router/rest", app_key="k",
                             app_secret="s" * 20, access_token="t", webhook_secret="w" * 20)
    channel_settings.map_sku(channel, "5566", "TEA-1", ADMIN)
    db.session.commit()
    page = admin.get("/setup/").get_data(as_text=True)
    assert 'data-testid="step-connection" data-done="yes"' in page
    channel_settings.connection_for(channel).consecutive_failures = 3  # the platform refuses the key
    db.session.commit()
    page = admin.get("/setup/").get_data(as_text=True)
    assert 'data-testid="step-connection" data-done="no"' in page and "the last polls failed: TM" in page
    channel_settings.connection_for(channel).consecutive_failures = 0
    db.session.commit()
    assert 'data-testid="step-mappings" data-done="yes"' in page
    assert 'data-testid="step-worker" data-done="no"' in page  # the tests run jobs inline
    chinese = client_for("admin", locale="zh_CN").get("/setup/").get_data(as_text=True)
    # a finished step reads 已完成 (finished), not the inbox's 已处理 (processed)
    assert '<span class="badge ok">已完成</span>' in chinese and "已处理" not in chinese


def test_getting_started_is_for_those_who_set_up(client_for):
    assert client_for("customer_service").get("/setup/").status_code == 403
    assert client_for("ops_manager").get("/setup/").status_code == 200


def test_a_channel_is_created_in_the_portal_and_a_duplicate_re_renders_with_the_error(client_for):
    ops = client_for("ops_manager")
    form = {"code": "dy", "name": "抖音小店", "kind": "douyin", "timezone": "Asia/Shanghai", "currency": "CNY",
            "csrf_token": csrf_token(ops, "/setup/channels/new")}
    made = ops.post("/setup/channels/new", data=form)
    assert made.status_code == 303 and made.headers["Location"].endswith("/channels/DY#connection")
    before = counts()
    again = ops.post("/setup/channels/new", data=form | {"name": "<b>二号店</b>"})
    assert again.status_code == 422 and "Channel DY exists" in again.get_data(as_text=True)
    assert "<b>二号店</b>" not in again.get_data(as_text=True)  # what was typed comes back escaped
    assert counts() == before
    no_token = ops.post("/setup/channels/new", data={k: v for k, v in form.items() if k != "csrf_token"} |
                        {"code": "XX"})
    assert no_token.status_code in (400, 422) and counts() == before


def test_a_bin_with_markup_is_refused_in_the_portal_and_shown_escaped(client_for, warehouse):
    ops = client_for("ops_manager")
    token = csrf_token(ops, "/setup/warehouses/HZ1")
    before = counts()
    refused = ops.post("/setup/warehouses/HZ1/bins", data={"code": "<b>", "walk_order": "1", "capacity": "100",
                                                            "csrf_token": token})
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "A bin code uses letters" in page and 'value="&lt;b&gt;"' in page
    assert counts() == before
    added = ops.post("/setup/warehouses/HZ1/bins", data={"code": "A-01", "walk_order": "1", "capacity": "100",
                                                          "csrf_token": token})
    assert added.status_code == 303 and [b.code for b in catalog.bins_of(warehouse)] == ["A-01"]


def test_a_bin_is_edited_in_the_portal_and_bad_values_change_nothing(client_for, warehouse):
    catalog.create_bin(warehouse, {"code": "A-01", "walk_order": 1, "capacity": 100}, ADMIN)
    db.session.commit()
    ops = client_for("ops_manager")
    token = csrf_token(ops, "/setup/warehouses/HZ1")
    assert 'action="/setup/warehouses/HZ1/bins/A-01"' in ops.get("/setup/warehouses/HZ1").get_data(as_text=True)
    warehouse_staff = client_for("warehouse")  # may look at bins, not change them
    staff_token = csrf_token(warehouse_staff, "/catalog/")
    before = counts()
    for bad in ({"walk_order": "-1", "capacity": "100"}, {"walk_order": "1", "capacity": "0"},
                {"walk_order": "x", "capacity": "100"}):
        refused = ops.post("/setup/warehouses/HZ1/bins/A-01", data=bad | {"csrf_token": token})
        assert refused.status_code == 422, bad
    assert ops.post("/setup/warehouses/HZ1/bins/A-01", data={"walk_order": "2", "capacity": "50"}).status_code == 400
    assert ops.post("/setup/warehouses/HZ1/bins/NOPE", data={"walk_order": "2", "capacity": "50",
                                                             "csrf_token": token}).status_code == 404
    assert warehouse_staff.post("/setup/warehouses/HZ1/bins/A-01", data={
        "walk_order": "2", "capacity": "50", "csrf_token": staff_token}).status_code == 403
    assert counts() == before and forbidden_paths() == ["/setup/warehouses/HZ1/bins/A-01"]
    row = catalog.get_bin(warehouse, "A-01")
    db.session.refresh(row)
    assert (row.walk_order, row.capacity) == (1, 100)
    saved = ops.post("/setup/warehouses/HZ1/bins/A-01", data={"walk_order": "4", "capacity": "250",
                                                               "csrf_token": token})
    assert saved.status_code == 303
    db.session.refresh(row)
    assert (row.walk_order, row.capacity) == (4, 250)
    event = db.session.execute(select(AuditEvent).where(AuditEvent.action == "bin.update")).scalar_one()
    assert event.before["capacity"] == 100 and event.after == {"walk_order": 4, "capacity": 250, "bin": "A-01"}


def test_warehouse_carriers_are_edited_in_the_portal_and_a_handheld_token_is_shown_once(client_for, warehouse):
    ops = client_for("ops_manager")
    token = csrf_token(ops, "/setup/warehouses/HZ1")
    saved = ops.post("/setup/warehouses/HZ1", data={"name": "杭州冷链仓", "province": "浙江省", "city": "杭州市",
                                                     "carriers": "JD, SF", "cold_chain": "y", "active": "y",
                                                     "csrf_token": token})
    assert saved.status_code == 303
    db.session.refresh(warehouse)
    assert (warehouse.name, warehouse.carriers, warehouse.cold_chain) == ("杭州冷链仓", "JD,SF", True)
    bad = ops.post("/setup/warehouses/HZ1", data={"name": "x", "province": "浙江省", "city": "杭州市",
                                                   "carriers": "DHL", "active": "y", "csrf_token": token})
    assert bad.status_code == 422 and "Unknown carrier" in bad.get_data(as_text=True)
    db.session.refresh(warehouse)
    assert warehouse.carriers == "JD,SF"
    device = ops.post("/setup/warehouses/HZ1/handhelds", data={"name": "PDA-01", "csrf_token": token})
    page = device.get_data(as_text=True)
    assert device.status_code == 200 and 'data-testid="device-token"' in page
    shown = page.split('data-testid="device-token"')[1].split("<code>")[1].split("</code>")[0]
    assert scans.device_for_token(shown).name == "PDA-01"
    assert shown not in ops.get("/setup/warehouses/HZ1").get_data(as_text=True)
    twice = ops.post("/setup/warehouses/HZ1/handhelds", data={"name": "PDA-01", "csrf_token": token})
    assert twice.status_code == 422


def test_the_mapping_import_page_refuses_a_bad_file_with_line_numbers(client_for, shop):
    ops = client_for("ops_manager")
    token = csrf_token(ops, "/setup/channels/TM")
    before = counts()
    bad = ops.post("/setup/channels/TM/mappings/import", content_type="multipart/form-data", data={
        "csrf_token": token, "file": (io.BytesIO(b"channel_sku,sku\nA,TEA-1\nB,<i>NOPE</i>\nA,TEA-2\n"), "m.csv")})
    page = bad.get_data(as_text=True)
    assert bad.status_code == 422 and 'data-testid="refused-rows"' in page
    assert "<td class=\"num\">3</td>" in page and "<td class=\"num\">4</td>" in page
    assert "<i>NOPE</i>" not in page and "&lt;i&gt;NOPE&lt;/i&gt;" in page
    assert counts() == before
    good = ops.post("/setup/channels/TM/mappings/import", content_type="multipart/form-data", data={
        "csrf_token": token, "file": (io.BytesIO(b"channel_sku,sku\nA,TEA-1\nB,TEA-2\n"), "m.csv")})
    assert good.status_code == 303 and len(channel_settings.sku_mappings(shop)) == 2
    finance = client_for("finance")
    refused = finance.post("/setup/channels/TM/mappings/import", content_type="multipart/form-data", data={
        "csrf_token": csrf_token(finance, "/channels/"), "file": (io.BytesIO(b"channel_sku,sku\nC,TEA-1\n"), "m.csv")})
    assert refused.status_code == 403 and len(channel_settings.sku_mappings(shop)) == 2


# --- the CLI ------------------------------------------------------------------------------------------------

def cli(args: list[str], env: dict, stdin: str = "") -> subprocess.CompletedProcess:
    """The orderloom command of this tree, as an operator runs it."""
    return subprocess.run([sys.executable, "-c", "from cli import main; main()", *args], cwd=PROJECT_ROOT,
                          env=env, input=stdin, capture_output=True, text=True, timeout=180)


def operator_env(url: str, data_key: str) -> dict:
    return {"DATABASE_URL": url, "ORDERLOOM_ENV": "production", "ORDERLOOM_SECRET_KEY": "first-day-" + "k" * 40,
            "ORDERLOOM_DATA_KEYS": data_key, "ORDERLOOM_INDEX_KEY": "first-day-index-key-" + "i" * 20,
            "ORDERLOOM_AUDIT_KEYS": "first-day-audit-key-" + "a" * 28,
            "PYTHONPATH": str(PROJECT_ROOT), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "REDIS_URL": ""}


def _empty_database(backend: str, tmp_path) -> tuple[str, object]:
    """A database with no schema at all, as on a fresh machine."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh' / 'orderloom.sqlite3'}", None
    from tests.conftest import PG_BASE, _pg_admin_engine

    admin = _pg_admin_engine()
    schema = f"t_fresh_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    return f"{PG_BASE}?options=-csearch_path%3D{schema}", (admin, schema)


@pytest.mark.live
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_first_day_path_of_the_readme_works_on_an_empty_database(backend, tmp_path):
    """Migrate, create the first admin and a token by CLI, a channel by CLI and API, a warehouse with carriers,
    a bin, a SKU and its stock by API, then an order flows. No demo data anywhere."""
    from portal import create_app
    from shared.security.crypto import new_key

    (tmp_path / "fresh").mkdir()
    url, cleanup = _empty_database(backend, tmp_path)
    data_key = new_key()
    env = operator_env(url, data_key)
    try:
        for args, stdin in ((["db", "upgrade"], ""), (["users", "create", "boss", "--role", "admin"],
                                                      "first-day-password-2026\n"),
                            (["channels", "create", "OS", "--name", "官网商城", "--kind", "own_shop"], "")):
            done = cli(args, env, stdin)
            assert done.returncode == 0, done.stderr[-2000:]
        assert "created channel OS" in done.stdout
        again = cli(["channels", "create", "os", "--name", "x", "--kind", "own_shop"], env)
        assert again.returncode != 0 and "Channel OS exists" in again.stderr
        bad = cli(["channels", "create", "O", "--name", "x", "--kind", "own_shop"], env)
        assert bad.returncode != 0 and "two letters" in bad.stderr
        listed = cli(["channels", "list"], env)
        assert listed.returncode == 0 and listed.stdout.startswith("OS\town_shop\tAsia/Shanghai\tCNY")
        issued = cli(["users", "token", "boss"], env)
        assert issued.returncode == 0, issued.stderr
        token = issued.stdout.strip().splitlines()[-1]

        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": env["ORDERLOOM_SECRET_KEY"],
                          "DATA_KEYS": [data_key], "BLIND_INDEX_KEY": env["ORDERLOOM_INDEX_KEY"], "ENV": "production",
                          "AUDIT_KEYS": [env["ORDERLOOM_AUDIT_KEYS"]],
                          "JOBS_INLINE": True, "REDIS_URL": "", "RATELIMIT_STORAGE_URI": "memory://",
                          "TESTING": True})
        client, headers = app.test_client(), {"Authorization": f"Bearer {token}"}

        def post(path, body, method="post"):
            answer = getattr(client, method)(f"/api/v1{path}", json=body, headers=headers)
            assert answer.status_code in (200, 201), (path, answer.get_json())
            return answer.get_json()

        post("/channels", {"code": "TM", "name": "天猫旗舰店", "kind": "taobao"})
        post("/warehouses", {"code": "HZ1", "name": "杭州仓", "province": "浙江省", "city": "杭州市"})
        post("/warehouses/HZ1", {"carriers": ["SF", "YTO"], "cold_chain": False}, method="patch")
        post("/warehouses/HZ1/bins", {"code": "A-01", "walk_order": 1, "capacity": 1000})
        post("/skus", {"sku": "TEA-1", "name": "西湖龙井 250g"})
        post("/stock/adjustments", {"sku": "TEA-1", "warehouse": "HZ1", "delta": 50, "reason": "opening stock"})
        order = post("/orders", {
            "channel": "OS", "channel_order_id": "WEB-0001", "placed_at": "2026-12-02T10:00:00+08:00",
            "paid_at": "2026-12-02T10:01:00+08:00", "currency": "CNY",
            "customer": {"name": "李雷", "phone": "13812345678"},
            "shipping_address": {"receiver": "李雷", "phone": "13812345678", "province": "浙江省", "city": "杭州市",
                                 "district": "西湖区", "street": "文三路 90 号"},
            "lines": [{"sku": "TEA-1", "quantity": 2, "unit_price": "88.00"}]})
        assert order["order_no"].startswith("OS") and order["status"] == "confirmed" and order["total"] == "176.00"
        level = client.get("/api/v1/stock/TEA-1", headers=headers).get_json()
        assert (level["warehouses"][0]["on_hand"], level["available"]) == (50, 48)
        verified = cli(["audit", "verify"], env)
        assert verified.returncode == 0, verified.stderr
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    finally:
        if cleanup is not None:
            admin, schema = cleanup
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            admin.dispose()


@pytest.mark.parametrize("missing", ["ORDERLOOM_SECRET_KEY", "ORDERLOOM_DATA_KEYS", "ORDERLOOM_INDEX_KEY",
                                     "ORDERLOOM_AUDIT_KEYS"])
def test_production_refuses_to_start_with_a_demo_key(monkeypatch, missing):
    from shared.config import load_config
    from shared.security.crypto import new_key

    env = {"ORDERLOOM_ENV": "production", "ORDERLOOM_SECRET_KEY": "s" * 48, "ORDERLOOM_DATA_KEYS": new_key(),
           "ORDERLOOM_INDEX_KEY": "i" * 48, "ORDERLOOM_AUDIT_KEYS": "a" * 48}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert load_config()["ENV"] == "production"
    monkeypatch.delenv(missing)
    with pytest.raises(RuntimeError, match=missing):
        load_config()


def test_a_warehouse_is_created_with_its_carriers_and_cold_chain(api):
    answer = call(api, "post", "/warehouses", {"code": "SH1", "name": "上海冷库", "province": "上海市",
                                               "city": "上海市", "carriers": ["SF", "JD"], "cold_chain": True})
    assert answer.status_code == 201, answer.get_json()
    made = stock.get_warehouse("SH1")
    assert (made.carriers, made.cold_chain) == ("SF,JD", True)
    before = counts()
    refused = call(api, "post", "/warehouses", {"code": "SH2", "name": "x", "province": "上海市", "city": "上海市",
                                                "carriers": ["UPS"]})
    assert refused.status_code == 422 and refused.get_json()["error"]["code"] == "unknown_carrier"
    assert counts() == before
