"""Staff sign-in and sign-out."""
from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user

from portal.forms import SignInForm
from shared.extensions import db
from shared.security import sessions
from shared.services import staff
from shared.services.sign_in import SignInRefused, limit_failed_sign_ins
from shared.web import client_ip, staff_actor

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    """Only same-site paths are followed after sign-in (no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("dashboard.index")


@bp.route("/sign-in", methods=["GET", "POST"])
@limit_failed_sign_ins("staff")
def sign_in():
    """Sign in; failed attempts per address are limited so nobody can guess passwords at speed."""
    form = SignInForm()
    error = None
    if form.validate_on_submit():
        try:
            user = staff.authenticate(form.username.data, form.password.data, client_ip())
        except SignInRefused:
            db.session.commit()  # keep the failure count and the audit event
            # One answer for an unknown user, a wrong password and a locked account: it names no account.
            error = _("Wrong username or password, or the account is locked after repeated failures; "
                      "try again later.")
        else:
            db.session.commit()
            session.clear()
            login_user(user)
            sessions.start(session, user)
            session["lang"] = user.locale
            return redirect(_safe_next(request.args.get("next")))
    status = 401 if error else 200
    return render_template("portal/sign_in.html", form=form, error=error), status


@bp.post("/sign-out")
def sign_out():
    """Sign out: every session of this user ends on the server too, so a copied cookie is worth nothing."""
    if current_user.is_authenticated and hasattr(current_user, "role"):
        staff.end_sessions(current_user, staff_actor(current_user), reason="sign_out")
        db.session.commit()
    logout_user()
    session.clear()
    flash(_("You are signed out."), "info")
    return redirect(url_for("auth.sign_in"))
