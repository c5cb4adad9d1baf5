"""The fulfilment pages of the portal over HTTP (board, waves and their release, pick lists, scan log, carrier
scorecard, near expiry, labels), tracking on the staff order page and on the customer site, by role and in both
languages."""
import re
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from shared.extensions import db
from shared.models import (
    AccessLogEntry,
    AuditEvent,
    Bin,
    CarrierAttempt,
    FulfilmentAlarm,
    PickTask,
    ScanEvent,
    Shipment,
    Sku,
    TrackingEvent,
    Wave,
)
from shared.services import allocation, catalog, customers, lots, orders, scans, stock, waves
from shared.timekeeping import utc_now
from tests.factories import ADMIN, count_queries, order_payload
from tests.portal_client import csrf_token

TODAY = date.today()  # the release job and near_expiry() use the real date
OWN_PHONE = "13900001111"
CUSTOMER_PASSWORD = "correct-horse-battery"
LABEL_HTML = '<div class="label"><script>alert("label")</script><b>顺丰 SF1234567890</b></div>'


@pytest.fixture
def floor(session):
    """Warehouses HZ1 (Hangzhou) and SZ1 (Shenzhen), three bins each (made out of walking order), tea and
    batch-tracked milk, a direct channel and a handheld in HZ1."""
    catalog.create_channel("OS", "官网商城", "own_shop", ADMIN)
    for code, name, province, city in (("HZ1", "杭州仓", "浙江省", "杭州市"), ("SZ1", "深圳仓", "广东省", "深圳市")):
        catalog.create_warehouse({"code": code, "name": name, "province": province, "city": city}, ADMIN)
        for bin_code in ("C-03", "A-01", "B-02"):
            db.session.add(Bin(warehouse_id=stock.get_warehouse(code).id, code=bin_code,
                               walk_order={"A-01": 1, "B-02": 2, "C-03": 3}[bin_code], capacity=500))
    catalog.create_sku({"sku": "TEA", "name": "龙井茶"}, ADMIN)
    catalog.create_sku({"sku": "MILK", "name": "鲜牛奶", "batch_tracked": True}, ADMIN)
    db.session.flush()
    device, _token = scans.register_device("PDA-07", "HZ1", ADMIN)
    db.session.commit()
    return {"device": device}


def put(sku, warehouse, bin_code, quantity, lot=None, expires=None):
    made = lots.receive(sku, warehouse, bin_code, quantity, ADMIN, lot_no=lot, expires_on=expires)
    db.session.commit()
    return made


def allocated(number: str, lines=None, phone: str = "13812345678") -> Shipment:
    """A paid order to Hangzhou, allocated to the nearest warehouse that holds it."""
    order = orders.create_order(order_payload(channel_order_id=number, phone=phone,
                                              lines=lines or [{"sku": "TEA", "quantity": 1, "unit_price": "50.00"}]),
                                ADMIN)
    shipment = allocation.allocate(order, ADMIN)
    db.session.commit()
    return shipment


def shipped(shipment: Shipment, hours_ago: float = 30, carrier: str = "YTO", waybill: str = "YT1000000001",
            step: str = "in_transit", flags: str | None = None, stalled: bool = False) -> Shipment:
    """Put an allocated shipment on the road (the scans that get it there have tests of their own)."""
    moment = utc_now() - timedelta(hours=hours_ago)
    shipment.status, shipment.carrier_code, shipment.waybill_no = "shipped", carrier, waybill
    shipment.packed_at, shipment.shipped_at, shipment.box_code, shipment.truck_code = moment, moment, "BX-1", "TR-9"
    shipment.tracking_step, shipment.tracking_flags, shipment.last_event_at = step, flags, moment
    shipment.stalled_at = utc_now() if stalled else None
    db.session.commit()
    return shipment


def tracked(shipment: Shipment, hours_ago: float, description: str, step: str, flag: str | None = None,
            location: str | None = None) -> TrackingEvent:
    row = TrackingEvent(shipment_id=shipment.id, occurred_at=utc_now() - timedelta(hours=hours_ago), source="kuaidi100",
                        raw_status=step.upper(), step=step, flag=flag, description=description,
                        description_hash=f"{hash(description) & 0xFFFFFFFF:016x}"[:16], location=location)
    db.session.add(row)
    db.session.commit()
    return row


def post(client, url: str, data: dict | None = None, page: str = "/fulfilment/waves"):
    return client.post(url, data={"csrf_token": csrf_token(client, page), **(data or {})})


