"""The simulated Kuaidi100 商家寄件 endpoint (order/borderapi.do, methods bOrder and cancel): door pickups of
return parcels, as shared/carriers/pickups.py and docs/CARRIERS.md "Return pickups" describe.

A booking checks the signature, the fields, the slice (one of the carrier's, within 今天/明天/后天, not later than 2
hours before it ends, at the simulator's clock) and the sender's province (refuse_pickups_from); it then issues a
waybill number, adds the parcel to the simulator (sender: the customer, receiver: the warehouse) so Kuaidi100 and
17TRACK tracking follow it like any parcel, assigns a courier, and keeps the order callbacks (status 1 已接单 with
the courier) for `callback_form` / `push_callbacks`. The same thirdOrderId again answers the first order.
"""
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlencode

import httpx
from werkzeug.wrappers import Request, Response

from shared.carriers.pickups import DAY_TYPES, LAST_BOOKING_BEFORE_END, SLICES, TODAY_ONLY, sign_callback
from shared.carriers.signing import verify_kuaidi100_order_sign
from shared.carriers.tracking import BEIJING, KUAIDI100_COMPANIES
from devtools.simulators.carriers.formats import COURIERS, json_bytes

REQUIRED = ("kuaidicom", "recManName", "recManMobile", "recManPrintAddr", "sendManName", "sendManMobile",
            "sendManPrintAddr", "callBackUrl")
ADDRESS = re.compile(r"^(?P<province>.+?(?:省|自治区|特别行政区|市))(?P<city>.+?(?:市|自治州|盟|地区))?"
                     r"(?P<district>.+?(?:区|县|旗|市))?(?P<street>.*)$")
# Messages as Kuaidi100 words them where published (400 参数错误, 501 重复提交, 503 签名认证失败); the wording of the
# slot and service-area refusals is the simulator's, under the published code 400.
BAD_SIGN = {"result": False, "returnCode": "503", "message": "签名认证失败"}
SLOT_PASSED = "预约时间已过，请重新选择预约时间"
SLOT_UNKNOWN = "该快递公司不支持此预约时间段"
OUT_OF_AREA = "寄件地址超出服务范围"
COLLECTED = "快递员已取件，无法取消"


@dataclass
class SimPickup:
    task_id: str
    order_id: str
    third_order_id: str
    carrier_code: str
    waybill_no: str
    slot_start: datetime
    slot_end: datetime
    courier_name: str
    courier_mobile: str
    salt: str
    callback_url: str
    param: dict
    status: str = "1"  # 1 已接单 (courier assigned), 10 已取件, 9 cancelled
    callbacks: list[dict] = field(default_factory=list)


def _error(code: str, message: str) -> Response:
    from devtools.simulators.carriers.endpoints import json_response

    return json_response({"result": False, "returnCode": code, "message": message})


def split_address(text: str) -> dict:
    """A printed address as the simulator's address fields (province, city, district, street)."""
    found = ADDRESS.match(text.strip()) or ADDRESS.match(f"{text.strip()}市")
    province = found.group("province") if found else text[:10]
    city = (found.group("city") if found else None) or province
    district = (found.group("district") if found else None) or city
    street = (found.group("street") if found else "") or text
    return {"ProvinceName": province, "CityName": city, "ExpAreaName": district, "Address": street}


def border(simulator, request: Request) -> Response:
    """POST /order/borderapi.do: method bOrder (book) or cancel, signed md5(param + t + key + secret)."""
    from devtools.simulators.carriers.endpoints import json_response

    form = request.form
    method, key, t, param_text, sign = (form.get(name) for name in ("method", "key", "t", "param", "sign"))
    if not method or not key or not t or param_text is None or not sign:
        return _error("400", "参数错误：缺少 method、key、t、param 或 sign")
    credentials = simulator.credentials["kuaidi100"]
    if key != credentials["key"] or not verify_kuaidi100_order_sign(param_text, t, credentials["key"],
                                                                    credentials["secret"], sign):
        return json_response(BAD_SIGN)
    try:
        param = json.loads(param_text)
    except ValueError:
        return _error("400", "参数错误：param 不是 JSON")
    if not isinstance(param, dict):
        return _error("400", "参数错误：param 不是 JSON 对象")
    if method == "bOrder":
        return _book(simulator, param)
    if method == "cancel":
        return _cancel(simulator, param)
    if method == "querymkt":
        return _capacity(simulator, param)
    return _error("400", f"参数错误：不支持的 method {method}")


