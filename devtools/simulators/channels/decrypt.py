"""The platforms' decrypt APIs and their own e-waybill APIs (which take the ciphertext), on the simulator.

Reached through the platform's usual router after its signature, app key and token were checked (endpoints.py):

    Taobao  /taobao/router/rest      method=taobao.top.oaid.decrypt        query_list=[{"tid","oaid"}]
            /taobao/router/rest      method=cainiao.waybill.ii.get         recipient carries oaid + tid
    JD      /jd/routerjson           method=jingdong.jos.order.oaid.decrypt  getReceiverInfoListReqVO.orderInfos
    PDD     /pinduoduo/api/router    type=pdd.open.decrypt.batch           data_list=[{"data_tag","encrypted_data"}]
            /pinduoduo/api/router    type=pdd.waybill.get                  recipient fields as ciphertext
    Douyin  /douyin/order/batchDecrypt         cipher_infos=[{"auth_id","cipher_text"}]
            /douyin/logistics/newCreateOrder   receiver_info as ciphertext, order_id

Every request is recorded (`sim.privacy_calls`); `sim.refuse_decrypt(platform)` makes the next decrypt answer
with the platform's refusal and `sim.fail_next(platform, kind="timeout")` holds the next answer. A waybill request
that carries plain text where the platform wants its ciphertext is refused, so a test sees any leak.
"""
import hashlib
import json
import uuid

from werkzeug.wrappers import Response

from devtools.simulators.channels.privacy import oaid_of, open_cipher

WAYBILL_DIGITS = 13


def _json(body) -> Response:
    return Response(json.dumps(body, ensure_ascii=False, separators=(",", ":")), 200,
                    content_type="application/json;charset=UTF-8")


def _loads(text, name: str):
    try:
        return json.loads(text or "")
    except ValueError:
        raise ValueError(f"{name} is not JSON") from None


def _waybill_no(carrier: str, key: str) -> str:
    digits = str(int(hashlib.sha256(key.encode()).hexdigest(), 16))[:WAYBILL_DIGITS]
    return f"{carrier}{digits}"


# ---------------------------------------------------------------- Taobao

def _top_error(code: int, msg: str, sub_code: str, sub_msg: str) -> Response:
    return _json({"error_response": {"code": code, "msg": msg, "sub_code": sub_code, "sub_msg": sub_msg,
                                     "request_id": uuid.uuid4().hex[:13]}})


def _taobao_receiver(sim, tid: str, oaid: str) -> dict | None:
    plain = sim.plain_receiver("taobao", tid)
    if plain is None or oaid_of("taobao", tid, plain.get("receiver_name", ""), plain.get("receiver_mobile", ""),
                                plain.get("receiver_address", "")) != oaid:
        return None
    return plain


def taobao_decrypt(sim, params: dict) -> Response:
    try:
        queries = _loads(params.get("query_list"), "query_list")
        if not isinstance(queries, list) or not 1 <= len(queries) <= 20:
            raise ValueError("query_list must list 1 to 20 queries")
    except ValueError as problem:
        return _top_error(41, "Invalid arguments:query_list", "isv.invalid-parameter", str(problem))
    sim.record_privacy_call("taobao", "taobao.top.oaid.decrypt", queries)
    refusal = sim.take_decrypt_refusal("taobao")
    if refusal is not None:
        return _top_error(15, "Remote service error", "isv.decrypt-quota-exceeded", refusal or "解密额度已用完")
    receivers = []
    for query in queries:
        tid, oaid = str(query.get("tid") or ""), str(query.get("oaid") or "")
        plain = _taobao_receiver(sim, tid, oaid)
        if plain is None:
            return _top_error(15, "Remote service error", "isv.oaid-invalid", f"oaid与订单{tid}不匹配")
        receivers.append({"tid": tid, "oaid": oaid, "name": plain.get("receiver_name"),
                          "mobile": plain.get("receiver_mobile"), "phone": "", "state": plain.get("receiver_state"),
                          "city": plain.get("receiver_city"), "district": plain.get("receiver_district"),
                          "town": plain.get("receiver_town", ""), "address_detail": plain.get("receiver_address"),
                          "country": "中国", "matched": True})
    return _json({"top_oaid_decrypt_response": {"receiver_list": {"receiver": receivers},
                                                "request_id": uuid.uuid4().hex[:13]}})


