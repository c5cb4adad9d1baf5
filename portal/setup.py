"""A merchant's first day without the demo: what is still missing before the first order can flow, new
channels and their details, mapping imports, warehouses with their carriers, bins and handhelds.
Every change is one service call; the views only read."""
from dataclasses import dataclass

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select

from portal.access import requires
from portal.forms import (BinEditForm, BinForm, ChannelDetailsForm, ChannelForm, DeviceForm, MappingImportForm,
                          WarehouseEditForm)
from portal.outcomes import commit_or_refuse, flash_form_errors
from shared import dispatch, labels
from shared.carriers.waybills import CARRIER_NAMES
from shared.channels import polls, takes_webhooks
from shared.channels.spreadsheet import MAX_BYTES
from shared.extensions import db
from shared.models import (Bin, Channel, ChannelConnection, Device, Sku, SkuMapping, StaffUser, StatusMapping,
                           StockLevel, Warehouse)
from shared.security.permissions import Role
from shared.services import catalog, channel_settings, scans, stock
from shared.services.channel_settings import MappingImportRefused
from shared.services.errors import ServiceError
from shared.web import staff_actor

bp = Blueprint("setup", __name__, url_prefix="/setup")
CODE = "<string(length=2):code>"


@bp.url_value_preprocessor
def _larger_uploads(endpoint, _values):
    """Mapping files may be larger than the portal's 1 MB request limit (set before the CSRF check reads them)."""
    if endpoint == "setup.import_mappings":
        request.max_content_length = MAX_BYTES


# --- getting started ----------------------------------------------------------------------------------------

@dataclass
class Step:
    key: str
    title: str
    done: bool
    detail: str
    fix_url: str | None
    fix_label: str


def _workers_running() -> bool | None:
    """True when an RQ worker is registered on Redis, False when none is, None when there is no Redis."""
    connection = dispatch.redis_connection()
    if connection is None:
        return None
    from rq import Worker

    try:
        return bool(Worker.count(connection=connection))
    except Exception:  # noqa: BLE001  (an unreachable Redis is the answer "no worker")
        return False


