"""The platforms' own e-waybills, which take the buyer's ciphertext instead of plain text (docs/CARRIERS.md,
"Platform e-waybills"): 菜鸟 `cainiao.waybill.ii.get` (recipient OAID + tid), 拼多多 `pdd.waybill.get` (recipient
fields as 密文), 抖音 `logistics.newCreateOrder` (receiver_info as encrypt_* values with the order id).

Each call is signed with the channel's own rule (shared/channels/signing.py) and sent to the channel's API address.
The order is never decrypted for these: the platform opens the ciphertext on its side and prints the label.
"""
import json
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx

from shared.carriers.waybills import CarrierRefused, CarrierUnavailable, Waybill, WaybillRequest
from shared.channels import signing
from shared.channels.base import Credentials
from shared.channels.taobao import top_time

KINDS = frozenset({"taobao", "pinduoduo", "douyin"})
# KDNiao ShipperCode → the platform's carrier code (cp_code / wp_code / logistics_code).
CARRIER_CODES = {"SF": "SF", "YTO": "YTO", "ZTO": "ZTO", "STO": "STO", "YD": "YUNDA", "JD": "JD", "EMS": "EMS"}


def _sender(req: WaybillRequest) -> dict:
    address = req.sender
    return {"name": address["Name"], "mobile": address["Mobile"],
            "address": {"province": address["ProvinceName"], "city": address["CityName"],
                        "district": address["ExpAreaName"], "detail": address["Address"]}}


def _items(req: WaybillRequest) -> list[dict]:
    return [{"name": str(name), "count": int(quantity)} for name, quantity in req.goods]


