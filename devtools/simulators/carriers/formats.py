"""How the simulated carriers write things: waybill numbers in each carrier's shape, the e-waybill label, and a
parcel's events as Kuaidi100 (快递100) and 17TRACK render them (docs/CARRIERS.md)."""
import html
import json
import random
import re
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime

from shared.carriers.tracking import (BEIJING, KUAIDI100_COMPANIES, KUAIDI100_STATES, TRACK17_CARRIER_KEYS,
                                     TRACK17_V1_STATUSES)
from shared.carriers.waybills import CARRIER_NAMES

CARRIERS = tuple(CARRIER_NAMES)
# (prefix, random digits): SF + 13 digits, YT + 13, ZTO 14 digits starting with 7, STO 15 starting with 77,
# Yunda 15 starting with 4, JD + 13 digits, EMS 13 digits starting with 98.
WAYBILL_SHAPES = {"SF": ("SF", 13), "YTO": ("YT", 13), "ZTO": ("7", 13), "STO": ("77", 13), "YD": ("4", 14),
                  "JD": ("JD", 13), "EMS": ("98", 11)}
TRACK17_PROVIDER_NAMES = {"SF": "SF Express", "YTO": "YTO Express", "ZTO": "ZTO Express", "STO": "STO Express",
                          "YD": "Yunda Express", "JD": "JD Logistics", "EMS": "China EMS"}

KINDS = ("collected", "in_transit", "arrived_local", "out_for_delivery", "delivered", "problem", "returning",
         "returned", "refused", "delivery_failed")
JOURNEY = ("collected", "in_transit", "in_transit", "arrived_local", "out_for_delivery", "delivered")
FINAL_KINDS = frozenset({"delivered", "returned"})
# Kuaidi100 state code written for each kind (resultv2=4 codes; the main state is used without resultv2=4).
KUAIDI100_KIND_CODES = {"collected": "1", "in_transit": "1002", "arrived_local": "1001", "out_for_delivery": "5",
                        "delivered": "301", "problem": "208", "returning": "6", "returned": "4", "refused": "14",
                        "delivery_failed": "204"}
# 17TRACK (status, sub_status, stage) for each kind.
TRACK17_KIND_STATES = {
    "collected": ("InTransit", "InTransit_PickedUp", "PickedUp"),
    "in_transit": ("InTransit", "InTransit_Departure", "Departure"),
    "arrived_local": ("AvailableForPickup", "AvailableForPickup_Other", "AvailableForPickup"),
    "out_for_delivery": ("OutForDelivery", "OutForDelivery_Other", "OutForDelivery"),
    "delivered": ("Delivered", "Delivered_Other", "Delivered"),
    "problem": ("Exception", "Exception_Other", None),
    "returning": ("Exception", "Exception_Returning", "Returning"),
    "returned": ("Exception", "Exception_Returned", "Returned"),
    "refused": ("Exception", "Exception_Rejected", None),
    "delivery_failed": ("DeliveryFailure", "DeliveryFailure_Other", None),
}
TRACK17_MILESTONES = ("InfoReceived", "PickedUp", "Departure", "Arrival", "AvailableForPickup", "OutForDelivery",
                      "Delivered", "Returning", "Returned")
HUBS = (("广东省", "广州市", "广州转运中心"), ("湖北省", "武汉市", "武汉转运中心"), ("河南省", "郑州市", "郑州转运中心"),
        ("浙江省", "杭州市", "杭州转运中心"), ("上海市", "上海市", "上海转运中心"))
COURIERS = ("王师傅", "李师傅", "张师傅", "刘师傅", "陈师傅")
DEFAULT_SENDER = {"Name": "织机旗舰店", "Mobile": "13800138000", "ProvinceName": "广东省", "CityName": "深圳市",
                  "ExpAreaName": "南山区", "Address": "科技园南区科苑路15号"}
DEFAULT_RECEIVER = {"Name": "李雷", "Mobile": "13912345678", "ProvinceName": "北京市", "CityName": "北京市",
                    "ExpAreaName": "朝阳区", "Address": "三里屯街道工体北路8号院3号楼"}


@dataclass(frozen=True, slots=True)
class SimEvent:
    """One tracking event as it happened in the simulator: the ground truth both platforms render."""

    kind: str
    occurred_at: datetime  # aware UTC, whole seconds
    description: str
    province: str
    city: str


