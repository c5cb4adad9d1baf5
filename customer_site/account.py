"""A signed-in customer's account (issue 13 item 6): profile (name, email, phone: encrypted, found by blind index),
password change (the current password first, the same strength rule, every other session ended) and the address
book (owner-scoped: another customer's address id is a 404). Invoice profiles live on their own pages."""
from flask import Blueprint, abort, flash, redirect, render_template, session, url_for
from flask_babel import gettext as _

from customer_site.access import customer_required, signed_in_customer
from customer_site.forms import ConfirmForm
from customer_site.self_service_forms import ADDRESS_FIELDS, AddressBookForm, PasswordForm, ProfileForm
from shared.actors import Actor
from shared.extensions import db
from shared.security import sessions
from shared.services import address_book, customers
from shared.services.errors import NotFound, ServiceError
from shared.web import client_ip

bp = Blueprint("account", __name__, url_prefix="/account")


def _actor() -> Actor:
    return Actor.for_customer(signed_in_customer(), ip=client_ip())


@bp.route("/", methods=["GET", "POST"])
@customer_required
def profile():
    customer = signed_in_customer()
    form = ProfileForm(data={"name": customer.name, "email": customer.email, "phone": customer.phone})
    if form.validate_on_submit():
        try:
            changed = customers.update_profile(customer, form.name.data, form.email.data, form.phone.data,
                                               _actor())
        except ServiceError as refused:
            db.session.rollback()
            form.refuse(refused)
        else:
            db.session.commit()
            flash(_("Your profile is saved.") if changed else _("Nothing changed."), "info")
            return redirect(url_for("account.profile"), 303)
    status = 422 if form.errors or form.form_errors else 200
    return render_template("customer/account.html", form=form, password_form=PasswordForm(formdata=None)), status


@bp.post("/password")
@customer_required
def change_password():
    customer = signed_in_customer()
    form = PasswordForm()
    if form.validate_on_submit():
        try:
            customers.change_password(customer, form.current_password.data, form.password.data, _actor())
        except ServiceError as refused:
            if refused.code == "wrong_password":
                db.session.commit()  # the refusal's audit event
            else:
                db.session.rollback()
            form.refuse(refused)
        else:
            db.session.commit()
            sessions.start(session, customer)  # this browser goes on; every other session has ended
            flash(_("Your password is changed; you were signed out everywhere else."), "info")
            return redirect(url_for("account.profile"), 303)
    profile_form = ProfileForm(formdata=None, data={"name": customer.name, "email": customer.email,
                                                    "phone": customer.phone})
    return render_template("customer/account.html", form=profile_form, password_form=form), 422


def _address_or_404(address_id: int):
    try:
        return address_book.address_for_customer(signed_in_customer().id, address_id)
    except NotFound:
        abort(404)


@bp.get("/addresses")
@customer_required
def addresses():
    rows = address_book.addresses_for_customer(signed_in_customer().id)
    return render_template("customer/addresses.html", addresses=rows, confirm=ConfirmForm())


def _save_address(form: AddressBookForm, action, title: str):
    if form.validate_on_submit():
        try:
            action({name: getattr(form, name).data for name in ADDRESS_FIELDS})
        except ServiceError as refused:
            db.session.rollback()
            form.refuse(refused)
        else:
            db.session.commit()
            flash(_("The address is saved."), "info")
            return redirect(url_for("account.addresses"), 303)
    status = 422 if form.errors or form.form_errors else 200
    return render_template("customer/address_form.html", form=form, title=title), status


@bp.route("/addresses/new", methods=["GET", "POST"])
@customer_required
def new_address():
    customer = signed_in_customer()
    form = AddressBookForm()
    return _save_address(form, lambda values: address_book.create_address(customer.id, values, _actor(),
                                                                          default=form.default.data),
                         _("New address"))


@bp.route("/addresses/<int:address_id>/edit", methods=["GET", "POST"])
@customer_required
def edit_address(address_id: int):
    row = _address_or_404(address_id)
    form = AddressBookForm(obj=row)

    def save(values):
        address_book.update_address(row, values, _actor())
        if form.default.data and not row.is_default:
            address_book.set_default(row, _actor())

    return _save_address(form, save, _("Edit address"))


@bp.post("/addresses/<int:address_id>/delete")
@customer_required
def delete_address(address_id: int):
    row = _address_or_404(address_id)
    if ConfirmForm().validate_on_submit():
        address_book.delete_address(row, _actor())
        db.session.commit()
        flash(_("The address is deleted."), "info")
    return redirect(url_for("account.addresses"), 303)


@bp.post("/addresses/<int:address_id>/default")
@customer_required
def default_address(address_id: int):
    row = _address_or_404(address_id)
    if ConfirmForm().validate_on_submit():
        address_book.set_default(row, _actor())
        db.session.commit()
        flash(_("This is now your default address."), "info")
    return redirect(url_for("account.addresses"), 303)
