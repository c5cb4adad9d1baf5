"""Channel sync: connections, the inbox of everything received, mappings, runs, reconciliation, outbox."""
from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.extensions import db
from shared.models.types import EncryptedText, Money, UTCDateTime
from shared.timekeeping import utc_now


class ChannelConnection(db.Model):
    """How Orderloom reaches one channel's platform: API address, credentials, polling state."""

    __tablename__ = "channel_connections"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"), unique=True)
    base_url: Mapped[str | None] = mapped_column(String(300))
    app_key: Mapped[str | None] = mapped_column(String(120))
    app_secret = mapped_column(EncryptedText)
    access_token = mapped_column(EncryptedText)
    webhook_secret = mapped_column(EncryptedText)
    poll_minutes: Mapped[int] = mapped_column(Integer, default=5)
    overlap_seconds: Mapped[int] = mapped_column(Integer, default=120)
    polling_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    watermark = mapped_column(UTCDateTime)  # modified-time up to which every order has been fetched
    last_poll_at = mapped_column(UTCDateTime)
    last_success_at = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(1000))
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)

    channel = relationship("Channel", lazy="joined")


class InboxItem(db.Model):
    """One payload as received, stored (encrypted: it carries personal data) before anything else happens."""

    __tablename__ = "inbox_items"
    __table_args__ = (
        UniqueConstraint("channel_id", "content_hash"),
        Index("ix_inbox_items_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_inbox_items_channel_id_received_at", "channel_id", "received_at"),
        Index("ix_inbox_items_channel_id_external_id", "channel_id", "external_id"),
        Index("ix_inbox_items_channel_id_processed_at", "channel_id", "processed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    source: Mapped[str] = mapped_column(String(16))  # webhook, poll, import, refetch
    received_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    content_hash: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(100))
    body = mapped_column(EncryptedText, nullable=False)
    times_received: Mapped[int] = mapped_column(Integer, default=1)
    external_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="received")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error_code: Mapped[str | None] = mapped_column(String(40))
    last_error: Mapped[str | None] = mapped_column(String(1000))
    next_attempt_at = mapped_column(UTCDateTime)
    claimed_at = mapped_column(UTCDateTime)
    processed_at = mapped_column(UTCDateTime)
    payload_purged_at = mapped_column(UTCDateTime)  # retention emptied the body (the hash stays for de-duplication)
    platform_modified_at = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(40))  # created, updated, stale, unchanged, ignored, ...
    topic: Mapped[str | None] = mapped_column(String(64))  # the platform's webhook topic header, as received
    visible_delay_ms: Mapped[int | None] = mapped_column(Integer)  # platform paid-at to visible here
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))

    channel = relationship("Channel", lazy="joined")


class PlatformRefund(db.Model):
    """One refund the platform reported (Shopify refunds/create), applied to its order once: the refunded total of
    an order is the sum of these."""

    __tablename__ = "platform_refunds"
    __table_args__ = (UniqueConstraint("channel_id", "platform_refund_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    platform_refund_id: Mapped[str] = mapped_column(String(64))
    amount = mapped_column(Money, nullable=False)
    currency: Mapped[str] = mapped_column(String(3))
    refunded_at = mapped_column(UTCDateTime, nullable=False)
    note: Mapped[str | None] = mapped_column(String(500))
    inbox_item_id: Mapped[int | None] = mapped_column(ForeignKey("inbox_items.id"))
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)


class TrackingPush(db.Model):
    """One carrier tracking push (Kuaidi100 or 17TRACK) as received, verified and stored before it is processed.

    The same states as the channel inbox (received, processing, done, review, retry, dead); the body is encrypted
    (a push may carry a courier's or receiver's phone)."""

    __tablename__ = "tracking_pushes"
    __table_args__ = (
        UniqueConstraint("source", "content_hash"),
        Index("ix_tracking_pushes_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_tracking_pushes_waybill_no", "waybill_no"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(12))  # kuaidi100, 17track
    received_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    content_hash: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(100))
    body = mapped_column(EncryptedText, nullable=False)
    times_received: Mapped[int] = mapped_column(Integer, default=1)
    waybill_no: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="received")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error_code: Mapped[str | None] = mapped_column(String(40))
    last_error: Mapped[str | None] = mapped_column(String(1000))
    next_attempt_at = mapped_column(UTCDateTime)
    claimed_at = mapped_column(UTCDateTime)
    processed_at = mapped_column(UTCDateTime)
    payload_purged_at = mapped_column(UTCDateTime)  # retention emptied the body (the hash stays for de-duplication)
    outcome: Mapped[str | None] = mapped_column(String(40))  # stored, nothing_new, no_events
    events_stored: Mapped[int] = mapped_column(Integer, default=0)


