"""Manager dashboards: the KPI board's values, verdicts and trends, its targets (audited, bad ones refused), and the
state cube's counts per cell with drill-downs that list exactly those orders."""
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import literal, select

import shared.services.audit
import shared.services.orders
from shared import time_buckets
from shared.extensions import db
from shared.models import AuditEvent, InboxItem, KpiTarget, Order, Shipment, StockTake, StockTakeLine, TrackingEvent
from shared.models.types import UTCDateTime
from shared.services import catalog, exceptions, kpis, roles, state_cube
from shared.services.errors import ServiceError, ValidationFailed
from tests.factories import ADMIN
from tests.portal_client import csrf_token, english_client, sign_in

ZONE = "Asia/Shanghai"
# Thursday 26 November 2026, 12:00 in Shanghai. This week starts Monday 23 Nov (local), the last one on 16 Nov.
NOW = datetime(2026, 11, 26, 4, 0, tzinfo=UTC)
THIS_WEEK, LAST_WEEK = datetime(2026, 11, 24, 2, 0, tzinfo=UTC), datetime(2026, 11, 17, 2, 0, tzinfo=UTC)
ORDER_NO = re.compile(r"\b[A-Z]{2}\d{14}[0-9A-Z]\b")


@pytest.fixture
def clock(monkeypatch):
    """The services' clock (orders: shipped_at; audit: when an order became confirmed), set by the test."""
    moment = [NOW]
    for module in (shared.services.orders, shared.services.audit):
        monkeypatch.setattr(module, "utc_now", lambda: moment[0])
    return moment


def _inbox(channel_id: int, status: str, processed_at: datetime, number: int) -> InboxItem:
    return InboxItem(channel_id=channel_id, source="webhook", received_at=processed_at, content_hash=f"h{number:06d}",
                     content_type="application/json", body="{}", status=status, processed_at=processed_at)


def _kpi(board: dict, code: str) -> dict:
    return next(row for row in board["kpis"] if row["code"] == code)


def _trend(row: dict) -> dict:
    return {point["bucket"]: (point["value"], point["count"], point["met"]) for point in row["trend"]}


def test_sync_success_against_its_target_per_week(session, create_channel):
    channel = create_channel()
    items = [_inbox(channel.id, "done", THIS_WEEK, n) for n in range(199)]
    items += [_inbox(channel.id, "review", THIS_WEEK, 199)]  # 199 of 200: 99.50%, the target exactly
    items += [_inbox(channel.id, "done", LAST_WEEK, 300 + n) for n in range(9)]
    items += [_inbox(channel.id, "dead", LAST_WEEK, 400)]  # 9 of 10
    items += [_inbox(channel.id, "retry", THIS_WEEK, 500), _inbox(channel.id, "done", NOW - timedelta(days=70), 501)]
    db.session.add_all(items)
    db.session.commit()

    board = kpis.board("week", 8, now=NOW, zone=ZONE)
    row = _kpi(board, "sync_success")
    assert board["buckets"][0] == "2026-10-05" and board["buckets"][-1] == "2026-11-23" and len(board["buckets"]) == 8
    assert row["target"] == Decimal("99.50")
    assert row["value"] == Decimal("99.05") and row["count"] == 210 and row["met"] is False  # 208 of 210
    trend = _trend(row)
    assert trend["2026-11-23"] == (Decimal("99.50"), 200, True)
    assert trend["2026-11-16"] == (Decimal("90.00"), 10, False)
    assert trend["2026-11-09"] == (None, 0, None)  # no data is neither met nor missed


def _ship(create_order, clock, confirmed_at: datetime, hours: float, **payload) -> Order:
    clock[0] = confirmed_at
    order = create_order(status="confirmed", placed_at=(confirmed_at - timedelta(minutes=5)).isoformat(),
                         paid_at=(confirmed_at - timedelta(minutes=5)).isoformat(), **payload)
    clock[0] = confirmed_at + timedelta(hours=hours)
    for step in ("allocated", "picking", "packed", "shipped"):
        shared.services.orders.transition_order(order, step, ADMIN, reason="test")
    db.session.commit()
    return order


