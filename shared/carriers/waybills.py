"""Electronic waybills (电子面单) through a KDNiao-style aggregator: one signed form POST per parcel, as
docs/CARRIERS.md describes (快递鸟 RequestType 1007).

    client = WaybillClient(base_url, business_id, app_key)
    waybill = client.request(WaybillRequest(order_code="OL2511110001", carrier_code="SF", sender=..., receiver=...,
                                            goods=[("保温杯", 2)]))
    waybill.waybill_no, waybill.sort_code, waybill.label_html

The same order code asked twice gets the same waybill back (KDNiao answers ResultCode 106, 该订单号已下单成功), so a
retry after a lost answer never takes a second waybill number from the merchant's stock.
"""
import json
import logging
from dataclasses import dataclass
from decimal import Decimal

import httpx

from shared.carriers.signing import kdniao_data_sign

log = logging.getLogger("orderloom.carriers")

# KDNiao ShipperCode → the carrier's name as merchants know it.
CARRIER_NAMES = {"SF": "顺丰速运", "YTO": "圆通速递", "ZTO": "中通快递", "STO": "申通快递", "YD": "韵达速递",
                 "JD": "京东快递", "EMS": "EMS"}
ADDRESS_FIELDS = ("Name", "Mobile", "ProvinceName", "CityName", "ExpAreaName", "Address")
REQUEST_TYPE = "1007"
SUCCESS_CODES = frozenset({"100", "106"})  # 106: 该订单号已下单成功, the earlier answer for this OrderCode
# KDNiao refuses RequestData containing these characters; they are common in addresses ("3#楼", "A&B"), so they are
# replaced by their full-width forms, which read the same on a label.
FORBIDDEN_CHARACTERS = str.maketrans({"'": "＇", '"': "＂", "#": "＃", "&": "＆", "+": "＋", "<": "＜", ">": "＞",
                                      "%": "％", "\\": "＼"})


class CarrierRefused(Exception):
    """The carrier (or the aggregator) answered and said no: out of waybill stock, area not served, bad account.

    Retrying the same request will not help; the merchant has to act (top up, change carrier, fix the address).
    """

    def __init__(self, reason: str, code: str = ""):
        super().__init__(f"{reason} (ResultCode {code})" if code else reason)
        self.reason = reason
        self.code = code


class CarrierUnavailable(Exception):
    """No usable answer: network error, timeout, HTTP error or a body that is not the documented JSON. Retry later."""


@dataclass(frozen=True)
class WaybillRequest:
    """One parcel to ship. Addresses use KDNiao's field names (ADDRESS_FIELDS); goods are (name, quantity)."""

    order_code: str
    carrier_code: str
    sender: dict
    receiver: dict
    goods: list  # [(name, quantity), ...]
    parcels: int = 1
    weight_kg: Decimal | None = None
    # A platform's own e-waybill (菜鸟 / 拼多多 / 抖音电子面单): {"kind", "order_id", "oaid"?}; the receiver fields
    # then hold the platform's ciphertext (or, for Taobao, its masks with the OAID), never plain text.
    platform: dict | None = None

    def __post_init__(self):
        if not str(self.order_code or "").strip():
            raise ValueError("order_code is required")
        if self.carrier_code not in CARRIER_NAMES:
            raise ValueError(f"carrier_code must be one of {', '.join(CARRIER_NAMES)}, not {self.carrier_code!r}")
        for role in ("sender", "receiver"):
            address = getattr(self, role)
            missing = [name for name in ADDRESS_FIELDS if not str((address or {}).get(name) or "").strip()]
            if missing:
                raise ValueError(f"{role} is missing {', '.join(missing)}")
        if not self.goods:
            raise ValueError("goods must name at least one item")
        for item in self.goods:
            if len(item) != 2 or not str(item[0]).strip() or int(item[1]) < 1:
                raise ValueError(f"each goods item is (name, quantity ≥ 1), not {item!r}")
        if int(self.parcels) < 1:
            raise ValueError("parcels must be at least 1")
        if self.weight_kg is not None and Decimal(self.weight_kg) <= 0:
            raise ValueError("weight_kg must be positive")


@dataclass(frozen=True)
class Waybill:
    carrier_code: str
    waybill_no: str
    sort_code: str  # MarkDestination (大头笔): the sorting code printed large on the label; "" when not given
    label_html: str  # the carrier's PrintTemplate, as returned