def _capacity(simulator, param: dict) -> Response:
    """method querymkt (商家寄件运力接口): the carriers with capacity at `sendAddr`, in the published answer's shape
    (data.province/city/district/addr, data.mktInfo[] with serviceType, mktId, kuaidiCom). A carrier set full with
    `set_load(code, 1.0)` is left out, as Kuaidi100 leaves out a carrier without capacity; each listed item also
    carries `loadRate` (0..1), the simulator's own addition (not in the published answer)."""
    from devtools.simulators.carriers.endpoints import json_response

    address = str(param.get("sendAddr") or "").strip()
    if not address:
        return _error("400", "参数错误：缺少 sendAddr")
    parts = split_address(address)
    with simulator.lock:
        loads = dict(simulator.carrier_loads)
    items = [{"serviceType": ["快递包裹"], "mktId": 98959397, "kuaidiCom": company, "bigCustPriceDOList": None,
              "loadRate": loads.get(code, 0.0)}
             for code, company in KUAIDI100_COMPANIES.items() if loads.get(code, 0.0) < 1.0]
    return json_response({"result": True, "returnCode": "200", "message": "success",
                          "data": {"province": parts["ProvinceName"], "city": parts["CityName"],
                                   "district": parts["ExpAreaName"], "addr": address, "mktInfo": items}})


def _book(simulator, param: dict) -> Response:
    from devtools.simulators.carriers.endpoints import json_response

    missing = [name for name in REQUIRED if not str(param.get(name) or "").strip()]
    if missing:
        return _error("400", f"参数错误：缺少 {', '.join(missing)}")
    carriers = {company: code for code, company in KUAIDI100_COMPANIES.items()}
    carrier_code = carriers.get(str(param["kuaidicom"]))
    if carrier_code not in SLICES:
        return _error("400", f"参数错误：暂不支持该快递公司 {param['kuaidicom']}")
    with simulator.lock:
        third = str(param.get("thirdOrderId") or "").strip()
        earlier = simulator.pickups_by_third.get(third) if third else None
        if earlier is not None:  # 48 小时内返回第一次下单内容
            return json_response(_answer(earlier))
        sender = split_address(str(param["sendManPrintAddr"]))
        if sender["ProvinceName"] in simulator.pickup_refused_provinces:
            return _error("400", OUT_OF_AREA)
        now = simulator._now()
        day_type = str(param.get("dayType") or "")
        start, end = str(param.get("pickupStartTime") or ""), str(param.get("pickupEndTime") or "")
        if day_type not in DAY_TYPES or (start, end) not in SLICES[carrier_code] or \
                (carrier_code in TODAY_ONLY and day_type != DAY_TYPES[0]):
            return _error("400", SLOT_UNKNOWN)
        day = now.astimezone(BEIJING).date() + timedelta(days=DAY_TYPES.index(day_type))
        slot_start = datetime.strptime(f"{day} {start}", "%Y-%m-%d %H:%M").replace(tzinfo=BEIJING)
        slot_end = datetime.strptime(f"{day} {end}", "%Y-%m-%d %H:%M").replace(tzinfo=BEIJING)
        if now >= slot_end - LAST_BOOKING_BEFORE_END:
            return _error("400", SLOT_PASSED)
        rng = simulator._rng
        waybill_no = simulator._new_waybill_no(carrier_code)
        receiver = split_address(str(param["recManPrintAddr"]))
        from devtools.simulators.carriers.server import Parcel

        simulator.parcels[waybill_no] = Parcel(
            waybill_no, carrier_code, {"Name": str(param["sendManName"]), "Mobile": str(param["sendManMobile"]),
                                       **sender},
            {"Name": str(param["recManName"]), "Mobile": str(param["recManMobile"]), **receiver}, now)
        pickup = SimPickup(
            task_id=uuid.UUID(int=rng.getrandbits(128), version=4).hex.upper(),
            order_id=str(rng.randint(10 ** 8, 10 ** 9 - 1)), third_order_id=third, carrier_code=carrier_code,
            waybill_no=waybill_no, slot_start=slot_start, slot_end=slot_end, courier_name=rng.choice(COURIERS),
            courier_mobile=f"1{rng.randint(3, 9)}{rng.randint(0, 9)}{rng.randint(10 ** 7, 10 ** 8 - 1)}",
            salt=str(param.get("salt") or ""), callback_url=str(param["callBackUrl"]), param=param)
        pickup.callbacks.append(callback_param(pickup, "1"))
        simulator.pickups[pickup.task_id] = pickup
        if third:
            simulator.pickups_by_third[third] = pickup
        return json_response(_answer(pickup))


