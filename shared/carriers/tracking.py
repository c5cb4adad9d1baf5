"""Parcel tracking from Kuaidi100 (快递100) and 17TRACK, pushed or polled, read into one list of events and one
five-step status for people (docs/CARRIERS.md).

    events = parse_kuaidi100_push(request.form, salt)            # verifies `sign`; oldest event first
    events = parse_17track_push(request.get_data(), request.headers.get("sign"), key)
    step, flags = summarize(stored_events + events)              # ("out_for_delivery", {"problem"})

How an event gets its step and flag
-----------------------------------
Kuaidi100: every entry of `data` may carry its own status: `statusCode` (with resultv2=4, e.g. "1002" 干线) or the
status name (`status`: 在途, 揽收, 疑难, 签收, 退签, 派件, 退回, 转投, 清关, 拒签, or an advanced name such as
到达派件城市). The newest entry takes the overall `state` (the platform's verdict on the parcel), refined by the
entry's own code when that code is a sub-state of the same main state (state "0" and entry "1001" → 1001). Older
entries take their own code; an entry without one moves nothing (step and flag None). See KUAIDI100_STATES.
"At local station" comes from the advanced states 1001 到达派件城市 and 501 投柜或驿站, so subscribe and query with
resultv2=4; the free text of `context` is not searched for the receiver's city.

17TRACK: the newest event takes `latest_status` (status and sub_status); older events take their own `sub_status`,
else their `stage` (milestone key: PickedUp, Departure, Arrival, AvailableForPickup, ...); events with neither (stage
null) move nothing. AvailableForPickup is "at local station". See TRACK17_STATUSES, TRACK17_SUB_STATUSES and
TRACK17_STAGES. Two push shapes are read (docs/CARRIERS.md): the v2.2/v2.4 `data.track_info` (events in
`tracking.providers[].events`, plus `latest_event`, which is the only event when a push carries no provider events),
and the older v1 `data.track` (`z0` the latest event, `z1`/`z2` the origin and destination carriers' events, `e` the
parcel's status code; event times carry no zone and are read in the carrier's zone: Beijing for our carriers, an
unknown carrier's time is refused, never guessed).

Pushes are verified at receipt (`verify_kuaidi100_push`, `verify_17track_push`) and read later from the tracking inbox
(`read_kuaidi100_push`, `read_17track_push`); `parse_*_push` do both at once.

summarize(): duplicates (same time, description and source) count once; events are taken in time order; the step is
the latest step seen, except that once delivered it stays delivered; flags accumulate, a delivered event clears the
flags raised before it, and any later event clears `expired`. With no event with a step, the parcel is awaiting
pickup. `stalled` (no news for too long) needs the clock and the configured limits, so the caller adds it.
"""
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

import httpx

from shared.carriers.signing import kuaidi100_poll_sign, verify_kuaidi100_push_sign, verify_track17_sign

log = logging.getLogger("orderloom.carriers")

STEPS = ("awaiting_pickup", "in_transit", "at_local_station", "out_for_delivery", "delivered")
FLAGS = ("problem", "returning", "returned", "refused", "delivery_failed", "expired")
SOURCES = ("kuaidi100", "17track")
BEIJING = ZoneInfo("Asia/Shanghai")
KUAIDI100_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

# Our carrier code (KDNiao ShipperCode) → Kuaidi100 company code (`com`).
KUAIDI100_COMPANIES = {"SF": "shunfeng", "YTO": "yuantong", "ZTO": "zhongtong", "STO": "shentong", "YD": "yunda",
                       "JD": "jd", "EMS": "ems"}
# Our carrier code → 17TRACK carrier key. SF Express (100012) and China EMS (3013) are the keys seen in published
# 17TRACK examples; the other five are placeholders the simulator uses. Check them against 17TRACK's carrier list
# before relying on them: an unknown key is reported as "17track:<key>".
TRACK17_CARRIER_KEYS = {"SF": 100012, "EMS": 3013, "YTO": 990001, "ZTO": 990002, "STO": 990003, "YD": 990004,
                        "JD": 990005}