def test_confirm_to_shipped_hours_from_the_order_history(session, create_order, clock):
    first = _ship(create_order, clock, THIS_WEEK, 3)
    _ship(create_order, clock, THIS_WEEK + timedelta(hours=1), 6)  # this week: (3 + 6) / 2 = 4.5 h
    _ship(create_order, clock, LAST_WEEK, 2)
    confirmed = db.session.execute(select(AuditEvent.occurred_at).where(
        AuditEvent.entity_id == first.order_no, AuditEvent.after["status"].as_string() == "confirmed")).scalars().all()
    assert min(confirmed) == THIS_WEEK  # the confirm time is the order's first audit event that says confirmed

    row = _kpi(kpis.board("week", 8, now=NOW, zone=ZONE), "confirm_to_ship")
    assert row["value"] == Decimal("3.67") and row["count"] == 3 and row["met"] is True  # 11 h / 3 <= 4 h
    trend = _trend(row)
    assert trend["2026-11-23"] == (Decimal("4.50"), 2, False)
    assert trend["2026-11-16"] == (Decimal("2.00"), 1, True)


def test_tracking_coverage_of_shipped_orders(session, create_order, clock, stocked):
    tracked = _ship(create_order, clock, THIS_WEEK, 1)
    untracked = _ship(create_order, clock, THIS_WEEK, 2)
    _ship(create_order, clock, LAST_WEEK, 1)  # shipped without a parcel on record: not covered
    for order in (tracked, untracked):
        if not db.session.execute(select(Shipment.id).where(Shipment.order_id == order.id)).first():
            db.session.add(Shipment(order_id=order.id, warehouse_id=stocked["warehouse"].id, status="shipped",
                                    carrier_code="SF", shipped_at=order.shipped_at))
    db.session.flush()
    parcel = db.session.execute(select(Shipment).where(Shipment.order_id == tracked.id)).scalars().first()
    db.session.add(TrackingEvent(shipment_id=parcel.id, occurred_at=THIS_WEEK + timedelta(hours=3), source="kuaidi100",
                                 raw_status="1", step="in_transit", description="已揽收", description_hash="a1"))
    db.session.commit()

    row = _kpi(kpis.board("day", 14, now=NOW, zone=ZONE), "tracking_coverage")
    assert row["target"] == Decimal("100.00")
    assert row["value"] == Decimal("33.33") and row["met"] is False
    trend = _trend(row)
    assert len(trend) == 14 and list(trend)[0] == "2026-11-13" and list(trend)[-1] == "2026-11-26"
    assert trend["2026-11-24"] == (Decimal("50.00"), 2, False)
    assert trend["2026-11-17"] == (Decimal("0.00"), 1, False)


def test_stock_accuracy_from_finished_stock_takes(session, stocked):
    warehouse = stocked["warehouse"]
    skus = [catalog.create_sku({"sku": f"ACC-{n:02d}", "name": f"茶 {n}"}, ADMIN) for n in range(50)]

    def take(status, started_at, figures):
        counted = StockTake(warehouse_id=warehouse.id, status=status, started_by="test", started_at=started_at)
        db.session.add(counted)
        db.session.flush()
        db.session.add_all([StockTakeLine(stock_take_id=counted.id, sku_id=sku.id, expected=10, counted=figure)
                            for sku, figure in zip(skus, figures)])

    take("approved", THIS_WEEK, [10] * 49 + [9])  # 49 of 50 without variance: 98%, met exactly
    take("submitted", LAST_WEEK, [10] * 9 + [12] + [None] * 5)  # 9 of 10 counted lines; uncounted lines left out
    take("rejected", THIS_WEEK, [0] * 20)  # a count nobody trusted
    take("counting", THIS_WEEK, [0] * 20)  # not finished
    db.session.commit()

    row = _kpi(kpis.board("week", 8, now=NOW, zone=ZONE), "stock_accuracy")
    assert row["value"] == Decimal("96.67") and row["count"] == 60 and row["met"] is False  # 58 of 60
    trend = _trend(row)
    assert trend["2026-11-23"] == (Decimal("98.00"), 50, True)
    assert trend["2026-11-16"] == (Decimal("90.00"), 10, False)