class WebhookRejection(db.Model):
    """A request to /hooks/<channel> that was refused before storage (bad signature, size, type, channel)."""

    __tablename__ = "webhook_rejections"
    __table_args__ = (Index("ix_webhook_rejections_remote_addr_received_at", "remote_addr", "received_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_code: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str | None] = mapped_column(String(300))
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer, default=0)
    received_at = mapped_column(UTCDateTime, default=utc_now, nullable=False, index=True)


class WebhookRejectionRollup(db.Model):
    """Refused webhook and tracking requests counted per hour, source address, door and reason: what stays
    once the individual rejection rows are pruned (shared.services.knocking)."""

    __tablename__ = "webhook_rejection_rollups"
    __table_args__ = (UniqueConstraint("hour", "channel_code", "remote_addr", "reason"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    hour = mapped_column(UTCDateTime, nullable=False, index=True)
    channel_code: Mapped[str] = mapped_column(String(40))
    remote_addr: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(40))
    count: Mapped[int] = mapped_column(Integer, default=0)


class StatusMapping(db.Model):
    """Platform status → lifecycle target, payment and refund state. Empty payment/refund means derive."""

    __tablename__ = "channel_status_mappings"
    __table_args__ = (UniqueConstraint("channel_id", "platform_status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    platform_status: Mapped[str] = mapped_column(String(64))
    lifecycle: Mapped[str] = mapped_column(String(20))
    payment_status: Mapped[str | None] = mapped_column(String(20))
    refund_status: Mapped[str | None] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(String(200))
    updated_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)


MAPPING_KEY_KINDS = ("code", "variant", "product")  # merchant code, platform variant id, platform product id


class SkuMapping(db.Model):
    """What the platform sends for a line → an internal SKU. The key is the merchant's code on the platform
    (`key_kind` "code"), or, for lines without one, the platform's variant id or product id."""

    __tablename__ = "channel_sku_mappings"
    __table_args__ = (UniqueConstraint("channel_id", "key_kind", "channel_sku"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    key_kind: Mapped[str] = mapped_column(String(10), default="code", server_default="code")
    channel_sku: Mapped[str] = mapped_column(String(64))  # the key's value: a code, or a platform id
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"), index=True)
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)

    sku = relationship("Sku", lazy="joined")


class SyncRun(db.Model):
    """One poll (or re-fetch) of one channel: the window asked for, what came back, how it ended."""

    __tablename__ = "sync_runs"
    __table_args__ = (Index("ix_sync_runs_channel_id_started_at", "channel_id", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    kind: Mapped[str] = mapped_column(String(16), default="poll")
    started_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    finished_at = mapped_column(UTCDateTime)
    window_start = mapped_column(UTCDateTime)
    window_end = mapped_column(UTCDateTime)
    pages: Mapped[int] = mapped_column(Integer, default=0)
    fetched: Mapped[int] = mapped_column(Integer, default=0)
    stored: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="running")  # running, ok, failed
    error: Mapped[str | None] = mapped_column(String(1000))
    attempt: Mapped[int] = mapped_column(Integer, default=1)


class SyncAlert(db.Model):
    """A raised sync alarm: a channel silent for two polling periods, a failure rate over the threshold."""

    __tablename__ = "sync_alerts"
    __table_args__ = (Index("ix_sync_alerts_channel_id_kind_resolved_at", "channel_id", "kind", "resolved_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id"))
    kind: Mapped[str] = mapped_column(String(30))  # not_syncing, failure_rate, dead_letter
    message: Mapped[str] = mapped_column(String(1000))
    raised_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    resolved_at = mapped_column(UTCDateTime)
    delivered: Mapped[bool] = mapped_column(Boolean, default=False)
    delivery_error: Mapped[str | None] = mapped_column(String(500))
    # Staff's handling of it (shared/services/alarms.py), as for fulfilment alarms.
    acknowledged_at = mapped_column(UTCDateTime)
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    assigned_to_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))

    channel = relationship("Channel", lazy="joined")
    acknowledged_by = relationship("StaffUser", foreign_keys=[acknowledged_by_id])
    assigned_to = relationship("StaffUser", foreign_keys=[assigned_to_id])


class ReconciliationReport(db.Model):
    __tablename__ = "reconciliation_reports"
    __table_args__ = (Index("ix_reconciliation_reports_channel_id_started_at", "channel_id", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    window_start = mapped_column(UTCDateTime, nullable=False)
    window_end = mapped_column(UTCDateTime, nullable=False)
    started_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    finished_at = mapped_column(UTCDateTime)
    trigger: Mapped[str] = mapped_column(String(16), default="schedule")  # schedule, manual
    status: Mapped[str] = mapped_column(String(16), default="running")  # running, ok, failed
    error: Mapped[str | None] = mapped_column(String(1000))
    channel_count: Mapped[int] = mapped_column(Integer, default=0)
    local_count: Mapped[int] = mapped_column(Integer, default=0)
    missing_here: Mapped[int] = mapped_column(Integer, default=0)
    missing_there: Mapped[int] = mapped_column(Integer, default=0)
    mismatched: Mapped[int] = mapped_column(Integer, default=0)
    refetched: Mapped[int] = mapped_column(Integer, default=0)

    channel = relationship("Channel", lazy="joined")


class ReconciliationDifference(db.Model):
    __tablename__ = "reconciliation_differences"

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reconciliation_reports.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # missing_here, missing_there, status_mismatch
    channel_order_id: Mapped[str] = mapped_column(String(64))
    platform_status: Mapped[str | None] = mapped_column(String(64))
    expected_status: Mapped[str | None] = mapped_column(String(20))
    local_status: Mapped[str | None] = mapped_column(String(20))
    order_no: Mapped[str | None] = mapped_column(String(20))


class WebhookSubscription(db.Model):
    """An outside system that wants order events pushed to it."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    url: Mapped[str] = mapped_column(String(500))
    secret = mapped_column(EncryptedText, nullable=False)
    events: Mapped[str] = mapped_column(String(200), default="order.*")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)


class OutboxEvent(db.Model):
    """An order change, written in the same transaction as the change; delivered later by a job."""

    __tablename__ = "outbox_events"
    __table_args__ = (Index("ix_outbox_events_fanned_out_id", "fanned_out", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    event_type: Mapped[str] = mapped_column(String(40))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    payload = mapped_column(JSON, nullable=False)
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    fanned_out: Mapped[bool] = mapped_column(Boolean, default=False)


class WebhookDelivery(db.Model):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("outbox_event_id", "subscription_id"),
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    outbox_event_id: Mapped[int] = mapped_column(ForeignKey("outbox_events.id"))
    subscription_id: Mapped[int] = mapped_column(ForeignKey("webhook_subscriptions.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending, delivered, retry, dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_attempt_at = mapped_column(UTCDateTime)
    delivered_at = mapped_column(UTCDateTime)
    duration_ms: Mapped[int | None] = mapped_column(Integer)

    event = relationship("OutboxEvent", lazy="joined")
    subscription = relationship("WebhookSubscription", lazy="joined")
