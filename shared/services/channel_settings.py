"""A channel's connection, its status mapping and its SKU mapping: set by ops managers, every change audited."""
from sqlalchemy import select

from shared.actors import Actor
from shared.channels import adapter_for
from shared.extensions import db
from shared.lifecycle import OrderStatus
from shared.models import Channel, ChannelConnection, SkuMapping, StatusMapping
from shared.models.sync import MAPPING_KEY_KINDS
from shared.services import audit
from shared.services import stock as stock_service
from shared.services import validation as check
from shared.services.errors import NotFound, ValidationFailed
from shared.timekeeping import utc_now

LIFECYCLE_TARGETS = (OrderStatus.PENDING_REVIEW, OrderStatus.CONFIRMED, OrderStatus.ON_HOLD, OrderStatus.SHIPPED,
                     OrderStatus.COMPLETED, OrderStatus.CANCELLED)
PAYMENT_CHOICES = ("", "paid", "unpaid")  # "" derives payment from the platform's paid time
REFUND_CHOICES = ("", "requested", "partially_refunded", "refunded")  # "" is none (or refunded if cancelled paid)


def connection_for(channel: Channel) -> ChannelConnection | None:
    return db.session.execute(
        select(ChannelConnection).where(ChannelConnection.channel_id == channel.id)).scalar_one_or_none()


def connect(channel: Channel, actor: Actor, base_url: str | None = None, app_key: str | None = None,
            app_secret: str | None = None, access_token: str | None = None, webhook_secret: str | None = None,
            poll_minutes: int | None = None, polling_enabled: bool | None = None) -> ChannelConnection:
    """Create or change a channel's connection. Secrets are stored encrypted and never written to the audit."""
    connection = connection_for(channel)
    created = connection is None
    if created:
        connection = ChannelConnection(channel_id=channel.id, poll_minutes=5, overlap_seconds=120,
                                       polling_enabled=True, consecutive_failures=0)
        db.session.add(connection)
    before = {"base_url": connection.base_url, "app_key": connection.app_key,
              "poll_minutes": connection.poll_minutes, "polling_enabled": connection.polling_enabled}
    if base_url is not None:
        url = check.text(base_url, "base_url", 300)
        if not url.startswith(("https://", "http://")):
            raise ValidationFailed("the API address must start with https:// or http://", field="base_url",
                                   code="invalid_url")
        connection.base_url = url.rstrip("/")
    if app_key is not None:
        connection.app_key = check.text(app_key, "app_key", 120)
    changed_secrets = []
    for name, value in (("app_secret", app_secret), ("access_token", access_token),
                        ("webhook_secret", webhook_secret)):
        if value:
            setattr(connection, name, check.text(value, name, 500))
            changed_secrets.append(name)
    if poll_minutes is not None:
        if isinstance(poll_minutes, bool) or not isinstance(poll_minutes, int) or not 1 <= poll_minutes <= 1440:
            raise ValidationFailed("poll every 1 to 1440 minutes", field="poll_minutes", code="invalid_interval")
        connection.poll_minutes = poll_minutes
    if polling_enabled is not None:
        connection.polling_enabled = bool(polling_enabled)
    db.session.flush()
    seed_status_mappings(channel)
    audit.record(actor, "channel.connect" if created else "channel.connection_change", "channel", channel.code,
                 before=None if created else before,
                 after={"base_url": connection.base_url, "app_key": connection.app_key,
                        "poll_minutes": connection.poll_minutes, "polling_enabled": connection.polling_enabled,
                        "secrets_changed": changed_secrets})
    return connection


def seed_status_mappings(channel: Channel) -> int:
    """Start a channel with its platform's documented statuses; ops managers edit them from there."""
    existing = set(db.session.execute(
        select(StatusMapping.platform_status).where(StatusMapping.channel_id == channel.id)).scalars())
    added = 0
    for key, (lifecycle, payment, refund) in adapter_for(channel.kind).default_status_map.items():
        if key not in existing:
            db.session.add(StatusMapping(channel_id=channel.id, platform_status=key, lifecycle=lifecycle,
                                         payment_status=payment, refund_status=refund, note="platform default"))
            added += 1
    db.session.flush()
    return added


def status_mappings(channel: Channel) -> list[StatusMapping]:
    return db.session.execute(select(StatusMapping).where(StatusMapping.channel_id == channel.id)
                              .order_by(StatusMapping.platform_status)).scalars().all()


