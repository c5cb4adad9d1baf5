"""Carriers over real HTTP: e-waybills from the simulated KDNiao service, tracking from Kuaidi100 and 17TRACK (pushed
and polled), the published payloads in tests/fixtures/carriers, and the one five-step status. No database needed.

Signatures in these tests are computed here with hashlib from the formulas in docs/CARRIERS.md, not with
shared.carriers.signing, so a signing rule that drifts from the contract fails them.
"""
import base64
import hashlib
import json
import random
import re
import socket
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest

from shared.carriers import (FLAGS, STEPS, CarrierRefused, CarrierUnavailable, Kuaidi100Client, Track17Client,
                             TrackingEvent, TrackingPayloadError, TrackingQueryError, WaybillClient, WaybillRequest,
                             parse_17track_poll, parse_17track_push, parse_kuaidi100_poll, parse_kuaidi100_push,
                             summarize)
from shared.carriers.signing import (verify_kdniao_data_sign, verify_kuaidi100_poll_sign,
                                     verify_kuaidi100_push_sign, verify_track17_sign)
from devtools.simulators.carriers import DEFAULT_CREDENTIALS, CarrierSimulator
from devtools.simulators.carriers.run import run as run_simulator
from tests.robot_receiver import RobotReceiver

FIXTURES = Path(__file__).parent / "fixtures" / "carriers"
FIXTURE_SALT = "orderloom-fixture-salt"
FIXTURE_KEY = "orderloom-fixture-key"
START = datetime(2025, 11, 10, 16, 0, tzinfo=UTC)  # 2025-11-11 00:00 in Beijing
KDNIAO = DEFAULT_CREDENTIALS["kdniao"]
KUAIDI100 = DEFAULT_CREDENTIALS["kuaidi100"]
TRACK17 = DEFAULT_CREDENTIALS["17track"]
KUAIDI100_OK = {"result": True, "returnCode": "200", "message": "成功"}
WAYBILL_SHAPES = {"SF": r"SF\d{13}", "YTO": r"YT\d{13}", "ZTO": r"7\d{13}", "STO": r"77\d{13}", "YD": r"4\d{14}",
                  "JD": r"JD\d{13}", "EMS": r"98\d{11}"}
SENDER = {"Name": "织机旗舰店", "Mobile": "13800138000", "ProvinceName": "广东省", "CityName": "深圳市",
          "ExpAreaName": "南山区", "Address": "科技园南区科苑路15号"}
RECEIVER = {"Name": "韩梅梅", "Mobile": "13698765432", "ProvinceName": "浙江省", "CityName": "杭州市",
            "ExpAreaName": "西湖区", "Address": "文三路90号东部软件园2号楼"}


# ------------------------------------------------------------------------- independent signing