def missing_steps() -> list[Step]:
    """Each thing the first order needs, whether it is there, and where to fix it."""
    count = lambda query: db.session.execute(query).scalar() or 0  # noqa: E731
    warehouses = db.session.execute(select(Warehouse).where(Warehouse.active).order_by(Warehouse.code)).scalars().all()
    binless = [w.code for w in warehouses
               if not count(select(func.count()).select_from(Bin).where(Bin.warehouse_id == w.id))]
    handheldless = [w.code for w in warehouses if not count(select(func.count()).select_from(Device).where(
        Device.warehouse_id == w.id, Device.active))]
    skus = count(select(func.count()).select_from(Sku).where(Sku.active))
    stocked = count(select(func.count()).select_from(StockLevel).where(StockLevel.on_hand > 0))
    channels = db.session.execute(select(Channel).where(Channel.active).order_by(Channel.code)).scalars().all()
    unconnected, failing, unmapped = [], [], []
    for channel in channels:
        connection = db.session.execute(select(ChannelConnection).where(
            ChannelConnection.channel_id == channel.id)).scalar_one_or_none()
        needs_api, needs_hook = polls(channel.kind), takes_webhooks(channel.kind)
        if (needs_api and (connection is None or not connection.base_url or not connection.app_secret)) or \
                (needs_hook and (connection is None or not connection.webhook_secret)):
            unconnected.append(channel.code)
        elif needs_api and connection.consecutive_failures:
            failing.append(channel.code)  # set, but the platform refuses or cannot be reached
        statuses = count(select(func.count()).select_from(StatusMapping).where(StatusMapping.channel_id == channel.id))
        mapped = count(select(func.count()).select_from(SkuMapping).where(SkuMapping.channel_id == channel.id))
        if not statuses or (needs_api and not mapped):
            unmapped.append(channel.code)
    roles_filled = set(db.session.execute(select(StaffUser.role).where(StaffUser.active).distinct()).scalars())
    roles_missing = [labels.role_name(role.value) for role in Role if role.value not in roles_filled]
    workers = _workers_running()
    return [
        Step("warehouse", _("A warehouse"), bool(warehouses),
             _("%(count)s in use", count=len(warehouses)) if warehouses else _("No warehouse yet"),
             url_for("catalog.index"), _("Create a warehouse")),
        Step("bins", _("Bins in every warehouse"), bool(warehouses) and not binless,
             _("No bins in: %(codes)s", codes=", ".join(binless)) if binless else
             _("Every warehouse has bins") if warehouses else _("No warehouse yet"),
             url_for("setup.warehouse", code=binless[0]) if binless else None, _("Add bins")),
        Step("sku", _("A SKU"), bool(skus), _("%(count)s SKUs", count=skus), url_for("catalog.index"),
             _("Create a SKU")),
        Step("stock", _("Stock on hand"), bool(stocked),
             _("%(count)s SKU and warehouse pairs hold stock", count=stocked), url_for("stock_ops.receipt_form"),
             _("Receive stock")),
        Step("channel", _("A sales channel"), bool(channels), _("%(count)s in use", count=len(channels)),
             url_for("setup.new_channel"), _("Add a channel")),
        Step("connection", _("Every platform channel connected (API secret, webhook secret)"),
             bool(channels) and not unconnected and not failing,
             _("Not connected: %(codes)s", codes=", ".join(unconnected)) if unconnected else
             _("Connected, but the last polls failed: %(codes)s", codes=", ".join(failing)) if failing else
             _("Every channel can be reached") if channels else _("No channel yet"),
             url_for("channels.settings", code=(unconnected or failing)[0], _anchor="connection")
             if unconnected or failing else None, _("Set the connection")),
        Step("mappings", _("Status and SKU mappings"), bool(channels) and not unmapped,
             _("Missing mappings: %(codes)s", codes=", ".join(unmapped)) if unmapped else
             _("Every channel is mapped") if channels else _("No channel yet"),
             url_for("setup.channel", code=unmapped[0]) if unmapped else None, _("Map or import")),
        Step("staff", _("A staff user for every role"), not roles_missing,
             _("No one yet as: %(roles)s", roles=", ".join(roles_missing)) if roles_missing else
             _("Every role has someone"), url_for("users.index"), _("Add staff")),
        Step("handhelds", _("A handheld in every warehouse"), bool(warehouses) and not handheldless,
             _("No handheld in: %(codes)s", codes=", ".join(handheldless)) if handheldless else
             _("Every warehouse can scan") if warehouses else _("No warehouse yet"),
             url_for("setup.warehouse", code=handheldless[0], _anchor="handhelds") if handheldless else None,
             _("Register a handheld")),
        Step("worker", _("Redis and a background worker"), bool(workers),
             _("Jobs run inline: no Redis is reachable (set REDIS_URL)") if workers is None else
             _("No worker is running: start “orderloom worker” and “orderloom cron”") if not workers else
             _("A worker is running"), None, ""),
    ]


@bp.get("/")
@requires("catalog", "edit")
def getting_started():
    steps = missing_steps()
    return render_template("portal/setup/getting_started.html", steps=steps,
                           remaining=sum(1 for step in steps if not step.done))


# --- channels -----------------------------------------------------------------------------------------------

def _channel(code: str) -> Channel:
    try:
        return catalog.get_channel(code)
    except ServiceError:
        from flask import abort

        abort(404)


