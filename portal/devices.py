"""Handheld devices: the list with each token's state, registering one (the token is shown once), revoking."""
from flask import Blueprint, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import IntegerField, SelectField, StringField
from wtforms.validators import DataRequired, Length, NumberRange

from portal.access import requires
from portal.forms import ConfirmForm
from portal.outcomes import commit_or_refuse
from shared.extensions import db
from shared.models import Device, Warehouse
from shared.services import devices
from shared.services.errors import ServiceError
from shared.timekeeping import utc_now
from shared.web import staff_actor

bp = Blueprint("devices", __name__, url_prefix="/devices")


class DeviceForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=60)])
    warehouse = SelectField(_l("Warehouse"), validators=[DataRequired()])
    days = IntegerField(_l("Token lifetime (days)"), default=90, validators=[NumberRange(1, devices.MAX_DAYS)])


def _form(form=None) -> DeviceForm:
    form = form or DeviceForm()
    form.warehouse.choices = [(w.code, f"{w.code} · {w.name}") for w in
                              db.session.execute(select(Warehouse).order_by(Warehouse.code)).scalars()]
    return form


def _page(form=None, token=None, status=200):
    now = utc_now()
    rows = [(device, devices.state(device, now)) for device in devices.list_devices()]
    return render_template("portal/devices.html", rows=rows, form=_form(form), confirm_form=ConfirmForm(),
                           token=token), status


@bp.get("/")
@requires("fulfilment", "view")
def index():
    return _page()


@bp.post("/")
@requires("fulfilment", "edit")
def register():
    form = _form(DeviceForm())
    if form.validate_on_submit():
        try:
            device, token = devices.register_device(form.name.data, form.warehouse.data, staff_actor(current_user),
                                                    days=form.days.data)
            db.session.commit()
        except ServiceError as refused:
            db.session.rollback()
            form.form_errors.append(refused.message)
        else:
            # The token is shown on this answer only; it is never stored in clear and cannot be shown again.
            return _page(token=(device.name, token), status=201)
    return _page(form, status=422)


@bp.post("/<int:device_id>/revoke")
@requires("fulfilment", "edit")
def revoke(device_id: int):
    device = db.get_or_404(Device, device_id)
    if ConfirmForm().validate_on_submit():
        commit_or_refuse(lambda: devices.revoke_device(device, staff_actor(current_user)),
                         _("Device %(name)s revoked: its token no longer works.", name=device.name))
    return redirect(url_for("devices.index"), 303)
