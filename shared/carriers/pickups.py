"""Door pickups (上门取件) of return parcels through Kuaidi100's 商家寄件 API (order/borderapi.do), as
docs/CARRIERS.md "Return pickups" describes:

    client = PickupClient(base_url, key, secret, callback_url=..., salt=...)
    slots = pickup_slots("YTO", now)                        # the next 3 days' slices, bookable ones only
    order = client.book(PickupRequest(serial, "YTO", sender=customer, receiver=return_address, cargo="退货 保温杯×1",
                                      slot=slots[0]), now)
    order.waybill_no, order.task_id, order.order_id
    client.cancel(order.task_id, order.order_id, "客户取消退货")
    callback = read_pickup_callback(form, salt)            # status 1 已接单 names the courier

Published shapes (sources in tests/fixtures/carriers/kuaidi100_border/README.md): the order is a form POST of
`method` (bOrder / cancel), `key`, `t` (ms timestamp), `param` (JSON) and `sign` = MD5(param + t + key + secret),
upper case. `thirdOrderId` (our serial) makes an order idempotent: the same one again within 48 hours answers the
first order. The answer is `{"result", "returnCode", "message", "data": {"taskId", "orderId", "kuaidinum"}}`.
A pickup is booked for 今天/明天/后天 (`dayType`) and a slice `pickupStartTime`–`pickupEndTime` from each
carrier's published slices; a slice cannot be booked later than 2 hours before it ends.
"""
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import httpx

from shared.carriers.signing import kuaidi100_order_sign, kuaidi100_push_sign, verify_kuaidi100_push_sign
from shared.carriers.tracking import BEIJING, KUAIDI100_COMPANIES, TrackingPayloadError

log = logging.getLogger("orderloom.carriers")

DAY_TYPES = ("今天", "明天", "后天")  # the three days a pickup can be booked for
LAST_BOOKING_BEFORE_END = timedelta(hours=2)  # 预约结束时间前2小时不可预约当前时间段
# Each carrier's slices (Beijing time), from Kuaidi100's 上门取件API如何设置预约时间切片: YTO 9–12/12–16/16–19,
# Yunda 9–14/14–19, SF hourly 9–22, STO/ZTO/EMS/JD one slice 9–19 (8–19 for STO).
SLICES = {
    "YTO": (("09:00", "12:00"), ("12:00", "16:00"), ("16:00", "19:00")),
    "YD": (("09:00", "14:00"), ("14:00", "19:00")),
    "SF": tuple((f"{hour:02d}:00", f"{hour + 1:02d}:00") for hour in range(9, 22)),
    "STO": (("08:00", "19:00"),),
    "ZTO": (("09:00", "19:00"),),
    "EMS": (("09:00", "19:00"),),
    "JD": (("09:00", "19:00"),),
}
TODAY_ONLY = frozenset({"JD"})  # 京东: 当日取, no booked time
SLOT_FORMAT = "%Y-%m-%d %H:%M"
# Callback `status` (商家寄件下单回调接口状态说明) → what it means here.
CALLBACK_STATUSES = {"0": "ordered", "610": "order_failed", "1": "courier_assigned", "9": "cancelled",
                     "99": "cancelled_by_carrier", "10": "collected", "15": "settled", "155": "reweighed"}


class PickupRefused(Exception):
    """Kuaidi100 (or the carrier) said no: a slot no longer bookable, an address out of the service area, bad
    parameters. `code` is the returnCode, `reason` the message as given."""

    def __init__(self, reason: str, code: str = ""):
        super().__init__(f"{reason} (returnCode {code})" if code else reason)
        self.reason, self.code = reason, code


class PickupUnavailable(Exception):
    """No usable answer (network, timeout, HTTP error, returnCode 500): asking again with the same serial is safe."""


