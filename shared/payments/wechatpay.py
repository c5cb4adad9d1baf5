"""WeChat Pay API v3: payment and refund notifications (支付通知 / 退款结果通知), and our signed requests to the API
(refunds, bills) with their answers' signatures (see "requests to the API v3" below).

A notification carries `Wechatpay-Timestamp`, `Wechatpay-Nonce`, `Wechatpay-Signature` and `Wechatpay-Serial`; the
signature is SHA256withRSA (PKCS#1 v1.5) by the platform's key over "timestamp\\nnonce\\nbody\\n" (the raw body
bytes), checked with the platform certificate's (or platform public key's) public key named by the serial. The body
is JSON whose `resource` is AEAD_AES_256_GCM ciphertext (base64, the 16-byte tag at its end) under the merchant's
32-byte API v3 key, with `resource.nonce` (12 bytes) and `resource.associated_data`; decrypted it is the
transaction: out_trade_no, transaction_id, trade_state, amount.total (fen), success_time (RFC 3339).
Sources: pay.weixin.qq.com "如何验证签名" / "如何解密支付通知" (docs/merchant/products/notification), the
wechatpay-apiv3 SDKs; the fixtures in tests/fixtures/payments/ name theirs.
"""
import base64
import hashlib
import hmac
import json
import secrets
import time
from datetime import datetime
from decimal import Decimal
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.payments import PaymentMessageError, rsa_private_key

HEADERS = ("Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature", "Wechatpay-Serial")
MAX_SKEW_SECONDS = 300  # the SDKs refuse a notification signed more than 5 minutes from now
SUCCESS = {"code": "SUCCESS", "message": "成功"}


def public_key(pem: str):
    """The RSA public key in a platform certificate or a platform public key (PEM)."""
    data = (pem or "").strip().encode()
    try:
        key = (x509.load_pem_x509_certificate(data).public_key() if b"CERTIFICATE" in data
               else serialization.load_pem_public_key(data))
    except ValueError as error:
        raise PaymentMessageError("bad_key", f"the WeChat Pay platform key is not a PEM key or certificate ({error})")
    if not isinstance(key, rsa.RSAPublicKey):
        raise PaymentMessageError("bad_key", "the WeChat Pay platform key is not an RSA key")
    return key


def signing_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    return timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body + b"\n"


def verify(headers, body: bytes, platform_key_pem: str, platform_serial: str, now: datetime) -> None:
    """Refuse (PaymentMessageError) unless the headers are there, the serial is ours, the timestamp is within five
    minutes of `now` and the signature over the raw body is the platform's."""
    timestamp, nonce, signature, serial = (headers.get(name) or "" for name in HEADERS)
    if not (timestamp and nonce and signature and serial):
        raise PaymentMessageError("missing_signature", "the Wechatpay-Timestamp/Nonce/Signature/Serial headers are "
                                                       "required")
    if platform_serial and serial.strip().upper() != platform_serial.strip().upper():
        raise PaymentMessageError("unknown_serial", "the Wechatpay-Serial is not this channel's platform certificate")
    if not timestamp.isdigit() or abs(now.timestamp() - int(timestamp)) > MAX_SKEW_SECONDS:
        raise PaymentMessageError("stale_timestamp", "the Wechatpay-Timestamp is more than 5 minutes from now")
    try:
        raw = base64.b64decode(signature, validate=True)
        public_key(platform_key_pem).verify(raw, signing_message(timestamp, nonce, body), padding.PKCS1v15(),
                                            hashes.SHA256())
    except (InvalidSignature, ValueError):
        raise PaymentMessageError("bad_signature", "the Wechatpay-Signature does not match the body")


def sign(private_key_pem: str, timestamp: str, nonce: str, body: bytes) -> str:
    """The platform's side (the simulator and tests): the Wechatpay-Signature of a body."""
    key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    return base64.b64encode(key.sign(signing_message(timestamp, nonce, body), padding.PKCS1v15(),
                                     hashes.SHA256())).decode()