def count(model, *where) -> int:
    return db.session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def released_wave(floor) -> Wave:
    """A released wave of HZ1 whose one order takes milk from two bins (first expiry first) and tea from a third."""
    put("MILK", "HZ1", "A-01", 10, lot="LATE", expires=TODAY + timedelta(days=60))
    put("MILK", "HZ1", "C-03", 3, lot="SOON", expires=TODAY + timedelta(days=20))
    put("TEA", "HZ1", "B-02", 10)
    allocated("W-1", [{"sku": "MILK", "quantity": 5, "unit_price": "9.90"},
                      {"sku": "TEA", "quantity": 1, "unit_price": "50.00"}])
    [wave] = waves.plan_waves("HZ1", ADMIN)
    waves.start_release(wave.id, ADMIN)
    db.session.commit()
    from jobs.fulfilment import release_wave

    release_wave(wave.id)
    db.session.refresh(wave)
    return wave


# --- every page, both languages ------------------------------------------------------------------------------

def test_pages_render_for_warehouse_and_ops_in_english_and_chinese(client_for, floor):
    wave = released_wave(floor)
    shipment = db.session.execute(select(Shipment)).scalar_one()
    scans.record_scan(floor["device"], "pick", {"operator": "王五", "bin": "B-02"}, False, "wrong bin: go to A-01")
    db.session.commit()
    pages = ["/fulfilment/", "/fulfilment/?step=all&overdue=1", "/fulfilment/waves", "/fulfilment/waves?warehouse=HZ1",
             f"/fulfilment/waves/{wave.id}", f"/fulfilment/waves/{wave.id}/print",
             f"/fulfilment/waves/{wave.id}/progress", "/fulfilment/scans", "/fulfilment/scans?result=refused&kind=pick",
             "/fulfilment/carriers", "/fulfilment/expiry", "/fulfilment/expiry?warehouse=HZ1&days=30",
             f"/orders/{shipment.order.order_no}"]
    for role in ("warehouse", "ops_manager"):
        english, chinese = client_for(role), client_for(role, "zh_CN")
        for url in pages:
            en, zh = english.get(url), chinese.get(url)
            assert en.status_code == 200 and zh.status_code == 200, (role, url, en.status_code, zh.status_code)
        board = english.get("/fulfilment/").text
        assert "Fulfilment board" in board and 'href="/fulfilment/"' in board and "<svg" in board
        zh_board = chinese.get("/fulfilment/").text
        assert "履约看板" in zh_board and "Fulfilment board" not in zh_board
        assert "波次" in chinese.get("/fulfilment/waves").text and "扫描记录" in chinese.get("/fulfilment/scans").text
        assert "快递公司评分" in chinese.get("/fulfilment/carriers").text
        assert "临期批次" in chinese.get("/fulfilment/expiry").text
        assert "拣货单" in chinese.get(f"/fulfilment/waves/{wave.id}").text


def test_roles_without_fulfilment_see_no_link_and_get_403(client_for, floor):
    finance = client_for("finance")
    assert 'href="/fulfilment/"' not in finance.get("/").text
    assert finance.get("/fulfilment/").status_code == 403 and finance.get("/fulfilment/scans").status_code == 403
    auditor = client_for("auditor")
    assert auditor.get("/fulfilment/carriers").status_code == 200
    assert 'data-testid="plan-HZ1"' not in auditor.get("/fulfilment/waves").text


# --- waves: plan, release, progress, pick list ---------------------------------------------------------------

def test_customer_service_views_the_board_but_cannot_plan_or_release(client_for, floor):
    put("TEA", "HZ1", "A-01", 10)
    shipment = allocated("CS-1")
    client = client_for("customer_service")
    assert client.get("/fulfilment/").status_code == 200
    waves_page = client.get("/fulfilment/waves")
    assert waves_page.status_code == 200 and 'data-testid="plan-HZ1"' not in waves_page.text
    assert post(client, "/fulfilment/waves/plan", {"warehouse": "HZ1"}).status_code == 403
    assert count(Wave) == 0 and shipment.status == "allocated"
    [wave] = waves.plan_waves("HZ1", ADMIN)
    db.session.commit()
    assert 'data-testid="release-' not in client.get("/fulfilment/waves").text
    assert post(client, f"/fulfilment/waves/{wave.id}/release").status_code == 403
    db.session.refresh(wave)
    assert wave.status == "planned" and count(PickTask) == 0
    assert count(AuditEvent, AuditEvent.action == "wave.release") == 0