def waybill_number(carrier_code: str, rng: random.Random) -> str:
    prefix, digits = WAYBILL_SHAPES[carrier_code]
    return prefix + "".join(rng.choices("0123456789", k=digits))


def masked_mobile(mobile: str) -> str:
    mobile = str(mobile)
    return f"{mobile[:3]}****{mobile[-4:]}" if len(mobile) >= 8 else mobile


def short_province(province: str) -> str:
    for suffix in ("省", "市", "自治区", "特别行政区"):
        if province.endswith(suffix) and len(province) > len(suffix):
            return province[: -len(suffix)]
    return province


def sort_code(receiver: dict, rng: random.Random) -> str:
    """A MarkDestination (大头笔): sorting number, then destination city and district."""
    return f"{rng.randint(100, 999)}-{short_province(receiver['CityName'])} {receiver['ExpAreaName']}"


def barcode_text(value: str) -> str:
    """A Code128-like bar pattern drawn in text (start bars, 11 modules per character, stop bars). It looks like a
    barcode on the label; it is not a scannable Code 128 symbol."""
    modules = ["11010010000"]
    for character in value:
        code = (ord(character) - 32) % 95
        modules.append("1" + format((code * 37 + 11) % 512, "09b") + "0")
    modules.append("1100011101011")
    return "".join("█" if bit == "1" else " " for bit in "".join(modules))


def print_template(carrier_code: str, waybill_no: str, mark: str, sender: dict, receiver: dict,
                   goods: list[tuple[str, int]], parcels: int) -> str:
    """The small HTML label KDNiao returns as PrintTemplate; every value is escaped."""
    def place(address: dict) -> str:
        return html.escape(f"{address['ProvinceName']}{address['CityName']}{address['ExpAreaName']}"
                           f"{address['Address']}")

    goods_text = html.escape("，".join(f"{name}×{quantity}" for name, quantity in goods))
    return (
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(CARRIER_NAMES[carrier_code])} {html.escape(waybill_no)}</title>"
        "<style>.label{width:100mm;font-family:sans-serif;border:1px solid #000;padding:2mm}"
        ".mark{font-size:20pt;font-weight:bold}.barcode{font-family:monospace;white-space:pre;font-size:8pt;"
        "line-height:1;letter-spacing:-1px}.number{font-family:monospace;font-size:12pt}</style></head><body>"
        f"<div class=\"label\"><div class=\"carrier\">{html.escape(CARRIER_NAMES[carrier_code])}</div>"
        f"<div class=\"mark\">{html.escape(mark)}</div>"
        f"<div class=\"barcode\">{barcode_text(waybill_no)}</div>"
        f"<div class=\"number\">{html.escape(waybill_no)}</div>"
        f"<div class=\"to\">收 {html.escape(receiver['Name'])} {html.escape(masked_mobile(receiver['Mobile']))}"
        f"<br>{place(receiver)}</div>"
        f"<div class=\"from\">寄 {html.escape(sender['Name'])} {html.escape(masked_mobile(sender['Mobile']))}"
        f"<br>{place(sender)}</div>"
        f"<div class=\"goods\">{goods_text} 共{int(parcels)}件</div></div></body></html>"
    )


def event_text(kind: str, sender: dict, receiver: dict, rng: random.Random) -> tuple[str, str, str]:
    """(description, province, city) of a new event of `kind`, in the carriers' Chinese wording."""
    courier = rng.choice(COURIERS)
    phone = f"1{rng.randint(3, 9)}{rng.randint(0, 9)}****{rng.randint(1000, 9999)}"
    to_city, to_area = receiver["CityName"], receiver["ExpAreaName"]
    station = f"【{short_province(to_city)}{to_area}营业部】"
    if kind == "collected":
        return (f"【{short_province(sender['CityName'])}{sender['ExpAreaName']}营业部】已揽收，揽收员：{courier} {phone}",
                sender["ProvinceName"], sender["CityName"])
    if kind == "in_transit":
        province, city, hub = rng.choice(HUBS)
        return f"快件已到达【{hub}】，正发往【{short_province(to_city)}转运中心】", province, city
    texts = {
        "arrived_local": f"快件已到达{station}",
        "out_for_delivery": f"{station}派件员：{courier} 电话：{phone} 正在为您派件",
        "delivered": "快件已签收，签收人：本人。感谢使用，期待再次为您服务",
        "problem": f"快件在{station}滞留，原因：天气原因，我们将尽快为您派送",
        "returning": "快件因收件人要求退回，正在退回寄件人途中",
        "returned": "退回件已由寄件人签收",
        "refused": "收件人拒收，快件将退回寄件人",
        "delivery_failed": f"{station}派件不成功，原因：收件人电话无人接听，我们将再次派送",
    }
    if kind == "returned":
        return texts[kind], sender["ProvinceName"], sender["CityName"]
    return texts[kind], receiver["ProvinceName"], receiver["CityName"]


