"""Staff-kept invoice profiles of B2B customers (finance): found through one of the customer's orders, since
staff know buyers by their orders. Created here, a profile is marked created_by "staff"."""
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from portal.access import requires
from portal.forms import StaffInvoiceProfileForm
from portal.outcomes import commit_or_refuse, flash_form_errors
from shared.labels import INVOICE_PROFILE_KIND, translated
from shared.extensions import db
from shared.services import audit, invoice_profiles, orders
from shared.services.errors import ServiceError
from shared.web import staff_actor

bp = Blueprint("finance_profiles", __name__, url_prefix="/finance/profiles")


def _order_or_404(order_no: str):
    try:
        return orders.get_order(order_no)
    except ServiceError:
        abort(404)


def _page(order, form=None, status: int = 200):
    rows, actor, logged = [], staff_actor(current_user), False
    for profile in invoice_profiles.profiles_for_customer(order.customer_id):
        row, shown = invoice_profiles.shown_to(profile, current_user.role)
        rows.append(row)
        if shown:  # every view of a personal value in full is access-logged
            audit.log_access(actor, "view", "invoice_profile", profile.id, shown, channel="portal")
            logged = True
    if logged:
        db.session.commit()
    return render_template("portal/finance_profiles.html", order=order, profiles=rows,
                           form=form or StaffInvoiceProfileForm(), kinds=translated(INVOICE_PROFILE_KIND)), status


@bp.get("/")
@requires("invoices", "view")
def index():
    """Find a customer by one of their order numbers."""
    order_no = (request.args.get("order_no") or "").strip()
    if order_no:
        return redirect(url_for("finance_profiles.customer", order_no=_order_or_404(order_no).order_no))
    return render_template("portal/finance_profiles.html", order=None, profiles=[], form=None, kinds={})


@bp.get("/<order_no>")
@requires("invoices", "view")
def customer(order_no: str):
    return _page(_order_or_404(order_no))


@bp.post("/<order_no>")
@requires("invoices", "edit")
def create(order_no: str):
    order, form = _order_or_404(order_no), StaffInvoiceProfileForm()
    if not form.validate_on_submit():
        flash_form_errors(form)
        return _page(order, form, 422)
    actor = staff_actor(current_user)
    if commit_or_refuse(lambda: invoice_profiles.create_profile(order.customer_id, form.values(), actor,
                                                                created_by="staff"), _("Saved."), form=form):
        return redirect(url_for("finance_profiles.customer", order_no=order.order_no), 303)
    return _page(order, form, 422)


def _profile_or_404(order, profile_id: int):
    try:
        return invoice_profiles.profile_for_customer(order.customer_id, profile_id)
    except ServiceError:
        abort(404)


@bp.post("/<order_no>/<int:profile_id>/delete")
@requires("invoices", "edit")
def delete(order_no: str, profile_id: int):
    order = _order_or_404(order_no)
    profile = _profile_or_404(order, profile_id)
    commit_or_refuse(lambda: invoice_profiles.delete_profile(profile, staff_actor(current_user)), _("Deleted."))
    return redirect(url_for("finance_profiles.customer", order_no=order.order_no), 303)


@bp.post("/<order_no>/<int:profile_id>/default")
@requires("invoices", "edit")
def make_default(order_no: str, profile_id: int):
    order = _order_or_404(order_no)
    profile = _profile_or_404(order, profile_id)
    commit_or_refuse(lambda: invoice_profiles.set_default(profile, staff_actor(current_user)), _("Saved."))
    return redirect(url_for("finance_profiles.customer", order_no=order.order_no), 303)
