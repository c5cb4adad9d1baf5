"""A payment provider simulator on loopback: WeChat Pay API v3 notifications (signed by a platform key of its own,
the resource encrypted under an API v3 key) and Alipay asynchronous notifications (RSA2), sent by real HTTP to a
given URL; and the providers' signed APIs, on one router per provider with one signature check each (our request
signed with the merchant's key, checked by shared.payments.wechatpay / alipay, the answer signed with the platform's
or Alipay's key):

- WeChat Pay under `/wechatpay` (the account's api_url): `POST /v3/refund/domestic/refunds`,
  `GET /v3/refund/domestic/refunds/{out_refund_no}`, `GET /v3/bill/tradebill` and the `download_url` it gives
  (`/v3/billdownload/file`); a bad signature is 401 SIGN_ERROR.
- Alipay at `/alipay/gateway.do` (the account's api_url): `alipay.trade.refund`, `alipay.trade.fastpay.refund.query`
  and `alipay.data.dataservice.bill.downloadurl.query`, whose bill_download_url (`/alipay/billfile`) serves the ZIP;
  a bad sign is 40002 isv.invalid-signature.

The daily bills (WeChat Pay trade bill, Alipay 业务明细) hold every payment and refund it sent; a day not billed yet
(today or later, see `today`) is answered as the provider does. The refund APIs refuse what the providers refuse
(more than is left of the trade, an unknown trade), keep an out_refund_no's refund once (a repeat answers the same
refund), and afterwards make the refund notification (WeChat Pay REFUND.SUCCESS, Alipay's trade notify with
refund_fee / out_biz_no): kept in `notifications` and, when the request named a notify URL and `deliver` is on,
posted to it. `stall_seconds` holds a refund answer that long after the refund was made (a provider timing out);
`tamper` ({"hash", "signature"}) makes its answers lie, for the tests. For the demo (`orderloom simulate-payments`),
the tests and the benchmark.

The keys are made when the simulator starts; `wechatpay_settings()` / `alipay_settings()` are what a merchant
copies into the channel's payment account (shared.services.payments.configure_account).
"""
import hashlib
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
from shared.payments import PaymentMessageError, alipay, bills, wechatpay

BEIJING = ZoneInfo("Asia/Shanghai")