def test_board_page_shows_each_kpi_with_colour_and_words(portal, create_user, create_channel):
    channel = create_channel()
    db.session.add_all([_inbox(channel.id, "done", datetime.now(UTC) - timedelta(hours=1), n) for n in range(3)])
    create_user("boss", "ops_manager")
    client = english_client(portal)
    sign_in(client, "boss")
    page = client.get("/dashboards/kpis?grain=day&periods=7")
    assert page.status_code == 200
    assert 'data-testid="kpi-sync_success" data-met="yes"' in page.text
    assert 'data-testid="kpi-value-sync_success">100.00%' in page.text and "✓ Met" in page.text
    assert "at least 99.50%" in page.text and "at most 4.00 h" in page.text
    assert 'data-testid="kpi-confirm_to_ship" data-met="none"' in page.text and "No data" in page.text
    assert page.text.count('<tr data-bucket=') == 4 * 7  # the numbers as a table too
    assert "Save target" not in page.text  # a manager reads the targets; an admin edits them
    create_user("boss_zh", "ops_manager", locale="zh_CN")
    zh = portal.test_client()
    sign_in(zh, "boss_zh")
    assert "同步成功率" in zh.get("/dashboards/kpis").text
    refused = client.get("/dashboards/kpis?grain=month")
    assert refused.status_code == 422 and "per day or per week" in refused.text and "kpi-value" not in refused.text
    assert client.get("/dashboards/kpis?grain=week&periods=1").status_code == 422


def test_admin_edits_a_target_audited_and_bad_targets_change_nothing(portal, create_user):
    create_user("chief", "admin")
    client = english_client(portal)
    sign_in(client, "chief")
    token = csrf_token(client, "/dashboards/kpis")

    def post(code, value):
        return client.post(f"/dashboards/kpis/targets/{code}", data={"csrf_token": token, f"{code}-target": value},
                           follow_redirects=True)

    saved = post("confirm_to_ship", "5.5")
    assert "KPI target saved." in saved.text and "at most 5.50 h" in saved.text
    event = db.session.execute(select(AuditEvent).where(AuditEvent.action == "kpi.target")).scalar_one()
    assert (event.entity_id, event.before, event.after, event.actor_label) == (
        "confirm_to_ship", {"target": "4.00"}, {"target": "5.50"}, "chief")
    for code, value, message in (("confirm_to_ship", "-1", "greater than 0"), ("sync_success", "100.5", "0 to 100"),
                                 ("stock_accuracy", "abc", "0 to 100"), ("tracking_coverage", "-0.01", "0 to 100")):
        refused = post(code, value)
        assert "Not saved" in refused.text and message in refused.text
    db.session.expire_all()
    stored = {row.code: row.target for row in db.session.execute(select(KpiTarget)).scalars()}
    assert stored == {"sync_success": Decimal("99.50"), "confirm_to_ship": Decimal("5.50"),
                      "stock_accuracy": Decimal("98.00"), "tracking_coverage": Decimal("100.00")}
    assert db.session.execute(select(AuditEvent).where(AuditEvent.action == "kpi.target")).scalars().all() == [event]
    assert post("nonsense", "5").status_code == 404


def test_target_service_refuses_out_of_range(session):
    for code, value in (("sync_success", "-1"), ("sync_success", "101"), ("confirm_to_ship", "0"),
                        ("confirm_to_ship", "-3"), ("confirm_to_ship", "721"), ("stock_accuracy", "NaN")):
        with pytest.raises(ValidationFailed):
            kpis.set_target(code, value, ADMIN)
    assert kpis.set_target("stock_accuracy", "97", ADMIN).target == Decimal("97.00")


# The cube ------------------------------------------------------------------------------------------------------

def _cube_orders(create_order, clock, stocked):
    """Six orders over two local days and two cities, in three states; exceptions on two; parcels on two."""
    day1, day2 = datetime(2026, 11, 23, 16, 30, tzinfo=UTC), datetime(2026, 11, 24, 15, 59, tzinfo=UTC)
    # day1 16:30 UTC is 24 Nov 00:30 in Shanghai; day2 15:59 UTC is 24 Nov 23:59: both on the local 24th.
    early = datetime(2026, 11, 23, 15, 59, tzinfo=UTC)  # 23 Nov 23:59 local
    made = {}

    def order(name, placed, city, status):
        clock[0] = placed
        address = {"receiver": "张伟", "phone": "13812345678", "province": "浙江省", "city": city, "district": "西湖区",
                   "street": "文三路 90 号", "postal_code": "310012"}
        made[name] = create_order(status=status, placed_at=placed.isoformat(), paid_at=placed.isoformat(),
                                  shipping_address=address)

    order("a", early, "杭州市", "confirmed")
    order("b", day1, "杭州市", "confirmed")
    order("c", day1, "宁波市", "allocated")
    order("d", day2, "杭州市", "allocated")
    order("e", day2, "宁波市", "confirmed")
    order("f", datetime(2026, 11, 29, 12, 0, tzinfo=UTC), "杭州市", "confirmed")  # outside the range
    roles.create_team("finance", "财务组", "Finance team", ADMIN)  # the seeded route sends payment problems there
    exceptions.raise_exception("late_packing", f"late_packing:order:{made['b'].id}", "late", ADMIN,
                               order_id=made["b"].id)
    exceptions.raise_exception("payment_not_received", f"payment_not_received:order:{made['b'].id}", "unpaid",
                               ADMIN, order_id=made["b"].id)
    exceptions.raise_exception("late_packing", f"late_packing:order:{made['d'].id}", "late", ADMIN,
                               order_id=made["d"].id)
    for name, carrier in (("c", "SF"), ("d", "YTO")):
        db.session.add(Shipment(order_id=made[name].id, warehouse_id=stocked["warehouse"].id, status="allocated",
                                carrier_code=carrier))
    db.session.commit()
    return made


