"""A channel's connection, its status mapping and its SKU mapping: set by ops managers, every change audited."""
from sqlalchemy import or_, select

from shared.actors import Actor
from shared.channels import adapter_for
from shared.extensions import db
from shared.lifecycle import OrderStatus
from shared.models import Channel, ChannelConnection, Sku, SkuMapping, StatusMapping
from shared.models.sync import MAPPING_KEY_KINDS
from shared.services import audit
from shared.services import stock as stock_service
from shared.services import validation as check
from shared.services.errors import NotFound, ValidationFailed
from shared.services.validation import N_, say
from shared.timekeeping import utc_now

# What a person reads when this module refuses: message codes, said in the reader's language (say).
INVALID_LIFECYCLE = N_("\"%(lifecycle)s\" is not a status a channel may set")
INVALID_PAYMENT_STATUS = N_("\"%(payment_status)s\" is not a payment status")
INVALID_REFUND_STATUS = N_("\"%(refund_status)s\" is not a refund status")
INVALID_KEY_KIND = N_("\"%(kind)s\" is not a mapping key: use a merchant code, a platform variant id or a platform "
                      "product id")
INVALID_PLATFORM_ID = N_("A platform %(kind)s id is digits only, not \"%(text)s\"")
MAPPING_NOT_FOUND = N_("%(channel_sku)s is not mapped")
UNKNOWN_MAPPING_FILE = N_("The header row needs channel_sku and sku (SKU mappings) or platform_status and lifecycle "
                          "(status mappings)")
INVALID_URL = N_("The API address must start with https:// or http://")
INVALID_INTERVAL = N_("Poll every 1 to 1440 minutes")
# A refused mapping file: each bad row with its line, then the whole file refused.
CELL_EMPTY = N_("%(field)s is empty")
KEY_TWICE = N_("%(key)s is also on line %(line)s")
ROW_PROBLEM = N_("line %(line)s: %(problem)s")
ROWS_REFUSED = N_("%(count)s rows refused, nothing imported: %(shown)s")
ROWS_REFUSED_MORE = N_("%(count)s rows refused, nothing imported: %(shown)s (and %(more)s more)")

LIFECYCLE_TARGETS = (OrderStatus.PENDING_REVIEW, OrderStatus.CONFIRMED, OrderStatus.ON_HOLD, OrderStatus.SHIPPED,
                     OrderStatus.COMPLETED, OrderStatus.CANCELLED)
PAYMENT_CHOICES = ("", "paid", "unpaid")  # "" derives payment from the platform's paid time
REFUND_CHOICES = ("", "requested", "partially_refunded", "refunded")  # "" is none (or refunded if cancelled paid)


SECRETS = ("app_secret", "access_token", "webhook_secret")
CONNECTION_FIELDS = ("base_url", "app_key", *SECRETS, "poll_minutes", "polling_enabled")


