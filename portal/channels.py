"""Channels: sync health, the inbox of received payloads (and replay), settings and mappings, spreadsheet
imports, and reconciliation reports. Every change goes through one service call; the views only read."""
import json
import logging
from datetime import timedelta

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import defer

from portal.access import requires
from portal.dashboard import bar_chart as chart_bars
from portal.forms import (AlarmAssignForm, ConfirmForm, ConnectionForm, ImportForm, ReplayFailedForm, SkuMappingForm,
                          SkuUnmapForm,
                          StatusMappingForm, lifecycle_choices, payment_choices, refund_choices)
from portal.fulfilment import alarm_context, mute_form
from portal.outcomes import commit_or_refuse, flash_form_errors
from shared import dispatch, exports, labels
from shared.channels import polls, takes_webhooks
from shared.channels.spreadsheet import COLUMNS, MAX_BYTES, REQUIRED
from shared.extensions import db
from shared.history import describe as describe_event
from shared.models import (AuditEvent, Channel, InboxItem, Order, ReconciliationReport, Sku, SyncAlert,
                           WebhookRejection)
from shared.models.channel import DIRECT_KINDS
from shared.services import (alarms, audit, channel_settings, inbox, knocking, orders, reconciliation,
                             sync_health)
from shared.services.errors import ServiceError
from shared.timekeeping import utc_now
from shared.web import staff_actor

bp = Blueprint("channels", __name__, url_prefix="/channels")


@bp.url_value_preprocessor
def _larger_uploads(endpoint, _values):
    """Spreadsheets may be larger than the portal's 1 MB request limit. Set before the CSRF check reads the
    form (URL value preprocessors run before every before_request function)."""
    if endpoint == "channels.import_upload":
        request.max_content_length = MAX_BYTES
log = logging.getLogger("orderloom.portal.channels")
CODE = "<string(length=2):code>"
INBOX_PAGE = 50
REPORTS_PAGE = 100
DIFFERENCES_SHOWN = 500
IMPORT_PROGRESS_WINDOW = timedelta(hours=1)
WAITING = ("received", "processing", "retry")
INBOX_SORTS = {
    "received_desc": (InboxItem.received_at.desc(), InboxItem.id.desc()),
    "received_asc": (InboxItem.received_at.asc(), InboxItem.id.asc()),
    "processed_desc": (InboxItem.processed_at.desc(), InboxItem.id.desc()),
    "processed_asc": (InboxItem.processed_at.asc(), InboxItem.id.asc()),
    "attempts_desc": (InboxItem.attempts.desc(), InboxItem.id.desc()),
    "attempts_asc": (InboxItem.attempts.asc(), InboxItem.id.asc()),
}

for _name, _table in (("inbox_status_label", labels.INBOX_STATUS), ("inbox_source_label", labels.INBOX_SOURCE),
                      ("inbox_outcome_label", labels.INBOX_OUTCOME), ("sync_alert_label", labels.SYNC_ALERT),
                      ("inbox_error_label", labels.INBOX_ERROR),
                      ("rejection_label", labels.WEBHOOK_REJECTION),
                      ("reconciliation_status_label", labels.RECONCILIATION_STATUS),
                      ("trigger_label", labels.RECONCILIATION_TRIGGER), ("difference_label", labels.DIFFERENCE),
                      ("tracking_source_label", labels.TRACKING_SOURCE),
                      ("channel_kind_label", labels.CHANNEL_KIND)):
    bp.add_app_template_filter(lambda code, table=_table: labels.label(table, code), _name)