class PlatformWaybillClient:
    """Requests e-waybills from one platform's open API with the channel's credentials."""

    def __init__(self, kind: str, creds: Credentials, timeout: float = 10,
                 transport: httpx.BaseTransport | None = None):
        if kind not in KINDS:
            raise ValueError(f"{kind} has no e-waybill that takes its ciphertext")
        self.kind, self.creds = kind, creds
        self._http = httpx.Client(timeout=timeout, transport=transport)

    def request(self, req: WaybillRequest) -> Waybill:
        if not req.platform:
            raise ValueError("a platform e-waybill needs the order's platform fields")
        code = CARRIER_CODES.get(req.carrier_code, req.carrier_code)
        try:
            if self.kind == "taobao":
                number = self._cainiao(req, code)
            elif self.kind == "pinduoduo":
                number = self._pdd(req, code)
            else:
                number = self._douyin(req, code)
        except httpx.HTTPError as exc:
            raise CarrierUnavailable(f"{self.kind} e-waybill unreachable: {type(exc).__name__}: {exc}") from exc
        return Waybill(carrier_code=req.carrier_code, waybill_no=number, sort_code="", label_html="")

    def _answer(self, response: httpx.Response) -> dict:
        if response.status_code >= 400:
            raise CarrierUnavailable(f"HTTP {response.status_code}: {response.text[:200]}")
        try:
            body = response.json()
        except ValueError:
            raise CarrierUnavailable(f"answer is not JSON: {response.text[:200]!r}") from None
        if not isinstance(body, dict):
            raise CarrierUnavailable("answer is not a JSON object")
        return body

    def _cainiao(self, req: WaybillRequest, code: str) -> str:
        receiver = req.receiver
        trade = {"object_id": req.order_code, "order_info": {"order_channels_type": "TB",
                                                             "trade_order_list": [req.platform["order_id"]]},
                 "package_info": {"id": req.order_code, "items": _items(req)},
                 "recipient": {"address": {"province": receiver["ProvinceName"], "city": receiver["CityName"],
                                           "district": receiver["ExpAreaName"], "detail": receiver["Address"]},
                               "name": receiver["Name"], "mobile": receiver["Mobile"],
                               "oaid": req.platform.get("oaid"), "tid": req.platform["order_id"]},
                 "template_url": "https://cloudprint.cainiao.com/template/standard/101/", "user_id": 0}
        business = {"cp_code": code, "sender": _sender(req), "trade_order_info_dtos": [trade]}
        params = {"method": "cainiao.waybill.ii.get", "app_key": self.creds.app_key, "session": self.creds.access_token,
                  "timestamp": top_time(datetime.now(ZoneInfo("Asia/Shanghai"))), "format": "json", "v": "2.0",
                  "sign_method": "md5",
                  "param_waybill_cloud_print_apply_new_request": json.dumps(business, ensure_ascii=False,
                                                                            separators=(",", ":"))}
        params["sign"] = signing.top_sign(params, self.creds.app_secret or "")
        body = self._answer(self._http.post(f"{self.creds.base_url}/router/rest", data=params))
        if "error_response" in body:
            error = body["error_response"]
            raise CarrierRefused(str(error.get("sub_msg") or error.get("msg")), str(error.get("code", "")))
        modules = ((body.get("cainiao_waybill_ii_get_response") or {}).get("modules") or {})
        modules = modules.get("waybill_cloud_print_response") if isinstance(modules, dict) else modules
        return self._number(modules, "waybill_code")

    def _pdd(self, req: WaybillRequest, code: str) -> str:
        receiver = req.receiver
        trade = {"object_id": req.order_code, "order_info": {"order_channels_type": "PDD",
                                                             "trade_order_list": [req.platform["order_id"]]},
                 "package_info": {"id": req.order_code, "items": _items(req)},
                 "recipient": {"address": {"province": receiver["ProvinceName"], "city": receiver["CityName"],
                                           "district": receiver["ExpAreaName"], "detail": receiver["Address"]},
                               "name": receiver["Name"], "mobile": receiver["Mobile"]},
                 "template_url": "https://file-link.pinduoduo.com/sim_template", "user_id": 0}
        business = {"wp_code": code, "sender": _sender(req), "trade_order_info_dtos": [trade]}
        params = {"type": "pdd.waybill.get", "client_id": self.creds.app_key, "access_token": self.creds.access_token,
                  "timestamp": str(int(time.time())), "data_type": "JSON", "version": "V1",
                  "param_waybill_apply_new_request": json.dumps(business, ensure_ascii=False, separators=(",", ":"))}
        params["sign"] = signing.pdd_sign(params, self.creds.app_secret or "")
        body = self._answer(self._http.post(f"{self.creds.base_url}/api/router", data=params))
        if "error_response" in body:
            error = body["error_response"]
            raise CarrierRefused(str(error.get("error_msg")), str(error.get("error_code", "")))
        return self._number((body.get("pdd_waybill_get_response") or {}).get("modules"), "waybill_code")

    def _douyin(self, req: WaybillRequest, code: str) -> str:
        receiver = req.receiver
        business = {
            "logistics_code": code, "sender_info": _sender(req),
            "receiver_info": {"address": {"province_name": receiver["ProvinceName"], "city_name": receiver["CityName"],
                                          "district_name": receiver["ExpAreaName"],
                                          "detail_address": receiver["Address"]},
                              "contact": {"name": receiver["Name"], "mobile": receiver["Mobile"]}},
            "order_infos": [{"order_id": req.platform["order_id"], "pack_id": req.order_code,
                             "items": [{"item_name": item["name"], "item_quantity": item["count"]}
                                       for item in _items(req)]}],
        }
        param_json = signing.douyin_param_json(business)
        method = "logistics.newCreateOrder"
        timestamp = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M:%S")
        params = {"app_key": self.creds.app_key, "method": method, "access_token": self.creds.access_token,
                  "param_json": param_json, "timestamp": timestamp, "v": "2", "sign_method": "hmac-sha256",
                  "sign": signing.douyin_sign(self.creds.app_key or "", method, param_json, timestamp,
                                              self.creds.app_secret or "")}
        body = self._answer(self._http.post(f"{self.creds.base_url}/logistics/newCreateOrder", data=params))
        if body.get("code") != 10000:
            raise CarrierRefused(str(body.get("sub_msg") or body.get("msg")), str(body.get("code", "")))
        return self._number((body.get("data") or {}).get("ebill_infos"), "track_no")

    @staticmethod
    def _number(modules, key: str) -> str:
        if not isinstance(modules, list) or not modules or not isinstance(modules[0], dict) \
                or not str(modules[0].get(key) or "").strip():
            raise CarrierUnavailable(f"success answer without {key}")
        return str(modules[0][key]).strip()

    def close(self) -> None:
        self._http.close()


def receiver_fields(kind: str, ciphertext: dict, order) -> dict:
    """The receiver in KDNiao's field names, holding what the platform's e-waybill takes: its ciphertext
    (Pinduoduo, Douyin) or its masks with the OAID beside them (Taobao)."""
    place = {"ProvinceName": order.province, "CityName": order.city, "ExpAreaName": order.district}
    if kind == "pinduoduo":
        return {**place, "Name": ciphertext["receiver_name"], "Mobile": ciphertext["receiver_phone"],
                "Address": ciphertext["address"]}
    if kind == "douyin":
        return {**place, "Name": ciphertext["encrypt_post_receiver"], "Mobile": ciphertext["encrypt_post_tel"],
                "Address": ciphertext["encrypt_detail"]}
    return {**place, "Name": order.receiver_name, "Mobile": order.receiver_phone, "Address": order.street}