def aes_key(api_v3_key: str) -> bytes:
    """The API v3 key as the 32 bytes AES-256 takes (refused otherwise)."""
    key = (api_v3_key or "").encode()
    if len(key) != 32:
        raise PaymentMessageError("bad_key", "the API v3 key is 32 bytes")
    return key


def encrypt_resource(api_v3_key: str, plaintext: dict, nonce: str, associated_data: str = "transaction",
                     original_type: str = "transaction") -> dict:
    """The platform's side: a `resource` object carrying `plaintext`."""
    data = AESGCM(aes_key(api_v3_key)).encrypt(nonce.encode(), json.dumps(plaintext, ensure_ascii=False).encode(),
                                                associated_data.encode())
    return {"original_type": original_type, "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": base64.b64encode(data).decode(), "associated_data": associated_data, "nonce": nonce}


def decrypt_resource(api_v3_key: str, resource: dict) -> dict:
    """The transaction inside a notification's `resource` (AEAD_AES_256_GCM under the API v3 key)."""
    if not isinstance(resource, dict) or resource.get("algorithm") != "AEAD_AES_256_GCM":
        raise PaymentMessageError("unsupported_algorithm", "the resource is not AEAD_AES_256_GCM")
    try:
        plain = AESGCM(aes_key(api_v3_key)).decrypt(
            str(resource.get("nonce") or "").encode(), base64.b64decode(resource.get("ciphertext") or ""),
            str(resource.get("associated_data") or "").encode())
        return json.loads(plain)
    except (InvalidTag, ValueError) as error:
        raise PaymentMessageError("undecryptable", f"the resource does not decrypt with the API v3 key ({error})")


def read_notification(body: bytes | str, api_v3_key: str) -> dict:
    """A notification body → {event_type, out_trade_no, transaction_id, state, amount (Decimal yuan), currency,
    paid_at (aware datetime or None)}."""
    try:
        envelope = json.loads(body)
    except ValueError:
        raise PaymentMessageError("invalid_json", "the notification is not JSON")
    if not isinstance(envelope, dict):
        raise PaymentMessageError("invalid_json", "the notification is not a JSON object")
    transaction = decrypt_resource(api_v3_key, envelope.get("resource"))
    amount = transaction.get("amount") or {}
    total = amount.get("total")
    if not isinstance(total, int) or isinstance(total, bool) or total < 0:
        raise PaymentMessageError("bad_amount", "amount.total is a whole number of fen")
    out_trade_no, transaction_id = transaction.get("out_trade_no"), transaction.get("transaction_id")
    if not out_trade_no or not transaction_id:
        raise PaymentMessageError("missing_field", "out_trade_no and transaction_id are required")
    paid_at = None
    if transaction.get("success_time"):
        try:
            paid_at = datetime.fromisoformat(transaction["success_time"])
        except ValueError:
            raise PaymentMessageError("bad_time", "success_time is not an RFC 3339 time")
        if paid_at.tzinfo is None:
            raise PaymentMessageError("bad_time", "success_time has no offset")
    return {"event_type": envelope.get("event_type"), "out_trade_no": str(out_trade_no)[:64],
            "transaction_id": str(transaction_id)[:64], "state": transaction.get("trade_state"),
            "amount": Decimal(total) / 100, "currency": amount.get("currency") or "CNY", "paid_at": paid_at}


REFUND_EVENTS = ("REFUND.SUCCESS", "REFUND.ABNORMAL", "REFUND.CLOSED")


def is_refund_notification(body: bytes | str) -> bool:
    try:
        envelope = json.loads(body)
    except ValueError:
        return False
    return isinstance(envelope, dict) and str(envelope.get("event_type") or "").startswith("REFUND.")