# What a platform's status words mean, where the word alone does not say it (the mapping table shows these).
PLATFORM_STATUS_NOTES = {
    "taobao": {
        "TRADE_NO_CREATE_PAY": _l("No payment record created yet"),
        "WAIT_BUYER_PAY": _l("Waiting for the buyer to pay"),
        "WAIT_SELLER_SEND_GOODS": _l("Paid, waiting for the seller to ship"),
        "SELLER_CONSIGNED_PART": _l("Partly shipped"),
        "WAIT_BUYER_CONFIRM_GOODS": _l("Shipped, waiting for the buyer to confirm receipt"),
        "TRADE_BUYER_SIGNED": _l("Signed for by the buyer"),
        "TRADE_FINISHED": _l("Trade finished"),
        "TRADE_CLOSED": _l("Closed after payment (refunded in full)"),
        "TRADE_CLOSED_BY_TAOBAO": _l("Closed by Taobao before payment"),
    },
    "jd": {
        "WAIT_SELLER_STOCK_OUT": _l("Paid, waiting for the seller to ship"),
        "WAIT_GOODS_RECEIVE_CONFIRM": _l("Shipped, waiting for the buyer to confirm receipt"),
        "FINISHED_L": _l("Trade finished"),
        "TRADE_CANCELED": _l("Cancelled"),
        "LOCKED": _l("Locked while a cancellation or refund is handled"),
    },
    "douyin": {
        "1": _l("Waiting for the buyer to pay"), "105": _l("Paid"), "2": _l("Paid, being prepared"),
        "101": _l("Partly shipped"), "3": _l("Shipped"), "4": _l("Cancelled"), "5": _l("Completed"),
    },
    "import": {"paid": _l("The row has a paid_at time"), "unpaid": _l("The row has no paid_at time")},
}
PINDUODUO_ORDER = {"1": _l("waiting to ship"), "2": _l("shipped"), "3": _l("received")}
PINDUODUO_REFUND = {"1": _l("no after-sale"), "2": _l("after-sale in progress"), "3": _l("refunding"),
                    "4": _l("refunded")}


def platform_status_note(kind: str, platform_status: str) -> str:
    if kind == "pinduoduo" and platform_status.count("/") == 1:
        order_part, refund_part = platform_status.split("/")
        if order_part in PINDUODUO_ORDER and refund_part in PINDUODUO_REFUND:
            return f"{PINDUODUO_ORDER[order_part]} · {PINDUODUO_REFUND[refund_part]}"
        return ""
    notes = PLATFORM_STATUS_NOTES.get(kind if kind in PLATFORM_STATUS_NOTES else
                                      ("import" if kind in DIRECT_KINDS else kind), {})
    return str(notes.get(platform_status, ""))


def _channel(code: str) -> Channel:
    """The channel named in the URL; an unknown or inactive one is a 404 (raised by the service)."""
    return orders.get_channel(code)


def _all_channels() -> list[Channel]:
    return db.session.execute(select(Channel).order_by(Channel.code)).scalars().all()


def _back(default: str) -> str:
    """Where a form post returns to: the page it was sent from (same site only), else `default`."""
    target = request.referrer or ""
    return target if target.startswith(request.host_url) else default


def _saved(form, action) -> bool:
    """Validate the form, make the one service call, commit. False: nothing changed and the reason is on the form."""
    if not form.validate_on_submit():
        return False
    try:
        action()
        db.session.commit()
    except ServiceError as refused:
        db.session.rollback()
        errors = form[refused.field].errors if refused.field and refused.field in form else form.form_errors
        errors.append(refused.message)
        return False
    return True


def _connected_for_sync(channel: Channel) -> bool:
    connection = channel_settings.connection_for(channel)
    return polls(channel.kind) and connection is not None and bool(connection.base_url)


# --- sync health -------------------------------------------------------------------------------------------

@bp.get("/")
@requires("channels", "view")
def index():
    rows = sync_health.health()
    rejections = db.session.execute(select(WebhookRejection).order_by(WebhookRejection.received_at.desc(),
                                                                      WebhookRejection.id.desc()).limit(20)
                                    ).scalars().all()
    syncable = {row["channel"].id for row in rows if polls(row["channel"].kind) and row["connection"] is not None
                and row["connection"].base_url}
    return render_template("portal/channels/index.html", rows=rows, syncable=syncable,
                           bars=chart_bars([(row["channel"].name, row["orders_today"]) for row in rows]),
                           alerts=sync_health.open_alerts(50), rejections=rejections, confirm_form=ConfirmForm(),
                           refused_hours=knocking.hourly_summary(24),
                           **alarm_context("channels", alarms.SYNC_KINDS, labels.SYNC_ALERT))


