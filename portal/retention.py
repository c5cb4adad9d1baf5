"""Retention: the period of each data class with its legal bounds (admins change it, within them, with a reason and
a fresh second verification), legal holds on orders and customers, and what the nightly runs did."""
from flask import Blueprint, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user

from portal.access import requires
from portal.forms import LegalHoldForm, ReleaseHoldForm, RetentionPeriodForm
from portal.outcomes import commit_or_refuse, flash_form_errors
from shared.security.permissions import can
from shared.services import retention
from shared.web import staff_actor

bp = Blueprint("retention", __name__, url_prefix="/retention")


@bp.get("/")
@requires("retention", "view")
def index():
    policies = retention.policies()
    return render_template("portal/retention.html", policies=policies,
                           period_forms={p["class"].code: RetentionPeriodForm(prefix=p["class"].code, days=p["days"])
                                         for p in policies},
                           hold_form=LegalHoldForm(), release_form=ReleaseHoldForm(),
                           holds=[(hold, retention.hold_label(hold)) for hold in retention.active_holds()],
                           runs=retention.last_runs(), editable=can(current_user.role, "retention", "edit"))


@bp.post("/periods/<code>")
@requires("retention", "edit", step_up=True)  # shortening a period deletes data: a fresh second verification
def set_period(code: str):
    retention.data_class(code)  # an unknown class is a 404 before the form is read
    form = RetentionPeriodForm(prefix=code)
    if form.validate_on_submit():
        commit_or_refuse(lambda: retention.set_period(code, form.days.data, staff_actor(current_user),
                                                      form.reason.data),
                         _("Retention period of %(label)s set to %(days)s days.", label=_(retention.CLASSES[code].label),
                           days=form.days.data))
    else:
        flash_form_errors(form)
    return redirect(url_for("retention.index"), 303)


@bp.post("/holds")
@requires("retention", "edit")
def place_hold():
    form = LegalHoldForm()
    if form.validate_on_submit():
        commit_or_refuse(lambda: retention.place_hold(form.entity_type.data, form.ref.data, form.reason.data,
                                                      staff_actor(current_user)),
                         _("Legal hold placed on %(ref)s: nothing of it is anonymised or purged until it is released.",
                           ref=form.ref.data))
    else:
        flash_form_errors(form)
    return redirect(url_for("retention.index"), 303)


@bp.post("/holds/<int:hold_id>/release")
@requires("retention", "edit", step_up=True)  # releasing lets the next nightly run purge
def release_hold(hold_id: int):
    form = ReleaseHoldForm()
    if form.validate_on_submit():
        commit_or_refuse(lambda: retention.release_hold(hold_id, form.reason.data, staff_actor(current_user)),
                         _("Legal hold released."))
    else:
        flash_form_errors(form)
    return redirect(url_for("retention.index"), 303)
