"""Carrier credibility (issue 15 item 2): the monthly score per carrier and route from constructed parcels (on time,
stalls, signed photos where reported, complaints answered in time), computed in sets with a fixed number of
statements; no score for a month without parcels; a thin route falls back to the carrier-wide score; weights that do
not add up to 1 are refused and nothing is saved; a carrier under 85 is de-weighted (audited, with its reason) and
allocation and the waybill order then choose another; a carrier whose reported load is over the threshold is skipped
for the backup (logged, audited); the scorecard page by role, in both languages, sorted; the job on a real RQ
worker."""
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import count
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from devtools.simulators.carriers import DEFAULT_CREDENTIALS, CarrierSimulator
from jobs.schedule import SCHEDULE, TIMEOUTS
from shared.actors import SYSTEM
from shared.carriers.pickups import PickupClient
from shared.carriers.waybills import WaybillClient
from shared.extensions import db
from shared.models import (AuditEvent, CarrierAttempt, CarrierScore, CarrierScoreRules, CarrierStanding, ExceptionCase,
                           Shipment)
from shared.models.parcels import ANY
from shared.services import allocation, carrier_scores, catalog, exceptions, orders, scans, stock
from shared.services.errors import ValidationFailed
from tests.factories import ADMIN, count_queries, order_payload
from tests.portal_client import csrf_token
from tests.test_carriers import KDNIAO, waybill_request

OCTOBER = date(2026, 10, 1)
NOW = datetime(2026, 11, 3, 2, 0, tzinfo=UTC)
SHIPPED = datetime(2026, 10, 10, 2, 0, tzinfo=UTC)
NUMBERS = count(1)
FIXTURES = Path(__file__).parent / "fixtures" / "carriers"


@pytest.fixture
def shop(session):
    catalog.create_channel("OS", "官网商城", "own_shop", ADMIN)
    warehouse = catalog.create_warehouse({"code": "HZ1", "name": "杭州仓", "province": "浙江省", "city": "杭州市",
                                          "carriers": "YTO,SF"}, ADMIN)
    catalog.create_sku({"sku": "SKU-1", "name": "龙井茶 250g"}, ADMIN)
    stock.adjust_stock("SKU-1", "HZ1", 500, "opening stock", ADMIN, kind="receipt")
    db.session.flush()
    return warehouse


def address(province: str, city: str) -> dict:
    return {"receiver": "张伟", "phone": "13812345678", "province": province, "city": city, "district": "某区",
            "street": "某路 1 号", "postal_code": None}


def parcel(warehouse, province: str, city: str, carrier: str = "YTO", hours: float | None = 48,
           shipped: datetime = SHIPPED, stalled: bool = False, photo: bool | None = None) -> Shipment:
    """A parcel of `carrier` shipped at `shipped`, delivered `hours` later (None: still on its way)."""
    order = orders.create_order(order_payload(channel_order_id=f"CS{next(NUMBERS)}",
                                              shipping_address=address(province, city)), ADMIN)
    db.session.flush()
    shipment = Shipment(order_id=order.id, warehouse_id=warehouse.id, status="delivered" if hours else "shipped",
                        priority=0, carrier_code=carrier, waybill_no=f"YT{next(NUMBERS):013d}", shipped_at=shipped,
                        delivered_at=shipped + timedelta(hours=hours) if hours else None,
                        stalled_at=shipped + timedelta(hours=30) if stalled else None, sign_photo=photo)
    db.session.add(shipment)
    db.session.flush()
    return shipment


def complaint(shipment: Shipment, settled_hours: float | None) -> ExceptionCase:
    """A customer's "not received yet?" about the parcel, settled `settled_hours` after it was raised."""
    row = exceptions.raise_exception("parcel_not_received", f"parcel_not_received:shipment:{shipment.id}",
                                     "not received yet?", SYSTEM, now=shipment.shipped_at + timedelta(days=4),
                                     order_id=shipment.order_id, shipment_id=shipment.id)
    row.resolve_seconds = None if settled_hours is None else int(settled_hours * 3600)
    db.session.flush()
    return row