def test_planning_and_releasing_through_the_pages_creates_pick_tasks(client_for, floor):
    put("TEA", "HZ1", "A-01", 10)
    allocated("P-1")
    allocated("P-2")
    client = client_for("warehouse")
    page = client.get("/fulfilment/waves").text
    assert 'data-testid="waiting-HZ1">2<' in page and 'data-testid="plan-HZ1"' in page
    planned = post(client, "/fulfilment/waves/plan", {"warehouse": "HZ1"})
    assert planned.status_code == 303 and "warehouse=HZ1" in planned.headers["Location"]
    wave = db.session.execute(select(Wave)).scalar_one()
    assert (wave.status, wave.order_count, wave.carrier_code) == ("planned", 2, "SF")
    shown = client.get(planned.headers["Location"]).text
    assert "Waves planned for HZ1: 1, with 2 orders." in shown and f'data-testid="release-{wave.id}"' in shown

    released = post(client, f"/fulfilment/waves/{wave.id}/release")
    assert released.status_code == 303
    db.session.refresh(wave)
    assert wave.status == "released" and count(PickTask, PickTask.wave_id == wave.id) == 2
    assert count(AuditEvent, AuditEvent.action == "wave.release") == 1
    progress = client.get(f"/fulfilment/waves/{wave.id}/progress").text
    assert f'data-testid="wave-released-{wave.id}">2<' in progress
    assert f'data-testid="wave-tasks-{wave.id}">2<' in progress
    assert 'data-status="released"' in progress and "every 2s" not in progress  # polling stops when released
    # A second release is refused and changes nothing.
    again = post(client, f"/fulfilment/waves/{wave.id}/release")
    assert "Not released: Wave" in client.get(again.headers["Location"]).text
    assert count(PickTask) == 2


def test_the_progress_partial_polls_while_a_wave_releases(client_for, floor):
    put("TEA", "HZ1", "A-01", 10)
    allocated("R-1")
    [wave] = waves.plan_waves("HZ1", ADMIN)
    waves.start_release(wave.id, ADMIN)
    db.session.commit()
    client = client_for("ops_manager")
    progress = client.get(f"/fulfilment/waves/{wave.id}/progress", headers={"HX-Request": "true"}).text
    assert 'hx-trigger="every 2s"' in progress and 'data-status="releasing"' in progress
    assert f'data-testid="wave-released-{wave.id}">0<' in progress and "<progress" in progress
    assert 'hx-trigger="every 2s"' in client.get("/fulfilment/waves").text
    assert client.get("/fulfilment/waves/99999/progress").status_code == 404


def test_the_pick_list_walks_the_bins_in_order(client_for, floor):
    wave = released_wave(floor)
    client = client_for("warehouse")
    for url in (f"/fulfilment/waves/{wave.id}", f"/fulfilment/waves/{wave.id}/print"):
        page = client.get(url).text
        rows = re.findall(r"<td><strong>([A-C]-0\d)</strong></td><td>(\w+)</td><td>[^<]*</td>\s*<td>([\w-]+)</td>",
                          page)
        assert rows == [("A-01", "MILK", "LATE"), ("B-02", "TEA", "-"), ("C-03", "MILK", "SOON")], url
    printable = client.get(f"/fulfilment/waves/{wave.id}/print").text
    assert 'class="topbar"' not in printable and "Ctrl+P" in printable  # a plain page for the printer


# --- scans, board, carriers, expiry --------------------------------------------------------------------------

def _refused_scan(device, kind: str, payload: dict, scan) -> ScanEvent:
    """Scan as the handheld endpoint does (portal/scan.py): a refusal is recorded with its code and parameters."""
    with pytest.raises(scans.ScanRefused) as refused:
        scan(device, payload)
    db.session.rollback()
    recorded = scans.record_scan(device, kind, payload, False, refused.value.message, refused=refused.value)
    db.session.commit()
    return recorded