@bp.route("/channels/new", methods=["GET", "POST"])
@requires("channels", "edit")
def new_channel():
    form = ChannelForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            flash_form_errors(form)
            return render_template("portal/setup/new_channel.html", form=form), 422
        made = []
        if not commit_or_refuse(lambda: made.append(catalog.create_channel(
                form.code.data, form.name.data, form.kind.data, staff_actor(current_user),
                timezone=form.timezone.data, currency=form.currency.data)),
                _("Channel %(code)s was created; set its connection next.", code=(form.code.data or "").upper()),
                form=form):
            return render_template("portal/setup/new_channel.html", form=form), 422
        return redirect(url_for("channels.settings", code=made[0].code, _anchor="connection"), 303)
    return render_template("portal/setup/new_channel.html", form=form)


def _channel_page(channel: Channel, details_form=None, import_form=None, refused=None, status: int = 200):
    details_form = details_form or ChannelDetailsForm(formdata=None, obj=channel)
    return render_template("portal/setup/channel.html", channel=channel, details_form=details_form,
                           import_form=import_form or MappingImportForm(formdata=None), refused=refused,
                           sku_columns=channel_settings.SKU_MAPPING_COLUMNS,
                           status_columns=channel_settings.STATUS_MAPPING_COLUMNS,
                           status_count=len(channel_settings.status_mappings(channel)),
                           sku_count=len(channel_settings.sku_mappings(channel))), status


@bp.get(f"/channels/{CODE}")
@requires("channels", "edit")
def channel(code: str):
    return _channel_page(_channel(code))


@bp.post(f"/channels/{CODE}")
@requires("channels", "edit")
def save_channel(code: str):
    channel = _channel(code)
    form = ChannelDetailsForm()
    if form.validate_on_submit():
        if commit_or_refuse(lambda: catalog.update_channel(channel, {
                "name": form.name.data, "timezone": form.timezone.data, "currency": form.currency.data,
                "active": bool(form.active.data)}, staff_actor(current_user)), _("Saved.")):
            return redirect(url_for("setup.channel", code=channel.code), 303)
    else:
        flash_form_errors(form)
    db.session.refresh(channel)
    return _channel_page(channel, details_form=form, status=422)


@bp.post(f"/channels/{CODE}/mappings/import")
@requires("channels", "edit")
def import_mappings(code: str):
    channel = _channel(code)
    form = MappingImportForm()
    if not form.validate_on_submit():
        flash_form_errors(form)
        return _channel_page(channel, import_form=form, status=422)
    upload = form.file.data
    try:
        result = channel_settings.import_mappings(channel, upload.filename, upload.read(), staff_actor(current_user))
        db.session.commit()
    except MappingImportRefused as refused:
        db.session.rollback()
        flash(_("Nothing was imported: %(count)s rows are wrong (listed below).", count=len(refused.problems)),
              "error")
        return _channel_page(channel, import_form=form, refused=refused.problems, status=422)
    except ServiceError as refused:
        db.session.rollback()
        flash(_("Nothing was imported: %(message)s", message=refused.message), "error")
        return _channel_page(channel, import_form=form, status=422)
    flash(_("%(rows)s mappings were imported.", rows=result["rows"]), "success")
    return redirect(url_for("setup.channel", code=channel.code), 303)


TEMPLATES = {"sku": ",".join(channel_settings.SKU_MAPPING_COLUMNS) + "\r\n",
             "status": ",".join(channel_settings.STATUS_MAPPING_COLUMNS) + "\r\n"}


@bp.get("/mappings/template-<kind>.csv")
@requires("channels", "view")
def mapping_template(kind: str):
    from flask import Response, abort

    if kind not in TEMPLATES:
        abort(404)
    return Response("\ufeff" + TEMPLATES[kind], mimetype="text/csv",
                    headers={"Content-Disposition": f"attachment; filename=mappings-{kind}.csv"})


# --- warehouses, bins, handhelds ------------------------------------------------------------------------------

def _warehouse(code: str) -> Warehouse:
    try:
        return stock.get_warehouse(code)
    except ServiceError:
        from flask import abort

        abort(404)


