"""Payments of the direct channels: provider accounts (keys, encrypted), the notification inbox, recorded payments,
and the daily reconciliation of the providers' bills."""
from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.extensions import db
from shared.models.types import EncryptedText, Money, UTCDateTime
from shared.timekeeping import utc_now

PAYMENT_PROVIDERS = ("wechatpay", "alipay")


class PaymentAccount(db.Model):
    """One channel's merchant account at a provider: what a notification is verified and decrypted with.

    WeChat Pay: merchant id (mchid), app id, the API v3 key (secret, encrypted), the platform certificate or
    platform public key (PEM) and its serial. Alipay: app id, Alipay's public key (支付宝公钥). Both: the merchant's
    own API private key (secret, encrypted) that requests to the provider's API are signed with (WeChat Pay: the
    key of the merchant API certificate, whose serial is `merchant_serial`; Alipay: the application private key,
    应用私钥), and `api_url`, the provider's API address for refunds and bill downloads alike (empty: the provider's
    own; the simulator in the demo)."""

    __tablename__ = "payment_accounts"
    __table_args__ = (UniqueConstraint("channel_id", "provider"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    provider: Mapped[str] = mapped_column(String(12))
    merchant_id: Mapped[str | None] = mapped_column(String(32))
    app_id: Mapped[str | None] = mapped_column(String(32))
    api_v3_key = mapped_column(EncryptedText)
    provider_public_key: Mapped[str | None] = mapped_column(Text)
    platform_serial: Mapped[str | None] = mapped_column(String(64))
    # Calling the provider (refunds, bill downloads): the merchant's API private key (WeChat Pay apiclient_key /
    # Alipay 应用私钥, encrypted), the serial of the merchant API certificate (WeChat Pay) and the API address (WeChat
    # Pay: the API base; Alipay: the gateway; the provider's own when empty, the simulator in the demo and tests).
    merchant_private_key = mapped_column(EncryptedText)
    merchant_serial: Mapped[str | None] = mapped_column(String(64))
    api_url: Mapped[str | None] = mapped_column(String(300))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)

    channel = relationship("Channel", lazy="joined")


class PaymentNotice(db.Model):
    """One verified payment notification, stored raw (encrypted) before it is applied; the inbox states."""

    __tablename__ = "payment_notices"
    __table_args__ = (
        UniqueConstraint("account_id", "content_hash"),
        Index("ix_payment_notices_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_payment_notices_out_trade_no", "out_trade_no"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("payment_accounts.id"))
    provider: Mapped[str] = mapped_column(String(12))
    received_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    content_hash: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(100))
    body = mapped_column(EncryptedText, nullable=False)
    times_received: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default="received")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error_code: Mapped[str | None] = mapped_column(String(40))
    last_error: Mapped[str | None] = mapped_column(String(1000))
    next_attempt_at = mapped_column(UTCDateTime)
    claimed_at = mapped_column(UTCDateTime)
    processed_at = mapped_column(UTCDateTime)
    payload_purged_at = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(40))  # paid, duplicate, already_paid, not_paid, ...
    out_trade_no: Mapped[str | None] = mapped_column(String(64))
    transaction_id: Mapped[str | None] = mapped_column(String(64))
    amount = mapped_column(Money)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))

    account = relationship("PaymentAccount", lazy="joined")


