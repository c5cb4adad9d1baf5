"""Payment providers of the direct channels: WeChat Pay (API v3) and Alipay notifications and their bills.

`wechatpay` and `alipay` verify and read a notification (pure functions over bytes and keys, no database);
`bills` reads the providers' daily bill files. The services in shared/services/payments.py store and apply them.
"""


class PaymentMessageError(ValueError):
    """A notification or bill that cannot be trusted or read: `code` says why (bad_signature, undecryptable, ...)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