@pytest.fixture
def october(shop):
    """YTO 浙江→北京: 40 parcels, 32 delivered in 48 h and 8 in 80 h; 4 stalled once; photos reported for 25 (20
    signed); two complaints, one settled in 10 h, one in 30 h. YTO 浙江→上海: 5 parcels, all in time. SF shipped only
    in September."""
    beijing = []
    for n in range(40):
        photo = True if n < 20 else (False if n < 25 else None)
        beijing.append(parcel(shop, "北京市", "北京市", hours=48 if n < 32 else 80, stalled=n % 10 == 0, photo=photo))
    complaint(beijing[0], 10)
    complaint(beijing[1], 30)
    for _ in range(5):
        parcel(shop, "上海市", "上海市", hours=20)
    parcel(shop, "北京市", "北京市", carrier="SF", shipped=datetime(2026, 9, 20, tzinfo=UTC))
    db.session.commit()
    return shop


def score_row(carrier: str, origin: str = ANY, destination: str = ANY, month: date = OCTOBER) -> CarrierScore | None:
    return db.session.get(CarrierScore, (month, carrier, origin, destination))


def events(action: str) -> list[AuditEvent]:
    return db.session.execute(select(AuditEvent).where(AuditEvent.action == action)
                              .order_by(AuditEvent.id)).scalars().all()


# ------------------------------------------------------------------------------------------------ scoring

def test_scores_per_route_and_carrier_wide_from_the_parcels(october):
    assert carrier_scores.compute_month(OCTOBER, NOW) == 3  # two YTO routes and YTO carrier-wide
    route = score_row("YTO", "浙江省", "北京市")
    assert (route.parcels, route.judged, route.on_time, route.stalled) == (40, 40, 32, 4)
    assert (route.photo_reported, route.photo_signed, route.complaints, route.complaints_answered) == (25, 20, 2, 1)
    # 0.4 × 32/40 + 0.3 × (1 − 4/40) + 0.1 × 20/25 + 0.2 × 1/2 = 0.32 + 0.27 + 0.08 + 0.10
    assert route.score == Decimal("77.00")
    # No photos, no complaints on 浙江→上海: on time and stalls share the whole weight (0.4 + 0.3), both perfect.
    assert score_row("YTO", "浙江省", "上海市").score == Decimal("100.00")
    wide = score_row("YTO")
    assert (wide.parcels, wide.on_time, wide.stalled) == (45, 37, 4)
    assert wide.score == Decimal("78.22")  # 0.4 × 37/45 + 0.3 × 41/45 + 0.08 + 0.10 = 0.78222…


def test_a_month_without_parcels_gives_no_score_not_zero_or_a_hundred(october):
    carrier_scores.compute_month(OCTOBER, NOW)
    assert score_row("SF") is None and score_row("SF", "浙江省", "北京市") is None
    ranking = carrier_scores.ranking()
    assert ranking.score("SF", "浙江省", "北京市") is None
    assert carrier_scores.apply_standings(OCTOBER, SYSTEM, NOW) == {"deweighted": ["YTO"], "restored": []}
    assert db.session.get(CarrierStanding, "SF") is None  # no score: its standing is left as it was
    # September has SF's one parcel, and only that.
    carrier_scores.compute_month(date(2026, 9, 1), NOW)
    assert score_row("SF", month=date(2026, 9, 1)).parcels == 1 and score_row("YTO", month=date(2026, 9, 1)) is None


def test_a_thin_route_falls_back_to_the_carrier_wide_score(october):
    carrier_scores.compute_month(OCTOBER, NOW)
    ranking = carrier_scores.ranking()
    assert ranking.min_route_parcels == 30  # the rule, as data
    assert ranking.score("YTO", "浙江省", "北京市") == Decimal("77.00")  # 40 parcels: the route's own
    assert ranking.score("YTO", "浙江省", "上海市") == Decimal("78.22")  # 5 parcels: carrier-wide, not its 100
    assert ranking.score("YTO", "浙江省", "广东省") == Decimal("78.22")  # never shipped there: carrier-wide


def test_the_month_is_computed_in_a_fixed_number_of_statements(october):
    carrier_scores.compute_month(OCTOBER, NOW)
    with count_queries() as few:
        carrier_scores.compute_month(OCTOBER, NOW)
    for _ in range(30):
        parcel(october, "广东省", "深圳市", hours=30)
    with count_queries() as many:
        carrier_scores.compute_month(OCTOBER, NOW)
    assert len(many) == len(few), many
    assert score_row("YTO", "浙江省", "广东省").parcels == 30
    assert db.session.execute(select(func.count()).select_from(CarrierScore)).scalar() == 4  # rewritten, not added