class Payment(db.Model):
    """A payment the provider made for an order, recorded once: (provider, transaction id) is unique, so a notify
    sent again, or the same payment seen in a bill, never counts twice."""

    __tablename__ = "payments"
    __table_args__ = (UniqueConstraint("provider", "transaction_id"),
                      Index("ix_payments_account_id_paid_at", "account_id", "paid_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("payment_accounts.id"))
    provider: Mapped[str] = mapped_column(String(12))
    transaction_id: Mapped[str] = mapped_column(String(64))
    out_trade_no: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    amount = mapped_column(Money, nullable=False)
    paid_at = mapped_column(UTCDateTime, nullable=False)
    notice_id: Mapped[int | None] = mapped_column(ForeignKey("payment_notices.id"))
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)


class PaymentReconciliation(db.Model):
    """One bill of one provider account for one day, matched against the orders, payments and refunds here."""

    __tablename__ = "payment_reconciliations"
    __table_args__ = (Index("ix_payment_reconciliations_account_id_bill_date", "account_id", "bill_date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("payment_accounts.id"))
    provider: Mapped[str] = mapped_column(String(12))
    bill_date = mapped_column(Date, nullable=False)
    source: Mapped[str] = mapped_column(String(12))  # import, download
    filename: Mapped[str | None] = mapped_column(String(200))
    started_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    finished_at = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(12), default="running")  # running, ok, failed
    error: Mapped[str | None] = mapped_column(String(1000))
    started_by: Mapped[str] = mapped_column(String(80))
    bill_rows: Mapped[int] = mapped_column(Integer, default=0)
    matched: Mapped[int] = mapped_column(Integer, default=0)
    paid_not_recorded: Mapped[int] = mapped_column(Integer, default=0)
    recorded_not_paid: Mapped[int] = mapped_column(Integer, default=0)
    amount_mismatch: Mapped[int] = mapped_column(Integer, default=0)
    refund_mismatch: Mapped[int] = mapped_column(Integer, default=0)
    malformed: Mapped[int] = mapped_column(Integer, default=0)

    account = relationship("PaymentAccount", lazy="joined")


class PaymentMismatch(db.Model):
    """One difference a reconciliation found (or a bill line it could not read, with its line number)."""

    __tablename__ = "payment_mismatches"

    id: Mapped[int] = mapped_column(primary_key=True)
    reconciliation_id: Mapped[int] = mapped_column(ForeignKey("payment_reconciliations.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # paid_not_recorded, recorded_not_paid, amount_mismatch, ...
    line_no: Mapped[int | None] = mapped_column(Integer)
    out_trade_no: Mapped[str | None] = mapped_column(String(64))
    transaction_id: Mapped[str | None] = mapped_column(String(64))
    bill_amount = mapped_column(Money)
    our_amount = mapped_column(Money)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    order_no: Mapped[str | None] = mapped_column(String(20))
    detail: Mapped[str | None] = mapped_column(String(300))


REFUND_STATES = ("pending_approval", "processing", "awaiting_platform", "succeeded", "failed", "rejected")


class OrderRefund(db.Model):
    """One refund of an order asked for here (shared.services.refunds): by the provider's API for a direct channel
    (out_refund_no is ours, the provider keeps it: a retry never refunds twice), or awaiting the platform's own
    report for a platform channel. When it completes, a PlatformRefund row records the money (`platform_refund_id`
    = out_refund_no), the one sum every refund rule and the reconciliation read."""

    __tablename__ = "order_refunds"
    __table_args__ = (Index("ix_order_refunds_status_updated_at", "status", "updated_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    out_refund_no: Mapped[str] = mapped_column(String(64), unique=True)
    amount = mapped_column(Money, nullable=False)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    provider: Mapped[str | None] = mapped_column(String(12))  # wechatpay, alipay; None: the platform refunds
    account_id: Mapped[int | None] = mapped_column(ForeignKey("payment_accounts.id"))
    provider_refund_id: Mapped[str | None] = mapped_column(String(64))
    goods_returned: Mapped[bool] = mapped_column(Boolean, default=False)
    after_sale_id: Mapped[int | None] = mapped_column(Integer)
    lines = mapped_column(JSON)
    approval_request_id: Mapped[int | None] = mapped_column(ForeignKey("approval_requests.id"))
    platform_refund_id: Mapped[int | None] = mapped_column(ForeignKey("platform_refunds.id"))
    error_code: Mapped[str | None] = mapped_column(String(60))
    last_error: Mapped[str | None] = mapped_column(String(500))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    requested_by: Mapped[str] = mapped_column(String(80))
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    updated_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    completed_at = mapped_column(UTCDateTime)

    order = relationship("Order")
    account = relationship("PaymentAccount")
