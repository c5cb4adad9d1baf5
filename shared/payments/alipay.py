"""Alipay asynchronous notifications (异步通知), RSA2.

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

from shared.payments import PaymentMessageError

BEIJING = ZoneInfo("Asia/Shanghai")
PAID_STATES = ("TRADE_SUCCESS", "TRADE_FINISHED")


def _pem(key: str, kind: str) -> bytes:
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
    try:
        key = serialization.load_pem_public_key(_pem(alipay_public_key, "PUBLIC KEY"))
    except ValueError as error:
        raise PaymentMessageError("bad_key", f"Alipay's public key is not readable ({error})")
    if not isinstance(key, rsa.RSAPublicKey):
        raise PaymentMessageError("bad_key", "Alipay's public key is not an RSA key")
    try:
        key.verify(base64.b64decode(sign, validate=True), signing_string(params).encode(), padding.PKCS1v15(),
                   hashes.SHA256())
    except (InvalidSignature, ValueError):
        raise PaymentMessageError("bad_signature", "the sign does not match the notify")


def sign(params: dict, private_key_pem: str) -> str:
    """Alipay's side (the simulator and tests): the RSA2 sign of a notify."""
    key = serialization.load_pem_private_key(_pem(private_key_pem, "PRIVATE KEY"), password=None)
    return base64.b64encode(key.sign(signing_string(params).encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


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


# --- OpenAPI requests (the bill download address) ----------------------------------------------------------------
# A request is the public parameters app_id, method, format JSON, charset utf-8, sign_type RSA2, timestamp
# (yyyy-MM-dd HH:mm:ss, Beijing), version 1.0 and biz_content (the JSON of the API's own parameters), signed with
# the application private key (应用私钥) over every parameter but `sign` (sign_type included), empty ones left out,
# sorted, `k=v` joined by `&`. The answer is JSON: {"<method with _ for .>_response": {...}, "sign": ...}, the sign
# by Alipay's key over the node's JSON text exactly as sent. alipay.data.dataservice.bill.downloadurl.query
# (bill_type trade, bill_date yyyy-MM-dd) answers code 10000 and bill_download_url, a ZIP of GBK CSV files whose
# 业务明细 file (not 业务明细(汇总)) is the bill; a day not billed yet: code 40004, sub_code isp.bill_not_exist.
# Sources: opendocs.alipay.com "查询对账单下载地址", "自行实现签名" / "同步验签", alipay-sdk-python; the fixtures in
# tests/fixtures/payments/.

BILL_METHOD = "alipay.data.dataservice.bill.downloadurl.query"
SUCCESS_CODE = "10000"
DETAIL_FILE = "业务明细"
SUMMARY_FILE = "汇总"


def request_signing_string(params: dict) -> str:
    return "&".join(f"{name}={params[name]}" for name in sorted(params)
                    if name != "sign" and params[name] not in (None, ""))


def signed_request(app_id: str, method: str, biz_content: dict, private_key_pem: str, timestamp: str) -> dict:
    """The form parameters of one OpenAPI call, with its RSA2 sign."""
    params = {"app_id": app_id, "method": method, "format": "JSON", "charset": "utf-8", "sign_type": "RSA2",
              "timestamp": timestamp, "version": "1.0",
              "biz_content": json.dumps(biz_content, ensure_ascii=False, separators=(",", ":"))}
    try:
        key = serialization.load_pem_private_key(_pem(private_key_pem, "PRIVATE KEY"), password=None)
    except (ValueError, TypeError) as error:
        raise PaymentMessageError("bad_key", f"the application private key is not readable ({error})")
    params["sign"] = base64.b64encode(key.sign(request_signing_string(params).encode(), padding.PKCS1v15(),
                                               hashes.SHA256())).decode()
    return params


def verify_request(params: dict, app_public_key: str) -> None:
    """Alipay's side (the simulator): refuse a request not signed with the application's key."""
    try:
        key = serialization.load_pem_public_key(_pem(app_public_key, "PUBLIC KEY"))
        key.verify(base64.b64decode(params.get("sign") or "", validate=True),
                   request_signing_string(params).encode(), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError, TypeError):
        raise PaymentMessageError("bad_signature", "the request's sign does not match its parameters")


def response_key(method: str) -> str:
    return method.replace(".", "_") + "_response"


def signed_response(method: str, node: dict, private_key_pem: str) -> bytes:
    """Alipay's side: an answer with the node's JSON text signed."""
    text = json.dumps(node, ensure_ascii=False, separators=(",", ":"))
    key = serialization.load_pem_private_key(_pem(private_key_pem, "PRIVATE KEY"), password=None)
    sign_ = base64.b64encode(key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()
    return ('{"' + response_key(method) + '":' + text + ',"sign":"' + sign_ + '"}').encode()


def read_response(body: bytes, method: str, alipay_public_key: str) -> dict:
    """The answer's node, once its sign (over the node's JSON text as sent) is Alipay's; refused otherwise."""
    try:
        text = body.decode("utf-8")
        answer = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        raise PaymentMessageError("invalid_json", "the Alipay answer is not JSON")
    name = response_key(method)
    node = answer.get(name) if isinstance(answer, dict) else None
    if not isinstance(node, dict):
        raise PaymentMessageError("bad_answer", f"the Alipay answer has no {name}")
    if str(node.get("code")) != SUCCESS_CODE:  # a refusal (often unsigned) imports nothing: its reason is enough
        raise PaymentMessageError(str(node.get("sub_code") or node.get("code") or "refused")[:40],
                                  str(node.get("sub_msg") or node.get("msg") or "")[:300])
    start = text.find(f'"{name}"')
    start = text.find("{", start)
    decoder = json.JSONDecoder()
    _node, end = decoder.raw_decode(text, start)
    signed_text = text[start:end]
    if not answer.get("sign"):
        raise PaymentMessageError("missing_signature", "the Alipay answer has no sign")
    try:
        key = serialization.load_pem_public_key(_pem(alipay_public_key, "PUBLIC KEY"))
        key.verify(base64.b64decode(answer["sign"], validate=True), signed_text.encode(), padding.PKCS1v15(),
                   hashes.SHA256())
    except (InvalidSignature, ValueError, TypeError):
        raise PaymentMessageError("bad_signature", "the Alipay answer's sign does not match it")
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


def check_private_key(private_key_pem: str) -> None:
    """Refuse an application private key that is not an RSA key (bare base64 or PEM)."""
    try:
        key = serialization.load_pem_private_key(_pem(private_key_pem, "PRIVATE KEY"), password=None)
    except (ValueError, TypeError) as error:
        raise PaymentMessageError("bad_key", f"the application private key is not readable ({error})")
    if not isinstance(key, rsa.RSAPrivateKey):
        raise PaymentMessageError("bad_key", "the application private key is not an RSA key")