def beijing_text(moment: datetime) -> str:
    return moment.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def json_bytes(body) -> bytes:
    """The exact bytes the simulator sends (and signs): compact UTF-8 JSON."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _hash(value) -> int:
    return zlib.crc32(json_bytes(value)) - 2 ** 31


# ------------------------------------------------------------------------------------------------ Kuaidi100

def kuaidi100_result(waybill_no: str, carrier_code: str, events: list[SimEvent], advanced: bool) -> dict:
    """A Kuaidi100 result (a push's lastResult, or a query answer): data newest first, Beijing times. With `advanced`
    (resultv2=4) states are the advanced codes and entries carry statusCode; without, the ten main states."""
    data = []
    for event in reversed(events):
        code = KUAIDI100_KIND_CODES[event.kind]
        if not advanced:
            code = KUAIDI100_STATES[code][3]
        when = beijing_text(event.occurred_at)
        entry = {"time": when, "context": event.description, "ftime": when, "areaCode": None,
                 "areaName": f"{short_province(event.province)},{event.city}", "status": KUAIDI100_STATES[code][0]}
        if advanced:
            entry.update({"location": "", "statusCode": code})
        data.append(entry)
    state = "0"
    if events:
        state = KUAIDI100_KIND_CODES[events[-1].kind]
        state = state if advanced else KUAIDI100_STATES[state][3]
    signed = bool(events) and KUAIDI100_STATES[state][3] in {"3", "4"}
    return {"message": "ok", "nu": waybill_no, "ischeck": "1" if signed else "0", "condition": "F00",
            "com": KUAIDI100_COMPANIES[carrier_code], "status": "200", "state": state, "data": data}


COLLECTOR = re.compile(r"揽收员：(\S+) (\S+)")
DELIVERER = re.compile(r"派件员：(\S+) 电话：(\S+)")


def kuaidi100_courier_info(events: list[SimEvent]) -> dict:
    """Kuaidi100's `courierInfo` (needCourierInfo=true): the couriers it extracts from the trace's text, an empty
    string for what it cannot find (kuaidi100-api/java-demo, QueryTrackResp.courierInfo)."""
    info = {"pickupManName": "", "pickupManPhone": "", "deliveryManName": "", "deliveryManPhone": ""}
    for event in events:
        if (found := COLLECTOR.search(event.description)):
            info["pickupManName"], info["pickupManPhone"] = found.group(1), found.group(2)
        if (found := DELIVERER.search(event.description)):
            info["deliveryManName"], info["deliveryManPhone"] = found.group(1), found.group(2)
    return info


def kuaidi100_push_param(waybill_no: str, carrier_code: str, events: list[SimEvent], advanced: bool) -> dict:
    result = kuaidi100_result(waybill_no, carrier_code, events, advanced)
    return {"status": "shutdown" if result["ischeck"] == "1" else "polling", "billstatus": "got", "message": "",
            "autoCheck": "0", "comOld": "", "comNew": "", "lastResult": result}


# ------------------------------------------------------------------------------------------------ 17TRACK

def _address(province: str, city: str) -> dict:
    return {"country": "CN", "state": province, "city": city, "street": None, "postal_code": None,
            "coordinates": {"longitude": None, "latitude": None}}


def track17_event(event: SimEvent) -> dict:
    _status, sub_status, stage = TRACK17_KIND_STATES[event.kind]
    local = event.occurred_at.astimezone(BEIJING)
    return {"time_iso": local.isoformat(), "time_utc": utc_text(event.occurred_at),
            "time_raw": {"date": local.strftime("%Y-%m-%d"), "time": local.strftime("%H:%M:%S"),
                         "timezone": "+08:00"},
            "description": event.description, "location": event.city, "stage": stage, "sub_status": sub_status,
            "address": _address(event.province, event.city)}


def track17_track_info(carrier_code: str, sender: dict, receiver: dict, event_dicts: list[dict],
                       kinds: list[str], synced_at: str) -> dict:
    """track_info from already rendered events (oldest first) and their kinds; shared by pushes, polls and bulk."""
    if kinds:
        status, sub_status, _stage = TRACK17_KIND_STATES[kinds[-1]]
    else:
        status, sub_status = "NotFound", "NotFound_Other"
    reached: dict[str, dict] = {}
    for event in event_dicts:
        if event["stage"] and event["stage"] not in reached:
            reached[event["stage"]] = event
    newest_first = event_dicts[::-1]
    days = 0
    if event_dicts:
        first = datetime.fromisoformat(event_dicts[0]["time_utc"])
        last = datetime.fromisoformat(event_dicts[-1]["time_utc"])
        days = (last - first).days
    provider = {"provider": {"key": TRACK17_CARRIER_KEYS[carrier_code], "name": TRACK17_PROVIDER_NAMES[carrier_code],
                             "alias": TRACK17_PROVIDER_NAMES[carrier_code], "tel": None, "homepage": None,
                             "country": "CN"},
                "service_type": None, "latest_sync_status": "Success", "latest_sync_time": synced_at,
                "events_hash": _hash([event["time_utc"] for event in event_dicts]), "events": newest_first}
    return {
        "shipping_info": {"shipper_address": _address(sender["ProvinceName"], sender["CityName"]),
                          "recipient_address": _address(receiver["ProvinceName"], receiver["CityName"])},
        "latest_status": {"status": status, "sub_status": sub_status, "sub_status_descr": None},
        "latest_event": newest_first[0] if newest_first else None,
        "time_metrics": {"days_after_order": days, "days_of_transit": days, "days_of_transit_done": days,
                         "days_after_last_update": 0,
                         "estimated_delivery_date": {"source": None, "from": None, "to": None}},
        "milestone": [{"key_stage": stage, "time_iso": reached[stage]["time_iso"] if stage in reached else None,
                       "time_utc": reached[stage]["time_utc"] if stage in reached else None}
                      for stage in TRACK17_MILESTONES],
        "tracking": {"providers_hash": _hash([TRACK17_CARRIER_KEYS[carrier_code]]), "providers": [provider]},
    }


TRACK17_SHAPES = ("track_info", "latest_event", "v1")  # what push_17track can send; track_info is today's


def track17_push_body(waybill_no: str, carrier_code: str, track_info: dict, shape: str = "track_info",
                      events: list[SimEvent] | None = None) -> dict:
    """A TRACKING_UPDATED push. `track_info` (default): 17TRACK's current v2.2/v2.4 shape, the whole history in
    `tracking.providers[0].events` plus `latest_event`; `latest_event`: the same with no provider events, only the
    latest one; `v1`: the older `data.track` shape (z0/z1 events, `e` status code, carrier-local times)."""
    if shape == "v1":
        return {"event": "TRACKING_UPDATED", "data": {"number": waybill_no, "tag": None,
                                                      "track": track17_v1_track(carrier_code, events or [])}}
    if shape == "latest_event":
        track_info = dict(track_info, tracking={**track_info["tracking"], "providers": [
            {**provider, "events": []} for provider in track_info["tracking"]["providers"]]})
    return {"event": "TRACKING_UPDATED",
            "data": {"number": waybill_no, "carrier": TRACK17_CARRIER_KEYS[carrier_code], "param": None, "tag": None,
                     "track_info": track_info}}


def track17_v1_track(carrier_code: str, events: list[SimEvent]) -> dict:
    """The v1 `track` object: events newest first as {a: "yyyy-MM-dd HH:mm" Beijing time, c: location, z: text}."""
    v1_codes = {status: code for code, status in TRACK17_V1_STATUSES.items()}
    rendered = [{"a": event.occurred_at.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M"), "b": None, "c": event.city,
                 "d": "", "z": event.description} for event in reversed(events)]
    status = TRACK17_KIND_STATES[events[-1].kind][0] if events else "NotFound"
    return {"b": 301, "c": 301, "e": v1_codes[status], "f": -1, "w1": TRACK17_CARRIER_KEYS[carrier_code], "w2": 0,
            "is1": 1, "is2": 0, "z0": rendered[0] if rendered else {}, "z1": rendered, "z2": [], "z9": [], "yt": ""}
