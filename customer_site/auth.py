"""Customer sign-in and sign-out."""
from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import login_user, logout_user

from customer_site.access import GUEST_ORDERS_KEY, signed_in_customer
from customer_site.forms import SignInForm
from shared.actors import Actor
from shared.extensions import db
from shared.security import sessions
from shared.services.customers import authenticate as authenticate_customer
from shared.services.customers import end_sessions
from shared.services.sign_in import SignInRefused, limit_failed_sign_ins
from shared.web import client_ip

bp = Blueprint("auth", __name__)
KEPT_ACROSS_SIGN_IN = ("lang", GUEST_ORDERS_KEY)


def _safe_next(target: str | None) -> str:
    """Only same-site paths are followed after sign-in (no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target \
            and not urlsplit(target).netloc:
        return target
    return url_for("orders.index")


def _start_session(customer) -> None:
    """A fresh session (no fixation) that keeps the chosen language and the orders found as a guest."""
    kept = {key: session[key] for key in KEPT_ACROSS_SIGN_IN if key in session}
    session.clear()
    session.update(kept)
    login_user(customer)
    sessions.start(session, customer)


@bp.route("/sign-in", methods=["GET", "POST"])
@limit_failed_sign_ins("customer")
def sign_in():
    """Sign in; failed attempts per address are limited so nobody can guess passwords at speed."""
    if signed_in_customer() is not None:
        return redirect(url_for("orders.index"))
    form = SignInForm()
    error = None
    if form.validate_on_submit():
        try:
            customer = authenticate_customer(form.email.data, form.password.data, client_ip())
        except SignInRefused:
            db.session.commit()  # keep the failure count, the lock and the audit event
            # One answer for an unknown email, a wrong password and a locked account: it names no account.
            error = _("Wrong email or password, or the account is locked after repeated failures; "
                      "try again in a few minutes.")
        else:
            db.session.commit()
            _start_session(customer)
            return redirect(_safe_next(request.args.get("next")))
    status = 401 if error else 422 if form.errors else 200
    return render_template("customer/sign_in.html", form=form, error=error), status


@bp.post("/sign-out")
def sign_out():
    """Sign out: every session of this customer ends on the server too."""
    customer = signed_in_customer()
    if customer is not None:
        end_sessions(customer, Actor.for_customer(customer, ip=client_ip()))
        db.session.commit()
    logout_user()
    session.clear()
    flash(_("You are signed out."), "info")
    return redirect(url_for("index"))
