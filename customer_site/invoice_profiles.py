"""A signed-in customer's invoice profiles (发票抬头): list, add, edit, delete, make default. Owner-scoped: another
customer's profile id is a 404 (customer_site.access.profile_for_customer_or_404)."""
from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _

from customer_site.access import customer_required, profile_for_customer_or_404, signed_in_customer
from customer_site.forms import ConfirmForm, InvoiceProfileForm
from shared.actors import Actor
from shared.extensions import db
from shared.labels import INVOICE_PROFILE_KIND, translated
from shared.services import invoice_profiles
from shared.services.errors import ValidationFailed
from shared.web import client_ip

bp = Blueprint("invoice_profiles", __name__, url_prefix="/invoice-profiles")


def _actor() -> Actor:
    return Actor.for_customer(signed_in_customer(), ip=client_ip())


@bp.get("/")
@customer_required
def index():
    rows = invoice_profiles.profiles_for_customer(signed_in_customer().id)
    return render_template("customer/invoice_profiles.html", profiles=rows, kinds=translated(INVOICE_PROFILE_KIND),
                           confirm=ConfirmForm(), special=invoice_profiles.may_request_special)


def _save(form: InvoiceProfileForm, action, title: str, done: str):
    """Validate, call the service, commit; a refusal re-renders the form with the message next to its field."""
    if form.validate_on_submit():
        try:
            action(form.values())
        except ValidationFailed as refused:
            db.session.rollback()
            form.refuse(refused)
        else:
            db.session.commit()
            flash(done, "info")
            return redirect(url_for("invoice_profiles.index"), 303)
    status = 422 if form.errors or form.form_errors else 200
    return render_template("customer/invoice_profile_form.html", form=form, title=title), status


@bp.route("/new", methods=["GET", "POST"])
@customer_required
def create():
    customer = signed_in_customer()
    return _save(InvoiceProfileForm(), lambda values: invoice_profiles.create_profile(customer.id, values, _actor()),
                 _("New invoice profile"), _("The invoice profile is saved."))


@bp.route("/<int:profile_id>/edit", methods=["GET", "POST"])
@customer_required
def edit(profile_id: int):
    profile = profile_for_customer_or_404(signed_in_customer(), profile_id)
    form = InvoiceProfileForm(obj=profile)
    return _save(form, lambda values: invoice_profiles.update_profile(profile, values, _actor()),
                 _("Edit invoice profile"), _("The invoice profile is saved."))


@bp.post("/<int:profile_id>/delete")
@customer_required
def delete(profile_id: int):
    profile = profile_for_customer_or_404(signed_in_customer(), profile_id)
    if ConfirmForm().validate_on_submit():
        invoice_profiles.delete_profile(profile, _actor())
        db.session.commit()
        flash(_("The invoice profile is deleted."), "info")
    return redirect(url_for("invoice_profiles.index"), 303)


@bp.post("/<int:profile_id>/default")
@customer_required
def make_default(profile_id: int):
    profile = profile_for_customer_or_404(signed_in_customer(), profile_id)
    if ConfirmForm().validate_on_submit():
        invoice_profiles.set_default(profile, _actor())
        db.session.commit()
        flash(_("This is now your default invoice profile."), "info")
    return redirect(url_for("invoice_profiles.index"), 303)