def _clean(value) -> str:
    return str(value).strip().translate(FORBIDDEN_CHARACTERS)


def _address(address: dict) -> dict:
    return {name: _clean(address[name]) for name in ADDRESS_FIELDS}


def request_data(req: WaybillRequest, account: dict | None = None) -> str:
    """The RequestData JSON text for one waybill request; `account` adds carrier account fields (e.g. MonthCode,
    CustomerName, CustomerPwd) that some carriers require."""
    body = {
        "OrderCode": _clean(req.order_code),
        "ShipperCode": req.carrier_code,
        "PayType": 1,  # sender pays (现付)
        "ExpType": 1,  # the carrier's standard service
        "Sender": _address(req.sender),
        "Receiver": _address(req.receiver),
        "Commodity": [{"GoodsName": _clean(name), "Goodsquantity": int(quantity)} for name, quantity in req.goods],
        "Quantity": int(req.parcels),
        "IsReturnPrintTemplate": 1,
    }
    if req.weight_kg is not None:
        body["Weight"] = float(Decimal(req.weight_kg).quantize(Decimal("0.001")))
    if account:
        body.update({name: _clean(value) for name, value in account.items()})
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


class WaybillClient:
    """Requests e-waybills from a KDNiao-style EOrderService. Thread-safe; reuse one per merchant account."""

    def __init__(self, base_url: str, business_id: str, app_key: str, timeout: float = 10,
                 transport: httpx.BaseTransport | None = None, accounts: dict[str, dict] | None = None):
        """`accounts` maps a carrier code to the account fields that carrier needs in RequestData."""
        self.url = f"{base_url.rstrip('/')}/api/EOrderService"
        self.business_id = str(business_id)
        self.app_key = app_key
        self.accounts = accounts or {}
        self._http = httpx.Client(timeout=timeout, transport=transport)

    def request(self, req: WaybillRequest) -> Waybill:
        """The waybill for this order: CarrierRefused when the carrier says no, CarrierUnavailable when there is no
        usable answer (safe to retry: the order code makes the request idempotent)."""
        data = request_data(req, self.accounts.get(req.carrier_code))
        form = {"RequestType": REQUEST_TYPE, "EBusinessID": self.business_id, "RequestData": data,
                "DataSign": kdniao_data_sign(data, self.app_key), "DataType": "2"}
        try:
            response = self._http.post(self.url, data=form)
        except httpx.HTTPError as exc:
            raise CarrierUnavailable(f"e-waybill service unreachable: {type(exc).__name__}: {exc}") from exc
        answer = self._answer(response)
        code = str(answer.get("ResultCode", ""))
        order = answer.get("Order") if isinstance(answer.get("Order"), dict) else {}
        if answer.get("Success") is True or code in SUCCESS_CODES:
            waybill_no = str(order.get("LogisticCode") or "").strip()
            if not waybill_no:
                raise CarrierUnavailable(f"success answer without Order.LogisticCode (ResultCode {code})")
            log.info("waybill=issued order_code=%s carrier=%s waybill_no=%s result_code=%s", req.order_code,
                     req.carrier_code, waybill_no, code)
            return Waybill(carrier_code=str(order.get("ShipperCode") or req.carrier_code), waybill_no=waybill_no,
                           sort_code=str(order.get("MarkDestination") or ""),
                           label_html=str(answer.get("PrintTemplate") or ""))
        reason = str(answer.get("Reason") or "refused without a reason")
        log.info("waybill=refused order_code=%s carrier=%s result_code=%s reason=%s", req.order_code,
                 req.carrier_code, code, reason)
        raise CarrierRefused(reason, code)

    @staticmethod
    def _answer(response: httpx.Response) -> dict:
        if response.status_code >= 400:
            raise CarrierUnavailable(f"HTTP {response.status_code}: {response.text[:200]}")
        try:
            answer = response.json()
        except ValueError:
            raise CarrierUnavailable(f"answer is not JSON: {response.text[:200]!r}") from None
        if not isinstance(answer, dict) or ("Success" not in answer and "ResultCode" not in answer):
            raise CarrierUnavailable(f"answer is not an EOrderService result: {response.text[:200]!r}")
        return answer

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "WaybillClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