@bp.post("/alerts/<int:alert_id>/acknowledge")
@requires("channels", "edit")
def acknowledge_alert(alert_id: int):
    """A sync alert seen and being handled: who and when (audited)."""
    alert = _alert_or_404(alert_id)
    commit_or_refuse(lambda: alarms.acknowledge(alert, staff_actor(current_user)), _("The alarm was acknowledged."))
    return redirect(url_for("channels.index") + "#alerts", 303)


@bp.post("/alerts/<int:alert_id>/assign")
@requires("channels", "edit")
def assign_alert(alert_id: int):
    alert = _alert_or_404(alert_id)
    form = AlarmAssignForm()
    if not form.validate_on_submit():
        flash_form_errors(form)
    else:
        commit_or_refuse(lambda: alarms.assign(alert, form.assignee.data, staff_actor(current_user)),
                         _("The alarm was assigned."))
    return redirect(url_for("channels.index") + "#alerts", 303)


@bp.post("/alerts/mutes")
@requires("channels", "edit")
def mute_alerts():
    """No new sync alert of a kind (for one channel, subject `channel:<code>`) for some hours; audited."""
    form = mute_form(alarms.SYNC_KINDS, labels.SYNC_ALERT)
    if not form.validate_on_submit():
        flash_form_errors(form)
    else:
        commit_or_refuse(lambda: alarms.mute(form.kind.data, form.subject.data, form.hours.data, form.reason.data,
                                             staff_actor(current_user), kinds=alarms.SYNC_KINDS),
                         _("The alarms were muted."))
    return redirect(url_for("channels.index") + "#alerts", 303)


def _alert_or_404(alert_id: int) -> SyncAlert:
    try:
        return alarms.get_alarm(alert_id, SyncAlert)
    except ServiceError:
        abort(404)


def _start_job(code: str, dotted: str, extra: tuple, started: str):
    """Start a sync job for a connected platform channel (the job records its own outcome), then go back."""
    channel = _channel(code)
    if not ConfirmForm().validate_on_submit():
        return redirect(url_for("channels.index"), 303)
    if not _connected_for_sync(channel):
        flash(_("%(channel)s has no platform API connection, so it cannot be polled or reconciled.",
                channel=channel.name), "error")
        return redirect(url_for("channels.index"), 303)
    try:
        dispatch.send(dotted, channel.id, *extra, queue="sync")
    except Exception as error:  # inline (no Redis) the job runs here; its failure is recorded, not a 500
        db.session.rollback()
        log.warning("job=%s channel=%s failed inline: %s", dotted, code, error)
        flash(_("The job failed: %(message)s", message=str(error)[:300]), "error")
        return redirect(url_for("channels.index"), 303)
    flash(started, "success")
    return redirect(url_for("channels.index"), 303)


@bp.post(f"/{CODE}/poll")
@requires("channels", "edit")
def poll(code: str):
    return _start_job(code, "jobs.sync.poll_channel", (), _("Polling of %(code)s started.", code=code.upper()))


@bp.post(f"/{CODE}/reconcile")
@requires("channels", "edit")
def reconcile(code: str):
    return _start_job(code, "jobs.sync.reconcile_channel", ("manual",),
                      _("Reconciliation of %(code)s started; the report appears under Reconciliation.",
                        code=code.upper()))


# --- inbox -------------------------------------------------------------------------------------------------

def _inbox_filters(args) -> dict:
    status = args.get("status") or "failed"
    if status not in ("failed", "all", *labels.INBOX_STATUS):
        status = "failed"
    source = args.get("source") if args.get("source") in labels.INBOX_SOURCE else ""
    sort = args.get("sort") if args.get("sort") in INBOX_SORTS else "received_desc"
    page = int(args["page"]) if (args.get("page") or "").isdigit() else 1
    return {"status": status, "channel": (args.get("channel") or "").strip().upper()[:2], "source": source,
            "q": (args.get("q") or "").strip()[:64], "sort": sort, "page": min(max(page, 1), 10_000)}