def _request(**args):
    return state_cube.parse_request({"date_from": "2026-11-23", "date_to": "2026-11-25", **args}, ZONE,
                                    date(2026, 11, 26))


def test_cube_counts_per_cell_for_two_dimension_sets(session, create_order, clock, stocked):
    _cube_orders(create_order, clock, stocked)
    cube = state_cube.compute(_request(rows="day", columns="status", facet="city"))
    assert cube.row_values == ["2026-11-23", "2026-11-24", "2026-11-25"]  # every day of the range, empty ones too
    assert cube.column_values == ["confirmed", "allocated"]
    assert cube.cells == {("2026-11-23", "confirmed"): 1, ("2026-11-24", "confirmed"): 2,
                          ("2026-11-24", "allocated"): 2}
    assert cube.facet_counts == [("宁波市", 2), ("杭州市", 3)]
    narrowed = state_cube.compute(_request(rows="day", columns="status", facet="city", facet_value="宁波市"))
    assert narrowed.cells == {("2026-11-24", "confirmed"): 1, ("2026-11-24", "allocated"): 1}

    by_problem = state_cube.compute(_request(rows="city", columns="exception_category", facet="carrier"))
    # b has two exceptions (two categories): once in each; orders without any are the "none" column.
    assert by_problem.cells == {("杭州市", "logistics"): 2, ("杭州市", "payment"): 1, ("杭州市", None): 1,
                                ("宁波市", None): 2}
    assert by_problem.facet_counts == [("SF", 1), ("YTO", 1), (None, 3)]
    unshipped = state_cube.compute(_request(rows="city", columns="exception_category", facet="carrier",
                                            facet_value="-"))
    assert unshipped.cells == {("杭州市", "logistics"): 1, ("杭州市", "payment"): 1, ("杭州市", None): 1,
                               ("宁波市", None): 1}
    teams = state_cube.compute(_request(rows="team", columns="exception_category", facet="day"))
    assert teams.cells == {("finance", "payment"): 1, (None, "logistics"): 2, (None, None): 3}
    hourly = state_cube.compute(_request(rows="status", columns="hour", facet="city"))
    assert len(hourly.column_values) == 72 and hourly.column_values[0] == "2026-11-23 00:00"
    weekly = state_cube.compute(_request(rows="week", columns="city", facet="status"))
    assert weekly.cells == {("2026-11-23", "杭州市"): 3, ("2026-11-23", "宁波市"): 2}


def _listed(client, url: str) -> set[str]:
    page = client.get(url)
    assert page.status_code == 200, page.text[:300]
    table = page.text[page.text.index('id="order-table"'):]
    return set(ORDER_NO.findall(table))