def test_the_scan_log_says_what_was_scanned_and_why_it_was_refused_in_words(client_for, floor):
    device = floor["device"]
    wave = released_wave(floor)
    tea = db.session.execute(select(PickTask).where(PickTask.wave_id == wave.id, PickTask.sku_id == select(
        Sku.id).where(Sku.code == "TEA").scalar_subquery())).scalar_one()
    wrong_bin = _refused_scan(device, "pick", {"operator": "王五", "station": "S-3", "task": tea.id, "bin": "A-01",
                                               "sku": "TEA", "lot": "UNPLACED", "quantity": 1}, scans.pick)
    no_parcel = _refused_scan(device, "load", {"operator": "赵六", "parcel": "<b>P-1</b>", "truck": "TR-9"},
                              lambda d, p: scans.load(d, p, ADMIN))
    assert (wrong_bin.refusal, wrong_bin.refusal_params) == ("wrong_bin", {"bin": "B-02"})
    client = client_for("customer_service")
    refused = client.get("/fulfilment/scans?result=refused").text
    row = refused.split(f'data-testid="scan-{wrong_bin.id}"')[1].split("</tr>")[0]
    assert f"pick task {tea.id} · bin A-01 · SKU TEA · batch not shelved · quantity 1" in row
    assert "Refused: wrong bin: go to B-02" in row and "王五" in row and "S-3" in row and "PDA-07" in row
    assert "task=" not in refused and "bin=A-01" not in refused
    assert "<b>P-1</b>" not in refused and "&lt;b&gt;P-1&lt;/b&gt;" in refused  # escaped, what was scanned too
    assert "no parcel" in refused.split(f'data-testid="scan-{no_parcel.id}"')[1].split("</tr>")[0]
    assert "wrong bin" not in client.get("/fulfilment/scans?result=accepted").text
    picks = client.get(f"/fulfilment/scans?kind=pick&device={device.id}").text
    assert "wrong bin" in picks and "赵六" not in picks
    client.post("/language", data={"lang": "zh_CN", "csrf_token": csrf_token(client, "/")})
    chinese = client.get("/fulfilment/scans?result=refused").text
    row = chinese.split(f'data-testid="scan-{wrong_bin.id}"')[1].split("</tr>")[0]
    assert f"拣货任务 {tea.id} · 库位 A-01 · SKU TEA · 批次 未上架 · 数量 1" in row
    assert "已拒绝：库位错误：请到 B-02" in row and "wrong bin" not in row


def test_the_scan_log_shows_an_accepted_scan_as_accepted(client_for, floor):
    scans.record_scan(floor["device"], "load", {"operator": "钱七", "parcel": "YT1", "truck": "TR-9"}, True, "ok")
    db.session.commit()
    page = client_for("warehouse").get("/fulfilment/scans").text
    assert "Accepted" in page and "parcel YT1 · truck TR-9" in page and ">ok<" not in page


def test_the_scan_log_pages_by_cursor(client_for, floor, monkeypatch):
    import portal.fulfilment as pages

    monkeypatch.setattr(pages, "SCANS_PAGE", 2)
    for n in range(5):
        scans.record_scan(floor["device"], "pick", {"operator": f"op{n}"}, True, f"scan number {n}")
        db.session.flush()
        db.session.execute(ScanEvent.__table__.update().where(ScanEvent.message == f"scan number {n}")
                           .values(occurred_at=utc_now() - timedelta(minutes=10 - n)))
    db.session.commit()
    client = client_for("warehouse")
    seen, url = [], "/fulfilment/scans"
    while url:
        page = client.get(url).text
        seen += re.findall(r"<td>op(\d)</td>", page)
        found = re.search(r'data-testid="next-page" href="([^"]+)"', page)
        url = found.group(1).replace("&amp;", "&") if found else None
    assert seen == ["4", "3", "2", "1", "0"]
    assert client.get("/fulfilment/scans?cursor=broken").status_code == 422


def test_the_board_highlights_overdue_shipments(client_for, floor):
    put("TEA", "HZ1", "A-01", 10)
    fresh, unpacked, late = allocated("B-1"), allocated("B-2"), allocated("B-3")
    unpacked.allocated_at = utc_now() - timedelta(hours=5)  # not packed 4 h after allocation
    late.ship_by = utc_now() - timedelta(minutes=1)  # the promise to ship has passed
    db.session.commit()
    client = client_for("warehouse")
    board = client.get("/fulfilment/").text
    for shipment in (unpacked, late):
        assert f'data-testid="shipment-{shipment.id}" class="low" data-overdue="1"' in board
        assert f'data-testid="overdue-{shipment.id}"' in board
    assert f'data-testid="shipment-{fresh.id}">' in board and f'data-testid="overdue-{fresh.id}"' not in board
    assert 'data-testid="overdue-count">2<' in board and "2 late" in board
    assert re.search(r'data-testid="cell-HZ1-allocated"><a [^>]*>3</a>', board)
    # Oldest first: the shipment allocated five hours ago leads the list.
    assert board.index(f"shipment-{unpacked.id}") < board.index(f"shipment-{fresh.id}")
    only_late = client.get("/fulfilment/?overdue=1", headers={"HX-Request": "true", "HX-Target": "shipment-table"})
    assert "<h1>" not in only_late.text and f"shipment-{fresh.id}" not in only_late.text
    assert f"shipment-{late.id}" in only_late.text and f"shipment-{unpacked.id}" in only_late.text
    assert not re.search(r'data-testid="shipment-\d', client.get("/fulfilment/?warehouse=SZ1").text)


