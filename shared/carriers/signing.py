"""Each carrier platform's own signing rule, used by the clients, the push receivers and the carrier simulator.

- KDNiao (快递鸟): DataSign = base64 of the lower-case hex MD5 of RequestData + AppKey (the hex text is what is
  base64-encoded, not the raw digest); the form encoding then URL-encodes it like any other field.
- Kuaidi100 (快递100) push: sign = upper-case hex MD5 of param + salt (the salt given when subscribing).
- Kuaidi100 real-time query: sign = upper-case hex MD5 of param + key + customer.
- Kuaidi100 商家寄件 (borderapi.do: bOrder, cancel): sign = upper-case hex MD5 of param + t + key + secret; its order
  callback: sign = upper-case hex MD5 of param + salt (the salt sent with the order).
- 17TRACK webhook: header `sign` = lower-case hex SHA-256 of the raw body + "/" + the account's security key.

Verification compares in constant time. Hex signatures are compared case-insensitively: the case carries no secret.
"""
import base64
import hashlib
import hmac


def kdniao_data_sign(request_data: str, app_key: str) -> str:
    """快递鸟 DataSign: base64(md5_hex_lowercase(RequestData + AppKey))."""
    digest = hashlib.md5(f"{request_data}{app_key}".encode()).hexdigest()
    return base64.b64encode(digest.encode("ascii")).decode("ascii")


def kuaidi100_push_sign(param: str, salt: str) -> str:
    """快递100 subscription push: md5_hex_uppercase(param + salt)."""
    return hashlib.md5(f"{param}{salt}".encode()).hexdigest().upper()


def kuaidi100_poll_sign(param: str, key: str, customer: str) -> str:
    """快递100 real-time query (poll/query.do): md5_hex_uppercase(param + key + customer)."""
    return hashlib.md5(f"{param}{key}{customer}".encode()).hexdigest().upper()


def kuaidi100_order_sign(param: str, t: str, key: str, secret: str) -> str:
    """快递100 商家寄件 (order/borderapi.do): md5_hex_uppercase(param + t + key + secret)."""
    return hashlib.md5(f"{param}{t}{key}{secret}".encode()).hexdigest().upper()


def verify_kuaidi100_order_sign(param: str, t: str, key: str, secret: str, sign: str | None) -> bool:
    if not key or not secret:
        return False
    return _same(kuaidi100_order_sign(param, t, key, secret), (sign or "").upper())


def track17_sign(raw_body: bytes, key: str) -> str:
    """17TRACK webhook `sign` header: sha256_hex(raw body + "/" + security key)."""
    return hashlib.sha256(raw_body + b"/" + key.encode()).hexdigest()


def _same(expected: str, given: str | None) -> bool:
    if not given:
        return False
    return hmac.compare_digest(expected.encode("ascii"), given.strip().encode("utf-8", "replace"))


def verify_kdniao_data_sign(request_data: str, app_key: str, data_sign: str | None) -> bool:
    """Base64 is case-sensitive, so this comparison is exact."""
    if not app_key:
        return False
    return _same(kdniao_data_sign(request_data, app_key), data_sign)


def verify_kuaidi100_push_sign(param: str, salt: str, sign: str | None) -> bool:
    """An empty salt is refused: Kuaidi100 signs with it, but then anyone can compute the sign."""
    if not salt:
        return False
    return _same(kuaidi100_push_sign(param, salt), (sign or "").upper())


def verify_kuaidi100_poll_sign(param: str, key: str, customer: str, sign: str | None) -> bool:
    if not key or not customer:
        return False
    return _same(kuaidi100_poll_sign(param, key, customer), (sign or "").upper())


def verify_track17_sign(raw_body: bytes, key: str, sign: str | None) -> bool:
    if not key:
        return False
    return _same(track17_sign(raw_body, key), (sign or "").lower())
