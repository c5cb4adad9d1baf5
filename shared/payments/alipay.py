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
from datetime import datetime
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from shared.payments import PaymentMessageError

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
    key = serialization.load_pem_private_key(pem(private_key_pem, "PRIVATE KEY"), password=None)
    return base64.b64encode(key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


def request_signing_string(params: dict) -> str:
    """What an OpenAPI request signs: every parameter but `sign` (sign_type included, unlike a notify), empty
    ones left out, sorted by name, `k=v` joined by `&`."""
    return "&".join(f"{name}={params[name]}" for name in sorted(params)
                    if name != "sign" and params[name] not in (None, ""))


def verify_request(params: dict, application_public_key: str) -> None:
    """Alipay's side (the simulator): the request's sign is the application's key over its signing string."""
    verify_text(request_signing_string(params), params.get("sign") or "", application_public_key)


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