# Kuaidi100 state code → (name, step, flag, main state). Codes 0–8 and 14 are the ten main states; the others are
# the advanced states returned with resultv2=4, each a sub-state of the main state given last.
KUAIDI100_STATES = {
    "0": ("在途", "in_transit", None, "0"),
    "1": ("揽收", "in_transit", None, "1"),
    "2": ("疑难", None, "problem", "2"),
    "3": ("签收", "delivered", None, "3"),
    "4": ("退签", None, "returned", "4"),
    "5": ("派件", "out_for_delivery", None, "5"),
    "6": ("退回", None, "returning", "6"),
    "7": ("转投", "in_transit", None, "7"),
    "8": ("清关", "in_transit", None, "8"),
    "14": ("拒签", None, "refused", "14"),
    "101": ("已下单", "awaiting_pickup", None, "1"),
    "102": ("待揽收", "awaiting_pickup", None, "1"),
    "103": ("已揽收", "in_transit", None, "1"),
    "1001": ("到达派件城市", "at_local_station", None, "0"),
    "1002": ("干线", "in_transit", None, "0"),
    "1003": ("转递", "in_transit", None, "0"),
    "501": ("投柜或驿站", "at_local_station", None, "5"),
    "301": ("本人签收", "delivered", None, "3"),
    "302": ("派件异常后签收", "delivered", None, "3"),
    "303": ("代签", "delivered", None, "3"),
    "304": ("投柜或站签收", "delivered", None, "3"),
    "401": ("已销单", None, "problem", "4"),
    "201": ("超时未签收", None, "problem", "2"),
    "202": ("超时未更新", None, "problem", "2"),
    "203": ("拒收", None, "refused", "2"),
    "204": ("派件异常", None, "delivery_failed", "2"),
    "205": ("柜或驿站超时未取", None, "problem", "2"),
    "206": ("无法联系", None, "delivery_failed", "2"),
    "207": ("超区", None, "problem", "2"),
    "208": ("滞留", None, "problem", "2"),
    "209": ("破损", None, "problem", "2"),
    "210": ("销单", None, "problem", "2"),
    "10": ("待清关", "in_transit", None, "8"),
    "11": ("清关中", "in_transit", None, "8"),
    "12": ("已清关", "in_transit", None, "8"),
    "13": ("清关异常", None, "problem", "8"),
}
KUAIDI100_STATUS_NAMES = {name: code for code, (name, _step, _flag, _main) in KUAIDI100_STATES.items()}
KUAIDI100_STATUS_NAMES["转单"] = "7"  # the query documentation's name for 转投
KUAIDI100_RETRYABLE = frozenset({"501", "502"})  # server error, server busy

# 17TRACK latest_status.status → (step, flag); sub-statuses refine their status; stages are per-event milestones.
TRACK17_STATUSES = {
    "NotFound": ("awaiting_pickup", None),
    "InfoReceived": ("awaiting_pickup", None),
    "InTransit": ("in_transit", None),
    "AvailableForPickup": ("at_local_station", None),
    "OutForDelivery": ("out_for_delivery", None),
    "DeliveryFailure": (None, "delivery_failed"),
    "Delivered": ("delivered", None),
    "Exception": (None, "problem"),
    "Expired": (None, "expired"),
}
TRACK17_SUB_STATUSES = {
    "InTransit_CustomsRequiringInformation": ("in_transit", "problem"),
    "DeliveryFailure_Rejected": (None, "refused"),
    "Exception_Returning": (None, "returning"),
    "Exception_Returned": (None, "returned"),
    "Exception_Rejected": (None, "refused"),
}
TRACK17_STAGES = {
    "InfoReceived": ("awaiting_pickup", None),
    "PickedUp": ("in_transit", None),
    "Departure": ("in_transit", None),
    "Arrival": ("in_transit", None),
    "AvailableForPickup": ("at_local_station", None),
    "OutForDelivery": ("out_for_delivery", None),
    "Delivered": ("delivered", None),
    "Returning": (None, "returning"),
    "Returned": (None, "returned"),
}
# 17TRACK v1 `track.e` (the parcel's status code) → the v2 status it became.
TRACK17_V1_STATUSES = {0: "NotFound", 10: "InTransit", 20: "Expired", 30: "AvailableForPickup", 35: "DeliveryFailure",
                       40: "Delivered", 50: "Exception"}
