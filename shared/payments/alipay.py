"""Alipay: asynchronous notifications (异步通知), RSA2, and our signed OpenAPI requests (refunds, bills) with their
answers' signatures (see "OpenAPI requests" below).

The notify is a form POST (application/x-www-form-urlencoded). The string signed is every parameter except `sign`
and `sign_type` with an empty value left out, sorted by name, as `name=value` joined by `&`, with the values
URL-decoded; `sign` is base64 SHA256withRSA (PKCS#1 v1.5) by Alipay's key, checked with Alipay's public key (支付宝
公钥, not the application's). A paid trade is `trade_status` TRADE_SUCCESS or TRADE_FINISHED; `total_amount` is in
yuan, `gmt_payment` Beijing time. The merchant answers the seven characters `success` (anything else: Alipay sends
again, over about 25 hours). Sources: opendocs.alipay.com "异步通知验签" / "自行实现验签", alipay-sdk-python
(`verify`), the fixtures in tests/fixtures/payments/.
"""
import base64
import json
from datetime import datetime
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from shared.payments import PaymentMessageError, rsa_private_key

BEIJING = ZoneInfo("Asia/Shanghai")
PAID_STATES = ("TRADE_SUCCESS", "TRADE_FINISHED")


def pem(key: str, kind: str) -> bytes:
    """Alipay hands out keys as bare base64: wrap one in PEM armour when it has none."""
    text = (key or "").strip()
    if "-----BEGIN" not in text:
        text = f"-----BEGIN {kind}-----\n{text}\n-----END {kind}-----"
    return text.encode()


def signing_string(params: dict) -> str:
    return "&".join(f"{name}={params[name]}" for name in sorted(params)
                    if name not in ("sign", "sign_type") and params[name] not in (None, ""))


def verify(params: dict, alipay_public_key: str) -> None:
    """Refuse (PaymentMessageError) a notify whose RSA2 sign is missing or not Alipay's over the signing string."""
    sign = params.get("sign") or ""
    if not sign:
        raise PaymentMessageError("missing_signature", "the notify has no sign")
    if (params.get("sign_type") or "RSA2") != "RSA2":
        raise PaymentMessageError("unsupported_sign_type", "only RSA2 (SHA256withRSA) notifies are accepted")
    verify_text(signing_string(params), sign, alipay_public_key)