def cainiao_waybill(sim, params: dict) -> Response:
    try:
        request = _loads(params.get("param_waybill_cloud_print_apply_new_request"),
                         "param_waybill_cloud_print_apply_new_request")
        trades = request["trade_order_info_dtos"]
        carrier = str(request["cp_code"])
    except (ValueError, KeyError, TypeError) as problem:
        return _top_error(41, "Invalid arguments", "isv.invalid-parameter", str(problem))
    sim.record_privacy_call("taobao", "cainiao.waybill.ii.get", request)
    modules = []
    for trade in trades:
        recipient = trade.get("recipient") or {}
        if _taobao_receiver(sim, str(recipient.get("tid") or ""), str(recipient.get("oaid") or "")) is None:
            return _top_error(15, "Remote service error", "isv.oaid-invalid", "收件人oaid与订单不匹配")
        modules.append({"object_id": trade.get("object_id"), "waybill_code": _waybill_no(carrier, trade["object_id"]),
                        "print_data": json.dumps({"encryptedData": "sim", "templateURL": trade.get("template_url")})})
    return _json({"cainiao_waybill_ii_get_response": {"modules": {"waybill_cloud_print_response": modules},
                                                      "request_id": uuid.uuid4().hex[:13]}})


# ---------------------------------------------------------------- JD

JD_DECRYPT_RESPONSE = "jingdong_jos_order_oaid_decrypt_responce"


def jd_decrypt(sim, params: dict) -> Response:
    try:
        business = _loads(params.get("360buy_param_json"), "360buy_param_json")
        infos = business["getReceiverInfoListReqVO"]["orderInfos"]
        if not isinstance(infos, list) or not infos:
            raise ValueError("orderInfos must list orders")
    except (ValueError, KeyError, TypeError) as problem:
        return _json({JD_DECRYPT_RESPONSE: {"code": "0", "returnType": {
            "success": False, "code": "100", "msg": f"参数错误: {problem}"}}})
    sim.record_privacy_call("jd", "jingdong.jos.order.oaid.decrypt", infos)
    refusal = sim.take_decrypt_refusal("jd")
    if refusal is not None:
        return _json({JD_DECRYPT_RESPONSE: {"code": "0", "returnType": {
            "success": False, "code": "3035", "msg": refusal or "解密额度不足"}}})
    data = []
    for info in infos:
        order_id, oaid = str(info.get("orderId") or ""), str(info.get("oaid") or "")
        plain = sim.plain_receiver("jd", order_id)
        consignee = (plain or {}).get("consigneeInfo") or {}
        if plain is None or oaid_of("jd", order_id, consignee.get("fullname", ""), consignee.get("mobile", ""),
                                    consignee.get("fullAddress", "")) != oaid:
            return _json({JD_DECRYPT_RESPONSE: {"code": "0", "returnType": {
                "success": False, "code": "3020", "msg": f"订单{order_id}的oaid无效"}}})
        data.append({"orderId": order_id, "oaid": oaid, "consName": consignee.get("fullname"),
                     "consMobilePhone": consignee.get("mobile"), "consTelephone": consignee.get("telephone"),
                     "consAddress": consignee.get("fullAddress")})
    return _json({JD_DECRYPT_RESPONSE: {"code": "0", "returnType": {"success": True, "code": "0", "msg": "成功",
                                                                    "data": data}}})


# ---------------------------------------------------------------- Pinduoduo

PDD_DATA_TYPE = {"receiver_name": 5, "receiver_phone": 6, "receiver_address": 7, "address": 8}


def _pdd_error(code: int, message: str) -> Response:
    return _json({"error_response": {"error_code": code, "error_msg": message, "request_id": uuid.uuid4().hex}})


def pdd_decrypt(sim, params: dict) -> Response:
    try:
        data_list = _loads(params.get("data_list"), "data_list")
        if not isinstance(data_list, list) or not 1 <= len(data_list) <= 100:
            raise ValueError("data_list must list 1 to 100 items")
    except ValueError as problem:
        return _pdd_error(10000, f"参数错误: {problem}")
    sim.record_privacy_call("pinduoduo", "pdd.open.decrypt.batch", data_list)
    refusal = sim.take_decrypt_refusal("pinduoduo")
    if refusal is not None:
        return _pdd_error(54001, refusal or "解密额度已用完，请申请提额")
    answers = []
    for item in data_list:
        cipher = str(item.get("encrypted_data") or "")
        plain = open_cipher("pinduoduo", cipher)
        answers.append({"data_tag": item.get("data_tag"), "encrypted_data": cipher, "decrypted_data": plain or "",
                        "data_type": 6 if cipher.startswith("$") else 5,
                        "error_code": 0 if plain is not None else 1000040, "error_msg": "" if plain else "密文无效"})
    return _json({"open_decrypt_batch_response": {"data_decrypt_list": answers},
                  "request_id": uuid.uuid4().hex})


