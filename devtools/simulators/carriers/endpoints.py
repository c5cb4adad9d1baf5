"""The three simulated carrier endpoints: check the caller's signature or token, read the request, answer in the
platform's JSON or with its own error body.

Error bodies follow the platforms' published error tables where those exist: KDNiao ResultCode 101 缺少必要参数,
103 格式问题, 105 其他错误 (see Reason), 106 该订单号已下单成功; Kuaidi100 returnCode 400, 408, 500, 503; 17TRACK
error codes -18010002, -18010013, -18019902, -18019909. Which KDNiao code a bad DataSign gets is not published in
what we found; the simulator answers 102 (校验问题) with Reason 签名错误.
"""
import json

from werkzeug.wrappers import Request, Response

from shared.carriers.signing import verify_kdniao_data_sign, verify_kuaidi100_poll_sign
from devtools.simulators.carriers.formats import CARRIERS, kuaidi100_courier_info, kuaidi100_result, track17_track_info
from shared.carriers.tracking import (KUAIDI100_COMPANIES, TRACK17_CARRIER_KEYS, TRACK17_MAX_NUMBERS,
                                      TRACK17_NO_INFO_YET, TRACK17_NOT_REGISTERED)
from shared.carriers.waybills import ADDRESS_FIELDS

KUAIDI100_NO_RESULT = {"result": False, "returnCode": "500", "message": "查询无结果，请隔段时间再查"}
KUAIDI100_BAD_SIGN = {"result": False, "returnCode": "503", "message": "验证签名失败"}
KUAIDI100_UNKNOWN_COMPANY = {"result": False, "returnCode": "400", "message": "找不到对应公司"}
KUAIDI100_INCOMPLETE = {"result": False, "returnCode": "400", "message": "提交的数据不完整，或者贵公司没授权"}
KUAIDI100_PHONE_CHECK = {"result": False, "returnCode": "408", "message": "快递公司参数异常：验证码错误"}
KUAIDI100_PHONE_CARRIERS = frozenset({"SF", "ZTO"})  # carriers that check the receiver's or sender's phone
TRACK17_BAD_TOKEN = {"code": -18010002,
                     "data": {"errors": [{"code": -18010002, "message": "Access token is invalid."}]}}
TRACK17_INVALID = {"code": -18010013,
                   "data": {"errors": [{"code": -18010013, "message": "Submitted data is invalid."}]}}


def json_response(body, status: int = 200) -> Response:
    return Response(json.dumps(body, ensure_ascii=False, separators=(",", ":")), status,
                    content_type="application/json;charset=UTF-8")


# ------------------------------------------------------------------------------------------------ KDNiao 1007

def _kdniao_error(business_id: str, code: str, reason: str) -> Response:
    return json_response({"EBusinessID": business_id, "Success": False, "ResultCode": code, "Reason": reason})


def _missing_order_fields(body: dict) -> list[str]:
    missing = [name for name in ("OrderCode", "ShipperCode") if not str(body.get(name) or "").strip()]
    for role in ("Sender", "Receiver"):
        address = body.get(role) if isinstance(body.get(role), dict) else {}
        missing += [f"{role}.{name}" for name in ADDRESS_FIELDS if not str(address.get(name) or "").strip()]
    commodity = body.get("Commodity")
    if not isinstance(commodity, list) or not commodity or \
            not all(isinstance(item, dict) and str(item.get("GoodsName") or "").strip() for item in commodity):
        missing.append("Commodity.GoodsName")
    return missing


def eorder(simulator, request: Request) -> Response:
    """POST /api/EOrderService: one e-waybill per OrderCode, as KDNiao's RequestType 1007 answers."""
    form = request.form
    business_id = form.get("EBusinessID", "")
    data, data_sign = form.get("RequestData"), form.get("DataSign")
    if not business_id or data is None or not data_sign or not form.get("RequestType"):
        return _kdniao_error(business_id, "101", "缺少必要参数")
    if form.get("RequestType") != "1007":
        return _kdniao_error(business_id, "105", f"不支持的RequestType：{form.get('RequestType')}")
    credentials = simulator.credentials["kdniao"]
    if business_id != credentials["business_id"] or \
            not verify_kdniao_data_sign(data, credentials["app_key"], data_sign):
        return _kdniao_error(business_id, "102", "签名错误")
    try:
        body = json.loads(data)
    except ValueError:
        return _kdniao_error(business_id, "103", "RequestData格式有误")
    if not isinstance(body, dict):
        return _kdniao_error(business_id, "103", "RequestData格式有误")
    missing = _missing_order_fields(body)
    if missing:
        return _kdniao_error(business_id, "101", f"缺少必要参数：{', '.join(missing)}")
    if body["ShipperCode"] not in CARRIERS:
        return _kdniao_error(business_id, "105", f"暂不支持该快递公司：{body['ShipperCode']}")
    outcome = simulator.issue_waybill(body, data)
    if isinstance(outcome, tuple):  # (code, reason): the carrier refused
        return _kdniao_error(business_id, *outcome)
    issued, repeated = outcome.waybill, outcome.repeated
    return json_response({
        "EBusinessID": business_id, "UniquerRequestNumber": outcome.request_number,
        "Order": {"OrderCode": issued.order_code, "ShipperCode": issued.carrier_code,
                  "LogisticCode": issued.waybill_no, "MarkDestination": issued.sort_code},
        "PrintTemplate": issued.label_html,
        "ResultCode": "106" if repeated else "100", "Reason": "该订单号已下单成功" if repeated else "成功",
        "Success": True})