@bp.get("/inbox")
@requires("channels", "view")
def inbox_list():
    filters = _inbox_filters(request.args)
    channels = _all_channels()
    channel = next((c for c in channels if c.code == filters["channel"]), None)
    # The raw body is personal data and encrypted: a list never loads (or decrypts) it.
    query = (select(InboxItem, Order.order_no).outerjoin(Order, Order.id == InboxItem.order_id)
             .options(defer(InboxItem.body)))
    if filters["status"] == "failed":
        query = query.where(InboxItem.status.in_(inbox.FAILED))
    elif filters["status"] != "all":
        query = query.where(InboxItem.status == filters["status"])
    if channel is not None:
        query = query.where(InboxItem.channel_id == channel.id)
    if filters["source"]:
        query = query.where(InboxItem.source == filters["source"])
    if filters["q"]:
        query = query.where(InboxItem.external_id == filters["q"])
    query = query.order_by(*INBOX_SORTS[filters["sort"]]).offset((filters["page"] - 1) * INBOX_PAGE)
    rows = db.session.execute(query.limit(INBOX_PAGE + 1)).all()
    context = {"rows": rows[:INBOX_PAGE], "has_next": len(rows) > INBOX_PAGE, "filters": filters,
               "channel": channel, "channels": channels, "args": request.args,
               "counts": inbox.counts_by_status(channel.id if channel is not None else None),
               "confirm_form": ConfirmForm(), "replay_form": ReplayFailedForm(formdata=None)}
    if request.headers.get("HX-Request") and request.headers.get("HX-Target") == "inbox-table":
        return render_template("portal/channels/_inbox_table.html", **context)
    return render_template("portal/channels/inbox.html", **context)


def _detail_page(item: InboxItem, payload: dict | None = None):
    order_no = db.session.execute(select(Order.order_no).where(Order.id == item.order_id)).scalar_one_or_none() \
        if item.order_id else None
    history = [(event, describe_event(event, current_user.role)) for event in db.session.execute(
        select(AuditEvent).where(AuditEvent.entity_type == "inbox_item", AuditEvent.entity_id == str(item.id))
        .order_by(AuditEvent.id)).scalars()]
    return render_template("portal/channels/inbox_item.html", item=item, order_no=order_no, history=history,
                           payload=payload, confirm_form=ConfirmForm())


@bp.get("/inbox/<int:item_id>")
@requires("channels", "view")
def inbox_item(item_id: int):
    return _detail_page(inbox.get_item(item_id))


def _readable(body: str) -> dict:
    """The payload as stored: pretty-printed when it is JSON, as text otherwise (the template escapes both)."""
    try:
        return {"text": json.dumps(json.loads(body), ensure_ascii=False, indent=2), "is_json": True}
    except ValueError:
        return {"text": body, "is_json": False}


@bp.post("/inbox/<int:item_id>/payload")
@requires("channels", "edit")
def inbox_payload(item_id: int):
    """Show the raw payload (it holds names, phones and addresses); every reveal goes to the access log."""
    item = inbox.get_item(item_id)
    if item.payload_purged_at is not None:  # retention emptied it: nothing personal is shown, so nothing is logged
        payload = {"text": _("The payload was emptied by retention on %(when)s; its hash is kept for de-duplication.",
                             when=current_app.jinja_env.filters["localtime"](item.payload_purged_at)), "is_json": False}
    else:
        payload = _readable(item.body)
        audit.log_access(staff_actor(current_user), "reveal", "inbox_item", item.id, ["raw_payload"],
                         channel="portal")
        db.session.commit()
    if request.headers.get("HX-Request"):
        return render_template("portal/channels/_payload.html", item=item, payload=payload)
    return _detail_page(item, payload)