def pdd_waybill(sim, params: dict) -> Response:
    try:
        request = _loads(params.get("param_waybill_apply_new_request"), "param_waybill_apply_new_request")
        trades = request["trade_order_info_dtos"]
        carrier = str(request["wp_code"])
    except (ValueError, KeyError, TypeError) as problem:
        return _pdd_error(10000, f"参数错误: {problem}")
    sim.record_privacy_call("pinduoduo", "pdd.waybill.get", request)
    modules = []
    for trade in trades:
        recipient = trade.get("recipient") or {}
        values = (recipient.get("name"), recipient.get("mobile"), (recipient.get("address") or {}).get("detail"))
        if any(open_cipher("pinduoduo", value or "") is None for value in values):
            return _pdd_error(30002, "收件人信息必须为平台密文")
        modules.append({"object_id": trade.get("object_id"), "waybill_code": _waybill_no(carrier, trade["object_id"]),
                        "print_data": json.dumps({"encryptedData": "sim"})})
    return _json({"pdd_waybill_get_response": {"modules": modules, "request_id": uuid.uuid4().hex}})


# ---------------------------------------------------------------- Douyin

def _douyin(code: int, msg: str, data: dict, sub_code: str = "", sub_msg: str = "") -> Response:
    return _json({"code": code, "msg": msg, "sub_code": sub_code, "sub_msg": sub_msg, "log_id": uuid.uuid4().hex,
                  "data": data})


def douyin_decrypt(sim, params: dict) -> Response:
    try:
        infos = _loads(params.get("param_json"), "param_json")["cipher_infos"]
        if not isinstance(infos, list) or not 1 <= len(infos) <= 50:
            raise ValueError("cipher_infos must list 1 to 50 items")
    except (ValueError, KeyError, TypeError) as problem:
        return _douyin(40003, "参数不合法", {}, "isv.parameter-invalid", str(problem))
    sim.record_privacy_call("douyin", "order.batchDecrypt", infos)
    refusal = sim.take_decrypt_refusal("douyin")
    if refusal is not None:
        return _douyin(90000, refusal or "已达到店铺解密上限", {}, "isv.decrypt-quota-exceeded",
                       refusal or "已达到店铺解密上限")
    answers = []
    for info in infos:
        cipher = str(info.get("cipher_text") or "")
        plain = open_cipher("douyin", cipher)
        answers.append({"auth_id": info.get("auth_id"), "cipher_text": cipher, "decrypt_text": plain or "",
                        "err_no": 0 if plain is not None else 300004, "err_msg": "" if plain else "密文格式错误"})
    return _douyin(10000, "success", {"decrypt_infos": answers, "custom_err": {"err_code": 0, "err_msg": ""}})


def douyin_waybill(sim, params: dict) -> Response:
    try:
        request = _loads(params.get("param_json"), "param_json")
        contact = request["receiver_info"]["contact"]
        detail = request["receiver_info"]["address"]["detail_address"]
        carrier = str(request["logistics_code"])
        orders = request["order_infos"]
    except (ValueError, KeyError, TypeError) as problem:
        return _douyin(40003, "参数不合法", {}, "isv.parameter-invalid", str(problem))
    sim.record_privacy_call("douyin", "logistics.newCreateOrder", request)
    if any(open_cipher("douyin", value or "") is None for value in (contact.get("name"), contact.get("mobile"),
                                                                     detail)):
        return _douyin(40003, "参数不合法", {}, "isv.parameter-invalid", "收件人信息必须为平台密文")
    infos = [{"order_id": order.get("order_id"), "pack_id": order.get("pack_id"),
              "track_no": _waybill_no(carrier, str(order.get("pack_id") or order.get("order_id"))), "sort_code": ""}
             for order in orders]
    return _douyin(10000, "success", {"ebill_infos": infos, "err_infos": []})


TOP_APIS = {"taobao.top.oaid.decrypt": taobao_decrypt, "cainiao.waybill.ii.get": cainiao_waybill}
JD_APIS = {"jingdong.jos.order.oaid.decrypt": jd_decrypt}
PDD_APIS = {"pdd.open.decrypt.batch": pdd_decrypt, "pdd.waybill.get": pdd_waybill}
DOUYIN_APIS = {"order.batchDecrypt": douyin_decrypt, "logistics.newCreateOrder": douyin_waybill}