def test_the_board_lists_without_a_query_per_shipment(client_for, floor):
    put("TEA", "HZ1", "A-01", 20)
    put("TEA", "SZ1", "A-01", 20)
    allocated("Q-1")
    client = client_for("warehouse")
    client.get("/fulfilment/")
    with count_queries() as few:
        assert client.get("/fulfilment/").status_code == 200
    for n in range(2, 8):
        shipment = allocated(f"Q-{n}")
        if n % 2:
            shipment.warehouse_id = stock.get_warehouse("SZ1").id
    db.session.commit()
    with count_queries() as many:
        assert client.get("/fulfilment/").status_code == 200
    assert len(many) == len(few), many


def test_the_carrier_scorecard(client_for, floor):
    put("TEA", "HZ1", "A-01", 10)
    on_time = shipped(allocated("C-1"), hours_ago=100, waybill="YT1")
    late = shipped(allocated("C-2"), hours_ago=100, waybill="YT2")
    on_the_way = shipped(allocated("C-3"), hours_ago=10, waybill="YT3", stalled=True)
    on_time.status, on_time.delivered_at = "delivered", on_time.shipped_at + timedelta(hours=48)
    late.status, late.delivered_at = "delivered", late.shipped_at + timedelta(hours=80)
    db.session.add_all([CarrierAttempt(shipment_id=on_time.id, carrier_code="SF", outcome="refused",
                                       message="out of waybill stock (ResultCode 105)"),
                        CarrierAttempt(shipment_id=on_time.id, carrier_code="YTO", outcome="issued", message="YT1")])
    db.session.commit()
    page = client_for("ops_manager").get("/fulfilment/carriers").text
    # Two parcels are judged (the third is within its 72 hours): one of them arrived in time.
    assert 'data-testid="on-time-YTO">50.0 %<' in page and 'data-testid="stall-YTO">33.3 %<' in page
    assert re.search(r'data-testid="refused-SF"><span class="badge warn">1<', page)
    assert "YTO Express" in page and "<svg" in page and on_the_way.stalled_at is not None


def test_near_expiry_lots(client_for, floor):
    soon = put("MILK", "HZ1", "A-01", 5, lot="M-SOON", expires=TODAY + timedelta(days=10))
    later = put("MILK", "SZ1", "B-02", 5, lot="M-LATER", expires=TODAY + timedelta(days=200))
    client = client_for("warehouse")
    page = client.get("/fulfilment/expiry").text
    assert f'data-testid="lot-{soon.id}" class="low"' in page and "M-LATER" not in page
    wider = client.get("/fulfilment/expiry?days=365").text
    assert "M-SOON" in wider and f'data-testid="lot-{later.id}"' in wider
    assert "M-SOON" not in client.get("/fulfilment/expiry?days=365&warehouse=SZ1").text


# --- the order page, labels and the customer site ------------------------------------------------------------

def test_the_order_page_shows_tracking_events_and_carrier_attempts(client_for, floor):
    put("TEA", "HZ1", "A-01", 10)
    shipment = shipped(allocated("T-1"), flags="problem")
    db.session.add_all([CarrierAttempt(shipment_id=shipment.id, carrier_code="SF", outcome="refused",
                                       message="out of waybill stock (ResultCode 105)"),
                        CarrierAttempt(shipment_id=shipment.id, carrier_code="YTO", outcome="issued",
                                       message="YT1000000001")])
    tracked(shipment, 20, "快件已由【杭州转运中心】揽收", "awaiting_pickup", location="杭州")
    tracked(shipment, 5, "快件异常: 地址不详 <script>x()</script>", "in_transit", flag="problem")
    client = client_for("warehouse")
    page = client.get(f"/orders/{shipment.order.order_no}").text
    assert 'data-testid="tracking-events"' in page
    assert page.index("地址不详") < page.index("杭州转运中心")  # newest first
    assert "<script>x()" not in page and "&lt;script&gt;x()" in page
    assert 'data-testid="flag-problem"' in page and "Problem parcel" in page and "In transit" in page
    assert "out of waybill stock" in page and "Refused" in page and "YTO Express" in page
    assert 'data-testid="label-link"' in page
    assert 'data-testid="label-link"' not in client_for("customer_service").get(
        f"/orders/{shipment.order.order_no}").text
    chinese = client_for("warehouse", "zh_CN").get(f"/orders/{shipment.order.order_no}").text
    assert "运输中" in chinese and "问题件" in chinese