@dataclass(frozen=True, slots=True)
class PickupSlot:
    """One bookable slice: its day and times in Beijing time, and the same as aware UTC."""

    day: date
    start: str  # HH:mm
    end: str  # HH:mm
    starts_at: datetime
    ends_at: datetime

    @property
    def key(self) -> str:
        """How a form names the slot: `2026-12-05 09:00-12:00` (Beijing time)."""
        return f"{self.day.isoformat()} {self.start}-{self.end}"

    def day_type(self, now: datetime) -> str:
        """今天 / 明天 / 后天 as seen from `now` (Beijing time); ValueError beyond the third day or in the past."""
        offset = (self.day - now.astimezone(BEIJING).date()).days
        if not 0 <= offset < len(DAY_TYPES):
            raise ValueError(f"a pickup is booked for today, tomorrow or the day after, not {self.day}")
        return DAY_TYPES[offset]


def _slot(day: date, start: str, end: str) -> PickupSlot:
    starts = datetime.strptime(f"{day.isoformat()} {start}", SLOT_FORMAT).replace(tzinfo=BEIJING)
    ends = datetime.strptime(f"{day.isoformat()} {end}", SLOT_FORMAT).replace(tzinfo=BEIJING)
    return PickupSlot(day, start, end, starts.astimezone(UTC), ends.astimezone(UTC))


def bookable(slot: PickupSlot, now: datetime) -> bool:
    """A slice may be booked until 2 hours before it ends, and only within the three days."""
    try:
        slot.day_type(now)
    except ValueError:
        return False
    return now < slot.ends_at - LAST_BOOKING_BEFORE_END


def pickup_slots(carrier_code: str, now: datetime) -> list[PickupSlot]:
    """The carrier's slices for today, tomorrow and the day after that can still be booked at `now`."""
    if carrier_code not in SLICES:
        raise ValueError(f"no pickup slices known for carrier {carrier_code!r}")
    today = now.astimezone(BEIJING).date()
    days = 1 if carrier_code in TODAY_ONLY else len(DAY_TYPES)
    slots = [_slot(today + timedelta(days=offset), start, end)
             for offset in range(days) for start, end in SLICES[carrier_code]]
    return [slot for slot in slots if bookable(slot, now)]


def slices_on(carrier_code: str, moment: datetime) -> list[PickupSlot]:
    """The carrier's slices on the day (Beijing time) of `moment`, bookable or not."""
    day = moment.astimezone(BEIJING).date()
    return [_slot(day, start, end) for start, end in SLICES.get(carrier_code, ())]


def parse_slot(carrier_code: str, key: str) -> PickupSlot:
    """The slot a form named (`YYYY-MM-DD HH:MM-HH:MM`, Beijing time) if it is one of the carrier's slices;
    ValueError otherwise (whether it is still bookable is `bookable`'s question)."""
    text = str(key or "").strip()
    try:
        day_text, times = text.split(" ", 1)
        start, end = times.split("-", 1)
        day = date.fromisoformat(day_text)
    except ValueError:
        raise ValueError(f"{text[:40]!r} is not a slot (YYYY-MM-DD HH:MM-HH:MM)") from None
    if (start, end) not in SLICES.get(carrier_code, ()):
        raise ValueError(f"{start}-{end} is not one of {carrier_code}'s pickup slices")
    return _slot(day, start, end)


@dataclass(frozen=True)
class PickupRequest:
    """One return parcel to collect. `sender` and `receiver` are {"name", "mobile", "address"} (the full printed
    address); `serial` is ours and makes the order idempotent (thirdOrderId)."""

    serial: str
    carrier_code: str
    sender: dict
    receiver: dict
    cargo: str
    slot: PickupSlot
    remark: str = ""

    def __post_init__(self):
        if not str(self.serial or "").strip() or len(self.serial) > 32:
            raise ValueError("serial is required (at most 32 characters)")
        if self.carrier_code not in KUAIDI100_COMPANIES or self.carrier_code not in SLICES:
            raise ValueError(f"carrier {self.carrier_code!r} has no door pickup here")
        for role in ("sender", "receiver"):
            missing = [name for name in ("name", "mobile", "address") if not str(getattr(self, role).get(name)
                                                                              or "").strip()]
            if missing:
                raise ValueError(f"{role} is missing {', '.join(missing)}")
        if not str(self.cargo or "").strip():
            raise ValueError("cargo is required")


