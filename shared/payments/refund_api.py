"""The providers' refund APIs, called with the merchant's own key; every answer's signature is checked.

WeChat Pay API v3 (pay.weixin.qq.com "退款申请" / "查询单笔退款（按商户退款单号）", "签名生成"):
- `POST /v3/refund/domestic/refunds` with JSON {out_trade_no, out_refund_no, reason, notify_url,
  amount: {refund, total, currency}} (fen); `GET /v3/refund/domestic/refunds/{out_refund_no}`.
- Request header `Authorization: WECHATPAY2-SHA256-RSA2048 mchid="..",nonce_str="..",signature="..",
  timestamp="..",serial_no=".."`: SHA256withRSA by the merchant API key over
  "METHOD\\nURL path(+query)\\ntimestamp\\nnonce\\nbody\\n"; serial_no is the merchant API certificate's.
- The answer is signed like a notification (Wechatpay-Timestamp/Nonce/Signature/Serial, the platform key):
  {refund_id, out_refund_no, transaction_id, out_trade_no, status: SUCCESS | CLOSED | PROCESSING | ABNORMAL,
  success_time, amount {...}}; a refusal is 4xx {"code": "INVALID_REQUEST" | "NOT_ENOUGH" | ..., "message"},
  an unknown refund 404 RESOURCE_NOT_EXISTS.
Alipay OpenAPI (opendocs.alipay.com "alipay.trade.refund", "alipay.trade.fastpay.refund.query", "自行实现签名"):
- a form POST to the gateway with app_id, method, format JSON, charset utf-8, sign_type RSA2, timestamp
  (yyyy-MM-dd HH:mm:ss, Beijing), version 1.0, biz_content {out_trade_no, refund_amount, out_request_no,
  refund_reason}, sign (RSA2 by the application private key over the sorted `k=v&...` string).
- The answer is JSON {"alipay_trade_refund_response": {code, msg, sub_code?, sub_msg?, trade_no, out_trade_no,
  fund_change, refund_fee, gmt_refund_pay?}, "sign"}, the sign by Alipay's key over the exact text of the
  response object. code 10000 is success; 40004 a business refusal (sub_code ACQ.REFUND_AMT_NOT_EQUAL_TOTAL,
  ACQ.TRADE_NOT_EXIST, ...); 20000 / ACQ.SYSTEM_ERROR: unknown, ask again with the same out_request_no.
The fixtures in tests/fixtures/payments/ (refund_*) name their sources.
"""
import base64
import json
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from urllib.parse import quote, urlencode, urlsplit

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from shared.payments import PaymentMessageError, alipay, wechatpay
from shared.timekeeping import utc_now

WECHATPAY_API = "https://api.mch.weixin.qq.com"
ALIPAY_GATEWAY = "https://openapi.alipay.com/gateway.do"
REFUND_PATH = "/v3/refund/domestic/refunds"
TIMEOUT = 15.0
SUCCEEDED, PROCESSING, FAILED, REFUSED, NOT_FOUND = "succeeded", "processing", "failed", "refused", "not_found"
WECHAT_STATES = {"SUCCESS": SUCCEEDED, "PROCESSING": PROCESSING, "CLOSED": FAILED, "ABNORMAL": FAILED}


class ProviderUnreachable(Exception):
    """No answer (timeout, connection refused, a 5xx): the refund's fate is unknown; ask again by its number."""


@dataclass(frozen=True)
class RefundAnswer:
    status: str  # succeeded, processing, failed (closed / abnormal), refused (nothing refunded), not_found
    provider_refund_id: str | None = None
    code: str | None = None
    message: str | None = None
    refunded_at: datetime | None = None


def _rsa_sign(private_key_pem: str, message: bytes) -> str:
    try:
        key = serialization.load_pem_private_key(alipay.pem(private_key_pem, "PRIVATE KEY"), password=None)
    except (ValueError, TypeError) as error:
        raise PaymentMessageError("bad_key", f"the merchant's API private key is not readable ({error})")
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


# --- WeChat Pay API v3 ------------------------------------------------------------------------------------------

