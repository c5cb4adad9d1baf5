"""A payment provider simulator on loopback: WeChat Pay API v3 notifications (signed by a platform key of its own,
the resource encrypted under an API v3 key) and Alipay asynchronous notifications (RSA2), sent by real HTTP to a
given URL, and the daily bills (WeChat Pay trade bill, Alipay 业务明细) served for download with every payment and
refund it sent. For the demo (`orderloom simulate-payments`), the tests and the benchmark.

The keys are made when the simulator starts; `wechatpay_settings()` / `alipay_settings()` are what a merchant
copies into the channel's payment account (shared.services.payments.configure_account).
"""
import json
import secrets
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug.wrappers import Request, Response

from devtools.simulators.loopback import LoopbackServing
from shared.payments import alipay, bills, wechatpay

BEIJING = ZoneInfo("Asia/Shanghai")


def _key_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


class PaymentSimulator(LoopbackServing):
    thread_name = "payment-simulator"

    def __init__(self, merchant_id: str = "1900000109", wechat_app_id: str = "wx8888888888888888",
                 alipay_app_id: str = "2021000117600001"):
        self._init_serving()
        self.merchant_id, self.wechat_app_id, self.alipay_app_id = merchant_id, wechat_app_id, alipay_app_id
        self.wechat_private, self.wechat_public = _key_pair()
        self.alipay_private, self.alipay_public = _key_pair()
        self.platform_serial = secrets.token_hex(20).upper()
        self.api_v3_key = secrets.token_urlsafe(24)[:32]
        self.sent: dict[str, list] = {"wechatpay": [], "alipay": []}  # (Beijing time text, kind, no, id, amount, ...)
        self._lock = threading.Lock()

    # --- what the merchant configures ---------------------------------------------------------------------------

    def wechatpay_settings(self) -> dict:
        return {"merchant_id": self.merchant_id, "app_id": self.wechat_app_id, "api_v3_key": self.api_v3_key,
                "provider_public_key": self.wechat_public, "platform_serial": self.platform_serial,
                "bill_url": f"{self.base_url}/wechatpay/bill" if self.base_url else None}

    def alipay_settings(self) -> dict:
        return {"app_id": self.alipay_app_id, "provider_public_key": self.alipay_public,
                "bill_url": f"{self.base_url}/alipay/bill" if self.base_url else None}

    # --- notifications --------------------------------------------------------------------------------------------

    def _record(self, provider: str, paid_at: datetime, kind: str, out_trade_no: str, transaction_id: str,
                amount: Decimal, refund_id: str | None = None) -> None:
        entry = [paid_at.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S"), kind, out_trade_no, transaction_id,
                 f"{amount:.2f}"]
        if refund_id:
            entry.append(refund_id)
        with self._lock:
            if kind == "refund" or not any(row[3] == transaction_id and row[1] == "payment"
                                           for row in self.sent[provider]):
                self.sent[provider].append(tuple(entry))

    def wechatpay_notification(self, out_trade_no: str, total_fen: int, transaction_id: str | None = None,
                               paid_at: datetime | None = None, state: str = "SUCCESS",
                               timestamp: int | None = None, notification_id: str | None = None
                               ) -> tuple[dict, bytes]:
        """(headers, body) of a signed payment notification, as WeChat Pay sends it."""
        paid_at = paid_at or datetime.now(UTC)
        transaction_id = transaction_id or "42000" + secrets.token_hex(12)[:23]
        transaction = {
            "mchid": self.merchant_id, "appid": self.wechat_app_id, "out_trade_no": out_trade_no,
            "transaction_id": transaction_id, "trade_type": "JSAPI", "trade_state": state,
            "trade_state_desc": "支付成功", "bank_type": "OTHERS", "attach": "",
            "success_time": paid_at.astimezone(BEIJING).isoformat(timespec="seconds"),
            "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
            "amount": {"total": total_fen, "payer_total": total_fen, "currency": "CNY", "payer_currency": "CNY"},
        }
        resource = wechatpay.encrypt_resource(self.api_v3_key, transaction, secrets.token_hex(6))
        body = json.dumps({
            "id": notification_id or secrets.token_hex(18), "create_time": paid_at.astimezone(BEIJING).isoformat(
                timespec="seconds"), "resource_type": "encrypt-resource", "event_type": "TRANSACTION.SUCCESS",
            "summary": "支付成功", "resource": resource}, ensure_ascii=False).encode()
        stamp, nonce = str(timestamp or int(time.time())), secrets.token_hex(16)
        headers = {"Content-Type": "application/json", "Wechatpay-Timestamp": stamp, "Wechatpay-Nonce": nonce,
                   "Wechatpay-Serial": self.platform_serial, "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
                   "Wechatpay-Signature": wechatpay.sign(self.wechat_private, stamp, nonce, body)}
        if state == "SUCCESS":
            self._record("wechatpay", paid_at, "payment", out_trade_no, transaction_id, Decimal(total_fen) / 100)
        return headers, body

    def alipay_notification(self, out_trade_no: str, total_amount: str, trade_no: str | None = None,
                            paid_at: datetime | None = None, state: str = "TRADE_SUCCESS") -> dict:
        """The form fields of a signed asynchronous notification, as Alipay posts them."""
        paid_at = (paid_at or datetime.now(UTC)).astimezone(BEIJING)
        trade_no = trade_no or paid_at.strftime("%Y%m%d") + "2200" + secrets.token_hex(7)[:14]
        params = {"notify_time": paid_at.strftime("%Y-%m-%d %H:%M:%S"), "notify_type": "trade_status_sync",
                  "notify_id": secrets.token_hex(16), "app_id": self.alipay_app_id, "charset": "utf-8",
                  "version": "1.0", "sign_type": "RSA2", "trade_no": trade_no, "out_trade_no": out_trade_no,
                  "buyer_id": "2088102177846880", "seller_id": "2088102177296610", "trade_status": state,
                  "total_amount": total_amount, "receipt_amount": total_amount, "subject": "龙井茶",
                  "gmt_create": paid_at.strftime("%Y-%m-%d %H:%M:%S"),
                  "gmt_payment": paid_at.strftime("%Y-%m-%d %H:%M:%S")}
        params["sign"] = alipay.sign(params, self.alipay_private)
        if state in alipay.PAID_STATES:
            self._record("alipay", paid_at, "payment", out_trade_no, trade_no, Decimal(total_amount))
        return params

    def send_wechatpay(self, url: str, *args, **kwargs) -> httpx.Response:
        headers, body = self.wechatpay_notification(*args, **kwargs)
        return httpx.post(url, content=body, headers=headers, timeout=30)

    def send_alipay(self, url: str, *args, **kwargs) -> httpx.Response:
        params = self.alipay_notification(*args, **kwargs)
        return httpx.post(url, content=urlencode(params).encode(), timeout=30,
                          headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})

    def add_refund(self, provider: str, out_trade_no: str, transaction_id: str, amount: str,
                   at: datetime | None = None) -> None:
        self._record(provider, at or datetime.now(UTC), "refund", out_trade_no, transaction_id, Decimal(amount),
                     refund_id="50" + secrets.token_hex(10))

    # --- bills ----------------------------------------------------------------------------------------------------

    def bill(self, provider: str, day: str) -> bytes:
        """The day's bill (Beijing date yyyy-mm-dd) of what was sent."""
        with self._lock:
            entries = [row for row in self.sent[provider] if row[0].startswith(day)]
        if provider == "wechatpay":
            return bills.write_wechat_trade_bill(entries, self.wechat_app_id, self.merchant_id).encode()
        parsed = datetime.strptime(day, "%Y-%m-%d")
        return bills.write_alipay_bill(entries, day=parsed.strftime("%Y年%m月%d日"))

    def wsgi_app(self, environ, start_response):
        request = Request(environ)
        provider = request.path.strip("/").split("/")[0]
        day = request.args.get("bill_date", "")
        if request.method != "GET" or provider not in self.sent or not request.path.endswith("/bill"):
            return Response("not found", status=404)(environ, start_response)
        try:
            datetime.strptime(day, "%Y-%m-%d")
        except ValueError:
            return Response(json.dumps({"code": "INVALID_REQUEST", "message": "bill_date is yyyy-MM-dd"}),
                            status=400, mimetype="application/json")(environ, start_response)
        return Response(self.bill(provider, day), mimetype="text/csv")(environ, start_response)