def verify_text(text: str, sign: str, alipay_public_key: str) -> None:
    """Refuse (PaymentMessageError) unless `sign` is Alipay's RSA2 signature of `text` (a notify's signing string,
    or the exact text of an API answer's response object)."""
    if not sign:
        raise PaymentMessageError("missing_signature", "there is no sign")
    try:
        key = serialization.load_pem_public_key(pem(alipay_public_key, "PUBLIC KEY"))
    except ValueError as error:
        raise PaymentMessageError("bad_key", f"Alipay's public key is not readable ({error})")
    if not isinstance(key, rsa.RSAPublicKey):
        raise PaymentMessageError("bad_key", "Alipay's public key is not an RSA key")
    try:
        key.verify(base64.b64decode(sign, validate=True), text.encode(), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        raise PaymentMessageError("bad_signature", "the sign does not match")


def sign(params: dict, private_key_pem: str) -> str:
    """Alipay's side (the simulator and tests): the RSA2 sign of a notify."""
    return sign_text(signing_string(params), private_key_pem)


def sign_text(text: str, private_key_pem: str) -> str:
    """The RSA2 sign of `text` by a private key: ours over a request, Alipay's over a notify or an answer (the
    simulator and tests)."""
    return base64.b64encode(private_key(private_key_pem).sign(text.encode(), padding.PKCS1v15(),
                                                               hashes.SHA256())).decode()


def is_refund_notification(params: dict) -> bool:
    """A trade notify sent because of a refund carries the refund's request number (out_biz_no) and refund_fee."""
    return bool(params.get("out_biz_no")) and params.get("refund_fee") not in (None, "")


def read_refund_notification(params: dict) -> dict:
    """A verified refund notify → {out_trade_no, transaction_id, out_refund_no, refund_id, state, refunded_total
    (Decimal yuan: refund_fee is the trade's refunded total so far), refunded_at}."""
    out_trade_no, trade_no = params.get("out_trade_no"), params.get("trade_no")
    if not out_trade_no or not trade_no or not params.get("out_biz_no"):
        raise PaymentMessageError("missing_field", "out_trade_no, trade_no and out_biz_no are required")
    try:
        refunded = Decimal(params.get("refund_fee") or "")
    except InvalidOperation:
        raise PaymentMessageError("bad_amount", "refund_fee is not an amount in yuan")
    if not refunded.is_finite() or refunded <= 0 or refunded != refunded.quantize(Decimal("0.01")):
        raise PaymentMessageError("bad_amount", "refund_fee is not an amount in yuan")
    refunded_at = None
    if params.get("gmt_refund"):
        try:
            refunded_at = datetime.strptime(params["gmt_refund"][:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING)
        except ValueError:
            raise PaymentMessageError("bad_time", "gmt_refund is not yyyy-MM-dd HH:mm:ss")
    return {"out_trade_no": out_trade_no[:64], "transaction_id": trade_no[:64],
            "out_refund_no": params["out_biz_no"][:64], "refund_id": params["out_biz_no"][:64], "state": "SUCCESS",
            "refunded_total": refunded, "amount": None, "currency": "CNY", "refunded_at": refunded_at}


def read_notification(params: dict) -> dict:
    """A verified notify → the same shape as the WeChat Pay reader."""
    out_trade_no, trade_no = params.get("out_trade_no"), params.get("trade_no")
    if not out_trade_no or not trade_no:
        raise PaymentMessageError("missing_field", "out_trade_no and trade_no are required")
    try:
        amount = Decimal(params.get("total_amount") or "")
    except InvalidOperation:
        raise PaymentMessageError("bad_amount", "total_amount is not an amount in yuan")
    if amount < 0 or amount != amount.quantize(Decimal("0.01")):
        raise PaymentMessageError("bad_amount", "total_amount is not an amount in yuan")
    paid_at = None
    if params.get("gmt_payment"):
        try:
            paid_at = datetime.strptime(params["gmt_payment"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING)
        except ValueError:
            raise PaymentMessageError("bad_time", "gmt_payment is not yyyy-MM-dd HH:mm:ss")
    return {"event_type": params.get("notify_type"), "out_trade_no": out_trade_no[:64],
            "transaction_id": trade_no[:64], "state": params.get("trade_status"), "amount": amount,
            "currency": "CNY", "paid_at": paid_at}


# --- OpenAPI requests (refunds, the bill download address) ------------------------------------------------------
# The one place Alipay OpenAPI requests are signed and their answers verified (shared.payments.refund_api,
# shared.services.payments and the simulator all call these). A request is the public parameters app_id, method,
# format JSON, charset utf-8, sign_type RSA2, timestamp (yyyy-MM-dd HH:mm:ss, Beijing), version 1.0, notify_url
# when there is one, and biz_content (the JSON of the API's own parameters), signed with the application private key
# (应用私钥) over every parameter but `sign` (sign_type included, unlike a notify), empty ones left out, sorted, `k=v`
# joined by `&`. The answer is JSON: {"<method with _ for .>_response": {...}, "sign": ...}, the sign by Alipay's key
# over the node's JSON text exactly as sent. code 10000 is success; anything else a refusal (40004 with a sub_code,
# e.g. isp.bill_not_exist, ACQ.REFUND_AMT_NOT_EQUAL_TOTAL). alipay.data.dataservice.bill.downloadurl.query
# (bill_type trade, bill_date yyyy-MM-dd) answers bill_download_url, a ZIP of GBK CSV files whose 业务明细 file (not
# 业务明细(汇总)) is the bill. Sources: opendocs.alipay.com "查询对账单下载地址", "统一收单交易退款接口",
# "自行实现签名" / "同步验签", alipay-sdk-python / alipay-sdk-java; the fixtures in tests/fixtures/payments/.

GATEWAY = "https://openapi.alipay.com/gateway.do"  # the provider's own gateway (an account's api_url overrides it)
BILL_METHOD = "alipay.data.dataservice.bill.downloadurl.query"
SUCCESS_CODE = "10000"
DETAIL_FILE = "业务明细"
SUMMARY_FILE = "汇总"


class AlipayRefusal(PaymentMessageError):
    """A verified (or unsigned) answer whose code is not 10000; `node` is the response object as sent."""

    def __init__(self, node: dict):
        super().__init__(str(node.get("sub_code") or node.get("code") or "refused")[:40],
                         str(node.get("sub_msg") or node.get("msg") or "")[:300])
        self.node = node


def request_signing_string(params: dict) -> str:
    """What an OpenAPI request signs: every parameter but `sign` (sign_type included, unlike a notify), empty
    ones left out, sorted by name, `k=v` joined by `&`."""
    return "&".join(f"{name}={params[name]}" for name in sorted(params)
                    if name != "sign" and params[name] not in (None, ""))


def private_key(private_key_pem: str):
    """The application private key (bare base64 or PEM), refused unless it is an RSA key."""
    return rsa_private_key(pem(private_key_pem, "PRIVATE KEY"), "the application private key")


def check_private_key(private_key_pem: str) -> None:
    """Refuse an application private key that is not an RSA key (bare base64 or PEM)."""
    private_key(private_key_pem)


def signed_request(app_id: str, method: str, biz_content: dict, private_key_pem: str, now: datetime,
                   notify_url: str | None = None) -> dict:
    """The form parameters of one OpenAPI call at `now` (an aware time), with its RSA2 sign."""
    params = {"app_id": app_id, "method": method, "format": "JSON", "charset": "utf-8", "sign_type": "RSA2",
              "timestamp": now.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S"), "version": "1.0",
              "biz_content": json.dumps(biz_content, ensure_ascii=False, separators=(",", ":"))}
    if notify_url:
        params["notify_url"] = notify_url
    params["sign"] = sign_text(request_signing_string(params), private_key_pem)
    return params


def verify_request(params: dict, application_public_key: str) -> None:
    """Alipay's side (the simulator): refuse a request not signed with the application's key."""
    verify_text(request_signing_string(params), params.get("sign") or "", application_public_key)


def response_key(method: str) -> str:
    return method.replace(".", "_") + "_response"


def signed_response(method: str, node: dict, private_key_pem: str) -> bytes:
    """Alipay's side (the simulator): an answer with the node's JSON text signed."""
    text = json.dumps(node, ensure_ascii=False, separators=(",", ":"))
    return ('{"' + response_key(method) + '":' + text + ',"sign":"' + sign_text(text, private_key_pem) + '"}'
            ).encode()


def response_text(raw: str, name: str) -> tuple[dict, str]:
    """The response object and its exact text (what Alipay signs) out of an answer."""
    marker = raw.find(f'"{name}"')
    if marker < 0:
        raise PaymentMessageError("bad_answer", f"the Alipay answer has no {name}")
    start = raw.index(":", marker) + 1
    while start < len(raw) and raw[start] in " \t\r\n":
        start += 1
    try:
        value, end = json.JSONDecoder().raw_decode(raw, start)
    except ValueError:
        raise PaymentMessageError("invalid_json", "the Alipay answer is not JSON")
    if not isinstance(value, dict):
        raise PaymentMessageError("bad_answer", f"the Alipay answer's {name} is not an object")
    return value, raw[start:end]


def read_response(body: bytes | str, method: str, alipay_public_key: str) -> dict:
    """The answer's node once its sign (over the node's JSON text as sent) is Alipay's. A success must be signed;
    a refusal is checked when it carries a sign and raised as AlipayRefusal (alipay-sdk-java's checkResponseSign
    does the same: Alipay may leave a refusal unsigned, and a refusal moves nothing), so a forged success never
    passes."""
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        answer = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        raise PaymentMessageError("invalid_json", "the Alipay answer is not JSON")
    if not isinstance(answer, dict):
        raise PaymentMessageError("invalid_json", "the Alipay answer is not a JSON object")
    node, signed_text = response_text(text, response_key(method))
    success = str(node.get("code")) == SUCCESS_CODE
    if success or answer.get("sign"):
        verify_text(signed_text, str(answer.get("sign") or ""), alipay_public_key)
    if not success:
        raise AlipayRefusal(node)
    return node


def bill_from_zip(data: bytes) -> tuple[str, bytes]:
    """The 业务明细 CSV (its name and bytes) in the ZIP Alipay's bill_download_url serves."""
    import io
    import zipfile

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise PaymentMessageError("bad_archive", "the Alipay bill is not a ZIP")
    with archive:
        for info in archive.infolist():
            name = info.filename
            if not info.flag_bits & 0x800:  # Alipay names its files in GBK, without the UTF-8 flag
                try:
                    name = name.encode("cp437").decode("gb18030")
                except (UnicodeEncodeError, UnicodeDecodeError):
                    pass
            if DETAIL_FILE in name and SUMMARY_FILE not in name and name.lower().endswith(".csv"):
                return name, archive.read(info)
    raise PaymentMessageError("no_detail_file", "the Alipay bill ZIP has no 业务明细 file")