def key_pair() -> tuple[str, str]:
    """A fresh RSA-2048 key pair (private PKCS#8 PEM, public SubjectPublicKeyInfo PEM)."""
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
        self.wechat_private, self.wechat_public = key_pair()
        self.alipay_private, self.alipay_public = key_pair()
        self.merchant_private, self.merchant_public = key_pair()  # the merchant's API certificate key (WeChat Pay)
        self.merchant_serial = secrets.token_hex(20).upper()
        self.app_private, self.app_public = key_pair()  # the Alipay application key (应用私钥 / 应用公钥)
        self.tamper: set[str] = set()
        self.today = None  # the Beijing date bills exist before (None: the clock's)
        self._tokens: dict[str, tuple[str, str]] = {}
        self.platform_serial = secrets.token_hex(20).upper()
        self.api_v3_key = secrets.token_urlsafe(24)[:32]
        self.sent: dict[str, list] = {"wechatpay": [], "alipay": []}  # (Beijing time text, kind, no, id, amount, ...)
        self._lock = threading.RLock()  # a refund records its bill line while it holds the lock
        self.trades: dict[str, dict[str, dict]] = {"wechatpay": {}, "alipay": {}}  # out_trade_no → total, id
        self.refunds: dict[str, dict[str, dict]] = {"wechatpay": {}, "alipay": {}}  # out_refund_no → the refund
        self.notifications: list[tuple[str, dict, bytes]] = []  # (provider, headers, body) of refund notifications
        self.requests: list[tuple[str, str]] = []  # (provider, what) of every refund call and refused request
        self.deliver = True
        self.stall_seconds = 0.0

    def reset(self) -> None:
        """Forget every payment, refund, notification and request, and stop lying (keys and `deliver` stay)."""
        with self._lock:
            self.sent = {"wechatpay": [], "alipay": []}
            self.trades = {"wechatpay": {}, "alipay": {}}
            self.refunds = {"wechatpay": {}, "alipay": {}}
            self.notifications.clear()
            self.requests.clear()
            self._tokens.clear()
            self.tamper, self.today, self.stall_seconds = set(), None, 0.0

    # --- what the merchant configures ---------------------------------------------------------------------------

    def wechatpay_settings(self) -> dict:
        return {"merchant_id": self.merchant_id, "app_id": self.wechat_app_id, "api_v3_key": self.api_v3_key,
                "provider_public_key": self.wechat_public, "platform_serial": self.platform_serial,
                "merchant_private_key": self.merchant_private, "merchant_serial": self.merchant_serial,
                "api_url": f"{self.base_url}/wechatpay" if self.base_url else None}

    def alipay_settings(self) -> dict:
        return {"app_id": self.alipay_app_id, "provider_public_key": self.alipay_public,
                "merchant_private_key": self.app_private,
                "api_url": f"{self.base_url}/alipay/gateway.do" if self.base_url else None}

    # --- notifications --------------------------------------------------------------------------------------------

    def _record(self, provider: str, paid_at: datetime, kind: str, out_trade_no: str, transaction_id: str,
                amount: Decimal, refund_id: str | None = None) -> None:
        entry = [paid_at.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S"), kind, out_trade_no, transaction_id,
                 f"{amount:.2f}"]
        if refund_id:
            entry.append(refund_id)
        with self._lock:
            if kind == "payment":
                self.trades[provider].setdefault(out_trade_no, {"total": Decimal(amount),
                                                                "transaction_id": transaction_id})
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

    def alipay_bill_zip(self, day: str) -> bytes:
        """The ZIP Alipay's bill_download_url serves: the 业务明细 CSV and its 汇总 (summary), GBK, their names in
        GBK without the UTF-8 flag as Alipay writes them (zipfile cannot: ASCII stand-ins of the same length are
        written, then their bytes swapped for the GBK names in both headers)."""
        import io
        import zipfile

        stem = f"20881234567890120156_{day.replace('-', '')}"
        files = {f"{stem}_业务明细.csv": self.bill("alipay", day),
                 f"{stem}_业务明细(汇总).csv": "#支付宝业务汇总查询\r\n".encode("gb18030")}
        buffer = io.BytesIO()
        swaps = []
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for number, (name, content) in enumerate(files.items()):
                gbk = name.encode("gb18030")
                stand_in = ("~" + chr(ord("A") + number)) * len(gbk)
                swaps.append((stand_in[:len(gbk)].encode(), gbk))
                archive.writestr(stand_in[:len(gbk)], content)
        raw = buffer.getvalue()
        for stand_in, gbk in swaps:
            raw = raw.replace(stand_in, gbk)
        return raw

    def _billed(self, day: str) -> bool:
        today = self.today or datetime.now(BEIJING).date()
        return datetime.strptime(day, "%Y-%m-%d").date() < today

    # --- WeChat Pay API v3, under /wechatpay: one router, one signature check -------------------------------------

    def _wechat_answer(self, status: int, data: dict) -> Response:
        """An answer signed with the platform key (over other bytes when `tamper` has "signature")."""
        body = json.dumps(data, ensure_ascii=False).encode()
        stamp, nonce = str(int(time.time())), secrets.token_hex(16)
        signed = body + b" " if "signature" in self.tamper else body
        return Response(body, status=status, mimetype="application/json", headers={
            "Wechatpay-Timestamp": stamp, "Wechatpay-Nonce": nonce, "Wechatpay-Serial": self.platform_serial,
            "Wechatpay-Signature": wechatpay.sign(self.wechat_private, stamp, nonce, signed)})

    def _wechat_api(self, request: Request) -> Response:
        body = request.get_data()
        try:
            fields = wechatpay.check_authorization(request.headers.get("Authorization", ""), request.method,
                                                   request.full_path.rstrip("?"), body, self.merchant_public)
        except PaymentMessageError:
            self.requests.append(("wechatpay", "refused:SIGN_ERROR"))
            return self._wechat_answer(401, {"code": "SIGN_ERROR", "message": "签名错误"})
        if fields["mchid"] != self.merchant_id or fields["serial_no"] != self.merchant_serial:
            self.requests.append(("wechatpay", "refused:SIGN_ERROR"))
            return self._wechat_answer(401, {"code": "SIGN_ERROR", "message": "商户证书序列号有误"})
        path = request.path.removeprefix("/wechatpay")
        if path.startswith("/v3/refund/domestic/refunds"):
            return self._wechat_refund(request, path, body)
        if path == "/v3/bill/tradebill" and request.method == "GET":
            return self._wechat_tradebill(request)
        if path == "/v3/billdownload/file" and request.method == "GET":
            found = self._tokens.get(request.args.get("token", ""))
            if found is None or found[0] != "wechatpay":
                return self._wechat_answer(400, {"code": "INVALID_REQUEST", "message": "账单地址已过期"})
            return Response(self.bill(*found), mimetype="application/octet-stream")
        return self._wechat_answer(404, {"code": "NOT_FOUND", "message": "请求的资源不存在"})

    def _wechat_tradebill(self, request: Request) -> Response:
        day = request.args.get("bill_date", "")
        try:
            datetime.strptime(day, "%Y-%m-%d")
        except ValueError:
            return self._wechat_answer(400, {"code": "INVALID_REQUEST", "message": "bill_date 格式为 yyyy-MM-DD"})
        if not self._billed(day):
            return self._wechat_answer(400, {"code": "NO_STATEMENT_EXIST", "message": "账单文件不存在"})
        token = secrets.token_urlsafe(24)
        self._tokens[token] = ("wechatpay", day)
        data = self.bill("wechatpay", day)
        digest = hashlib.sha1(data + (b"x" if "hash" in self.tamper else b"")).hexdigest()
        url = f"{self.base_url}/wechatpay/v3/billdownload/file?token={token}"
        return self._wechat_answer(200, {"hash_type": "SHA1", "hash_value": digest, "download_url": url})

    # --- refunds ------------------------------------------------------------------------------------------------

    def _stall(self) -> None:
        if self.stall_seconds:
            self._stopping.wait(self.stall_seconds)

    def _left(self, provider: str, out_trade_no: str) -> Decimal:
        trade = self.trades[provider][out_trade_no]
        return trade["total"] - sum((r["amount"] for r in self.refunds[provider].values()
                                     if r["out_trade_no"] == out_trade_no), Decimal(0))

    def _wechat_refund(self, request: Request, path: str, body: bytes) -> Response:
        """A refund (POST) or a refund's state (GET .../{out_refund_no}); the signature is checked already."""
        if request.method == "GET":
            out_refund_no = path.rsplit("/", 1)[-1]
            self.requests.append(("wechatpay", f"query:{out_refund_no}"))
            refund = self.refunds["wechatpay"].get(out_refund_no)
            if refund is None:
                return self._wechat_answer(404, {"code": "RESOURCE_NOT_EXISTS", "message": "退款单不存在"})
            return self._wechat_answer(200, self._wechat_refund_json(refund))
        try:
            data = json.loads(body)
            out_trade_no, out_refund_no = str(data["out_trade_no"]), str(data["out_refund_no"])
            fen, total = int(data["amount"]["refund"]), int(data["amount"]["total"])
        except (ValueError, KeyError, TypeError):
            return self._wechat_answer(400, {"code": "PARAM_ERROR", "message": "参数错误"})
        self.requests.append(("wechatpay", f"refund:{out_refund_no}"))
        with self._lock:
            known = self.refunds["wechatpay"].get(out_refund_no)
            trade = self.trades["wechatpay"].get(out_trade_no)
            if known is not None:
                if known["amount"] != Decimal(fen) / 100:
                    return self._wechat_answer(400, {"code": "INVALID_REQUEST",
                                                     "message": "同一商户退款单号的退款金额与之前不一致"})
                answer = self._wechat_refund_json(known)
            elif trade is None:
                return self._wechat_answer(404, {"code": "RESOURCE_NOT_EXISTS", "message": "订单不存在"})
            elif Decimal(total) / 100 != trade["total"]:
                return self._wechat_answer(400, {"code": "INVALID_REQUEST", "message": "订单金额与原订单不一致"})
            elif fen <= 0 or Decimal(fen) / 100 > self._left("wechatpay", out_trade_no):
                return self._wechat_answer(400, {"code": "INVALID_REQUEST", "message": "申请退款金额超过订单可退金额"})
            else:
                known = self._make_refund("wechatpay", out_trade_no, out_refund_no, Decimal(fen) / 100,
                                          data.get("notify_url"))
                answer = self._wechat_refund_json(known, status="PROCESSING")
        self._after_refund(known)
        self._stall()
        return self._wechat_answer(200, answer)

    def _make_refund(self, provider: str, out_trade_no: str, out_refund_no: str, amount: Decimal,
                     notify_url: str | None) -> dict:
        trade = self.trades[provider][out_trade_no]
        refund = {"provider": provider, "out_trade_no": out_trade_no, "out_refund_no": out_refund_no,
                  "refund_id": "50" + secrets.token_hex(14)[:26] if provider == "wechatpay" else out_refund_no,
                  "transaction_id": trade["transaction_id"], "amount": amount, "total": trade["total"],
                  "at": datetime.now(UTC), "notify_url": notify_url}
        self.refunds[provider][out_refund_no] = refund
        self._record(provider, refund["at"], "refund", out_trade_no, trade["transaction_id"], amount,
                     refund_id=refund["refund_id"])
        return refund

    def _wechat_refund_json(self, refund: dict, status: str = "SUCCESS") -> dict:
        at = refund["at"].astimezone(BEIJING).isoformat(timespec="seconds")
        return {"refund_id": refund["refund_id"], "out_refund_no": refund["out_refund_no"],
                "transaction_id": refund["transaction_id"], "out_trade_no": refund["out_trade_no"],
                "channel": "ORIGINAL", "user_received_account": "支付用户零钱", "create_time": at,
                **({"success_time": at} if status == "SUCCESS" else {}), "status": status, "funds_account": "AVAILABLE",
                "amount": {"total": int(refund["total"] * 100), "refund": int(refund["amount"] * 100),
                           "payer_total": int(refund["total"] * 100), "payer_refund": int(refund["amount"] * 100),
                           "settlement_refund": int(refund["amount"] * 100),
                           "settlement_total": int(refund["total"] * 100), "discount_refund": 0, "currency": "CNY"}}

    def wechatpay_refund_notification(self, refund: dict, status: str = "SUCCESS") -> tuple[dict, bytes]:
        """(headers, body) of a signed refund notification (退款结果通知), as WeChat Pay sends it."""
        at = refund["at"].astimezone(BEIJING).isoformat(timespec="seconds")
        plain = {"mchid": self.merchant_id, "out_trade_no": refund["out_trade_no"],
                 "transaction_id": refund["transaction_id"], "out_refund_no": refund["out_refund_no"],
                 "refund_id": refund["refund_id"], "refund_status": status, "success_time": at,
                 "amount": {"total": int(refund["total"] * 100), "refund": int(refund["amount"] * 100),
                            "payer_total": int(refund["total"] * 100), "payer_refund": int(refund["amount"] * 100)},
                 "user_received_account": "支付用户零钱"}
        resource = wechatpay.encrypt_resource(self.api_v3_key, plain, secrets.token_hex(6), associated_data="refund",
                                              original_type="refund")
        body = json.dumps({"id": secrets.token_hex(18), "create_time": at, "resource_type": "encrypt-resource",
                           "event_type": f"REFUND.{status}", "summary": "退款成功" if status == "SUCCESS" else "退款异常",
                           "resource": resource}, ensure_ascii=False).encode()
        stamp, nonce = str(int(time.time())), secrets.token_hex(16)
        headers = {"Content-Type": "application/json", "Wechatpay-Timestamp": stamp, "Wechatpay-Nonce": nonce,
                   "Wechatpay-Serial": self.platform_serial, "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
                   "Wechatpay-Signature": wechatpay.sign(self.wechat_private, stamp, nonce, body)}
        return headers, body

    def alipay_refund_notification(self, refund: dict) -> dict:
        """The form fields of the trade notify Alipay sends after a refund (refund_fee: the refunded total)."""
        at = refund["at"].astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")
        refunded = refund["total"] - self._left("alipay", refund["out_trade_no"])
        params = {"notify_time": at, "notify_type": "trade_status_sync", "notify_id": secrets.token_hex(16),
                  "app_id": self.alipay_app_id, "charset": "utf-8", "version": "1.0", "sign_type": "RSA2",
                  "trade_no": refund["transaction_id"], "out_trade_no": refund["out_trade_no"],
                  "out_biz_no": refund["out_refund_no"], "trade_status": "TRADE_CLOSED" if refunded >= refund["total"]
                  else "TRADE_SUCCESS", "total_amount": f"{refund['total']:.2f}", "refund_fee": f"{refunded:.2f}",
                  "gmt_refund": at + ".000", "gmt_payment": at}
        params["sign"] = alipay.sign(params, self.alipay_private)
        return params

    def _after_refund(self, refund: dict) -> None:
        """Make the refund's notification; post it to the notify URL when there is one (after the answer)."""
        if refund.get("notified"):
            return
        refund["notified"] = True
        if refund["provider"] == "wechatpay":
            headers, body = self.wechatpay_refund_notification(refund)
        else:
            params = self.alipay_refund_notification(refund)
            headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
            body = urlencode(params).encode()
        self.notifications.append((refund["provider"], headers, body))
        url = refund.get("notify_url")
        if url and self.deliver:
            def post():
                time.sleep(0.2)
                try:
                    httpx.post(url, content=body, headers=headers, timeout=10)
                except httpx.HTTPError:
                    pass  # the provider sends again later; the merchant may also query
            threading.Thread(target=post, daemon=True, name="refund-notify").start()

    # --- Alipay OpenAPI, at /alipay/gateway.do: one router, one signature check ---------------------------------

    def _alipay_answer(self, method: str, node: dict) -> Response:
        """An answer signed with Alipay's key (another key when `tamper` has "signature")."""
        key = self.app_private if "signature" in self.tamper else self.alipay_private
        return Response(alipay.signed_response(method, node, key), mimetype="application/json")

    def _alipay_gateway(self, request: Request) -> Response:
        params = request.form.to_dict() if request.method == "POST" else request.args.to_dict()
        method = params.get("method", "")
        try:
            alipay.verify_request(params, self.app_public)
        except PaymentMessageError:
            self.requests.append(("alipay", "refused:isv.invalid-signature"))
            return self._alipay_answer(method, {"code": "40002", "msg": "Invalid Arguments",
                                                "sub_code": "isv.invalid-signature", "sub_msg": "验签出错"})
        if params.get("app_id") != self.alipay_app_id:
            return self._alipay_answer(method, {"code": "40002", "msg": "Invalid Arguments",
                                                "sub_code": "isv.invalid-app-id", "sub_msg": "无效的AppID参数"})
        try:
            biz = json.loads(params.get("biz_content") or "")
        except ValueError:
            biz = None
        if not isinstance(biz, dict):
            return self._alipay_answer(method, {"code": "40002", "msg": "Invalid Arguments",
                                                "sub_code": "isv.missing-biz-content", "sub_msg": "业务参数错误"})
        if method == alipay.BILL_METHOD:
            return self._alipay_bill_url(method, biz)
        if method == "alipay.trade.fastpay.refund.query":
            return self._alipay_refund_query(method, biz)
        if method == "alipay.trade.refund":
            return self._alipay_refund(method, biz, params.get("notify_url"))
        return self._alipay_answer(method, {"code": "40004", "msg": "Business Failed",
                                            "sub_code": "isv.invalid-method", "sub_msg": "不存在的方法名"})

    def _alipay_bill_url(self, method: str, biz: dict) -> Response:
        day = str(biz.get("bill_date") or "")
        try:
            datetime.strptime(day, "%Y-%m-%d")
        except ValueError:
            return self._alipay_answer(method, {"code": "40004", "msg": "Business Failed",
                                                "sub_code": "isp.bill_date_error", "sub_msg": "账单日期格式不正确"})
        if biz.get("bill_type") != "trade" or not self._billed(day):
            return self._alipay_answer(method, {"code": "40004", "msg": "Business Failed",
                                                "sub_code": "isp.bill_not_exist", "sub_msg": "账单不存在"})
        token = secrets.token_urlsafe(24)
        self._tokens[token] = ("alipay", day)
        return self._alipay_answer(method, {"code": "10000", "msg": "Success",
                                            "bill_download_url": f"{self.base_url}/alipay/billfile?token={token}"})

    def _alipay_refund_query(self, method: str, biz: dict) -> Response:
        out_trade_no, out_request_no = str(biz.get("out_trade_no") or ""), str(biz.get("out_request_no") or "")
        self.requests.append(("alipay", f"query:{out_request_no}"))
        refund = self.refunds["alipay"].get(out_request_no)
        if refund is None:
            return self._alipay_answer(method, {"code": "10000", "msg": "Success", "out_trade_no": out_trade_no,
                                                "out_request_no": out_request_no})
        return self._alipay_answer(method, {
            "code": "10000", "msg": "Success", "trade_no": refund["transaction_id"],
            "out_trade_no": refund["out_trade_no"], "out_request_no": out_request_no,
            "total_amount": f"{refund['total']:.2f}", "refund_amount": f"{refund['amount']:.2f}",
            "refund_status": "REFUND_SUCCESS",
            "gmt_refund_pay": refund["at"].astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")})

    def _alipay_refund(self, method: str, biz: dict, notify_url: str | None) -> Response:
        out_trade_no, out_request_no = str(biz.get("out_trade_no") or ""), str(biz.get("out_request_no") or "")
        self.requests.append(("alipay", f"refund:{out_request_no}"))
        try:
            amount = Decimal(str(biz.get("refund_amount")))
        except ArithmeticError:
            amount = Decimal(0)
        with self._lock:
            trade = self.trades["alipay"].get(out_trade_no)
            known = self.refunds["alipay"].get(out_request_no or out_trade_no)
            if trade is None:
                return self._alipay_answer(method, {"code": "40004", "msg": "Business Failed",
                                                    "sub_code": "ACQ.TRADE_NOT_EXIST", "sub_msg": "交易不存在"})
            if known is not None:
                fund_change = "N"
            elif not amount.is_finite() or amount <= 0 or amount > self._left("alipay", out_trade_no):
                return self._alipay_answer(method, {"code": "40004", "msg": "Business Failed",
                                                    "sub_code": "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
                                                    "sub_msg": "退款金额超限"})
            else:
                known = self._make_refund("alipay", out_trade_no, out_request_no or out_trade_no, amount, notify_url)
                fund_change = "Y"
            refunded = trade["total"] - self._left("alipay", out_trade_no)
        self._after_refund(known)
        self._stall()
        return self._alipay_answer(method, {
            "code": "10000", "msg": "Success", "trade_no": known["transaction_id"], "out_trade_no": out_trade_no,
            "buyer_logon_id": "159****5620", "fund_change": fund_change, "refund_fee": f"{refunded:.2f}",
            "gmt_refund_pay": known["at"].astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S"),
            "buyer_user_id": "2088101117955611", "send_back_fee": f"{known['amount']:.2f}"})

    def wsgi_app(self, environ, start_response):
        request = Request(environ)
        if request.path.startswith("/wechatpay/v3/"):
            return self._wechat_api(request)(environ, start_response)
        if request.path == "/alipay/gateway.do":
            return self._alipay_gateway(request)(environ, start_response)
        if request.path == "/alipay/billfile" and request.method == "GET":
            found = self._tokens.get(request.args.get("token", ""))
            if found is None or found[0] != "alipay":
                return Response("not found", status=404)(environ, start_response)
            return Response(self.alipay_bill_zip(found[1]), mimetype="application/zip")(environ, start_response)
        return Response("not found", status=404)(environ, start_response)


def run(host: str, port: int, wechatpay_url: str | None, alipay_url: str | None, orders: list[tuple[str, str]],
        echo=print) -> None:
    """Serve the APIs; send one notification per (order number, amount) to each URL given; keep serving until ^C."""
    simulator = PaymentSimulator()
    simulator.start(host, port)
    echo(f"payment simulator on {simulator.base_url}")
    keys = ("provider_public_key", "merchant_private_key")
    echo("WeChat Pay account: " + json.dumps({k: v for k, v in simulator.wechatpay_settings().items()
                                              if k not in keys}))
    echo("WeChat Pay platform public key:\n" + simulator.wechat_public)
    echo("WeChat Pay merchant API private key (the simulator's test key, for refunds and bills):\n"
         + simulator.merchant_private)
    echo("Alipay account: " + json.dumps({k: v for k, v in simulator.alipay_settings().items() if k not in keys}))
    echo("Alipay public key:\n" + simulator.alipay_public)
    echo("Alipay application private key (the simulator's test key, for refunds and bills):\n"
         + simulator.app_private)
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