def read_refund_notification(body: bytes | str, api_v3_key: str) -> dict:
    """A refund notification (退款结果通知, resource associated_data "refund") → {event_type, out_trade_no,
    transaction_id, out_refund_no, refund_id, state (SUCCESS / ABNORMAL / CLOSED), amount (Decimal yuan refunded),
    total, currency, refunded_at}."""
    try:
        envelope = json.loads(body)
    except ValueError:
        raise PaymentMessageError("invalid_json", "the notification is not JSON")
    if not isinstance(envelope, dict):
        raise PaymentMessageError("invalid_json", "the notification is not a JSON object")
    resource = envelope.get("resource")
    if not isinstance(resource, dict) or resource.get("associated_data") != "refund":
        raise PaymentMessageError("not_a_refund", "a refund notification's resource has associated_data refund")
    refund = decrypt_resource(api_v3_key, resource)
    amount = refund.get("amount") or {}
    fen, total = amount.get("refund"), amount.get("total")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (fen, total)):
        raise PaymentMessageError("bad_amount", "amount.refund and amount.total are whole numbers of fen")
    names = ("out_trade_no", "out_refund_no", "refund_id")
    if not all(refund.get(name) for name in names):
        raise PaymentMessageError("missing_field", "out_trade_no, out_refund_no and refund_id are required")
    refunded_at = None
    if refund.get("success_time"):
        try:
            refunded_at = datetime.fromisoformat(refund["success_time"])
        except ValueError:
            raise PaymentMessageError("bad_time", "success_time is not an RFC 3339 time")
        if refunded_at.tzinfo is None:
            raise PaymentMessageError("bad_time", "success_time has no offset")
    return {"event_type": envelope.get("event_type"), "out_trade_no": str(refund["out_trade_no"])[:64],
            "transaction_id": str(refund.get("transaction_id") or "")[:64],
            "out_refund_no": str(refund["out_refund_no"])[:64], "refund_id": str(refund["refund_id"])[:64],
            "state": refund.get("refund_status"), "amount": Decimal(fen) / 100, "total": Decimal(total) / 100,
            "currency": amount.get("currency") or "CNY", "refunded_at": refunded_at}


# --- requests to the API v3 (refunds, the bill download) ---------------------------------------------------------
# The one place WeChat Pay API v3 requests are signed and their answers verified (shared.payments.refund_api,
# shared.services.payments and the simulator all call these). Every request carries `Authorization:
# WECHATPAY2-SHA256-RSA2048 mchid="..",nonce_str="..",signature="..",timestamp="..",serial_no=".."`: SHA256withRSA
# by the merchant's API private key over "method\nurl\ntimestamp\nnonce\nbody\n" (url: the path with its query,
# as sent; body empty for a GET); serial_no is the merchant API certificate's. The answer is signed by the platform
# like a notification (Wechatpay-* headers over the raw body), except the bill file itself, which is checked by the
# SHA1 the tradebill answer gave. Sources: pay.weixin.qq.com "签名生成" / "签名验证" / "申请交易账单"
# (/v3/bill/tradebill) / "下载账单" (download_url) / "退款申请", the wechatpay-apiv3 SDKs;
# tests/fixtures/payments/SOURCES.md.

API_BASE = "https://api.mch.weixin.qq.com"  # the provider's own API address (an account's api_url overrides it)
AUTH_SCHEMA = "WECHATPAY2-SHA256-RSA2048"
HASH_TYPES = {"SHA1": "sha1"}


def signed_url(url: str) -> str:
    """What a request's signature signs of its URL: the path with its query (a full URL or a path)."""
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def request_message(method: str, url: str, timestamp: str, nonce: str, body: bytes = b"") -> bytes:
    return b"\n".join([method.upper().encode(), signed_url(url).encode(), timestamp.encode(), nonce.encode(),
                       body]) + b"\n"


def private_key(pem: str):
    """The merchant's API private key (apiclient_key.pem), refused unless it is an RSA key."""
    return rsa_private_key((pem or "").strip().encode(), "the merchant API private key")


def authorization(mchid: str, serial: str, private_key_pem: str, method: str, url: str, body: bytes = b"",
                  timestamp: str | None = None, nonce: str | None = None) -> str:
    """The Authorization header of one API v3 request (our side); `url` is the URL requested or its path."""
    timestamp, nonce = timestamp or str(int(time.time())), nonce or secrets.token_hex(16).upper()
    signature = base64.b64encode(private_key(private_key_pem).sign(
        request_message(method, url, timestamp, nonce, body), padding.PKCS1v15(), hashes.SHA256())).decode()
    return (f'{AUTH_SCHEMA} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",timestamp="{timestamp}",'
            f'serial_no="{serial}"')