def test_a_part_with_nothing_to_judge_gives_its_weight_to_the_others():
    settings = carrier_scores.CarrierScoreRules(**carrier_scores.DEFAULT_RULES)
    counts = {"parcels": 10, "judged": 10, "on_time": 5, "stalled": 0, "photo_reported": 0, "photo_signed": 0,
              "complaints": 0, "complaints_answered": 0}
    # (0.4 × 0.5 + 0.3 × 1) / 0.7
    assert carrier_scores.score_of(counts, settings) == Decimal("71.43")
    assert carrier_scores.parts_of(counts)["photo_weight"] is None


# ------------------------------------------------------------------------------------------------ the rules

@pytest.mark.parametrize("weights", [("0.4", "0.3", "0.1", "0.1"), ("0.5", "0.3", "0.2", "0.2"),
                                     ("1", "0", "0", "0.001")])
def test_weights_that_do_not_add_up_to_one_are_refused_and_nothing_is_saved(shop, weights):
    before = {name: getattr(carrier_scores.rules(), name) for name in carrier_scores.RULE_FIELDS}
    db.session.commit()
    values = dict(zip(carrier_scores.WEIGHTS, weights))
    with pytest.raises(ValidationFailed) as refused:
        carrier_scores.set_rules(values, ADMIN)
    assert refused.value.code == "weights_not_one" and refused.value.field == "weights"
    assert "must add up to 1" in refused.value.message
    db.session.rollback()
    assert {name: getattr(carrier_scores.rules(), name) for name in carrier_scores.RULE_FIELDS} == before
    db.session.commit()
    assert events("carrier.score_rules") == []


@pytest.mark.parametrize(("field", "value"), [("on_time_weight", "-0.1"), ("stall_weight", "abc"),
                                              ("min_route_parcels", "0"), ("deweight_below", "101"),
                                              ("load_threshold", "1.5")])
def test_other_bad_rules_are_refused(shop, field, value):
    with pytest.raises(ValidationFailed) as refused:
        carrier_scores.set_rules({field: value}, ADMIN)
    assert refused.value.field == field and refused.value.code == "invalid_rule"


def test_new_weights_are_saved_audited_and_change_the_score(october):
    carrier_scores.set_rules({"on_time_weight": "0.25", "stall_weight": "0.25", "photo_weight": "0.25",
                              "response_weight": "0.25", "min_route_parcels": "40"}, ADMIN)
    db.session.commit()
    assert db.session.get(CarrierScoreRules, 1).min_route_parcels == 40
    event = events("carrier.score_rules")[-1]
    assert event.before["on_time_weight"] == "0.4" and event.after["on_time_weight"] == "0.25"
    carrier_scores.compute_month(OCTOBER, NOW)
    # 0.25 × (0.8 + 0.9 + 0.8 + 0.5)
    assert score_row("YTO", "浙江省", "北京市").score == Decimal("75.00")


# ------------------------------------------------------------------------------------------------ routing

def confirmed_order(province: str, city: str, number: str):
    order = orders.create_order(order_payload(channel_order_id=number, shipping_address=address(province, city)),
                                ADMIN)
    db.session.commit()
    return order


def test_de_weighting_is_audited_with_its_reason_and_changes_routing(october):
    first = allocation.allocate(confirmed_order("北京市", "北京市", "R-1"), ADMIN)
    assert first.carrier_code == "YTO"  # no score yet: the warehouse's own order
    carrier_scores.run_month(OCTOBER, SYSTEM, NOW)
    db.session.commit()
    standing = db.session.get(CarrierStanding, "YTO")
    assert standing.deweighted and standing.score == Decimal("78.22")
    assert standing.reason == "Score 78.22 in 2026-10 is under 85.00"
    event = events("carrier.deweight")[-1]
    assert (event.entity_id, event.reason, event.after["score"]) == ("YTO", standing.reason, "78.22")
    second = allocation.allocate(confirmed_order("北京市", "北京市", "R-2"), ADMIN)
    assert second.carrier_code == "SF"
    codes, request = scans.waybill_request(second)
    assert codes == ("SF", "YTO") and request.carrier_code == "SF"
    batch, left = allocation.allocate_many([confirmed_order("上海市", "上海市", "R-3").id], ADMIN)
    assert left == [] and batch[0].carrier_code == "SF"
    # Running the month again changes nothing and audits nothing new.
    assert carrier_scores.run_month(OCTOBER, SYSTEM, NOW)["deweighted"] == []
    db.session.commit()
    assert len(events("carrier.deweight")) == 1