@bp.post("/inbox/<int:item_id>/replay")
@requires("channels", "edit")
def replay(item_id: int):
    inbox.get_item(item_id)  # a missing item is a 404 before anything else
    if ConfirmForm().validate_on_submit() and commit_or_refuse(
            lambda: inbox.replay(item_id, staff_actor(current_user)),
            _("Item %(id)s was sent through processing again.", id=item_id),
            failure=_("Not replayed: %(message)s")):
        inbox.queue([item_id])
    return redirect(_back(url_for("channels.inbox_item", item_id=item_id)), 303)


@bp.post("/inbox/replay-failed")
@requires("channels", "edit")
def replay_failed():
    form = ReplayFailedForm()
    code = (form.channel.data or "").strip().upper()
    target = url_for("channels.inbox_list", channel=code or None)
    if not form.validate_on_submit():
        flash_form_errors(form)
        return redirect(target, 303)
    try:
        channel_id = _channel(code).id if code else None
        ids = inbox.replay_failed(staff_actor(current_user), channel_id)
        db.session.commit()
    except ServiceError as refused:
        db.session.rollback()
        flash(_("Not replayed: %(message)s", message=refused.message), "error")
        return redirect(target, 303)
    inbox.queue(ids)
    flash(_("Failed items sent through processing again: %(count)s.", count=len(ids)), "success")
    return redirect(target, 303)


# --- carrier tracking pushes ------------------------------------------------------------------------------

@bp.get("/inbox/tracking")
@requires("channels", "view")
def tracking_inbox():
    """Carrier tracking pushes as stored (the body is not loaded), failed ones first by default."""
    from shared.services import tracking

    status = request.args.get("status") or "failed"
    if status not in ("failed", "all", *labels.INBOX_STATUS):
        status = "failed"
    return render_template("portal/channels/tracking_inbox.html", status=status,
                           pushes=tracking.recent_pushes(None if status == "all" else status, limit=200),
                           counts=tracking.push_counts(), confirm_form=ConfirmForm())


@bp.post("/inbox/tracking/<int:item_id>/replay")
@requires("channels", "edit")
def replay_tracking(item_id: int):
    from shared.services import tracking

    tracking.get_push(item_id)  # a missing push is a 404 before anything else
    if ConfirmForm().validate_on_submit() and commit_or_refuse(
            lambda: tracking.replay_push(item_id, staff_actor(current_user)),
            _("Tracking push %(id)s was sent through processing again.", id=item_id),
            failure=_("Not replayed: %(message)s")):
        dispatch.send("jobs.sync.process_tracking", [item_id], queue="sync")
    return redirect(url_for("channels.tracking_inbox", status=request.args.get("status") or None), 303)


# --- channel settings and mappings -------------------------------------------------------------------------

def _settings_page(channel: Channel, connection_form=None, status_form=None, sku_form=None, status: int = 200):
    connection = channel_settings.connection_for(channel)
    if connection_form is None:
        connection_form = ConnectionForm(formdata=None, data={
            "base_url": connection.base_url if connection else "", "app_key": connection.app_key if connection else "",
            "poll_minutes": connection.poll_minutes if connection else 5,
            "polling_enabled": connection.polling_enabled if connection else True})
    secrets_set = {name: channel_settings.secret_hint(getattr(connection, name) if connection else None)
                   for name in channel_settings.SECRETS}
    mappings = channel_settings.status_mappings(channel)
    kind = channel.kind
    notes = {row.platform_status: platform_status_note(kind, row.platform_status) for row in mappings}
    sku_codes = db.session.execute(select(Sku.code).order_by(Sku.code).limit(2000)).scalars().all()
    return render_template(
        "portal/channels/settings.html", channel=channel, connection=connection, secrets_set=secrets_set,
        connection_form=connection_form, mappings=mappings, notes=notes,
        status_form=status_form or StatusMappingForm(formdata=None),
        sku_form=sku_form or SkuMappingForm(formdata=None), sku_mappings=channel_settings.sku_mappings(channel, request.args.get("sku_q"), request.args.get("sku_sort")),
        sku_q=(request.args.get("sku_q") or "").strip()[:64], sku_sort=request.args.get("sku_sort") or "",
        sku_codes=sku_codes, unmap_form=SkuUnmapForm(formdata=None),
        lifecycle_choices=lifecycle_choices(), payment_choices=payment_choices(), refund_choices=refund_choices(),
        polled=polls(kind), webhooks=takes_webhooks(kind), direct=kind in DIRECT_KINDS,
        counts=inbox.counts_by_status(channel.id)), status