def wechat_request_message(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    return f"{method}\n{path}\n{timestamp}\n{nonce}\n".encode() + body + b"\n"


def wechat_authorization(mchid: str, serial_no: str, private_key_pem: str, method: str, path: str, body: bytes,
                         timestamp: str | None = None, nonce: str | None = None) -> str:
    """The Authorization header of a request signed with the merchant's API key."""
    timestamp, nonce = timestamp or str(int(time.time())), nonce or secrets.token_hex(16).upper()
    signature = _rsa_sign(private_key_pem, wechat_request_message(method, path, timestamp, nonce, body))
    return (f'WECHATPAY2-SHA256-RSA2048 mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
            f'timestamp="{timestamp}",serial_no="{serial_no}"')


def read_wechat_authorization(header: str) -> dict:
    """The fields of a WECHATPAY2-SHA256-RSA2048 header (the simulator's side)."""
    scheme, _, rest = (header or "").partition(" ")
    if scheme != "WECHATPAY2-SHA256-RSA2048":
        return {}
    fields = {}
    for part in rest.split(","):
        name, _, value = part.strip().partition("=")
        fields[name] = value.strip('"')
    return fields


class WechatPayRefunds:
    """Refunds of one WeChat Pay merchant account (a PaymentAccount)."""

    def __init__(self, account, transport=None, timeout: float = TIMEOUT):
        self.account, self.transport, self.timeout = account, transport, timeout
        self.base = (account.api_url or WECHATPAY_API).rstrip("/")

    def _call(self, method: str, path: str, body: bytes = b"") -> tuple[int, dict]:
        account = self.account
        headers = {"Accept": "application/json", "Authorization": wechat_authorization(
            account.merchant_id or "", account.merchant_serial or "", account.merchant_private_key or "", method,
            urlsplit(self.base).path.rstrip("/") + path, body)}
        if body:
            headers["Content-Type"] = "application/json"
        try:
            with httpx.Client(timeout=self.timeout, transport=self.transport) as client:
                response = client.request(method, self.base + path, content=body or None, headers=headers)
        except httpx.HTTPError as error:
            raise ProviderUnreachable(f"WeChat Pay did not answer: {error}") from error
        if response.status_code >= 500:
            raise ProviderUnreachable(f"WeChat Pay answered {response.status_code}")
        # every answer, a refusal too, is signed by the platform: an unsigned one is not WeChat Pay's
        wechatpay.verify(response.headers, response.content, account.provider_public_key or "",
                         account.platform_serial or "", utc_now())
        try:
            data = response.json()
        except ValueError:
            raise PaymentMessageError("invalid_json", "WeChat Pay's answer is not JSON")
        return response.status_code, data if isinstance(data, dict) else {}

    @staticmethod
    def _answer(status_code: int, data: dict) -> RefundAnswer:
        if status_code == 404:
            return RefundAnswer(NOT_FOUND, code=data.get("code"), message=data.get("message"))
        if status_code >= 400:
            return RefundAnswer(REFUSED, code=str(data.get("code") or status_code)[:60],
                                message=str(data.get("message") or "")[:300])
        state = WECHAT_STATES.get(data.get("status"), PROCESSING)
        refunded_at = None
        if data.get("success_time"):
            try:
                refunded_at = datetime.fromisoformat(data["success_time"])
            except ValueError:
                refunded_at = None
        return RefundAnswer(state, provider_refund_id=data.get("refund_id"), code=data.get("status"),
                            refunded_at=refunded_at)

    def create(self, out_trade_no: str, out_refund_no: str, reason: str, notify_url: str | None,
               refund: Decimal, total: Decimal, currency: str) -> RefundAnswer:
        body = {"out_trade_no": out_trade_no, "out_refund_no": out_refund_no, "reason": reason[:80],
                "amount": {"refund": int(refund * 100), "total": int(total * 100), "currency": currency}}
        if notify_url:
            body["notify_url"] = notify_url
        return self._answer(*self._call("POST", REFUND_PATH, json.dumps(body, ensure_ascii=False).encode()))

    def query(self, out_refund_no: str, out_trade_no: str | None = None) -> RefundAnswer:
        return self._answer(*self._call("GET", f"{REFUND_PATH}/{quote(out_refund_no, safe='')}"))


# --- Alipay -----------------------------------------------------------------------------------------------------

def response_text(raw: str, name: str) -> tuple[dict, str]:
    """The response object and its exact text (what Alipay signs) out of an answer."""
    marker = raw.find(f'"{name}"')
    if marker < 0:
        raise PaymentMessageError("missing_field", f"the answer has no {name}")
    start = raw.index(":", marker) + 1
    while raw[start] in " \t\r\n":
        start += 1
    try:
        value, end = json.JSONDecoder().raw_decode(raw, start)
    except ValueError:
        raise PaymentMessageError("invalid_json", "the answer is not JSON")
    return value, raw[start:end]


def verify_alipay_answer(raw: str, name: str, alipay_public_key: str) -> dict:
    value, signed = response_text(raw, name)
    try:
        sign = json.loads(raw).get("sign") or ""
    except ValueError:
        raise PaymentMessageError("invalid_json", "the answer is not JSON")
    alipay.verify_text(signed, sign, alipay_public_key)
    return value


class AlipayRefunds:
    """Refunds of one Alipay application (a PaymentAccount)."""

    def __init__(self, account, transport=None, timeout: float = TIMEOUT):
        self.account, self.transport, self.timeout = account, transport, timeout
        self.gateway = account.api_url or ALIPAY_GATEWAY

    def _call(self, method: str, biz: dict, notify_url: str | None = None) -> dict:
        account = self.account
        params = {"app_id": account.app_id or "", "method": method, "format": "JSON", "charset": "utf-8",
                  "sign_type": "RSA2", "timestamp": utc_now().astimezone(alipay.BEIJING).strftime("%Y-%m-%d %H:%M:%S"),
                  "version": "1.0", "notify_url": notify_url or "",
                  "biz_content": json.dumps(biz, ensure_ascii=False, separators=(",", ":"))}
        params = {name: value for name, value in params.items() if value}
        params["sign"] = _rsa_sign(account.merchant_private_key or "", alipay.request_signing_string(params).encode())
        try:
            with httpx.Client(timeout=self.timeout, transport=self.transport) as client:
                response = client.post(self.gateway, content=urlencode(params).encode(), headers={
                    "Content-Type": "application/x-www-form-urlencoded;charset=utf-8"})
        except httpx.HTTPError as error:
            raise ProviderUnreachable(f"Alipay did not answer: {error}") from error
        if response.status_code >= 500:
            raise ProviderUnreachable(f"Alipay answered {response.status_code}")
        name = method.replace(".", "_") + "_response"
        return verify_alipay_answer(response.text, name, account.provider_public_key or "")

    @staticmethod
    def _refusal(data: dict) -> RefundAnswer:
        code, sub_code = str(data.get("code") or ""), str(data.get("sub_code") or "")
        if code == "20000" or sub_code in ("ACQ.SYSTEM_ERROR", "aop.ACQ.SYSTEM_ERROR"):
            raise ProviderUnreachable(f"Alipay could not answer now ({sub_code or code})")
        return RefundAnswer(REFUSED, code=(sub_code or code)[:60],
                            message=str(data.get("sub_msg") or data.get("msg") or "")[:300])

    def create(self, out_trade_no: str, out_refund_no: str, reason: str, notify_url: str | None,
               refund: Decimal, total: Decimal, currency: str) -> RefundAnswer:
        data = self._call("alipay.trade.refund", {"out_trade_no": out_trade_no, "refund_amount": f"{refund:.2f}",
                                                  "out_request_no": out_refund_no, "refund_reason": reason[:80]},
                          notify_url)
        if str(data.get("code")) != "10000":
            return self._refusal(data)
        if data.get("fund_change") == "Y":
            return RefundAnswer(SUCCEEDED, provider_refund_id=out_refund_no, code="10000",
                                refunded_at=_beijing(data.get("gmt_refund_pay")))
        # fund_change N: this request moved no money now (e.g. refunded by an earlier identical request): ask
        return self.query(out_refund_no, out_trade_no)

    def query(self, out_refund_no: str, out_trade_no: str | None = None) -> RefundAnswer:
        data = self._call("alipay.trade.fastpay.refund.query", {"out_trade_no": out_trade_no or "",
                                                                "out_request_no": out_refund_no})
        if str(data.get("code")) != "10000":
            return self._refusal(data)
        if data.get("refund_status") == "REFUND_SUCCESS" or (data.get("refund_amount") and not
                                                             data.get("refund_status")):
            return RefundAnswer(SUCCEEDED, provider_refund_id=out_refund_no, code="REFUND_SUCCESS",
                                refunded_at=_beijing(data.get("gmt_refund_pay")))
        return RefundAnswer(NOT_FOUND, code="REFUND_NOT_FOUND")


def _beijing(text: str | None) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=alipay.BEIJING) if text else None
    except ValueError:
        return None


def client_for(account, transport=None, timeout: float = TIMEOUT):
    return (WechatPayRefunds if account.provider == "wechatpay" else AlipayRefunds)(account, transport, timeout)