def test_a_carrier_back_over_the_line_is_restored(october):
    carrier_scores.run_month(OCTOBER, SYSTEM, NOW)
    carrier_scores.set_rules({"deweight_below": "70"}, ADMIN)
    changed = carrier_scores.apply_standings(OCTOBER, SYSTEM, NOW)
    db.session.commit()
    assert changed == {"deweighted": [], "restored": ["YTO"]}
    assert not db.session.get(CarrierStanding, "YTO").deweighted
    assert events("carrier.restore")[-1].reason == "Score 78.22 in 2026-10 is back at or over 70.00"


def test_higher_scores_come_first_and_de_weighting_beats_a_good_route():
    ranking = carrier_scores.Ranking(OCTOBER, {("YTO", "浙江省", "北京市"): (50, Decimal("95")),
                                               ("YTO", ANY, ANY): (60, Decimal("80")),
                                               ("ZTO", ANY, ANY): (60, Decimal("92")),
                                               ("SF", ANY, ANY): (60, Decimal("88"))},
                                     frozenset({"YTO"}), 30, Decimal("85"))
    assert ranking.order(("YTO", "SF", "ZTO"), "浙江省", "北京市") == ("ZTO", "SF", "YTO")
    assert ranking.order(("EMS", "SF"), "浙江省", "北京市") == ("SF", "EMS")  # no score: counts as the line
    assert ranking.order(("EMS", "JD"), "浙江省", "北京市") == ("EMS", "JD")  # a tie keeps the warehouse's order


# ------------------------------------------------------------------------------------------------ load

def test_the_published_capacity_answer_is_read():
    """Kuaidi100 querymkt (tests/fixtures/carriers/kuaidi100_capacity): a listed carrier has capacity, one not
    listed is full."""
    body = (FIXTURES / "kuaidi100_capacity" / "querymkt_answer.json").read_text(encoding="utf-8")
    sent = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(dict(httpx.QueryParams(request.content.decode())))
        return httpx.Response(200, text=body, headers={"Content-Type": "application/json"})

    with PickupClient("https://api.example", "k", "s", transport=httpx.MockTransport(answer)) as client:
        loads = client.carrier_loads("广东深圳市深圳市南山区科技南十二路2号金蝶软件园B10")
    assert loads["YTO"] == 0.0 and loads["SF"] == 1.0
    assert sent[0]["method"] == "querymkt" and json.loads(sent[0]["param"])["sendAddr"].startswith("广东深圳")


@pytest.fixture
def simulator():
    sim = CarrierSimulator(seed=15, start=datetime(2026, 11, 2, tzinfo=UTC))
    sim.start()
    yield sim
    sim.stop()


def pack_plan(shipment=None, carriers=("YTO", "SF"), threshold=0.9) -> scans.PackPlan:
    return scans.PackPlan(shipment_id=shipment.id if shipment else 0, order_no=shipment.order.order_no if shipment
                          else "OL1", box="BOX-1", carriers=carriers,
                          request=waybill_request(f"OL-LOAD-{next(NUMBERS)}", carriers[0]),
                          load_threshold=threshold, send_address="浙江省杭州市杭州仓")


def clients(simulator):
    kuaidi100 = DEFAULT_CREDENTIALS["kuaidi100"]
    return (WaybillClient(simulator.base_url, KDNIAO["business_id"], KDNIAO["app_key"], timeout=5),
            PickupClient(simulator.base_url, kuaidi100["key"], kuaidi100["secret"], timeout=5))