TRACK17_V1_TIME_FORMAT = "%Y-%m-%d %H:%M"
TRACK17_MAX_NUMBERS = 40  # numbers per gettrackinfo request
TRACK17_NOT_REGISTERED = -18019902
TRACK17_NO_INFO_YET = -18019909


@dataclass(frozen=True, slots=True)
class TrackingEvent:
    waybill_no: str
    carrier: str  # our carrier code (SF, YTO, ...), or the platform's own code when it is not one of ours
    occurred_at: datetime  # aware, UTC
    description: str
    location: str | None
    source: str  # "kuaidi100" or "17track"
    raw_status: str  # the platform's status the step and flag were read from ("" when the event had none)
    step: str | None  # one of STEPS, or None when the event does not move the step
    flag: str | None  # one of FLAGS, or None


class TrackingPayloadError(ValueError):
    """A pushed or polled payload that cannot be read faithfully; `code` says why (invalid_json, bad_signature,
    missing_field, invalid_field, invalid_timestamp, unknown_status)."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code


class TrackingQueryError(Exception):
    """A tracking query the platform answered with an error, or did not answer. `code` is the platform's error code
    (e.g. Kuaidi100 "503" bad sign, "408" phone check failed; 17TRACK -18010002 bad token) or "unavailable";
    `retryable` says whether asking again later can help."""

    def __init__(self, message: str, code: str, retryable: bool):
        super().__init__(f"{message} (code {code})")
        self.code = code
        self.retryable = retryable


class RejectedNumber(str):
    """A tracking number 17TRACK rejected; compares as the number, with the platform's error `code` and `message`."""

    code: int | None
    message: str

    def __new__(cls, number: str, code: int | None = None, message: str = ""):
        self = super().__new__(cls, number)
        self.code, self.message = code, message
        return self


# ------------------------------------------------------------------------------------------------ shared readers

def _loads(text: str | bytes, what: str):
    try:
        return json.loads(text)
    except (TypeError, ValueError) as exc:
        raise TrackingPayloadError("invalid_json", f"{what} is not JSON: {exc}") from None


def _object(value, what: str) -> dict:
    if value is None:
        raise TrackingPayloadError("missing_field", f"{what} is missing")
    if not isinstance(value, dict):
        raise TrackingPayloadError("invalid_field", f"{what} is not an object")
    return value