def secret_hint(value: str | None) -> dict:
    """What may be shown of a stored secret: whether it is set and, for a long one, its last four characters."""
    if not value:
        return {"set": False}
    return {"set": True, "ends_with": value[-4:] if len(value) >= 16 else None}


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
            raise ValidationFailed(say(INVALID_URL), field="base_url",
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
            raise ValidationFailed(say(INVALID_INTERVAL), field="poll_minutes", code="invalid_interval")
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
        raise ValidationFailed(say(INVALID_LIFECYCLE, lifecycle=lifecycle), field="lifecycle",
                               code="invalid_lifecycle")
    if (payment_status or "") not in PAYMENT_CHOICES:
        raise ValidationFailed(say(INVALID_PAYMENT_STATUS, payment_status=payment_status), field="payment_status",
                               code="invalid_payment_status")
    if (refund_status or "") not in REFUND_CHOICES:
        raise ValidationFailed(say(INVALID_REFUND_STATUS, refund_status=refund_status), field="refund_status",
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


# How the mapping list may be ordered: a column of the list, ascending or (a leading "-") descending.
MAPPING_SORTS = {"channel_sku": SkuMapping.channel_sku, "sku": Sku.code, "name": Sku.name,
                 "since": SkuMapping.created_at}


def sku_mappings(channel: Channel, search: str | None = None, sort: str | None = None) -> list[SkuMapping]:
    """The channel's SKU mappings; `search` finds a part of the channel SKU, the internal SKU or its name; `sort`
    names a MAPPING_SORTS column (an unknown one is the default: by key kind and channel SKU)."""
    query = select(SkuMapping).join(Sku, Sku.id == SkuMapping.sku_id).where(SkuMapping.channel_id == channel.id)
    text = (search or "").strip()[:64]
    if text:
        query = query.where(or_(SkuMapping.channel_sku.contains(text, autoescape=True),
                                Sku.code.contains(text, autoescape=True), Sku.name.contains(text, autoescape=True)))
    column = MAPPING_SORTS.get((sort or "").lstrip("-"))
    if column is None:
        return db.session.execute(query.order_by(SkuMapping.key_kind, SkuMapping.channel_sku)).scalars().all()
    ordered = column.desc() if sort.startswith("-") else column.asc()
    return db.session.execute(query.order_by(ordered, SkuMapping.id)).scalars().all()


def _key_kind(key_kind: str | None) -> str:
    kind = key_kind or "code"
    if kind not in MAPPING_KEY_KINDS:
        raise ValidationFailed(say(INVALID_KEY_KIND, kind=kind), field="key_kind", code="invalid_key_kind")
    return kind


def _key_value(value, kind: str) -> str:
    text = check.text(value, "channel_sku", 64)
    if kind != "code" and not text.isdigit():  # every platform's variant and product ids are digits
        raise ValidationFailed(say(INVALID_PLATFORM_ID, kind=kind, text=text), field="channel_sku",
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
        raise NotFound(say(MAPPING_NOT_FOUND, channel_sku=channel_sku), field="channel_sku", code="mapping_not_found")
    audit.record(actor, "channel.sku_unmap", "channel", channel.code,
                 before={"key_kind": kind, "channel_sku": channel_sku, "sku": row.sku.code})
    db.session.delete(row)


SKU_MAPPING_COLUMNS = ("channel_sku", "sku")
STATUS_MAPPING_COLUMNS = ("platform_status", "lifecycle", "payment_status", "refund_status", "note")


class MappingImportRefused(ValidationFailed):
    """A mapping file with bad rows: every bad row is named with its line number and nothing is applied."""

    code = "mapping_import_refused"

    def __init__(self, problems: list[tuple[int, str]]):
        self.problems = problems
        shown = "; ".join(say(ROW_PROBLEM, line=line, problem=problem) for line, problem in problems[:20])
        if len(problems) > 20:
            message = say(ROWS_REFUSED_MORE, count=len(problems), shown=shown, more=len(problems) - 20)
        else:
            message = say(ROWS_REFUSED, count=len(problems), shown=shown)
        super().__init__(message, field="file")

    def as_json(self) -> dict:
        body = super().as_json()
        body["error"]["rows"] = [{"line": line, "message": problem} for line, problem in self.problems]
        return body


def import_mappings(channel: Channel, filename: str, data: bytes, actor: Actor) -> dict:
    """SKU mappings (columns channel_sku, sku) or status mappings (platform_status, lifecycle, payment_status?,
    refund_status?, note?) from a .csv or .xlsx file: every row is checked first, and one bad row (an unknown
    SKU, a key named twice, a status a channel may not set) refuses the whole file with line numbers."""
    from shared.channels.spreadsheet import SpreadsheetError, read_table
    from shared.models import Sku

    try:
        rows = read_table(filename, data, ())
    except SpreadsheetError as error:
        raise ValidationFailed(str(error), field="file", code="unreadable_file") from None
    header = set(rows[0][1]) if rows else set()
    kind = "sku" if {"channel_sku", "sku"} <= header else "status" if {"platform_status", "lifecycle"} <= header \
        else None
    if kind is None:
        raise ValidationFailed(say(UNKNOWN_MAPPING_FILE), field="file", code="unknown_mapping_file")
    key_column = "channel_sku" if kind == "sku" else "platform_status"
    problems: list[tuple[int, str]] = []
    first_line: dict[tuple[str, str], int] = {}
    for line, row in rows:
        key = row.get(key_column, "").strip()
        # An optional key_kind column: code (the default), variant or product id, as on the mapping page.
        key_kind = (row.get("key_kind") or "code").strip() if kind == "sku" else ""
        if not key:
            problems.append((line, say(CELL_EMPTY, field=key_column)))
        elif len(key) > 64:
            problems.append((line, say(check.TOO_LONG, field=key_column, limit=64)))
        elif (key_kind, key) in first_line:
            problems.append((line, say(KEY_TWICE, key=key, line=first_line[key_kind, key])))
        else:
            first_line[key_kind, key] = line
            if kind == "sku":
                try:
                    _key_value(key, _key_kind(key_kind))
                except ValidationFailed as refused:
                    problems.append((line, str(refused)))
    if kind == "sku":
        wanted = {row.get("sku", "").strip() for _line, row in rows}
        known = set(db.session.execute(select(Sku.code).where(Sku.code.in_(wanted - {""})))
                    .scalars()) if wanted - {""} else set()
        for line, row in rows:
            code = row.get("sku", "").strip()
            if code not in known:
                problems.append((line, say(stock_service.UNKNOWN_SKU, code=code) if code else say(CELL_EMPTY,
                                                                                                  field="sku")))
    else:
        for line, row in rows:
            if row.get("lifecycle", "").strip() not in LIFECYCLE_TARGETS:
                problems.append((line, say(INVALID_LIFECYCLE, lifecycle=row.get("lifecycle", ""))))
            if row.get("payment_status", "").strip() not in PAYMENT_CHOICES:
                problems.append((line, say(INVALID_PAYMENT_STATUS, payment_status=row.get("payment_status"))))
            if row.get("refund_status", "").strip() not in REFUND_CHOICES:
                problems.append((line, say(INVALID_REFUND_STATUS, refund_status=row.get("refund_status"))))
            if len(row.get("note", "")) > 200:
                problems.append((line, say(check.TOO_LONG, field="note", limit=200)))
    if problems:
        raise MappingImportRefused(sorted(problems))
    for _line, row in rows:
        if kind == "sku":
            map_sku(channel, row["channel_sku"], row["sku"], actor, key_kind=(row.get("key_kind") or "code").strip())
        else:
            set_status_mapping(channel, row["platform_status"], row["lifecycle"].strip(),
                               row.get("payment_status", "").strip(), row.get("refund_status", "").strip(), actor,
                               note=row.get("note") or None)
    audit.record(actor, "channel.mapping_import", "channel", channel.code,
                 after={"kind": kind, "rows": len(rows), "file": (filename or "")[:120]})
    return {"kind": kind, "rows": len(rows)}