@bp.get(f"/{CODE}")
@requires("channels", "view")
def settings(code: str):
    return _settings_page(_channel(code))


@bp.post(f"/{CODE}/connection")
@requires("channels", "edit")
def save_connection(code: str):
    channel = _channel(code)
    form = ConnectionForm()
    if _saved(form, lambda: channel_settings.connect(
            channel, staff_actor(current_user), base_url=(form.base_url.data or "").strip() or None,
            app_key=(form.app_key.data or "").strip() or None, app_secret=form.app_secret.data or None,
            access_token=form.access_token.data or None, webhook_secret=form.webhook_secret.data or None,
            poll_minutes=form.poll_minutes.data, polling_enabled=form.polling_enabled.data)):
        flash(_("The connection of %(channel)s was saved.", channel=channel.name), "success")
        return redirect(url_for("channels.settings", code=channel.code), 303)
    return _settings_page(channel, connection_form=form, status=422)


@bp.post(f"/{CODE}/status-mappings")
@requires("channels", "edit")
def save_status_mapping(code: str):
    channel = _channel(code)
    form = StatusMappingForm()
    if _saved(form, lambda: channel_settings.set_status_mapping(
            channel, form.platform_status.data, form.lifecycle.data, form.payment_status.data,
            form.refund_status.data, staff_actor(current_user), note=form.note.data)):
        flash(_("Platform status %(status)s now maps to %(lifecycle)s.", status=form.platform_status.data,
                lifecycle=labels.label(labels.STATUS, form.lifecycle.data)), "success")
        return redirect(url_for("channels.settings", code=channel.code, _anchor="status-mappings"), 303)
    return _settings_page(channel, status_form=form, status=422)


@bp.post(f"/{CODE}/sku-mappings")
@requires("channels", "edit")
def save_sku_mapping(code: str):
    channel = _channel(code)
    form = SkuMappingForm()
    if _saved(form, lambda: channel_settings.map_sku(channel, form.channel_sku.data, form.sku.data,
                                                     staff_actor(current_user), key_kind=form.key_kind.data)):
        flash(_("Channel SKU %(channel_sku)s now maps to %(sku)s.", channel_sku=form.channel_sku.data,
                sku=form.sku.data), "success")
        return redirect(url_for("channels.settings", code=channel.code, _anchor="sku-mappings"), 303)
    return _settings_page(channel, sku_form=form, status=422)


@bp.post(f"/{CODE}/sku-mappings/remove")
@requires("channels", "edit")
def remove_sku_mapping(code: str):
    channel = _channel(code)
    form = SkuUnmapForm()
    if form.validate_on_submit():
        commit_or_refuse(lambda: channel_settings.unmap_sku(channel, form.channel_sku.data,
                                                            staff_actor(current_user), key_kind=form.key_kind.data),
                         _("The mapping of %(channel_sku)s was removed.", channel_sku=form.channel_sku.data))
    else:
        flash_form_errors(form)
    return redirect(url_for("channels.settings", code=channel.code, _anchor="sku-mappings"), 303)


# --- spreadsheet import ------------------------------------------------------------------------------------

def _import_channels() -> list[Channel]:
    return db.session.execute(select(Channel).where(Channel.active, Channel.kind.in_(DIRECT_KINDS))
                              .order_by(Channel.code)).scalars().all()