def read_authorization(header: str) -> dict:
    """The fields of an Authorization header (the provider's side: the simulator)."""
    schema, _sep, rest = (header or "").partition(" ")
    if schema != AUTH_SCHEMA:
        raise PaymentMessageError("missing_signature", f"the Authorization is not {AUTH_SCHEMA}")
    fields = {}
    for part in rest.split(","):
        name, sep, value = part.strip().partition("=")
        if sep:
            fields[name] = value.strip().strip('"')
    if not all(fields.get(name) for name in ("mchid", "nonce_str", "signature", "timestamp", "serial_no")):
        raise PaymentMessageError("missing_signature", "the Authorization lacks mchid, nonce_str, signature, "
                                                       "timestamp or serial_no")
    return fields


def check_authorization(header: str, method: str, url: str, body: bytes, merchant_public_key_pem: str) -> dict:
    """The provider's side: refuse a request not signed by the merchant's key; its fields otherwise."""
    fields = read_authorization(header)
    try:
        public_key(merchant_public_key_pem).verify(
            base64.b64decode(fields["signature"], validate=True),
            request_message(method, url, fields["timestamp"], fields["nonce_str"], body), padding.PKCS1v15(),
            hashes.SHA256())
    except (InvalidSignature, ValueError):
        raise PaymentMessageError("bad_signature", "the Authorization signature does not match the request")
    return fields


def verify_answer(status_code: int, headers, body: bytes, platform_key_pem: str, platform_serial: str,
                  now: datetime) -> None:
    """Refuse an API v3 answer not signed by the platform. A success (2xx) must carry the signature; a refusal
    (4xx) is checked when it carries one, and read as a refusal when it does not (it imports or moves nothing; the
    SDKs read an error answer before they validate), so a forged success never passes."""
    if status_code >= 300 and not headers.get("Wechatpay-Signature"):
        return
    verify(headers, body, platform_key_pem, platform_serial, now)


def read_bill_answer(body: bytes) -> dict:
    """The /v3/bill/tradebill answer → {hash_type, hash_value, download_url}, refused when one is missing."""
    try:
        answer = json.loads(body)
    except ValueError:
        raise PaymentMessageError("invalid_json", "the tradebill answer is not JSON")
    if not isinstance(answer, dict) or not all(isinstance(answer.get(name), str) and answer[name]
                                               for name in ("hash_type", "hash_value", "download_url")):
        raise PaymentMessageError("bad_answer", "the tradebill answer lacks hash_type, hash_value or download_url")
    if answer["hash_type"].upper() not in HASH_TYPES:
        raise PaymentMessageError("unsupported_hash", f"hash_type {answer['hash_type'][:10]!r} is not SHA1")
    if not answer["download_url"].startswith(("https://", "http://")):
        raise PaymentMessageError("bad_answer", "the download_url is not an http(s) address")
    return {name: answer[name] for name in ("hash_type", "hash_value", "download_url")}


def check_bill_hash(data: bytes, hash_type: str, hash_value: str) -> None:
    """Refuse a downloaded bill whose digest is not the one the tradebill answer gave."""
    digest = hashlib.new(HASH_TYPES[hash_type.upper()], data).hexdigest()
    if not hmac.compare_digest(digest, (hash_value or "").strip().lower()):
        raise PaymentMessageError("bad_hash", f"the bill's {hash_type} is not the one the tradebill answer gave")


def read_error(body: bytes) -> tuple[str, str]:
    """An API v3 error answer {"code", "message"} → (code, message); unreadable: ("", the start of the body)."""
    try:
        answer = json.loads(body)
        return str(answer.get("code") or ""), str(answer.get("message") or "")[:300]
    except (ValueError, AttributeError):
        return "", body[:200].decode("utf-8", errors="replace")