def test_a_carrier_over_the_load_threshold_is_skipped_for_the_backup_logged_and_audited(shop, simulator, caplog):
    simulator.set_load("YTO", 0.95)
    shipment = parcel(shop, "北京市", "北京市", hours=None)
    shipment.status, shipment.waybill_no = "picked", None
    db.session.commit()
    waybill, capacity = clients(simulator)
    with waybill, capacity, caplog.at_level("WARNING", logger="orderloom.scans"):
        answers = scans.ask_carriers(pack_plan(shipment), waybill, capacity)
    assert [(a.carrier_code, a.outcome) for a in answers] == [("YTO", "skipped"), ("SF", "issued")]
    assert "carrier_load=skipped" in caplog.text and "carrier=YTO load=0.95 threshold=0.90" in caplog.text
    assert [w.carrier_code for w in simulator.waybills()] == ["SF"]  # YTO was never asked
    scans.record_waybill(shipment, answers, ADMIN)
    db.session.commit()
    assert shipment.carrier_code == "SF"
    attempts = db.session.execute(select(CarrierAttempt.carrier_code, CarrierAttempt.outcome).where(
        CarrierAttempt.shipment_id == shipment.id).order_by(CarrierAttempt.id)).all()
    assert [tuple(a) for a in attempts] == [("YTO", "skipped"), ("SF", "issued")]
    event = events("shipment.carrier_load_skip")[-1]
    assert event.after == {"skipped": "YTO", "carrier": "SF", "load": "load 0.95 ≥ 0.90"}


def test_under_the_threshold_or_with_every_carrier_full_nobody_is_skipped(simulator):
    waybill, capacity = clients(simulator)
    with waybill, capacity:
        simulator.set_load("YTO", 0.5)
        assert [a.outcome for a in scans.ask_carriers(pack_plan(), waybill, capacity)] == ["issued"]
        simulator.set_load("YTO", 1.0)  # left out of the answer: no capacity
        simulator.set_load("SF", 1.0)
        answers = scans.ask_carriers(pack_plan(), waybill, capacity)
    assert [(a.carrier_code, a.outcome) for a in answers] == [("YTO", "issued")]  # all full: asked in order


def test_a_failed_capacity_query_skips_nobody(simulator):
    waybill, _capacity = clients(simulator)
    broken = PickupClient("https://api.example", "k", "s",
                          transport=httpx.MockTransport(lambda request: httpx.Response(500, text="down")))
    with waybill, broken:
        answers = scans.ask_carriers(pack_plan(), waybill, broken)
    assert [(a.carrier_code, a.outcome) for a in answers] == [("YTO", "issued")]


# ------------------------------------------------------------------------------------------------ the page

def test_the_scorecard_shows_scores_standing_and_reason_sorted_in_both_languages(october, client_for):
    carrier_scores.run_month(OCTOBER, SYSTEM, NOW)
    parcel(october, "北京市", "北京市", carrier="ZTO", shipped=datetime(2026, 10, 5, tzinfo=UTC), hours=20)
    carrier_scores.run_month(OCTOBER, SYSTEM, NOW)
    db.session.commit()
    page = client_for("ops_manager").get("/fulfilment/carriers").text
    assert 'data-testid="score-value-YTO">78.22<' in page and 'data-testid="score-value-ZTO">100.00<' in page
    assert "De-weighted" in page and "Score 78.22 in 2026-10 is under 85.00" in page
    assert "too few parcels: carrier-wide score used" in page
    assert page.index('data-testid="score-YTO"') < page.index('data-testid="score-ZTO"')  # lowest first
    high = client_for("warehouse").get("/fulfilment/carriers?sort=-score").text
    assert high.index('data-testid="score-ZTO"') < high.index('data-testid="score-YTO"')
    assert 'data-testid="score-rules"' not in high  # warehouse staff see the scores, not the rules form
    chinese = client_for("ops_manager", locale="zh_CN").get("/fulfilment/carriers")
    assert chinese.status_code == 200 and 'data-testid="score-value-YTO">78.22<' in chinese.text
    assert "承运商" in chinese.text or "快递" in chinese.text