def _list(value, what: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise TrackingPayloadError("invalid_field", f"{what} is not a list")
    return value


def _text(container: dict, name: str, what: str) -> str:
    value = container.get(name)
    if value is None or str(value).strip() == "":
        raise TrackingPayloadError("missing_field", f"{what}.{name} is missing")
    return str(value).strip()


def _optional_text(value) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


# A push repeats its parcel's whole history, so most of its times were read before: each distinct text is parsed
# once (the cache keeps the newest few thousand), which takes the per-event datetime conversion off a batch.
@lru_cache(maxsize=8192)
def _parsed_time(text: str, time_format: str | None, zone: ZoneInfo | None) -> datetime | str:
    """Aware UTC from `text`, or the reason it cannot be read ("format", "offset")."""
    try:
        moment = datetime.strptime(text, time_format) if time_format else datetime.fromisoformat(text)
    except ValueError:
        return "format"
    if zone is not None:
        return moment.replace(tzinfo=zone).astimezone(UTC)
    if moment.tzinfo is None or moment.utcoffset() is None:
        return "offset"
    return moment.astimezone(UTC)


def _beijing_time(text, what: str) -> datetime:
    """Kuaidi100's `yyyy-MM-dd HH:mm:ss`, Beijing time, as aware UTC."""
    moment = _parsed_time(str(text).strip(), KUAIDI100_TIME_FORMAT, BEIJING)
    if moment == "format":
        raise TrackingPayloadError("invalid_timestamp", f"{what} {text!r} is not yyyy-MM-dd HH:mm:ss")
    return moment


def _iso_time(text, what: str) -> datetime:
    """ISO 8601 with an offset (or Z) as aware UTC; a time without an offset is refused, not guessed."""
    moment = _parsed_time(str(text).strip(), None, None)
    if moment == "format":
        raise TrackingPayloadError("invalid_timestamp", f"{what} {text!r} is not ISO 8601")
    if moment == "offset":
        raise TrackingPayloadError("invalid_timestamp", f"{what} {text!r} has no UTC offset")
    return moment


def _check_secret(secret: str, name: str) -> None:
    if not secret:
        raise ValueError(f"a {name} is required to verify pushes; without one anyone could forge them")


# ------------------------------------------------------------------------------------------------ Kuaidi100

def _kuaidi100_code(entry: dict) -> str | None:
    """The entry's own state code: statusCode (resultv2=4), else the status name; None when it has neither."""
    code = str(entry.get("statusCode") or "").strip()
    if code in KUAIDI100_STATES:
        return code
    return KUAIDI100_STATUS_NAMES.get(str(entry.get("status") or "").strip())


def _kuaidi100_carrier(com: str) -> str:
    for code, company in KUAIDI100_COMPANIES.items():
        if company == com:
            return code
    return com


def _kuaidi100_events(result: dict, what: str) -> list[TrackingEvent]:
    """Events of a Kuaidi100 result (`lastResult` of a push, or a query answer), oldest first."""
    waybill_no = _text(result, "nu", what)
    state = _text(result, "state", what)
    if state not in KUAIDI100_STATES:
        raise TrackingPayloadError("unknown_status", f"{what}.state {state!r} is not a Kuaidi100 state")
    carrier = _kuaidi100_carrier(str(result.get("com") or "").strip())
    entries = []
    for index, entry in enumerate(_list(result.get("data"), f"{what}.data")):
        entry = _object(entry, f"{what}.data[{index}]")
        when = entry.get("time") or entry.get("ftime")
        if not when:
            raise TrackingPayloadError("missing_field", f"{what}.data[{index}].time is missing")
        entries.append((_beijing_time(when, f"{what}.data[{index}].time"), index, entry))
    # `data` is newest first; entries at the same second keep that order (the first listed is the newer).
    entries.sort(key=lambda item: (item[0], -item[1]))
    events = []
    for position, (occurred_at, _index, entry) in enumerate(entries):
        own = _kuaidi100_code(entry)
        if position == len(entries) - 1:
            code = own if own is not None and KUAIDI100_STATES[own][3] == KUAIDI100_STATES[state][3] else state
        else:
            code = own
        _name, step, flag, _main = KUAIDI100_STATES[code] if code is not None else (None, None, None, None)
        events.append(TrackingEvent(
            waybill_no=waybill_no, carrier=carrier, occurred_at=occurred_at,
            description=str(entry.get("context") or "").strip(),
            location=_optional_text(entry.get("areaName")) or _optional_text(entry.get("location")),
            source="kuaidi100", raw_status=code if code is not None else str(entry.get("status") or "").strip(),
            step=step, flag=flag))
    return events


def verify_kuaidi100_push(form: dict[str, str], salt: str) -> None:
    """Raise TrackingPayloadError unless the push's `sign` is md5(param + salt)."""
    _check_secret(salt, "Kuaidi100 salt")
    param = form.get("param")
    if param is None:
        raise TrackingPayloadError("missing_field", "form field param is missing")
    if not verify_kuaidi100_push_sign(param, salt, form.get("sign")):
        raise TrackingPayloadError("bad_signature", "sign is not md5(param + salt)")


def read_kuaidi100_push(form: dict[str, str]) -> list[TrackingEvent]:
    """A verified Kuaidi100 push (form fields) as events, oldest first; no data (status=abort) gives none."""
    param = form.get("param")
    if param is None:
        raise TrackingPayloadError("missing_field", "form field param is missing")
    body = _object(_loads(param, "param"), "param")
    return _kuaidi100_events(_object(body.get("lastResult"), "param.lastResult"), "lastResult")


def parse_kuaidi100_push(form: dict[str, str], salt: str) -> list[TrackingEvent]:
    """A Kuaidi100 subscription push (form fields `param` and `sign`) as events, oldest first; the sign is checked
    before anything is read. A push without data (e.g. status=abort, 3天查询无记录) gives no events."""
    verify_kuaidi100_push(form, salt)
    return read_kuaidi100_push(form)


def parse_kuaidi100_poll(answer: dict) -> list[TrackingEvent]:
    """A Kuaidi100 real-time query answer as events, oldest first. 查询无结果 (returnCode 500: the carrier has nothing
    yet) gives no events; any other error answer raises TrackingQueryError."""
    answer = _object(answer, "answer")
    return_code = str(answer.get("returnCode") or "").strip()
    if answer.get("result") is False or (return_code and return_code != "200"):
        if return_code == "500":
            return []
        raise TrackingQueryError(f"Kuaidi100 refused the query: {answer.get('message') or 'no message'}",
                                 return_code or "unknown", return_code in KUAIDI100_RETRYABLE)
    return _kuaidi100_events(answer, "answer")


@dataclass(frozen=True, slots=True)
class CourierInfo:
    """The couriers Kuaidi100 extracted from a parcel's trace (`courierInfo`, asked with needCourierInfo=true):
    who collected it and who delivers it. A phone may hold several numbers, comma-separated, as Kuaidi100 gives
    them; what it could not extract is None (Kuaidi100 sends an empty string)."""

    pickup_name: str | None
    pickup_phone: str | None
    delivery_name: str | None
    delivery_phone: str | None

    @property
    def current(self) -> tuple[str | None, str | None]:
        """The courier to call now: the delivery courier once named, else the one who collected it."""
        if self.delivery_name or self.delivery_phone:
            return self.delivery_name, self.delivery_phone
        return self.pickup_name, self.pickup_phone


def read_kuaidi100_courier(answer: dict) -> CourierInfo | None:
    """The `courierInfo` of a Kuaidi100 query answer (pickupManName, pickupManPhone, deliveryManName,
    deliveryManPhone; kuaidi100-api/java-demo QueryTrackResp/CourierInfo), or None when it names nobody."""
    info = answer.get("courierInfo") if isinstance(answer, dict) else None
    if not isinstance(info, dict):
        return None
    values = [_optional_text(info.get(name)) for name in
              ("pickupManName", "pickupManPhone", "deliveryManName", "deliveryManPhone")]
    values = [value[:60] if value else None for value in values]
    return CourierInfo(*values) if any(values) else None


class Kuaidi100Client:
    """Kuaidi100's real-time query (POST {base}/poll/query.do). Asks for advanced states (resultv2=4)."""

    def __init__(self, base_url: str, customer: str, key: str, timeout: float = 10,
                 transport: httpx.BaseTransport | None = None):
        self.url = f"{base_url.rstrip('/')}/poll/query.do"
        self.customer = customer
        self.key = key
        self._http = httpx.Client(timeout=timeout, transport=transport)

    def query(self, com: str, num: str, phone: str | None = None) -> list[TrackingEvent]:
        """Events of one waybill, oldest first; [] when the carrier has nothing yet. `com` is a Kuaidi100 company
        code or one of our carrier codes; `phone` (receiver's or sender's) is required by SF and ZTO."""
        param = {"com": KUAIDI100_COMPANIES.get(com, com), "num": num, "resultv2": "4"}
        if phone:
            param["phone"] = phone
        param_text = json.dumps(param, ensure_ascii=False, separators=(",", ":"))
        form = {"customer": self.customer, "sign": kuaidi100_poll_sign(param_text, self.key, self.customer),
                "param": param_text}
        return parse_kuaidi100_poll(_post_json(self._http, self.url, data=form))

    def query_courier(self, com: str, num: str, phone: str | None = None) -> tuple[list[TrackingEvent],
                                                                                     CourierInfo | None]:
        """As query, also asking Kuaidi100 to extract the couriers from the trace (needCourierInfo=true)."""
        param = {"com": KUAIDI100_COMPANIES.get(com, com), "num": num, "resultv2": "4", "needCourierInfo": True}
        if phone:
            param["phone"] = phone
        param_text = json.dumps(param, ensure_ascii=False, separators=(",", ":"))
        form = {"customer": self.customer, "sign": kuaidi100_poll_sign(param_text, self.key, self.customer),
                "param": param_text}
        answer = _post_json(self._http, self.url, data=form)
        return parse_kuaidi100_poll(answer), read_kuaidi100_courier(answer)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Kuaidi100Client":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


# ------------------------------------------------------------------------------------------------ 17TRACK

def _track17_meaning(sub_status, stage, status=None) -> tuple[str | None, str | None]:
    sub_status = str(sub_status or "").strip()
    if sub_status in TRACK17_SUB_STATUSES:
        return TRACK17_SUB_STATUSES[sub_status]
    family = sub_status.split("_", 1)[0]
    if family in TRACK17_STATUSES:
        return TRACK17_STATUSES[family]
    if stage in TRACK17_STAGES:
        return TRACK17_STAGES[stage]
    return TRACK17_STATUSES.get(status, (None, None))


def _track17_carrier(key) -> str:
    for code, carrier_key in TRACK17_CARRIER_KEYS.items():
        if str(carrier_key) == str(key):
            return code
    return f"17track:{key}"


def _track17_events(number: str, carrier_key, track_info: dict, what: str) -> list[TrackingEvent]:
    latest = track_info.get("latest_status")
    latest = _object(latest, f"{what}.latest_status") if latest is not None else {}
    status = str(latest.get("status") or "NotFound")
    if status not in TRACK17_STATUSES:
        raise TrackingPayloadError("unknown_status", f"{what}.latest_status.status {status!r} is not a 17TRACK status")
    carrier = _track17_carrier(carrier_key)
    tracking = track_info.get("tracking")
    tracking = _object(tracking, f"{what}.tracking") if tracking is not None else {}
    providers = _list(tracking.get("providers"), f"{what}.tracking.providers")
    entries = []
    for p_index, provider in enumerate(providers):
        provider = _object(provider, f"{what}.tracking.providers[{p_index}]")
        for e_index, event in enumerate(_list(provider.get("events"), f"{what}.providers[{p_index}].events")):
            where = f"{what}.providers[{p_index}].events[{e_index}]"
            event = _object(event, where)
            when = event.get("time_utc") or event.get("time_iso")
            if not when:
                raise TrackingPayloadError("missing_field", f"{where}.time_utc is missing")
            entries.append((_iso_time(when, f"{where}.time_utc"), len(entries), event))
    latest_event = track_info.get("latest_event")
    if isinstance(latest_event, dict) and (latest_event.get("time_utc") or latest_event.get("time_iso")):
        when = _iso_time(latest_event.get("time_utc") or latest_event.get("time_iso"), f"{what}.latest_event.time_utc")
        text = str(latest_event.get("description") or "").strip()
        if not any(moment == when and str(event.get("description") or "").strip() == text
                   for moment, _index, event in entries):  # a push with only the latest event still has it
            entries.append((when, len(entries), latest_event))
    entries.sort(key=lambda item: (item[0], -item[1]))  # each provider lists newest first
    events = []
    for position, (occurred_at, _index, event) in enumerate(entries):
        if position == len(entries) - 1:
            sub_status = latest.get("sub_status")
            step, flag = _track17_meaning(sub_status, None, status)
            raw_status = str(sub_status or status)
        else:
            step, flag = _track17_meaning(event.get("sub_status"), event.get("stage"))
            raw_status = str(event.get("sub_status") or event.get("stage") or "")
        events.append(TrackingEvent(
            waybill_no=number, carrier=carrier, occurred_at=occurred_at,
            description=str(event.get("description") or "").strip(), location=_optional_text(event.get("location")),
            source="17track", raw_status=raw_status, step=step, flag=flag))
    return events


def _track17_v1_time(text, zone: ZoneInfo | None, what: str) -> datetime:
    """A v1 event time `yyyy-MM-dd HH:mm` (the carrier's local time, no zone) as aware UTC."""
    if zone is None:
        raise TrackingPayloadError("invalid_timestamp", f"{what} {text!r} has no zone and the carrier's zone is unknown")
    moment = _parsed_time(str(text).strip(), TRACK17_V1_TIME_FORMAT, zone)
    if moment == "format":
        raise TrackingPayloadError("invalid_timestamp", f"{what} {text!r} is not yyyy-MM-dd HH:mm")
    return moment


def _track17_v1_events(number: str, carrier_key, track: dict, what: str) -> list[TrackingEvent]:
    """The older `track` shape: z1 (origin carrier) and z2 (destination carrier) events, newest first, z0 the
    latest; `e` the parcel's status, which only the newest event takes (v1 events carry no status of their own)."""
    carrier_key = carrier_key if carrier_key is not None else track.get("w1")
    carrier = _track17_carrier(carrier_key)
    zone = BEIJING if carrier in TRACK17_CARRIER_KEYS else None  # our carriers are domestic, in Beijing time
    try:
        status = TRACK17_V1_STATUSES[int(track.get("e") or 0)]
    except (TypeError, ValueError, KeyError):
        raise TrackingPayloadError("unknown_status", f"{what}.e {track.get('e')!r} is not a 17TRACK v1 status") from None
    raw = []
    for group in ("z1", "z2"):
        for index, event in enumerate(_list(track.get(group), f"{what}.{group}")):
            raw.append((f"{what}.{group}[{index}]", _object(event, f"{what}.{group}[{index}]")))
    if not raw and isinstance(track.get("z0"), dict) and track["z0"].get("a"):
        raw.append((f"{what}.z0", track["z0"]))
    entries, seen = [], set()
    for where, event in raw:
        when = _track17_v1_time(event.get("a"), zone, f"{where}.a")
        text = str(event.get("z") or "").strip()
        if (when, text) in seen:  # the destination carrier may repeat the origin carrier's last event
            continue
        seen.add((when, text))
        entries.append((when, len(entries), event))
    entries.sort(key=lambda item: (item[0], -item[1]))
    events = []
    for position, (occurred_at, _index, event) in enumerate(entries):
        newest = position == len(entries) - 1
        step, flag = TRACK17_STATUSES[status] if newest else (None, None)
        events.append(TrackingEvent(
            waybill_no=number, carrier=carrier, occurred_at=occurred_at, description=str(event.get("z") or "").strip(),
            location=_optional_text(event.get("c")) or _optional_text(event.get("d")), source="17track",
            raw_status=f"v1:{track.get('e')}" if newest else "", step=step, flag=flag))
    return events


def verify_17track_push(raw_body: bytes, headers_sign: str | None, key: str) -> None:
    """Raise TrackingPayloadError unless the `sign` header is sha256(body + "/" + key)."""
    _check_secret(key, "17TRACK security key")
    if not verify_track17_sign(raw_body, key, headers_sign):
        raise TrackingPayloadError("bad_signature", "sign is not sha256(body + '/' + key)")


def read_17track_push(raw_body: bytes | str) -> list[TrackingEvent]:
    """A verified 17TRACK webhook body as events, oldest first, in either shape (`track_info` or the older
    `track`). Notifications other than TRACKING_UPDATED (e.g. TRACKING_STOPPED) carry no events: []."""
    body = _object(_loads(raw_body, "body"), "body")
    if body.get("event") != "TRACKING_UPDATED":
        return []
    data = _object(body.get("data"), "data")
    number = _text(data, "number", "data")
    if data.get("track_info") is None and data.get("track") is not None:
        return _track17_v1_events(number, data.get("carrier"), _object(data.get("track"), "data.track"), "data.track")
    return _track17_events(number, data.get("carrier"), _object(data.get("track_info"), "data.track_info"),
                           "data.track_info")


def parse_17track_push(raw_body: bytes, headers_sign: str | None, key: str) -> list[TrackingEvent]:
    """A 17TRACK webhook (raw body and its `sign` header) as events, oldest first; the sign is checked before the
    body is read."""
    verify_17track_push(raw_body, headers_sign, key)
    return read_17track_push(raw_body)


def push_waybill_no(source: str, body: str) -> str | None:
    """The tracking number a stored push is about, read cheaply for search (None when it cannot be read)."""
    try:
        if source == "kuaidi100":
            from urllib.parse import parse_qs

            param = json.loads(parse_qs(body).get("param", ["{}"])[0])
            value = (param.get("lastResult") or {}).get("nu")
        else:
            value = (json.loads(body).get("data") or {}).get("number")
    except (ValueError, AttributeError, TypeError):
        return None
    return str(value)[:64] if value else None


def parse_17track_poll(answer: dict) -> tuple[list[TrackingEvent], list[RejectedNumber]]:
    """A gettrackinfo answer: the accepted numbers' events (oldest first per number) and the rejected numbers
    (RejectedNumber: -18019909 nothing yet, -18019902 not registered, ...)."""
    answer = _object(answer, "answer")
    data = answer.get("data") if isinstance(answer.get("data"), dict) else {}
    if str(answer.get("code")) != "0":
        errors = data.get("errors") or [{}]
        error = errors[0] if isinstance(errors[0], dict) else {}
        code = str(error.get("code") or answer.get("code"))
        raise TrackingQueryError(f"17TRACK refused the query: {error.get('message') or 'no message'}", code,
                                 code in {"-18010003", "-18010014"})
    events = []
    for index, item in enumerate(_list(data.get("accepted"), "data.accepted")):
        where = f"data.accepted[{index}]"
        item = _object(item, where)
        number = _text(item, "number", where)
        track_info = item.get("track_info")
        if track_info is not None:
            events.extend(_track17_events(number, item.get("carrier"), _object(track_info, where), where))
    rejected = []
    for index, item in enumerate(_list(data.get("rejected"), "data.rejected")):
        item = _object(item, f"data.rejected[{index}]")
        error = item.get("error") if isinstance(item.get("error"), dict) else {}
        rejected.append(RejectedNumber(_text(item, "number", f"data.rejected[{index}]"), error.get("code"),
                                       str(error.get("message") or "")))
    return events, rejected


class Track17Client:
    """17TRACK's gettrackinfo (POST {base}/track/v2.2/gettrackinfo, header 17token), 40 numbers per request."""

    def __init__(self, base_url: str, token: str, timeout: float = 10, transport: httpx.BaseTransport | None = None):
        self.url = f"{base_url.rstrip('/')}/track/v2.2/gettrackinfo"
        self.token = token
        self._http = httpx.Client(timeout=timeout, transport=transport)

    def get(self, numbers: Iterable) -> tuple[list[TrackingEvent], list[RejectedNumber]]:
        """Events and rejected numbers for `numbers`: tracking numbers, or (number, carrier key) pairs."""
        items = [{"number": str(item[0]), "carrier": int(item[1])} if isinstance(item, (tuple, list))
                 else {"number": str(item)} for item in numbers]
        events, rejected = [], []
        for start in range(0, len(items), TRACK17_MAX_NUMBERS):
            answer = _post_json(self._http, self.url, json=items[start:start + TRACK17_MAX_NUMBERS],
                                headers={"17token": self.token}, error_bodies=True)
            chunk_events, chunk_rejected = parse_17track_poll(answer)
            events.extend(chunk_events)
            rejected.extend(chunk_rejected)
        return events, rejected

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Track17Client":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _post_json(http: httpx.Client, url: str, *, error_bodies: bool = False, **kwargs) -> dict:
    """POST and read the JSON answer. With error_bodies, a 4xx answer carrying the platform's JSON error is returned
    for the parser to report (17TRACK answers a bad token with HTTP 401 and an error body)."""
    try:
        response = http.post(url, **kwargs)
    except httpx.HTTPError as exc:
        raise TrackingQueryError(f"tracking service unreachable: {type(exc).__name__}: {exc}", "unavailable",
                                 True) from exc
    status = response.status_code
    http_error = TrackingQueryError(f"HTTP {status}: {response.text[:200]}", f"http_{status}",
                                    status >= 500 or status == 429)
    if status >= 500 or status == 429 or (status >= 400 and not error_bodies):
        raise http_error
    try:
        answer = response.json()
    except ValueError:
        if status >= 400:
            raise http_error from None
        raise TrackingQueryError(f"answer is not JSON: {response.text[:200]!r}", "unavailable", True) from None
    if not isinstance(answer, dict):
        raise TrackingQueryError(f"answer is not a JSON object: {response.text[:200]!r}", "unavailable", True)
    return answer


# ------------------------------------------------------------------------------------------------ one status

def summarize(events: Iterable[TrackingEvent], start: tuple[str, set[str]] | None = None) -> tuple[str, set[str]]:
    """The parcel's current step and exception flags from its events, in any order, duplicates allowed.

    `start` continues from a parcel's (step, flags) as summarized before, when every event here is newer than
    every event that summary was made of: the same answer as summarizing them all, without reading them again."""
    unique: dict[tuple, TrackingEvent] = {}
    for event in events:
        unique.setdefault((event.occurred_at, event.description, event.source), event)
    step, flags = ("awaiting_pickup", set()) if start is None else (start[0], set(start[1]))
    for event in sorted(unique.values(), key=lambda item: item.occurred_at):
        if event.step == "delivered":
            step = "delivered"
            flags.clear()
        elif event.step is not None and step != "delivered":
            step = event.step
        if event.flag != "expired":
            flags.discard("expired")
        if event.flag is not None:
            flags.add(event.flag)
    return step, flags