def md5_upper(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest().upper()


def data_sign(request_data: str, app_key: str) -> str:
    return base64.b64encode(hashlib.md5((request_data + app_key).encode()).hexdigest().encode()).decode()


def track17_signature(raw: bytes, key: str) -> str:
    return hashlib.sha256(raw + b"/" + key.encode()).hexdigest()


def kuaidi100_form(param_text: str, salt: str = FIXTURE_SALT) -> dict:
    return {"param": param_text, "sign": md5_upper(param_text + salt)}


def fixture_text(path: str) -> str:
    return (FIXTURES / path).read_text(encoding="utf-8")


def fixture_json(path: str):
    return json.loads(fixture_text(path))


def parse_kuaidi100_fixture(path: str) -> list[TrackingEvent]:
    return parse_kuaidi100_push(kuaidi100_form(fixture_text(path)), FIXTURE_SALT)


def parse_17track_fixture(path: str) -> list[TrackingEvent]:
    raw = (FIXTURES / path).read_bytes()
    return parse_17track_push(raw, track17_signature(raw, FIXTURE_KEY), FIXTURE_KEY)


def signed_kuaidi100_param(param: dict, salt: str = FIXTURE_SALT) -> dict:
    return kuaidi100_form(json.dumps(param, ensure_ascii=False), salt)


def signed_17track_body(body: dict, key: str = FIXTURE_KEY) -> tuple[bytes, str]:
    raw = json.dumps(body, ensure_ascii=False).encode()
    return raw, track17_signature(raw, key)


def event(minutes: int, description: str, step=None, flag=None, source="kuaidi100") -> TrackingEvent:
    return TrackingEvent(waybill_no="SF1000000000001", carrier="SF", occurred_at=START + timedelta(minutes=minutes),
                         description=description, location=None, source=source, raw_status="", step=step, flag=flag)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ------------------------------------------------------------------------- fixtures

@pytest.fixture
def simulator():
    sim = CarrierSimulator(seed=11, start=START)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def waybills(simulator):
    with WaybillClient(simulator.base_url, KDNIAO["business_id"], KDNIAO["app_key"], timeout=5) as client:
        yield client


def waybill_request(order_code: str = "OL20251111000001", carrier_code: str = "SF", **changes) -> WaybillRequest:
    fields = {"order_code": order_code, "carrier_code": carrier_code, "sender": SENDER, "receiver": RECEIVER,
              "goods": [("保温杯", 2), ("杯套", 1)], "parcels": 1, "weight_kg": Decimal("1.25")}
    return WaybillRequest(**{**fields, **changes})


# ------------------------------------------------------------------------- signing

def test_signing_helpers_follow_the_documented_formulas():
    request_data = fixture_text("kdniao/eorder_request_data.json")
    sign = data_sign(request_data, "app-key")
    assert verify_kdniao_data_sign(request_data, "app-key", sign)
    assert not verify_kdniao_data_sign(request_data, "other-key", sign)
    assert not verify_kdniao_data_sign(request_data + " ", "app-key", sign)
    assert not verify_kdniao_data_sign(request_data, "app-key", None)

    param = '{"com":"yuantong","num":"YT7512345678903"}'
    assert verify_kuaidi100_poll_sign(param, "key", "customer", md5_upper(param + "key" + "customer"))
    assert not verify_kuaidi100_poll_sign(param, "key", "customer", md5_upper(param + "customer" + "key"))
    assert verify_kuaidi100_push_sign(param, "salt", md5_upper(param + "salt"))
    assert verify_kuaidi100_push_sign(param, "salt", md5_upper(param + "salt").lower())  # hex case carries no secret
    assert not verify_kuaidi100_push_sign(param, "", md5_upper(param))  # an empty salt proves nothing

    body = b'{"event":"TRACKING_UPDATED"}'
    assert verify_track17_sign(body, "key", track17_signature(body, "key"))
    assert not verify_track17_sign(body + b" ", "key", track17_signature(body, "key"))
    assert not verify_track17_sign(body, "key", "")


# ------------------------------------------------------------------------- e-waybills

@pytest.mark.parametrize("carrier_code", sorted(WAYBILL_SHAPES))
def test_waybill_is_issued_in_the_carriers_shape_with_its_label(simulator, waybills, carrier_code):
    waybill = waybills.request(waybill_request(f"OL-{carrier_code}-1", carrier_code))
    assert waybill.carrier_code == carrier_code
    assert re.fullmatch(WAYBILL_SHAPES[carrier_code], waybill.waybill_no), waybill.waybill_no
    assert waybill.sort_code
    assert waybill.label_html.startswith("<!DOCTYPE html>")
    assert waybill.waybill_no in waybill.label_html and waybill.sort_code in waybill.label_html
    assert "韩梅梅" in waybill.label_html and "136****5432" in waybill.label_html
    assert "13698765432" not in waybill.label_html  # the full mobile never reaches the label
    [issued] = simulator.waybills()
    assert (issued.order_code, issued.waybill_no) == (f"OL-{carrier_code}-1", waybill.waybill_no)
    sent = json.loads(issued.request_data)
    assert sent["Commodity"] == [{"GoodsName": "保温杯", "Goodsquantity": 2}, {"GoodsName": "杯套", "Goodsquantity": 1}]
    assert (sent["ShipperCode"], sent["Quantity"], sent["Weight"], sent["IsReturnPrintTemplate"]) == \
        (carrier_code, 1, 1.25, 1)
    assert set(sent) >= set(fixture_json("kdniao/eorder_request_data.json"))


def test_same_order_code_gets_the_same_waybill(simulator, waybills):
    first = waybills.request(waybill_request("OL20251111000007", "YTO"))
    again = waybills.request(waybill_request("OL20251111000007", "YTO"))
    other = waybills.request(waybill_request("OL20251111000008", "YTO"))
    assert again == first
    assert other.waybill_no != first.waybill_no
    assert [item.waybill_no for item in simulator.waybills()] == [first.waybill_no, other.waybill_no]
    # On the wire, the repeat is KDNiao's 106 该订单号已下单成功.
    request_data = simulator.waybills()[0].request_data
    answer = httpx.post(f"{simulator.base_url}/api/EOrderService", data={
        "RequestType": "1007", "EBusinessID": KDNIAO["business_id"], "RequestData": request_data,
        "DataSign": data_sign(request_data, KDNIAO["app_key"]), "DataType": "2"}).json()
    assert (answer["Success"], answer["ResultCode"], answer["Reason"]) == (True, "106", "该订单号已下单成功")
    assert answer["Order"]["LogisticCode"] == first.waybill_no


def test_bad_data_sign_is_refused_and_issues_nothing(simulator):
    with WaybillClient(simulator.base_url, KDNIAO["business_id"], "not-the-app-key") as client:
        with pytest.raises(CarrierRefused) as refused:
            client.request(waybill_request())
    assert refused.value.code == "102"
    request_data = json.dumps({"OrderCode": "OL-TAMPERED"}, ensure_ascii=False)
    tampered = request_data.replace("TAMPERED", "TAMPERED2")
    answer = httpx.post(f"{simulator.base_url}/api/EOrderService", data={
        "RequestType": "1007", "EBusinessID": KDNIAO["business_id"], "RequestData": tampered,
        "DataSign": data_sign(request_data, KDNIAO["app_key"]), "DataType": "2"}).json()
    assert (answer["Success"], answer["ResultCode"]) == (False, "102")
    assert simulator.waybills() == []


def test_a_refusing_carrier_gives_carrier_refused_with_its_reason(simulator, waybills):
    before = waybills.request(waybill_request("OL-BEFORE", "ZTO"))
    simulator.refuse("ZTO", "电子面单余额不足")
    with pytest.raises(CarrierRefused) as refused:
        waybills.request(waybill_request("OL-AFTER", "ZTO"))
    assert (refused.value.reason, refused.value.code) == ("电子面单余额不足", "105")
    assert waybills.request(waybill_request("OL-BEFORE", "ZTO")) == before  # issued orders keep their waybill
    assert waybills.request(waybill_request("OL-OTHER-CARRIER", "STO")).carrier_code == "STO"
    simulator.refuse("ZTO", "超出派送范围", code="105")
    with pytest.raises(CarrierRefused, match="超出派送范围"):
        waybills.request(waybill_request("OL-AFTER", "ZTO"))
    simulator.resume("ZTO")
    assert re.fullmatch(WAYBILL_SHAPES["ZTO"], waybills.request(waybill_request("OL-AFTER", "ZTO")).waybill_no)


def test_no_usable_answer_gives_carrier_unavailable_and_a_retry_is_safe(simulator):
    with WaybillClient(f"http://127.0.0.1:{free_port()}", KDNIAO["business_id"], KDNIAO["app_key"]) as client:
        with pytest.raises(CarrierUnavailable, match="unreachable"):
            client.request(waybill_request())
    with WaybillClient(simulator.base_url, KDNIAO["business_id"], KDNIAO["app_key"], timeout=0.5) as client:
        simulator.fail_next("kdniao", kind="http500")
        with pytest.raises(CarrierUnavailable, match="HTTP 500"):
            client.request(waybill_request("OL-RETRY"))
        simulator.fail_next("kdniao", kind="not_json")
        with pytest.raises(CarrierUnavailable, match="not JSON"):
            client.request(waybill_request("OL-RETRY"))
        simulator.fail_next("kdniao", kind="timeout", delay=2)
        with pytest.raises(CarrierUnavailable):
            client.request(waybill_request("OL-RETRY"))  # the simulator issues it after the client gave up
        waybill = client.request(waybill_request("OL-RETRY"))
    assert [item.waybill_no for item in simulator.waybills()] == [waybill.waybill_no]


def test_characters_kdniao_refuses_are_replaced_and_requests_are_checked(simulator, waybills):
    receiver = {**RECEIVER, "Address": "文三路90号3#楼 A&B座 <东门> 100%"}
    waybills.request(waybill_request("OL-CHARS", receiver=receiver))
    [issued] = simulator.waybills()
    assert issued.receiver["Address"] == "文三路90号3＃楼 A＆B座 ＜东门＞ 100％"
    values = json.dumps(json.loads(issued.request_data)["Receiver"], ensure_ascii=False)
    assert not set("#&<>%+'\\") & set(values)
    with pytest.raises(ValueError, match="Mobile"):
        waybill_request(receiver={**RECEIVER, "Mobile": ""})
    with pytest.raises(ValueError, match="carrier_code"):
        waybill_request(carrier_code="DHL")
    with pytest.raises(ValueError, match="goods"):
        waybill_request(goods=[])


def test_client_reads_the_published_kdniao_answers():
    sent = []

    def answering(path):
        def handler(request: httpx.Request) -> httpx.Response:
            sent.append({key: values[0] for key, values in parse_qs(request.content.decode()).items()})
            return httpx.Response(200, text=fixture_text(path), headers={"Content-Type": "application/json"})
        return httpx.MockTransport(handler)

    success = fixture_json("kdniao/eorder_success.json")
    for path in ("kdniao/eorder_success.json", "kdniao/eorder_repeat.json"):
        with WaybillClient("https://api.kdniao.test", "1688001", "app-key", transport=answering(path)) as client:
            waybill = client.request(waybill_request("OL20251111000123"))
        assert (waybill.carrier_code, waybill.waybill_no, waybill.sort_code, waybill.label_html) == \
            ("SF", "SF1402318876543", "010WB-朝阳", success["PrintTemplate"])
    with WaybillClient("https://api.kdniao.test", "1688001", "app-key",
                       transport=answering("kdniao/eorder_refused.json")) as client:
        with pytest.raises(CarrierRefused) as refused:
            client.request(waybill_request("OL20251111000124"))
    assert (refused.value.reason, refused.value.code) == ("电子面单余额不足", "105")
    form = sent[0]
    assert (form["RequestType"], form["EBusinessID"], form["DataType"]) == ("1007", "1688001", "2")
    assert form["DataSign"] == data_sign(form["RequestData"], "app-key")


# ------------------------------------------------------------------------- Kuaidi100 fixtures

KUAIDI100_PUSHES = [
    # file, newest (step, flag), parcel (step, flags)
    ("push_state_0.json", ("in_transit", None), ("in_transit", set())),
    ("push_state_1.json", ("in_transit", None), ("in_transit", set())),
    ("push_state_2.json", (None, "problem"), ("in_transit", {"problem"})),
    ("push_state_3.json", ("delivered", None), ("delivered", set())),
    ("push_state_4.json", (None, "returned"), ("out_for_delivery", {"refused", "returning", "returned"})),
    ("push_state_5.json", ("out_for_delivery", None), ("out_for_delivery", set())),
    ("push_state_6.json", (None, "returning"), ("out_for_delivery", {"returning"})),
    ("push_state_7.json", ("in_transit", None), ("in_transit", set())),
    ("push_state_8.json", ("in_transit", None), ("in_transit", set())),
    ("push_state_14.json", (None, "refused"), ("out_for_delivery", {"refused"})),
    ("push_advanced_304.json", ("delivered", None), ("delivered", set())),
]


@pytest.mark.parametrize(("name", "newest", "parcel"), KUAIDI100_PUSHES)
def test_kuaidi100_push_fixture_parses(name, newest, parcel):
    raw = fixture_json(f"kuaidi100/{name}")
    events = parse_kuaidi100_fixture(f"kuaidi100/{name}")
    data = raw["lastResult"]["data"]
    assert len(events) == len(data)
    assert [item.description for item in events] == [entry["context"] for entry in reversed(data)]
    assert all(item.occurred_at.tzinfo is UTC for item in events)
    assert events == sorted(events, key=lambda item: item.occurred_at)
    oldest = datetime.strptime(data[-1]["time"], "%Y-%m-%d %H:%M:%S") - timedelta(hours=8)
    assert events[0].occurred_at == oldest.replace(tzinfo=UTC)  # Beijing is UTC+8, no daylight saving
    assert {item.waybill_no for item in events} == {raw["lastResult"]["nu"]}
    assert {item.source for item in events} == {"kuaidi100"}
    assert (events[-1].step, events[-1].flag) == newest
    assert events[-1].raw_status == raw["lastResult"]["state"]
    assert all(item.step in STEPS + (None,) and item.flag in FLAGS + (None,) for item in events)
    assert summarize(events) == parcel


def test_kuaidi100_carrier_codes_become_ours():
    assert {parse_kuaidi100_fixture(f"kuaidi100/{name}")[0].carrier for name in
            ("push_state_3.json", "push_state_2.json", "push_state_0.json", "push_state_4.json",
             "push_state_5.json", "push_state_8.json")} == {"SF", "YTO", "ZTO", "STO", "YD", "EMS"}


def test_kuaidi100_advanced_states_give_at_local_station():
    events = parse_kuaidi100_fixture("kuaidi100/push_advanced_304.json")
    assert [(item.raw_status, item.step) for item in events] == [
        ("1", "in_transit"), ("0", "in_transit"), ("1002", "in_transit"), ("1002", "in_transit"),
        ("1001", "at_local_station"), ("5", "out_for_delivery"), ("501", "at_local_station"), ("304", "delivered")]
    assert events[4].location == "北京,北京市,朝阳区"
    assert events[-1].location is None  # areaName null


def test_kuaidi100_newest_entry_refines_the_state_only_within_its_main_state():
    def newest(state: str, status: str, status_code: str | None = None) -> TrackingEvent:
        entry = {"time": "2025-11-13 06:31:23", "context": "快件已到达【北京朝阳区三里屯营业部】", "status": status}
        if status_code:
            entry["statusCode"] = status_code
        param = {"status": "polling", "lastResult": {"state": state, "nu": "YT1", "com": "yuantong", "data": [
            entry, {"time": "2025-11-12 06:00:00", "context": "在路上"}]}}
        events = parse_kuaidi100_push(signed_kuaidi100_param(param), FIXTURE_SALT)
        assert (events[0].step, events[0].flag, events[0].raw_status) == (None, None, "")  # no status: moves nothing
        return events[-1]

    assert newest("0", "到达派件城市").step == "at_local_station"  # 1001 is a sub-state of 0 在途
    assert newest("0", "在途", "1001").step == "at_local_station"
    assert newest("0", "派件").step == "in_transit"  # 派件 is not part of 在途: the overall state rules
    assert newest("5", "投柜或驿站").step == "at_local_station"
    assert (newest("2", "派件异常").flag, newest("2", "滞留").flag) == ("delivery_failed", "problem")


def test_kuaidi100_poll_fixtures():
    events = parse_kuaidi100_poll(fixture_json("kuaidi100/poll_answer.json"))
    assert len(events) == 5 and summarize(events) == ("out_for_delivery", set())
    assert events[-1].waybill_no == "YT7512345678903" and events[-1].carrier == "YTO"
    assert parse_kuaidi100_poll(fixture_json("kuaidi100/poll_no_result.json")) == []
    with pytest.raises(TrackingQueryError) as failed:
        parse_kuaidi100_poll(fixture_json("kuaidi100/poll_bad_sign.json"))
    assert (failed.value.code, failed.value.retryable) == ("503", False)


# ------------------------------------------------------------------------- 17TRACK fixtures

TRACK17_PUSHES = [
    # file, newest (step, flag), parcel (step, flags), event count
    ("push_NotFound.json", None, ("awaiting_pickup", set()), 0),
    ("push_InfoReceived.json", ("awaiting_pickup", None), ("awaiting_pickup", set()), 1),
    ("push_InTransit.json", ("in_transit", None), ("in_transit", set()), 5),
    ("push_AvailableForPickup.json", ("at_local_station", None), ("at_local_station", set()), 6),
    ("push_OutForDelivery.json", ("out_for_delivery", None), ("out_for_delivery", set()), 6),
    ("push_DeliveryFailure.json", (None, "delivery_failed"), ("out_for_delivery", {"delivery_failed"}), 7),
    ("push_Delivered.json", ("delivered", None), ("delivered", set()), 7),
    ("push_Exception.json", (None, "problem"), ("in_transit", {"problem"}), 5),
    ("push_Exception_Returned.json", (None, "returned"), ("out_for_delivery", {"returning", "returned"}), 8),
    ("push_Expired.json", (None, "expired"), ("in_transit", {"expired"}), 4),
]


@pytest.mark.parametrize(("name", "newest", "parcel", "count"), TRACK17_PUSHES)
def test_17track_push_fixture_parses(name, newest, parcel, count):
    raw = fixture_json(f"17track/{name}")
    events = parse_17track_fixture(f"17track/{name}")
    assert len(events) == count
    assert events == sorted(events, key=lambda item: item.occurred_at)
    assert {item.source for item in events} <= {"17track"} and {item.carrier for item in events} <= {"SF"}
    assert {item.waybill_no for item in events} <= {raw["data"]["number"]}
    if count:
        newest_raw = raw["data"]["track_info"]["latest_event"]
        assert events[-1].occurred_at == datetime.fromisoformat(newest_raw["time_iso"]).astimezone(UTC)
        assert events[-1].description == newest_raw["description"]
        assert (events[-1].step, events[-1].flag) == newest
        assert events[-1].raw_status == raw["data"]["track_info"]["latest_status"]["sub_status"]
    assert summarize(events) == parcel


def test_17track_events_without_stage_or_sub_status_move_nothing():
    body = fixture_json("17track/push_InTransit.json")
    older = body["data"]["track_info"]["tracking"]["providers"][0]["events"][1]
    older["stage"], older["sub_status"] = None, None
    events = parse_17track_push(*signed_17track_body(body), FIXTURE_KEY)
    moved = [item for item in events if item.occurred_at == datetime.fromisoformat(older["time_utc"])]
    assert [(item.step, item.flag, item.raw_status) for item in moved] == [(None, None, "")]
    assert summarize(events) == ("in_transit", set())


def test_17track_poll_fixture_has_events_and_one_rejected_number():
    events, rejected = parse_17track_poll(fixture_json("17track/poll_answer.json"))
    assert rejected == ["SF1402318879999"]
    assert (rejected[0].code, rejected[0].message) == (-18019909, "No tracking information at this time.")
    by_number = {}
    for item in events:
        by_number.setdefault(item.waybill_no, []).append(item)
    assert {number: summarize(items) for number, items in by_number.items()} == {
        "SF1402318870007": ("delivered", set()), "9812345678902": ("in_transit", set())}
    assert {number: items[0].carrier for number, items in by_number.items()} == {
        "SF1402318870007": "SF", "9812345678902": "EMS"}


def test_17track_notifications_other_than_updates_carry_no_events():
    assert parse_17track_fixture("17track/push_tracking_stopped.json") == []


# ------------------------------------------------------------------------- refusing what cannot be trusted

def test_bad_signatures_on_both_push_formats_are_refused():
    text = fixture_text("kuaidi100/push_state_3.json")
    for form in (kuaidi100_form(text, "another-salt"), {**kuaidi100_form(text), "param": text.replace("签收", "拒签")},
                 {"param": text}, {"param": text, "sign": ""}):
        with pytest.raises(TrackingPayloadError) as refused:
            parse_kuaidi100_push(form, FIXTURE_SALT)
        assert refused.value.code == "bad_signature"
    raw = (FIXTURES / "17track/push_Delivered.json").read_bytes()
    for body, sign in ((raw, track17_signature(raw, "another-key")), (raw.replace(b"Delivered", b"Exception"),
                                                                      track17_signature(raw, FIXTURE_KEY)),
                       (raw, None), (raw, "")):
        with pytest.raises(TrackingPayloadError) as refused:
            parse_17track_push(body, sign, FIXTURE_KEY)
        assert refused.value.code == "bad_signature"
    with pytest.raises(ValueError, match="salt"):
        parse_kuaidi100_push(kuaidi100_form(text, ""), "")
    with pytest.raises(ValueError, match="key"):
        parse_17track_push(raw, track17_signature(raw, ""), "")


def test_malformed_payloads_are_refused_with_a_code():
    def kuaidi100_code(param_text: str) -> str:
        with pytest.raises(TrackingPayloadError) as refused:
            parse_kuaidi100_push(kuaidi100_form(param_text), FIXTURE_SALT)
        return refused.value.code

    good = fixture_json("kuaidi100/push_state_0.json")
    assert kuaidi100_code("{not json") == "invalid_json"
    assert kuaidi100_code(json.dumps({"status": "polling"})) == "missing_field"
    assert kuaidi100_code(json.dumps({**good, "lastResult": {**good["lastResult"], "state": "99"}})) == \
        "unknown_status"
    assert kuaidi100_code(json.dumps({**good, "lastResult": {**good["lastResult"], "nu": ""}})) == "missing_field"
    assert kuaidi100_code(json.dumps({**good, "lastResult": {**good["lastResult"], "data": "none"}})) == \
        "invalid_field"

    def track17_code(body) -> str:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        with pytest.raises(TrackingPayloadError) as refused:
            parse_17track_push(raw, track17_signature(raw, FIXTURE_KEY), FIXTURE_KEY)
        return refused.value.code

    update = fixture_json("17track/push_InTransit.json")
    assert track17_code(b"<html>") == "invalid_json"
    assert track17_code({"event": "TRACKING_UPDATED"}) == "missing_field"
    assert track17_code({**update, "data": {**update["data"], "number": None}}) == "missing_field"
    track_info = update["data"]["track_info"]
    assert track17_code({**update, "data": {**update["data"], "track_info": {
        **track_info, "latest_status": {"status": "Teleported"}}}}) == "unknown_status"


@pytest.mark.parametrize("bad_time", ["2025/11/11 09:12:40", "2025-11-11T09:12:40", "2025-11-11 09:12", "", "昨天"])
def test_unparsable_kuaidi100_times_are_refused(bad_time):
    param = fixture_json("kuaidi100/push_state_5.json")
    param["lastResult"]["data"][2]["time"] = param["lastResult"]["data"][2]["ftime"] = bad_time
    with pytest.raises(TrackingPayloadError) as refused:
        parse_kuaidi100_push(signed_kuaidi100_param(param), FIXTURE_SALT)
    assert refused.value.code == ("missing_field" if bad_time == "" else "invalid_timestamp")


@pytest.mark.parametrize(("time_utc", "time_iso"), [
    ("2025-11-11T01:12:40", "2025-11-11T09:12:40+08:00"),  # naive UTC field
    (None, "2025-11-11T09:12:40"),  # no UTC field and a naive local time: the zone would be a guess
    ("11/11/2025 01:12", None),
    ("2025-13-40T01:12:40Z", None),
])
def test_naive_or_unparsable_17track_times_are_refused(time_utc, time_iso):
    body = fixture_json("17track/push_InTransit.json")
    target = body["data"]["track_info"]["tracking"]["providers"][0]["events"][2]
    target["time_utc"], target["time_iso"] = time_utc, time_iso
    with pytest.raises(TrackingPayloadError) as refused:
        parse_17track_push(*signed_17track_body(body), FIXTURE_KEY)
    assert refused.value.code == "invalid_timestamp"


# ------------------------------------------------------------------------- one status

def test_summarize_is_the_same_for_shuffled_and_duplicated_events():
    events = parse_kuaidi100_fixture("kuaidi100/push_state_4.json") + parse_17track_fixture(
        "17track/push_Exception_Returned.json")
    expected = summarize(events)
    assert expected == ("out_for_delivery", {"refused", "returning", "returned"})
    rng = random.Random(5)
    for _ in range(20):
        mixed = events + rng.sample(events, k=len(events) // 2)
        rng.shuffle(mixed)
        assert summarize(mixed) == expected
    reversed_delivered = list(reversed(parse_17track_fixture("17track/push_Delivered.json")))
    assert summarize(reversed_delivered + reversed_delivered) == ("delivered", set())


def test_summarize_rules():
    assert summarize([]) == ("awaiting_pickup", set())
    assert summarize([event(0, "problem only", flag="problem")]) == ("awaiting_pickup", {"problem"})
    # later delivered wins: over a stray later scan, and over the flags raised before it
    assert summarize([event(0, "picked up", "in_transit"), event(10, "signed", "delivered"),
                      event(20, "late scan", "in_transit")]) == ("delivered", set())
    assert summarize([event(0, "out", "out_for_delivery"), event(5, "returning", flag="returning"),
                      event(9, "moving", "in_transit"), event(30, "signed", "delivered")]) == ("delivered", set())
    # a flag persists over ordinary later events until the parcel is delivered
    assert summarize([event(0, "out", "out_for_delivery"), event(5, "failed", flag="delivery_failed"),
                      event(9, "out again", "out_for_delivery")]) == ("out_for_delivery", {"delivery_failed"})
    # a flag raised after delivery stays
    assert summarize([event(0, "signed", "delivered"), event(60, "returned", flag="returned")]) == \
        ("delivered", {"returned"})
    # expired is cleared by any later news
    assert summarize([event(0, "moving", "in_transit"), event(1000, "expired", flag="expired")]) == \
        ("in_transit", {"expired"})
    assert summarize([event(0, "moving", "in_transit"), event(1000, "expired", flag="expired"),
                      event(1001, "moving again", "in_transit")]) == ("in_transit", set())
    # the same time and text from two sources are two events; from one source, one
    same = event(3, "same", "in_transit")
    assert summarize([same, replace(same, step="out_for_delivery")]) == ("in_transit", set())
    assert summarize([same, replace(same, source="17track", step="out_for_delivery")]) == \
        ("out_for_delivery", set())


# ------------------------------------------------------------------------- simulator: polling

def test_kuaidi100_query_through_the_simulator(simulator, waybills):
    waybill = waybills.request(waybill_request("OL-POLL", "YTO"))
    with Kuaidi100Client(simulator.base_url, KUAIDI100["customer"], KUAIDI100["key"]) as client:
        assert client.query("yuantong", waybill.waybill_no) == []  # nothing yet: 查询无结果
        for _ in range(6):
            simulator.advance_parcel(waybill.waybill_no)
        events = client.query("YTO", waybill.waybill_no)
        truth = simulator.events_of(waybill.waybill_no)
        assert [(item.occurred_at, item.description) for item in events] == \
            [(item.occurred_at, item.description) for item in truth]
        assert [item.step for item in events] == ["in_transit", "in_transit", "in_transit", "at_local_station",
                                                  "out_for_delivery", "delivered"]
        assert summarize(events) == ("delivered", set())
        assert client.query("yuantong", "YT0000000000000") == []
        with pytest.raises(TrackingQueryError) as failed:
            client.query("no-such-company", waybill.waybill_no)
        assert failed.value.code == "400"
    with Kuaidi100Client(simulator.base_url, KUAIDI100["customer"], "wrong-key") as client:
        with pytest.raises(TrackingQueryError) as failed:
            client.query("yuantong", waybill.waybill_no)
        assert (failed.value.code, failed.value.retryable) == ("503", False)


def test_kuaidi100_checks_the_phone_for_sf(simulator):
    number = simulator.add_parcel("SF", receiver={"Mobile": "13698765432"})
    simulator.advance_parcel(number, "collected")
    with Kuaidi100Client(simulator.base_url, KUAIDI100["customer"], KUAIDI100["key"]) as client:
        with pytest.raises(TrackingQueryError) as failed:
            client.query("shunfeng", number)
        assert failed.value.code == "408"
        with pytest.raises(TrackingQueryError):
            client.query("shunfeng", number, phone="0000")
        assert len(client.query("shunfeng", number, phone="5432")) == 1
        assert len(client.query("SF", number, phone="13698765432")) == 1


def test_kuaidi100_query_failures_are_retryable_query_errors(simulator):
    with Kuaidi100Client(simulator.base_url, KUAIDI100["customer"], KUAIDI100["key"], timeout=2) as client:
        simulator.fail_next("kuaidi100", kind="http500")
        with pytest.raises(TrackingQueryError) as failed:
            client.query("yuantong", "YT0000000000000")
        assert (failed.value.code, failed.value.retryable) == ("http_500", True)
    with Kuaidi100Client(f"http://127.0.0.1:{free_port()}", "c", "k") as client:
        with pytest.raises(TrackingQueryError) as failed:
            client.query("yuantong", "YT0000000000000")
        assert (failed.value.code, failed.value.retryable) == ("unavailable", True)


def test_17track_query_through_the_simulator(simulator):
    moving = simulator.add_parcel("SF")
    for kind in ("collected", "in_transit", "arrived_local"):
        simulator.advance_parcel(moving, kind)
    quiet = simulator.add_parcel("EMS")
    with Track17Client(simulator.base_url, TRACK17["token"]) as client:
        events, rejected = client.get([moving, quiet, "SF9999999999999"])
        assert [(item.waybill_no, item.occurred_at) for item in events] == \
            [(moving, item.occurred_at) for item in simulator.events_of(moving)]
        assert summarize(events) == ("at_local_station", set())
        assert {item.carrier for item in events} == {"SF"}
        assert sorted(rejected) == sorted([quiet, "SF9999999999999"])
        assert {number: number.code for number in rejected} == {quiet: -18019909, "SF9999999999999": -18019902}
        many = [f"YT{index:013d}" for index in range(45)]  # more than one request's worth
        events, rejected = client.get(many)
        assert events == [] and rejected == many
    with Track17Client(simulator.base_url, "wrong-token") as client:
        with pytest.raises(TrackingQueryError) as failed:
            client.get([moving])
        assert (failed.value.code, failed.value.retryable) == ("-18010002", False)


# ------------------------------------------------------------------------- simulator: pushes

JOURNEY_WITH_TROUBLE = ("collected", "in_transit", "arrived_local", "out_for_delivery", "problem", "delivery_failed",
                        "out_for_delivery", "delivered")


def test_kuaidi100_pushes_verify_and_parse_end_to_end(simulator):
    number = simulator.add_parcel("ZTO")
    for kind in JOURNEY_WITH_TROUBLE[:6]:
        simulator.advance_parcel(number, kind)
    with RobotReceiver(answer=KUAIDI100_OK) as receiver:
        target = receiver.url + "/hooks/kuaidi100"
        [result] = simulator.push_kuaidi100(target)
        assert (result.waybill_no, result.status, result.accepted) == (number, 200, True)
        assert simulator.push_kuaidi100(target) == []  # nothing new for this target
        for kind in JOURNEY_WITH_TROUBLE[6:]:
            simulator.advance_parcel(number, kind)
        receiver.set_answer({"result": False, "returnCode": "500", "message": "失败"})
        assert [item.accepted for item in simulator.push_kuaidi100(target)] == [False]
        receiver.set_answer(KUAIDI100_OK)
        assert [item.accepted for item in simulator.push_kuaidi100(target)] == [True]  # sent again after a failure
        simulator.push_kuaidi100(target, waybill_no=number, resultv2="1")  # main states only
        requests = receiver.wait_for(4)
    forms = [{key: values[0] for key, values in parse_qs(item.raw.decode()).items()} for item in requests]
    assert requests[0].headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    first, last, basic = (parse_kuaidi100_push(form, KUAIDI100["salt"]) for form in (forms[0], forms[2], forms[3]))
    truth = simulator.events_of(number)
    assert [(item.occurred_at, item.description) for item in last] == \
        [(item.occurred_at, item.description) for item in truth]
    assert summarize(first) == ("out_for_delivery", {"problem", "delivery_failed"})
    assert summarize(last) == ("delivered", set())
    assert [item.step for item in last][:4] == ["in_transit", "in_transit", "at_local_station", "out_for_delivery"]
    assert [item.step for item in basic][:4] == ["in_transit", "in_transit", "in_transit", "out_for_delivery"]
    assert json.loads(forms[2]["param"])["status"] == "shutdown"
    with pytest.raises(TrackingPayloadError, match="bad_signature"):
        parse_kuaidi100_push(forms[2], "not-the-salt")


def test_17track_pushes_verify_and_parse_end_to_end(simulator):
    number = simulator.add_parcel("SF")
    for kind in JOURNEY_WITH_TROUBLE:
        simulator.advance_parcel(number, kind)
    returned = simulator.add_parcel("EMS")
    for kind in ("collected", "in_transit", "out_for_delivery", "refused", "returning", "returned"):
        simulator.advance_parcel(returned, kind)
    with RobotReceiver(answer={"code": 0}) as receiver:
        results = simulator.push_17track(receiver.url + "/hooks/17track")
        assert sorted((item.waybill_no, item.status, item.accepted) for item in results) == \
            sorted([(number, 200, True), (returned, 200, True)])
        simulator.push_17track(receiver.url + "/hooks/17track", key="someone-elses-key", waybill_no=number)
        requests = receiver.wait_for(3)
    parsed = {}
    for item in requests[:2]:
        assert item.headers["Content-Type"] == "application/json"
        events = parse_17track_push(item.raw, item.headers["sign"], TRACK17["key"])
        parsed[events[0].waybill_no] = events
    assert [(item.occurred_at, item.description, item.location) for item in parsed[number]] == \
        [(item.occurred_at, item.description, item.city) for item in simulator.events_of(number)]
    assert [item.step for item in parsed[number]] == ["in_transit", "in_transit", "at_local_station",
                                                      "out_for_delivery", None, None, "out_for_delivery", "delivered"]
    assert summarize(parsed[number]) == ("delivered", set())
    assert summarize(parsed[returned]) == ("out_for_delivery", {"refused", "returning", "returned"})
    with pytest.raises(TrackingPayloadError, match="bad_signature"):
        parse_17track_push(requests[2].raw, requests[2].headers["sign"], TRACK17["key"])


def test_both_platforms_tell_the_same_story(simulator):
    number = simulator.add_parcel("STO")
    for kind in ("collected", "in_transit", "in_transit", "arrived_local", "out_for_delivery", "delivery_failed"):
        simulator.advance_parcel(number, kind)
    with Kuaidi100Client(simulator.base_url, KUAIDI100["customer"], KUAIDI100["key"]) as kuaidi100, \
            Track17Client(simulator.base_url, TRACK17["token"]) as track17:
        from_kuaidi100 = kuaidi100.query("shentong", number)
        from_17track, _rejected = track17.get([number])
    assert [(item.step, item.flag) for item in from_kuaidi100] == [(item.step, item.flag) for item in from_17track]
    assert summarize(from_kuaidi100 + from_17track) == ("out_for_delivery", {"delivery_failed"})


# ------------------------------------------------------------------------- simulator: API and benchmark

def test_advance_parcel_follows_the_journey_and_refuses_nonsense(simulator):
    number = simulator.add_parcel("JD")
    kinds = [simulator.advance_parcel(number).kind for _ in range(6)]
    assert kinds == ["collected", "in_transit", "in_transit", "arrived_local", "out_for_delivery", "delivered"]
    times = [item.occurred_at for item in simulator.events_of(number)]
    assert times == sorted(times) and len(set(times)) == 6
    with pytest.raises(ValueError, match="finished"):
        simulator.advance_parcel(number)
    with pytest.raises(ValueError, match="kind"):
        simulator.advance_parcel(number, "teleported")
    with pytest.raises(KeyError):
        simulator.advance_parcel("JD0000000000000")
    failing = simulator.add_parcel("YD")
    for kind in ("collected", "out_for_delivery", "delivery_failed"):
        simulator.advance_parcel(failing, kind)
    assert simulator.advance_parcel(failing).kind == "out_for_delivery"
    at = datetime(2025, 11, 20, 8, 0, tzinfo=UTC)
    assert simulator.advance_parcel(failing, "delivered", at=at).occurred_at == at
    assert failing not in simulator.unfinished() and number not in simulator.unfinished()


def test_same_seed_same_waybills():
    numbers = []
    for _ in range(2):
        sim = CarrierSimulator(seed=42, start=START)
        numbers.append([sim.add_parcel(carrier) for carrier in ("SF", "ZTO", "EMS")])
    assert numbers[0] == numbers[1]
    assert CarrierSimulator(seed=43, start=START).add_parcel("SF") != numbers[0][0]


def test_bulk_events_each_add_one_event():
    sim = CarrierSimulator(seed=3, start=START)
    bodies = sim.bulk_events(20_000)  # its speed is measured by `orderloom bench tracking`, not here
    assert len(bodies) == 20_000
    seen = set()
    for number, body in bodies[:600]:
        raw, sign = sim.signed_17track(body)
        assert sign == track17_signature(raw, TRACK17["key"])
        events = parse_17track_push(raw, sign, TRACK17["key"])
        assert events[-1].waybill_no == number
        seen.update((item.waybill_no, item.occurred_at) for item in events)
    assert len(seen) == 600  # each body brings exactly one event the earlier ones did not
    assert len({(number, body["data"]["track_info"]["latest_event"]["time_utc"]) for number, body in bodies}) == 20_000


def test_run_serves_until_stopped_and_moves_parcels_along():
    port, stop = free_port(), threading.Event()
    thread = threading.Thread(target=run_simulator, kwargs={"port": port, "seed": 5, "stop": stop,
                                                            "step_seconds": 0.05}, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with WaybillClient(base_url, KDNIAO["business_id"], KDNIAO["app_key"], timeout=2) as client:
                    waybill = client.request(waybill_request("OL-RUN", "YTO"))
                break
            except CarrierUnavailable:
                assert time.monotonic() < deadline, "the simulator did not start"
                time.sleep(0.05)
        with Kuaidi100Client(base_url, KUAIDI100["customer"], KUAIDI100["key"]) as client:
            while summarize(client.query("yuantong", waybill.waybill_no))[0] != "delivered":
                assert time.monotonic() < deadline, "the parcel did not reach the receiver"
                time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()


PUSH_FIXTURES = sorted([f"kuaidi100/{p.name}" for p in (FIXTURES / "kuaidi100").glob("push_*.json")]
                       + [f"17track/{p.name}" for p in (FIXTURES / "17track").glob("push_*.json")])


@pytest.mark.parametrize("path", PUSH_FIXTURES)
def test_a_published_push_summarized_in_two_parts_gives_the_whole_summary(path):
    """The drain continues a parcel's stored summary with the events newer than it (`summarize(new, start=...)`)
    and reads each time text once (cached): on every published push, split at every point in time, the
    continued summary equals the summary of the whole history, and reading the push again gives the same
    events at the same aware UTC times."""
    read = parse_kuaidi100_fixture if path.startswith("kuaidi100/") else parse_17track_fixture
    events = read(path)
    assert events == read(path) and all(e.occurred_at.utcoffset().total_seconds() == 0 for e in events)
    whole = summarize(events)
    times = sorted({e.occurred_at for e in events})
    for cut in times[1:]:
        older = [e for e in events if e.occurred_at < cut]
        newer = [e for e in events if e.occurred_at >= cut]
        assert summarize(newer, start=summarize(older)) == whole, (path, cut)
