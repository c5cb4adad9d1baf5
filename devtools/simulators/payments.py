"""A payment provider simulator on loopback: WeChat Pay API v3 notifications (signed by a platform key of its own,
the resource encrypted under an API v3 key) and Alipay asynchronous notifications (RSA2), sent by real HTTP to a
given URL, and the daily bills (WeChat Pay trade bill, Alipay 业务明细) served for download with every payment and
refund it sent, through the providers' signed bill APIs (WeChat Pay GET /v3/bill/tradebill and its download_url,
Alipay alipay.data.dataservice.bill.downloadurl.query at /alipay/gateway.do and the ZIP it points to): a request
not signed with the merchant's key is refused, a day not billed yet (today or later) answered as the provider does.
`tamper` ({"hash", "signature"}) makes it lie, for the tests. For the demo (`orderloom simulate-payments`), the
tests and the benchmark.

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
        self._lock = threading.Lock()

    # --- what the merchant configures ---------------------------------------------------------------------------

    def wechatpay_settings(self) -> dict:
        return {"merchant_id": self.merchant_id, "app_id": self.wechat_app_id, "api_v3_key": self.api_v3_key,
                "provider_public_key": self.wechat_public, "platform_serial": self.platform_serial,
                "merchant_private_key": self.merchant_private, "merchant_serial": self.merchant_serial,
                "bill_url": self.base_url or None}

    def alipay_settings(self) -> dict:
        return {"app_id": self.alipay_app_id, "provider_public_key": self.alipay_public,
                "merchant_private_key": self.app_private,
                "bill_url": f"{self.base_url}/alipay/gateway.do" if self.base_url else None}

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

    def _wechat_json(self, status: int, body: dict) -> Response:
        raw = json.dumps(body, ensure_ascii=False).encode()
        stamp, nonce = str(int(time.time())), secrets.token_hex(16)
        signed = raw + b" " if "signature" in self.tamper else raw
        return Response(raw, status=status, mimetype="application/json", headers={
            "Wechatpay-Timestamp": stamp, "Wechatpay-Nonce": nonce, "Wechatpay-Serial": self.platform_serial,
            "Wechatpay-Signature": wechatpay.sign(self.wechat_private, stamp, nonce, signed)})

    def _wechat_api(self, request: Request) -> Response:
        url = request.path + (f"?{request.query_string.decode()}" if request.query_string else "")
        try:
            fields = wechatpay.check_authorization(request.headers.get("Authorization", ""), request.method, url,
                                                   request.get_data(), self.merchant_public)
        except PaymentMessageError:
            return self._wechat_json(401, {"code": "SIGN_ERROR", "message": "签名错误"})
        if fields["mchid"] != self.merchant_id or fields["serial_no"] != self.merchant_serial:
            return self._wechat_json(401, {"code": "SIGN_ERROR", "message": "商户证书序列号有误"})
        if request.path == "/v3/billdownload/file":
            found = self._tokens.get(request.args.get("token", ""))
            if found is None:
                return self._wechat_json(400, {"code": "INVALID_REQUEST", "message": "账单地址已过期"})
            return Response(self.bill(*found), mimetype="application/octet-stream")
        day = request.args.get("bill_date", "")
        try:
            datetime.strptime(day, "%Y-%m-%d")
        except ValueError:
            return self._wechat_json(400, {"code": "INVALID_REQUEST", "message": "bill_date 格式为 yyyy-MM-DD"})
        if not self._billed(day):
            return self._wechat_json(400, {"code": "NO_STATEMENT_EXIST", "message": "账单文件不存在"})
        token = secrets.token_urlsafe(24)
        self._tokens[token] = ("wechatpay", day)
        data = self.bill("wechatpay", day)
        digest = hashlib.sha1(data + (b"x" if "hash" in self.tamper else b"")).hexdigest()
        return self._wechat_json(200, {"hash_type": "SHA1", "hash_value": digest,
                                       "download_url": f"{self.base_url}/v3/billdownload/file?token={token}"})

    def _alipay_api(self, request: Request) -> Response:
        params = request.form.to_dict() if request.method == "POST" else request.args.to_dict()
        method = params.get("method") or alipay.BILL_METHOD

        def answer(node: dict) -> Response:
            key = self.alipay_private if "signature" not in self.tamper else self.app_private
            return Response(alipay.signed_response(method, node, key), mimetype="application/json")

        try:
            alipay.verify_request(params, self.app_public)
        except PaymentMessageError:
            return answer({"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-signature",
                           "sub_msg": "验签出错"})
        if params.get("app_id") != self.alipay_app_id or method != alipay.BILL_METHOD:
            return answer({"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-app-id",
                           "sub_msg": "无效的AppID参数"})
        try:
            biz = json.loads(params.get("biz_content") or "{}")
            day = str(biz.get("bill_date") or "")
            datetime.strptime(day, "%Y-%m-%d")
        except (ValueError, AttributeError):
            return answer({"code": "40004", "msg": "Business Failed", "sub_code": "isp.bill_date_error",
                           "sub_msg": "账单日期格式不正确"})
        if biz.get("bill_type") != "trade" or not self._billed(day):
            return answer({"code": "40004", "msg": "Business Failed", "sub_code": "isp.bill_not_exist",
                           "sub_msg": "账单不存在"})
        token = secrets.token_urlsafe(24)
        self._tokens[token] = ("alipay", day)
        return answer({"code": "10000", "msg": "Success",
                       "bill_download_url": f"{self.base_url}/alipay/billfile?token={token}"})

    def wsgi_app(self, environ, start_response):
        request = Request(environ)
        if request.path in ("/v3/bill/tradebill", "/v3/billdownload/file") and request.method == "GET":
            return self._wechat_api(request)(environ, start_response)
        if request.path == "/alipay/gateway.do":
            return self._alipay_api(request)(environ, start_response)
        if request.path == "/alipay/billfile" and request.method == "GET":
            found = self._tokens.get(request.args.get("token", ""))
            if found is None or found[0] != "alipay":
                return Response("not found", status=404)(environ, start_response)
            return Response(self.alipay_bill_zip(found[1]), mimetype="application/zip")(environ, start_response)
        return Response("not found", status=404)(environ, start_response)


def run(host: str, port: int, wechatpay_url: str | None, alipay_url: str | None, orders: list[tuple[str, str]],
        echo=print) -> None:
    """Serve bills; send one notification per (order number, amount) to each URL given; keep serving until ^C."""
    simulator = PaymentSimulator()
    simulator.start(host, port)
    echo(f"payment simulator on {simulator.base_url}")
    keys = ("provider_public_key", "merchant_private_key")
    echo("WeChat Pay account: " + json.dumps({k: v for k, v in simulator.wechatpay_settings().items()
                                              if k not in keys}))
    echo("WeChat Pay platform public key:\n" + simulator.wechat_public)
    echo("WeChat Pay merchant API private key (the simulator's test key):\n" + simulator.merchant_private)
    echo("Alipay account: " + json.dumps({k: v for k, v in simulator.alipay_settings().items() if k not in keys}))
    echo("Alipay public key:\n" + simulator.alipay_public)
    echo("Alipay application private key (the simulator's test key):\n" + simulator.app_private)
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