def set_status_mapping(channel: Channel, platform_status: str, lifecycle: str, payment_status: str | None,
                       refund_status: str | None, actor: Actor, note: str | None = None) -> StatusMapping:
    platform_status = check.text(platform_status, "platform_status", 64)
    if lifecycle not in LIFECYCLE_TARGETS:
        raise ValidationFailed(f"{lifecycle!r} is not a status a channel may set", field="lifecycle",
                               code="invalid_lifecycle")
    if (payment_status or "") not in PAYMENT_CHOICES:
        raise ValidationFailed(f"{payment_status!r} is not a payment status", field="payment_status",
                               code="invalid_payment_status")
    if (refund_status or "") not in REFUND_CHOICES:
        raise ValidationFailed(f"{refund_status!r} is not a refund status", field="refund_status",
                               code="invalid_refund_status")
    row = db.session.execute(select(StatusMapping).where(StatusMapping.channel_id == channel.id,
                                                         StatusMapping.platform_status == platform_status)
                             ).scalar_one_or_none()
    before = None
    if row is None:
        row = StatusMapping(channel_id=channel.id, platform_status=platform_status)
        db.session.add(row)
    else:
        before = {"lifecycle": row.lifecycle, "payment_status": row.payment_status,
                  "refund_status": row.refund_status}
    row.lifecycle, row.payment_status, row.refund_status = lifecycle, payment_status or None, refund_status or None
    row.note = check.text(note, "note", 200, required=False)
    row.updated_at = utc_now()
    db.session.flush()
    audit.record(actor, "channel.status_mapping", "channel", channel.code, before=before,
                 after={"platform_status": platform_status, "lifecycle": lifecycle,
                        "payment_status": row.payment_status, "refund_status": row.refund_status})
    return row


KEY_KIND_LABELS = {"code": "merchant code", "variant": "platform variant id", "product": "platform product id"}


def sku_mappings(channel: Channel) -> list[SkuMapping]:
    return db.session.execute(select(SkuMapping).where(SkuMapping.channel_id == channel.id)
                              .order_by(SkuMapping.key_kind, SkuMapping.channel_sku)).scalars().all()


def _key_kind(key_kind: str | None) -> str:
    kind = key_kind or "code"
    if kind not in MAPPING_KEY_KINDS:
        raise ValidationFailed(f"{kind!r} is not a mapping key: use a merchant code, a platform variant id or a "
                               "platform product id", field="key_kind", code="invalid_key_kind")
    return kind


def _key_value(value, kind: str) -> str:
    text = check.text(value, "channel_sku", 64)
    if kind != "code" and not text.isdigit():  # every platform's variant and product ids are digits
        raise ValidationFailed(f"a platform {kind} id is digits only, not {text!r}", field="channel_sku",
                               code="invalid_platform_id")
    return text


def _mapping_row(channel: Channel, kind: str, value: str) -> SkuMapping | None:
    return db.session.execute(select(SkuMapping).where(SkuMapping.channel_id == channel.id,
                                                       SkuMapping.key_kind == kind,
                                                       SkuMapping.channel_sku == value)).scalar_one_or_none()


def map_sku(channel: Channel, channel_sku: str, sku_code: str, actor: Actor, key_kind: str = "code") -> SkuMapping:
    """Map what a platform line carries (its merchant code, or its variant or product id) to an internal SKU."""
    kind = _key_kind(key_kind)
    channel_sku = _key_value(channel_sku, kind)
    sku = stock_service.get_sku(check.text(sku_code, "sku", 64))
    row = _mapping_row(channel, kind, channel_sku)
    before = {"key_kind": kind, "channel_sku": channel_sku, "sku": row.sku.code} if row else None
    if row is None:
        row = SkuMapping(channel_id=channel.id, key_kind=kind, channel_sku=channel_sku)
        db.session.add(row)
    row.sku_id, row.sku = sku.id, sku
    db.session.flush()
    audit.record(actor, "channel.sku_mapping", "channel", channel.code, before=before,
                 after={"key_kind": kind, "channel_sku": channel_sku, "sku": sku.code})
    return row


def unmap_sku(channel: Channel, channel_sku: str, actor: Actor, key_kind: str = "code") -> None:
    kind = _key_kind(key_kind)
    row = _mapping_row(channel, kind, channel_sku)
    if row is None:
        raise NotFound(f"{channel_sku} is not mapped", field="channel_sku", code="mapping_not_found")
    audit.record(actor, "channel.sku_unmap", "channel", channel.code,
                 before={"key_kind": kind, "channel_sku": channel_sku, "sku": row.sku.code})
    db.session.delete(row)