def run(host: str, port: int, wechatpay_url: str | None, alipay_url: str | None, orders: list[tuple[str, str]],
        echo=print) -> None:
    """Serve bills; send one notification per (order number, amount) to each URL given; keep serving until ^C."""
    simulator = PaymentSimulator()
    simulator.start(host, port)
    echo(f"payment simulator on {simulator.base_url}")
    echo("WeChat Pay account: " + json.dumps({k: v for k, v in simulator.wechatpay_settings().items()
                                              if k != "provider_public_key"}))
    echo("WeChat Pay platform public key:\n" + simulator.wechat_public)
    echo("Alipay account: " + json.dumps({k: v for k, v in simulator.alipay_settings().items()
                                          if k != "provider_public_key"}))
    echo("Alipay public key:\n" + simulator.alipay_public)
    for order_no, amount in orders:
        if wechatpay_url:
            answer = simulator.send_wechatpay(wechatpay_url, order_no, int(Decimal(amount) * 100))
            echo(f"wechatpay notify order={order_no} status={answer.status_code} body={answer.text[:80]}")
        if alipay_url:
            answer = simulator.send_alipay(alipay_url, order_no, f"{Decimal(amount):.2f}")
            echo(f"alipay notify order={order_no} status={answer.status_code} body={answer.text[:80]}")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        simulator.stop()