# ------------------------------------------------------------------------------------------------ Kuaidi100

def _phone_matches(given: str, parcel) -> bool:
    given = str(given or "").strip()
    if not given:
        return False
    mobiles = [str(address.get("Mobile") or "") for address in (parcel.receiver, parcel.sender)]
    return any(given == mobile or (len(given) == 4 and mobile.endswith(given)) for mobile in mobiles if mobile)


def kuaidi100_query(simulator, request: Request) -> Response:
    """POST /poll/query.do: Kuaidi100's real-time query (form customer, param, sign)."""
    form = request.form
    customer, param_text, sign = form.get("customer", ""), form.get("param"), form.get("sign")
    if not customer or param_text is None or not sign:
        return json_response(KUAIDI100_INCOMPLETE)
    credentials = simulator.credentials["kuaidi100"]
    if customer != credentials["customer"] or \
            not verify_kuaidi100_poll_sign(param_text, credentials["key"], customer, sign):
        return json_response(KUAIDI100_BAD_SIGN)
    try:
        param = json.loads(param_text)
    except ValueError:
        return json_response(KUAIDI100_INCOMPLETE)
    if not isinstance(param, dict) or not param.get("com") or not param.get("num"):
        return json_response(KUAIDI100_INCOMPLETE)
    carriers = {company: code for code, company in KUAIDI100_COMPANIES.items()}
    if param["com"] not in carriers:
        return json_response(KUAIDI100_UNKNOWN_COMPANY)
    with simulator.lock:
        parcel = simulator.parcels.get(str(param["num"]))
        if parcel is None or parcel.carrier_code != carriers[param["com"]] or not parcel.events:
            return json_response(KUAIDI100_NO_RESULT)
        if parcel.carrier_code in KUAIDI100_PHONE_CARRIERS and not _phone_matches(param.get("phone"), parcel):
            return json_response(KUAIDI100_PHONE_CHECK)
        answer = kuaidi100_result(parcel.waybill_no, parcel.carrier_code, list(parcel.events),
                                  str(param.get("resultv2", "")) == "4")
        if str(param.get("needCourierInfo", "")).lower() == "true":
            answer["courierInfo"] = kuaidi100_courier_info(list(parcel.events))
    return json_response(answer)


# ------------------------------------------------------------------------------------------------ 17TRACK

def track17_gettrackinfo(simulator, request: Request) -> Response:
    """POST /track/v2.2/gettrackinfo: 17TRACK's tracking query (header 17token, JSON list of numbers). Waybills the
    simulator knows count as registered; others are rejected with -18019902."""
    if request.headers.get("17token") != simulator.credentials["17track"]["token"]:
        return json_response(TRACK17_BAD_TOKEN, 401)
    items = request.get_json(silent=True)
    if not isinstance(items, list) or not items or len(items) > TRACK17_MAX_NUMBERS or \
            not all(isinstance(item, dict) and str(item.get("number") or "").strip() for item in items):
        return json_response(TRACK17_INVALID)
    accepted, rejected = [], []
    with simulator.lock:
        synced_at = simulator.now_text()
        for item in items:
            number = str(item["number"]).strip()
            parcel = simulator.parcels.get(number)
            if parcel is None:
                rejected.append({"number": number, "error": {
                    "code": TRACK17_NOT_REGISTERED,
                    "message": f"The tracking number '{number}' does not register, please register first."}})
            elif not parcel.events:
                rejected.append({"number": number, "error": {"code": TRACK17_NO_INFO_YET,
                                                              "message": "No tracking information at this time."}})
            else:
                accepted.append({"number": number, "carrier": TRACK17_CARRIER_KEYS[parcel.carrier_code],
                                 "param": None, "tag": None,
                                 "track_info": track17_track_info(parcel.carrier_code, parcel.sender, parcel.receiver,
                                                                  parcel.track17_events(),
                                                                  [event.kind for event in parcel.events],
                                                                  synced_at)})
    return json_response({"code": 0, "data": {"accepted": accepted, "rejected": rejected}})