def test_carrier_label_html_is_never_rendered_unescaped(client_for, floor):
    put("TEA", "HZ1", "A-01", 10)
    shipment = shipped(allocated("L-1"))
    shipment.label_html = LABEL_HTML
    db.session.commit()
    client = client_for("warehouse")
    for url in (f"/fulfilment/shipments/{shipment.id}/label", f"/orders/{shipment.order.order_no}"):
        page = client.get(url)
        assert page.status_code == 200, url
        assert '<script>alert("label")' not in page.text and '<div class="label">' not in page.text, url
    label = client.get(f"/fulfilment/shipments/{shipment.id}/label").text
    assert 'sandbox=""' in label and 'srcdoc="&lt;div class=&#34;label&#34;&gt;&lt;script&gt;' in label
    assert 'data-testid="waybill">YT1000000001<' in label and "13812345678" in label
    assert count(AccessLogEntry, AccessLogEntry.action == "print_label") == 2
    assert client_for("customer_service").get(f"/fulfilment/shipments/{shipment.id}/label").status_code == 403


def test_the_customer_follows_the_parcel_and_is_told_when_it_stalls(customer_app, floor):
    customers.create_account("李雷", OWN_PHONE, "li.lei@example.com", CUSTOMER_PASSWORD, ADMIN)
    put("TEA", "HZ1", "A-01", 10)
    moving = shipped(allocated("S-1", phone=OWN_PHONE), hours_ago=30, step="at_local_station")
    stuck = shipped(allocated("S-2", phone=OWN_PHONE), hours_ago=30, step="in_transit", stalled=True,
                    waybill="YT1000000002")
    tracked(moving, 3, "快件已到达【杭州西湖营业部】", "at_local_station", location="杭州")
    tracked(stuck, 26, "快件已发往【北京转运中心】", "in_transit")
    client = customer_app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', client.get("/sign-in").text).group(1)
    assert client.post("/sign-in", data={"email": "li.lei@example.com", "password": CUSTOMER_PASSWORD,
                                         "csrf_token": token}).status_code == 302

    page = client.get(f"/orders/{moving.order.order_no}").text
    assert "杭州西湖营业部" in page and "Arrived in your city" in page
    states = dict(re.findall(r'data-parcel-step="(\w+)" data-state="(\w+)"', page))
    assert states == {"awaiting_pickup": "done", "in_transit": "done", "at_local_station": "current",
                      "out_for_delivery": "todo", "delivered": "todo"}
    assert 'data-testid="parcel-stalled"' not in page
    # The order's own timeline is untouched by the parcel's.
    assert len(re.findall(r'<li class="step step-\w+" data-step=', page)) == 6

    page = client.get(f"/orders/{stuck.order.order_no}").text
    assert 'data-testid="parcel-stalled"' in page and "北京转运中心" in page
    assert "Your parcel has had no carrier update since" in page and "we are checking with the carrier" in page
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh-CN"
    client.post("/language", data={"lang": "zh_CN", "csrf_token": token})
    chinese = client.get(f"/orders/{stuck.order.order_no}").text
    assert "我们正在与快递公司核实" in chinese and "您的包裹" in chinese


def test_an_alarm_shows_on_the_board(client_for, floor):
    put("TEA", "HZ1", "A-01", 10)
    shipment = allocated("A-1")
    db.session.add(FulfilmentAlarm(kind="not_packed_in_time", order_id=shipment.order_id, role="warehouse",
                                   message=f"{shipment.order.order_no} was confirmed and is still allocated"))
    db.session.commit()
    board = client_for("warehouse").get("/fulfilment/").text
    assert "Not packed within 4 hours" in board and f'href="/orders/{shipment.order.order_no}"' in board