def test_the_rules_form_refuses_weights_that_do_not_add_up_and_saves_good_ones(shop, client_for):
    client = client_for("ops_manager")
    assert 'data-testid="score-rules"' in client.get("/fulfilment/carriers").text
    form = {"csrf_token": csrf_token(client, "/fulfilment/carriers"), "on_time_weight": "0.5", "stall_weight": "0.3", "photo_weight": "0.1",
            "response_weight": "0.2", "min_route_parcels": "30", "deweight_below": "85", "load_threshold": "0.9",
            "response_target_hours": "24"}
    refused = client.post("/fulfilment/carriers/rules", data=form, follow_redirects=True).text
    assert "The four weights must add up to 1 (they add up to 1.1)" in refused
    db.session.expire_all()
    assert db.session.get(CarrierScoreRules, 1).on_time_weight == Decimal("0.4") and not events("carrier.score_rules")
    saved = client.post("/fulfilment/carriers/rules", data={**form, "on_time_weight": "0.4", "load_threshold": "0.8"},
                        follow_redirects=True).text
    assert "Scoring rules saved" in saved
    db.session.expire_all()
    assert db.session.get(CarrierScoreRules, 1).load_threshold == Decimal("0.8")
    assert events("carrier.score_rules")[-1].actor_label.startswith("ops_manager")
    warehouse = client_for("warehouse")
    token = csrf_token(warehouse, "/fulfilment/carriers")
    assert warehouse.post("/fulfilment/carriers/rules", data={**form, "csrf_token": token}).status_code == 403


def test_the_job_is_scheduled_daily_with_a_timeout():
    assert ("score_carriers", "jobs.carrier_scores.score_carriers", 86400, "default") in SCHEDULE
    assert TIMEOUTS["score_carriers"] == 600


def test_the_pack_scan_skips_a_loaded_carrier_through_the_scan_api(portal, session, simulator):
    """The scan API with ORDERLOOM_CARRIER_LOAD_CHECK: the 运力 query says YTO is at 0.97, the waybill comes from SF."""
    from shared.services import lots, waves

    kuaidi100 = DEFAULT_CREDENTIALS["kuaidi100"]
    portal.config.update(CARRIER_API_URL=simulator.base_url, CARRIER_BUSINESS_ID=KDNIAO["business_id"],
                         CARRIER_APP_KEY=KDNIAO["app_key"], KUAIDI100_API_URL=simulator.base_url,
                         KUAIDI100_KEY=kuaidi100["key"], KUAIDI100_SECRET=kuaidi100["secret"], CARRIER_LOAD_CHECK=True)
    simulator.set_load("YTO", 0.97)
    catalog.create_channel("OS", "官网商城", "own_shop", ADMIN)
    warehouse = catalog.create_warehouse({"code": "SZ1", "name": "深圳仓", "province": "广东省", "city": "深圳市",
                                          "carriers": "YTO,SF"}, ADMIN)
    catalog.create_bin(warehouse, {"code": "A-01", "walk_order": 1}, ADMIN)
    catalog.create_sku({"sku": "TEA", "name": "龙井茶"}, ADMIN)
    lots.receive("TEA", "SZ1", "A-01", 5, ADMIN, lot_no="T-1", expires_on=date.today() + timedelta(days=90))
    order = orders.create_order(order_payload(lines=[{"sku": "TEA", "quantity": 1, "unit_price": "9.00"}]), ADMIN)
    assert allocation.allocate(order, ADMIN).carrier_code == "YTO"
    [wave] = waves.plan_waves("SZ1", ADMIN)
    waves.start_release(wave.id, ADMIN)
    waves.release_chunk(wave.id, date.today())
    _device, token = scans.register_device("PDA-1", "SZ1", ADMIN)
    [task] = waves.pick_list(wave.id)
    db.session.commit()
    client = portal.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    picked = client.post("/scan/v1/pick", headers=headers, json={"operator": "王五", "task": task.id, "bin": "A-01",
                                                                  "sku": "TEA", "lot": "T-1", "quantity": 1})
    assert picked.status_code == 200, picked.get_json()
    packed = client.post("/scan/v1/pack", headers=headers, json={"operator": "王五", "order": order.order_no,
                                                                  "box": "B"})
    assert packed.status_code == 200, packed.get_json()
    assert packed.get_json()["carrier"] == "SF"
    assert [w.carrier_code for w in simulator.waybills()] == ["SF"]
    assert events("shipment.carrier_load_skip")[-1].after["skipped"] == "YTO"