@dataclass(frozen=True, slots=True)
class PickupOrder:
    task_id: str
    order_id: str
    waybill_no: str | None  # kuaidinum; carriers that number asynchronously send it in the callback (status 0)


@dataclass(frozen=True, slots=True)
class PickupCallback:
    """An order callback: which order, its status (CALLBACK_STATUSES), the waybill and the courier once known."""

    task_id: str
    order_id: str
    waybill_no: str | None
    status: str
    meaning: str
    courier_name: str | None
    courier_mobile: str | None
    message: str


def order_param(req: PickupRequest, now: datetime, callback_url: str, salt: str) -> str:
    """The `param` JSON text of a bOrder request."""
    body = {
        "kuaidicom": KUAIDI100_COMPANIES[req.carrier_code],
        "recManName": req.receiver["name"], "recManMobile": req.receiver["mobile"],
        "recManPrintAddr": req.receiver["address"],
        "sendManName": req.sender["name"], "sendManMobile": req.sender["mobile"],
        "sendManPrintAddr": req.sender["address"],
        "callBackUrl": callback_url, "cargo": req.cargo[:50], "payment": "SHIPPER",
        "dayType": req.slot.day_type(now), "pickupStartTime": req.slot.start, "pickupEndTime": req.slot.end,
        "thirdOrderId": req.serial, "salt": salt, "remark": req.remark[:100],
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


class PickupClient:
    """Kuaidi100 商家寄件: book (bOrder) and cancel door pickups. Reuse one per merchant account."""

    def __init__(self, base_url: str, key: str, secret: str, *, callback_url: str = "", salt: str = "",
                 timeout: float = 10, transport: httpx.BaseTransport | None = None):
        self.url = f"{base_url.rstrip('/')}/order/borderapi.do"
        self.key, self.secret, self.callback_url, self.salt = key, secret, callback_url, salt
        self._http = httpx.Client(timeout=timeout, transport=transport)

    def _call(self, method: str, param: str) -> dict:
        t = str(int(time.time() * 1000))
        form = {"method": method, "key": self.key, "t": t, "param": param,
                "sign": kuaidi100_order_sign(param, t, self.key, self.secret)}
        try:
            response = self._http.post(self.url, data=form)
        except httpx.HTTPError as exc:
            raise PickupUnavailable(f"pickup service unreachable: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            raise PickupUnavailable(f"HTTP {response.status_code}: {response.text[:200]}")
        try:
            answer = response.json()
        except ValueError:
            raise PickupUnavailable(f"answer is not JSON: {response.text[:200]!r}") from None
        if not isinstance(answer, dict) or "returnCode" not in answer:
            raise PickupUnavailable(f"answer is not a borderapi result: {response.text[:200]!r}")
        code = str(answer.get("returnCode"))
        if answer.get("result") is True and code == "200":
            return answer
        if code == "500":
            raise PickupUnavailable(f"Kuaidi100 server error: {answer.get('message') or ''}")
        raise PickupRefused(str(answer.get("message") or "refused without a reason"), code)

    def book(self, req: PickupRequest, now: datetime) -> PickupOrder:
        """Book the pickup: PickupRefused when the carrier says no, PickupUnavailable when there is no answer
        (safe to retry: the serial makes it idempotent)."""
        answer = self._call("bOrder", order_param(req, now, self.callback_url, self.salt))
        data = answer.get("data") if isinstance(answer.get("data"), dict) else {}
        task_id, order_id = str(data.get("taskId") or "").strip(), str(data.get("orderId") or "").strip()
        if not task_id or not order_id:
            raise PickupUnavailable("success answer without data.taskId and data.orderId")
        log.info("pickup=booked serial=%s carrier=%s task_id=%s waybill_no=%s", req.serial, req.carrier_code,
                 task_id, data.get("kuaidinum") or "-")
        return PickupOrder(task_id, order_id, str(data.get("kuaidinum") or "").strip() or None)

    def cancel(self, task_id: str, order_id: str, reason: str) -> None:
        """Cancel before collection (a collected parcel is refused: PickupRefused)."""
        param = json.dumps({"taskId": task_id, "orderId": order_id, "cancelMsg": reason[:100]}, ensure_ascii=False,
                           separators=(",", ":"))
        self._call("cancel", param)

    def carrier_loads(self, send_address: str) -> dict[str, float]:
        """The carriers' current load at a sending address, from 商家寄件运力接口 (method `querymkt`, param
        `sendAddr`): {carrier code: load, 0..1}. A carrier absent from the answer's `data.mktInfo` has no capacity
        there and counts as full (1.0); a listed one is 0.0 unless the item carries `loadRate` (Orderloom's
        simulator adds it; the published answer has no load figure, see tests/fixtures/carriers/kuaidi100_capacity).
        PickupUnavailable / PickupRefused as `book`."""
        answer = self._call("querymkt", json.dumps({"sendAddr": send_address}, ensure_ascii=False,
                                                   separators=(",", ":")))
        data = answer.get("data") if isinstance(answer.get("data"), dict) else {}
        items = data.get("mktInfo") if isinstance(data.get("mktInfo"), list) else []
        codes = {company: code for code, company in KUAIDI100_COMPANIES.items()}
        loads = dict.fromkeys(KUAIDI100_COMPANIES, 1.0)
        for item in items:
            code = codes.get(str((item or {}).get("kuaidiCom") or "")) if isinstance(item, dict) else None
            if code is None:
                continue
            try:
                loads[code] = min(1.0, max(0.0, float(item.get("loadRate", 0.0))))
            except (TypeError, ValueError):
                loads[code] = 0.0
        return loads

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "PickupClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def sign_callback(param: str, salt: str) -> str:
    return kuaidi100_push_sign(param, salt)


def read_pickup_callback(form: dict, salt: str) -> PickupCallback:
    """An order callback (form `taskId`, `sign`, `param`), verified with the order's salt first:
    TrackingPayloadError (bad_signature, invalid_json, missing_field, unknown_status) when it cannot be read."""
    if not salt:
        raise ValueError("a salt is required to verify pickup callbacks")
    param = form.get("param")
    if param is None:
        raise TrackingPayloadError("missing_field", "form field param is missing")
    if not verify_kuaidi100_push_sign(param, salt, form.get("sign")):
        raise TrackingPayloadError("bad_signature", "sign is not md5(param + salt)")
    try:
        body = json.loads(param)
    except ValueError:
        raise TrackingPayloadError("invalid_json", "param is not JSON") from None
    data = body.get("data") if isinstance(body, dict) and isinstance(body.get("data"), dict) else {}
    status = str(data.get("status") if data.get("status") is not None else body.get("status", "")).strip()
    if status not in CALLBACK_STATUSES:
        raise TrackingPayloadError("unknown_status", f"status {status!r} is not a 商家寄件 order status")
    order_id = str(data.get("orderId") or "").strip()
    if not order_id:
        raise TrackingPayloadError("missing_field", "param.data.orderId is missing")

    def text(value, size=60):
        value = str(value or "").strip()
        return value[:size] or None

    return PickupCallback(task_id=str(form.get("taskId") or "").strip(), order_id=order_id,
                          waybill_no=text(body.get("kuaidinum"), 40), status=status,
                          meaning=CALLBACK_STATUSES[status], courier_name=text(data.get("courierName")),
                          courier_mobile=text(data.get("courierMobile"), 40),
                          message=str(body.get("message") or "")[:200])