def _import_page(form, channels: list[Channel], selected: Channel | None, status: int = 200):
    form.channel.choices = [(c.code, f"{c.code} · {c.name}") for c in channels]
    return render_template("portal/channels/import.html", form=form, channels=channels, selected=selected,
                           columns=COLUMNS, required=REQUIRED,
                           max_mb=MAX_BYTES / (1024 * 1024)), status


@bp.get("/import")
@requires("channels", "view")
def import_page():
    channels = _import_channels()
    selected = next((c for c in channels if c.code == (request.args.get("channel") or "").upper()), None)
    form = ImportForm(formdata=None, data={"channel": selected.code if selected else None})
    return _import_page(form, channels, selected)


@bp.post("/import")
@requires("channels", "edit")
def import_upload():
    channels = _import_channels()
    form = ImportForm()
    form.channel.choices = [(c.code, c.name) for c in channels]
    selected = next((c for c in channels if c.code == form.channel.data), None)
    if form.validate_on_submit():
        upload = form.file.data
        stored = []
        if _saved(form, lambda: stored.extend(inbox.import_spreadsheet(
                selected, upload.filename or "", upload.read(), staff_actor(current_user)))):
            inbox.queue(stored)
            flash(_("Orders stored from %(file)s for %(channel)s: %(count)s. They are being processed now.",
                    count=len(stored), file=upload.filename, channel=selected.name), "success")
            return redirect(url_for("channels.import_page", channel=selected.code), 303)
    return _import_page(form, channels, selected, 422)


@bp.get("/import/template.csv")
@requires("channels", "view")
def import_template():
    return Response(exports.csv_bytes(list(COLUMNS), []), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=orderloom-import-template.csv"})


@bp.get("/import/progress")
@requires("channels", "view")
def import_progress():
    """How far the channel's imports of the last hour have got; htmx asks again every 2 s while any wait."""
    channel = next((c for c in _import_channels() if c.code == (request.args.get("channel") or "").upper()), None)
    counts = {}
    if channel is not None:
        counts = dict(db.session.execute(
            select(InboxItem.status, func.count()).where(InboxItem.channel_id == channel.id,
                                                         InboxItem.source == "import",
                                                         InboxItem.received_at >= utc_now() - IMPORT_PROGRESS_WINDOW)
            .group_by(InboxItem.status)).all())
    progress = {"done": counts.get("done", 0), "failed": sum(counts.get(s, 0) for s in inbox.FAILED),
                "waiting": sum(counts.get(s, 0) for s in WAITING)}
    return render_template("portal/channels/_import_progress.html", channel=channel, progress=progress)


# --- reconciliation ----------------------------------------------------------------------------------------

@bp.get("/reconciliation")
@requires("channels", "view")
def reconciliation_list():
    channels = _all_channels()
    code = (request.args.get("channel") or "").strip().upper()[:2]
    channel = next((c for c in channels if c.code == code), None)
    query = select(ReconciliationReport).order_by(ReconciliationReport.id.desc())
    if channel is not None:
        query = query.where(ReconciliationReport.channel_id == channel.id)
    before = request.args.get("before") or ""
    if before.isdigit():
        query = query.where(ReconciliationReport.id < int(before))
    reports = db.session.execute(query.limit(REPORTS_PAGE)).scalars().all()
    return render_template("portal/channels/reconciliation.html", reports=reports, channels=channels,
                           channel=channel, next_before=reports[-1].id if len(reports) == REPORTS_PAGE else None)


@bp.get("/reconciliation/<int:report_id>")
@requires("channels", "view")
def reconciliation_report(report_id: int):
    report = db.get_or_404(ReconciliationReport, report_id)
    kind = request.args.get("kind") if request.args.get("kind") in labels.DIFFERENCE else ""
    rows = reconciliation.differences(report.id, kind or None, limit=DIFFERENCES_SHOWN + 1)
    return render_template("portal/channels/report.html", report=report, kind=kind,
                           differences=rows[:DIFFERENCES_SHOWN], more=len(rows) > DIFFERENCES_SHOWN)
