"""The providers' refund APIs, called with the merchant's own key; every success's signature is checked (a
refusal's too when it carries one), by the provider's module (shared.payments.wechatpay / alipay).

WeChat Pay API v3 (pay.weixin.qq.com "退款申请" / "查询单笔退款（按商户退款单号）", "签名生成"):
- `POST /v3/refund/domestic/refunds` with JSON {out_trade_no, out_refund_no, reason, notify_url,
  amount: {refund, total, currency}} (fen); `GET /v3/refund/domestic/refunds/{out_refund_no}`.
- Requests are signed and answers verified by shared.payments.wechatpay (`authorization`, `verify_answer`).
- The answer: {refund_id, out_refund_no, transaction_id, out_trade_no, status: SUCCESS | CLOSED | PROCESSING |
  ABNORMAL, success_time, amount {...}}; a refusal is 4xx {"code": "INVALID_REQUEST" | "NOT_ENOUGH" | ..., "message"},
  an unknown refund 404 RESOURCE_NOT_EXISTS.
Alipay OpenAPI (opendocs.alipay.com "alipay.trade.refund", "alipay.trade.fastpay.refund.query", "自行实现签名"):
- a form POST to the gateway, signed by shared.payments.alipay (`signed_request`), biz_content {out_trade_no,
  refund_amount, out_request_no, refund_reason}; the answer's sign checked there too (`read_response`).
- The answer is JSON {"alipay_trade_refund_response": {code, msg, sub_code?, sub_msg?, trade_no, out_trade_no,
  fund_change, refund_fee, gmt_refund_pay?}, "sign"}. code 10000 is success; 40004 a business refusal (sub_code
  ACQ.REFUND_AMT_NOT_EQUAL_TOTAL, ACQ.TRADE_NOT_EXIST, ...); 20000 / ACQ.SYSTEM_ERROR: unknown, ask again with
  the same out_request_no.
The fixtures in tests/fixtures/payments/ (refund_*) name their sources.
"""
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from urllib.parse import quote, urlencode

import httpx

from shared.payments import PaymentMessageError, alipay, wechatpay
from shared.timekeeping import utc_now

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


# --- WeChat Pay API v3 (signing and verifying: shared.payments.wechatpay) -------------------------------------

class WechatPayRefunds:
    """Refunds of one WeChat Pay merchant account (a PaymentAccount)."""

    def __init__(self, account, transport=None, timeout: float = TIMEOUT):
        self.account, self.transport, self.timeout = account, transport, timeout
        self.base = (account.api_url or wechatpay.API_BASE).rstrip("/")

    def _call(self, method: str, path: str, body: bytes = b"") -> tuple[int, dict]:
        account = self.account
        headers = {"Accept": "application/json", "Authorization": wechatpay.authorization(
            account.merchant_id or "", account.merchant_serial or "", account.merchant_private_key or "", method,
            self.base + path, body)}
        if body:
            headers["Content-Type"] = "application/json"
        try:
            with httpx.Client(timeout=self.timeout, transport=self.transport) as client:
                response = client.request(method, self.base + path, content=body or None, headers=headers)
        except httpx.HTTPError as error:
            raise ProviderUnreachable(f"WeChat Pay did not answer: {error}") from error
        if response.status_code >= 500:
            raise ProviderUnreachable(f"WeChat Pay answered {response.status_code}")
        # a success must be the platform's; a signed refusal is checked too (wechatpay.verify_answer)
        wechatpay.verify_answer(response.status_code, response.headers, response.content,
                                account.provider_public_key or "", account.platform_serial or "", utc_now())
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


# --- Alipay (signing and verifying: shared.payments.alipay) ---------------------------------------------------

class AlipayRefunds:
    """Refunds of one Alipay application (a PaymentAccount)."""

    def __init__(self, account, transport=None, timeout: float = TIMEOUT):
        self.account, self.transport, self.timeout = account, transport, timeout
        self.gateway = account.api_url or alipay.GATEWAY

    def _call(self, method: str, biz: dict, notify_url: str | None = None) -> dict:
        """The answer's response object, its sign checked (a refusal's too when it carries one)."""
        account = self.account
        params = alipay.signed_request(account.app_id or "", method, biz, account.merchant_private_key or "",
                                       utc_now(), notify_url=notify_url)
        try:
            with httpx.Client(timeout=self.timeout, transport=self.transport) as client:
                response = client.post(self.gateway, content=urlencode(params).encode(), headers={
                    "Content-Type": "application/x-www-form-urlencoded;charset=utf-8"})
        except httpx.HTTPError as error:
            raise ProviderUnreachable(f"Alipay did not answer: {error}") from error
        if response.status_code >= 500:
            raise ProviderUnreachable(f"Alipay answered {response.status_code}")
        try:
            return alipay.read_response(response.content, method, account.provider_public_key or "")
        except alipay.AlipayRefusal as refusal:
            return refusal.node

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