def test_each_cell_drills_down_to_exactly_its_orders(portal, create_order, clock, stocked, create_user):
    made = _cube_orders(create_order, clock, stocked)
    create_user("boss", "ops_manager")
    client = english_client(portal)
    sign_in(client, "boss")
    base = "/dashboards/cube?date_from=2026-11-23&date_to=2026-11-25"
    checks = [("&rows=day&columns=status&facet=city", {("2026-11-24", "allocated"): {"c", "d"},
                                                       ("2026-11-23", "confirmed"): {"a"}}),
              ("&rows=day&columns=status&facet=city&facet_value=宁波市", {("2026-11-24", "confirmed"): {"e"}}),
              ("&rows=city&columns=exception_category&facet=carrier", {("杭州市", "logistics"): {"b", "d"},
                                                                      ("杭州市", "-"): {"a"},
                                                                      ("宁波市", "-"): {"c", "e"}}),
              ("&rows=carrier&columns=hour&facet=status", {("SF", "2026-11-24 00:00"): {"c"},
                                                           ("-", "2026-11-24 00:00"): {"b"}}),
              ("&rows=team&columns=exception_category&facet=day", {("finance", "payment"): {"b"},
                                                                   ("-", "logistics"): {"b", "d"},
                                                                   ("-", "-"): {"a", "c", "e"}}),
              ("&rows=warehouse&columns=status&facet=week&facet_value=2026-11-23", {("HZ1", "allocated"): {"c", "d"},
                                                                                   ("HZ1", "confirmed"): {"a", "b",
                                                                                                          "e"}})]
    for query, expected in checks:
        page = client.get(base + query)
        assert page.status_code == 200, page.text[:300]
        for (row, column), names in expected.items():
            cell = re.search(rf'data-row="{re.escape(row)}" data-column="{re.escape(column)}" '
                             rf'data-count="(\d+)">\s*<a href="([^"]+)"', page.text)
            assert cell, (query, row, column)
            assert int(cell.group(1)) == len(names)
            link = cell.group(2).replace("&amp;", "&")
            assert _listed(client, link) == {made[name].order_no for name in names}, (query, row, column, link)
    partial = client.get(base + "&rows=day&columns=status&facet=city", headers={"HX-Request": "true"})
    assert partial.status_code == 200 and "<html" not in partial.text and 'data-testid="cube-heatmap"' in partial.text
    refused = client.get(base + "&rows=day&columns=day&facet=city", headers={"HX-Request": "true"})
    assert 'data-testid="cube-error"' in refused.text and 'data-testid="cube-heatmap"' not in refused.text


@pytest.mark.parametrize("query, english, chinese", [
    ("rows=colour&columns=status&facet=city", "unknown dimension colour", "未知的维度"),
    ("rows=city&columns=city&facet=status", "city is chosen twice", "选择了两次"),
    ("rows=day&columns=week&facet=status", "at most one time dimension", "时间维度"),
    ("date_from=2026-11-25&date_to=2026-11-20", "ends before it starts", "结束早于开始"),
    ("date_from=2026-11-31", "a date like", "日期"),
    ("rows=hour&date_from=2026-10-01&date_to=2026-11-20", "at most 14 days", "14"),
    ("rows=city&columns=status&facet=day&facet_value=yesterday", "a time facet value is a bucket", "时间分面"),
])
def test_cube_refuses_bad_input_in_both_languages(portal, create_user, query, english, chinese):
    for language, text in (("en", english), ("zh_CN", chinese)):
        create_user(f"boss_{language}", "ops_manager", locale=language)
        client = portal.test_client()
        sign_in(client, f"boss_{language}")
        page = client.get(f"/dashboards/cube?{query}")
        assert page.status_code == 422 and text in page.text, (language, page.text[:500])
        assert 'data-testid="cube-heatmap"' not in page.text and 'data-testid="cube-facets"' not in page.text


def test_cube_service_refuses_before_computing(session):
    for args in ({"rows": "day", "columns": "day"}, {"facet": "planet"}, {"date_from": "2026-11-26", "date_to":
                                                                         "2026-11-01"}):
        with pytest.raises(ServiceError):
            state_cube.parse_request(args, ZONE, date(2026, 11, 26))


@pytest.mark.parametrize("moment, grain, expected", [
    (datetime(2026, 3, 8, 6, 30, tzinfo=UTC), "hour", "2026-03-08 01:00"),  # 01:30 EST
    (datetime(2026, 3, 8, 7, 30, tzinfo=UTC), "hour", "2026-03-08 03:00"),  # 03:30 EDT: the clocks went forward
    (datetime(2026, 3, 9, 3, 59, tzinfo=UTC), "day", "2026-03-08"),  # 23:59 EDT
    (datetime(2026, 3, 9, 4, 0, tzinfo=UTC), "day", "2026-03-09"),
    (datetime(2026, 3, 8, 7, 30, tzinfo=UTC), "week", "2026-03-02"),  # a Sunday belongs to the week of Monday 2nd
    (datetime(2026, 3, 9, 4, 0, tzinfo=UTC), "week", "2026-03-09"),
])
def test_buckets_follow_the_zone_rules_on_both_databases(session, backend, moment, grain, expected):
    zone = "America/New_York"
    start, end = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 15, tzinfo=UTC)
    expression = time_buckets.bucket(literal(moment, UTCDateTime()), grain, zone, backend, start, end)
    assert db.session.execute(select(expression)).scalar_one() == expected
    assert time_buckets.label_of(moment, grain, zone) == expected
