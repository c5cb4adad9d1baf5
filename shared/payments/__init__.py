"""Payment providers of the direct channels: WeChat Pay (API v3) and Alipay notifications and their bills.

`wechatpay` and `alipay` verify and read a notification, sign our requests to the provider's API and verify its
answers (pure functions over bytes and keys, no database: the one place each provider's signing rules live);
`refund_api` calls the refund APIs with them; `bills` reads the providers' daily bill files. The services in
shared/services/payments.py store and apply them.
"""


class PaymentMessageError(ValueError):
    """A notification or bill that cannot be trusted or read: `code` says why (bad_signature, undecryptable, ...)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def rsa_private_key(pem: bytes, what: str):
    """An RSA private key out of PEM bytes, refused (bad_key, naming `what`) when it is not one: the one loader the
    providers' modules sign our API requests with."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as error:
        raise PaymentMessageError("bad_key", f"{what} is not a PEM RSA key ({error})")
    if not isinstance(key, rsa.RSAPrivateKey):
        raise PaymentMessageError("bad_key", f"{what} is not an RSA key")
    return key