def _warehouse_page(warehouse: Warehouse, edit_form=None, bin_form=None, device_form=None, new_token=None,
                    status: int = 200):
    edit_form = edit_form or WarehouseEditForm(formdata=None, obj=warehouse)
    devices = db.session.execute(select(Device).where(Device.warehouse_id == warehouse.id)
                                 .order_by(Device.name)).scalars().all()
    return render_template("portal/setup/warehouse.html", warehouse=warehouse, edit_form=edit_form,
                           bin_form=bin_form or BinForm(formdata=None), device_form=device_form or
                           DeviceForm(formdata=None), bins=catalog.bins_of(warehouse), devices=devices,
                           new_token=new_token, carrier_names=CARRIER_NAMES), status


@bp.get("/warehouses/<code>")
@requires("catalog", "view")
def warehouse(code: str):
    return _warehouse_page(_warehouse(code))


@bp.post("/warehouses/<code>")
@requires("catalog", "edit")
def save_warehouse(code: str):
    warehouse = _warehouse(code)
    form = WarehouseEditForm()
    if form.validate_on_submit():
        if commit_or_refuse(lambda: catalog.update_warehouse(warehouse, {
                "name": form.name.data, "province": form.province.data, "city": form.city.data,
                "carriers": form.carriers.data, "cold_chain": bool(form.cold_chain.data),
                "active": bool(form.active.data)}, staff_actor(current_user)), _("Saved.")):
            return redirect(url_for("setup.warehouse", code=warehouse.code), 303)
    else:
        flash_form_errors(form)
    db.session.refresh(warehouse)
    return _warehouse_page(warehouse, edit_form=form, status=422)


@bp.post("/warehouses/<code>/bins")
@requires("catalog", "edit")
def add_bin(code: str):
    warehouse = _warehouse(code)
    form = BinForm()
    if form.validate_on_submit():
        if commit_or_refuse(lambda: catalog.create_bin(warehouse, {
                "code": form.code.data, "walk_order": form.walk_order.data, "capacity": form.capacity.data},
                staff_actor(current_user)), _("Bin %(code)s was added.", code=form.code.data), form=form):
            return redirect(url_for("setup.warehouse", code=warehouse.code, _anchor="bins"), 303)
    else:
        flash_form_errors(form)
    return _warehouse_page(warehouse, bin_form=form, status=422)


@bp.post("/warehouses/<code>/bins/<bin_code>")
@requires("catalog", "edit")
def save_bin(code: str, bin_code: str):
    """A bin's walk order and capacity (never below what lies in it)."""
    warehouse = _warehouse(code)
    try:
        row = catalog.get_bin(warehouse, bin_code)
    except ServiceError:
        from flask import abort

        abort(404)
    form = BinEditForm()
    if form.validate_on_submit():
        if commit_or_refuse(lambda: catalog.update_bin(warehouse, row, {
                "walk_order": form.walk_order.data, "capacity": form.capacity.data}, staff_actor(current_user)),
                _("Bin %(code)s was saved.", code=row.code)):
            return redirect(url_for("setup.warehouse", code=warehouse.code, _anchor="bins"), 303)
    else:
        flash_form_errors(form)
    return _warehouse_page(warehouse, status=422)


@bp.post("/warehouses/<code>/handhelds")
@requires("fulfilment", "edit")
def add_handheld(code: str):
    """Register a handheld; its token is shown on this page once (never stored in clear, never in a cookie)."""
    warehouse = _warehouse(code)
    form = DeviceForm()
    if not form.validate_on_submit():
        flash_form_errors(form)
        return _warehouse_page(warehouse, device_form=form, status=422)
    made = []
    if not commit_or_refuse(lambda: made.append(scans.register_device(form.name.data, warehouse.code,
                                                                      staff_actor(current_user))),
                            _("Handheld %(name)s was registered.", name=form.name.data)):
        return _warehouse_page(warehouse, device_form=form, status=422)
    return _warehouse_page(warehouse, new_token=made[0][1])
