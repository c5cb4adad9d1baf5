"""Each platform's own signing rule, used by the polling clients, the webhook endpoint and the simulator.

Webhooks (Shopify, WooCommerce): base64 of HMAC-SHA256 over the raw body, compared in constant time.
Request signing for the Chinese platforms' open APIs: the parameters sorted by name and concatenated as
name+value, wrapped in the app secret, hashed; the sign travels as a parameter.
"""
import base64
import hashlib
import hmac
import json


def body_hmac_base64(secret: str, body: bytes) -> str:
    """Shopify `X-Shopify-Hmac-Sha256` and WooCommerce `X-WC-Webhook-Signature`."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def verify_body_hmac(secret: str, body: bytes, header_value: str | None) -> bool:
    if not header_value or not secret:
        return False
    return hmac.compare_digest(body_hmac_base64(secret, body), header_value.strip())


def _joined(params: dict) -> str:
    return "".join(f"{key}{params[key]}" for key in sorted(params) if key != "sign" and params[key] is not None)


def top_sign(params: dict, secret: str) -> str:
    """Taobao/Tmall TOP, sign_method=md5: MD5(secret + k1v1k2v2... + secret), upper-case hex.

    JD (jos) and Pinduoduo (pop) use the same wrapped-MD5 rule over their own parameter names.
    """
    return hashlib.md5(f"{secret}{_joined(params)}{secret}".encode()).hexdigest().upper()


jd_sign = top_sign
pdd_sign = top_sign


def douyin_param_json(business: dict) -> str:
    """Douyin shop wants param_json with sorted keys and no spaces, and signs exactly that string."""
    return json.dumps(business, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def douyin_sign(app_key: str, method: str, param_json: str, timestamp: str, secret: str, version: str = "2") -> str:
    """Douyin shop (sign_method=hmac-sha256): HMAC-SHA256 keyed by the secret over
    secret + "app_key"… + "method"… + "param_json"… + "timestamp"… + "v"… + secret, lower-case hex."""
    message = f"{secret}app_key{app_key}method{method}param_json{param_json}timestamp{timestamp}v{version}{secret}"
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def constant_time_equal(left: str | None, right: str | None) -> bool:
    return bool(left) and bool(right) and hmac.compare_digest(str(left), str(right))