def _answer(pickup: SimPickup) -> dict:
    return {"result": True, "returnCode": "200", "message": "提交成功",
            "data": {"taskId": pickup.task_id, "orderId": pickup.order_id, "kuaidinum": pickup.waybill_no}}


def callback_param(pickup: SimPickup, status: str) -> dict:
    """The order callback's `param` (商家寄件下单回调): kuaidicom, kuaidinum, status, message, data."""
    return {"kuaidicom": KUAIDI100_COMPANIES[pickup.carrier_code], "kuaidinum": pickup.waybill_no, "status": status,
            "message": "", "data": {"orderId": pickup.order_id, "status": status,
                                    "courierName": pickup.courier_name if status != "9" else "",
                                    "courierMobile": pickup.courier_mobile if status != "9" else "",
                                    "weight": "", "freight": ""}}


def _cancel(simulator, param: dict) -> Response:
    from devtools.simulators.carriers.endpoints import json_response

    with simulator.lock:
        pickup = simulator.pickups.get(str(param.get("taskId") or ""))
        if pickup is None or pickup.order_id != str(param.get("orderId") or ""):
            return _error("400", "参数错误：订单不存在")
        if pickup.status == "9":
            return json_response({"result": True, "returnCode": "200", "message": "提交成功"})
        parcel = simulator.parcels.get(pickup.waybill_no)
        if parcel is not None and parcel.events:
            return _error("400", COLLECTED)
        pickup.status = "9"
        pickup.callbacks.append(callback_param(pickup, "9"))
        simulator.parcels.pop(pickup.waybill_no, None)
        return json_response({"result": True, "returnCode": "200", "message": "提交成功"})


def callback_form(pickup: SimPickup, index: int = -1) -> dict[str, str]:
    """One of a pickup's callbacks as Kuaidi100 posts it: form taskId, sign (md5(param + salt)), param."""
    text = json_bytes(pickup.callbacks[index]).decode()
    return {"taskId": pickup.task_id, "sign": sign_callback(text, pickup.salt), "param": text}


def push_callbacks(simulator, timeout: float = 10.0) -> list[tuple[str, int | None]]:
    """POST every callback not yet delivered to its order's callBackUrl; (task id, HTTP status) per post."""
    with simulator.lock:
        due = [(pickup, index) for pickup in simulator.pickups.values()
               for index in range(simulator.callbacks_sent.get(pickup.task_id, 0), len(pickup.callbacks))]
        forms = [(pickup.task_id, pickup.callback_url, index, callback_form(pickup, index)) for pickup, index in due]
    results = []
    with httpx.Client(timeout=timeout) as client:
        for task_id, url, index, form in forms:
            try:
                response = client.post(url, content=urlencode(form).encode(),
                                       headers={"Content-Type": "application/x-www-form-urlencoded"})
                status = response.status_code
            except httpx.HTTPError:
                status = None
            if status == 200:
                with simulator.lock:
                    simulator.callbacks_sent[task_id] = max(simulator.callbacks_sent.get(task_id, 0), index + 1)
            results.append((task_id, status))
    return results
