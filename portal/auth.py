"""Staff sign-in and sign-out, with the second factor for the roles that need it.

A sign-in is two steps for a user who must (shared.services.second_factor.second_factor_required) or does use a
second factor: the password only makes the session *pending* (a user id in the signed session, no Flask-Login
user, nothing of the portal reachable); the TOTP code (or a recovery code) turns it into a signed-in session. A
user who must have a factor and has none is sent to enrolment first and cannot use the portal until it is done.
"""
from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user
from markupsafe import Markup

from portal.forms import SecondFactorForm, SignInForm
from shared import timekeeping
from shared.extensions import db
from shared.models import StaffUser
from shared.security import sessions
from shared.services import second_factor, staff
from shared.services.sign_in import REFUSED_STATUS, SignInRefused, limit_failed_sign_ins
from shared.web import client_ip, staff_actor

bp = Blueprint("auth", __name__)
PENDING = "_pending_second_factor"  # {"user", "generation", "at", "next"}: password accepted, code not yet
PENDING_SECONDS = 10 * 60  # time to open the authenticator (or scan the QR code at enrolment)
SECOND_FACTOR = "_second_factor"  # how this sign-in was completed: "totp", "recovery" or "not_required"


def safe_next(target: str | None) -> str:
    """Only same-site paths are followed after sign-in (no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("dashboard.index")


def complete_sign_in(user: StaffUser, method: str) -> None:
    """Turn this browser's session into a signed-in one: a fresh session with a new random id."""
    session.clear()
    login_user(user)
    sessions.start(session, user)
    session[SECOND_FACTOR] = method
    session["lang"] = user.locale


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
            enrolled = second_factor.has_factor(user)
            needed = enrolled or second_factor.second_factor_required(user)
            db.session.commit()
            if needed:
                session.clear()
                session[PENDING] = {"user": user.id, "generation": user.session_generation or 0,
                                    "at": int(timekeeping.utc_now().timestamp()), "next": request.args.get("next")}
                session["lang"] = user.locale
                return redirect(url_for("auth.second_factor" if enrolled else "auth.enrol"))
            complete_sign_in(user, "not_required")
            return redirect(safe_next(request.args.get("next")))
    status = 401 if error else 200
    return render_template("portal/sign_in.html", form=form, error=error), status


def _pending():
    """The user whose password was just accepted in this browser, or None (none, too old, or ended since)."""
    state = session.get(PENDING)
    if not isinstance(state, dict) or not isinstance(state.get("user"), int) or not isinstance(state.get("at"), int):
        return None, None
    user = db.session.get(StaffUser, state["user"])
    if timekeeping.utc_now().timestamp() - state["at"] > PENDING_SECONDS or user is None or not user.active \
            or (user.session_generation or 0) != state.get("generation"):
        session.pop(PENDING, None)
        return None, None
    return user, state


def _start_again():
    flash(_("Sign in again: the sign-in was not finished in time."), "info")
    return redirect(url_for("auth.sign_in"))


@bp.route("/sign-in/code", methods=["GET", "POST"], endpoint="second_factor")
@limit_failed_sign_ins("staff")
def second_factor_step():
    """The second step: a current code from the authenticator, or one recovery code."""
    from portal.security import refusal_text

    user, state = _pending()
    if user is None:
        return _start_again()
    if not second_factor.has_factor(user):
        return redirect(url_for("auth.enrol"))
    form = SecondFactorForm()
    error = None
    if form.validate_on_submit():
        try:
            method = second_factor.verify(user, form.code.data, staff_actor(user), purpose="sign_in")
        except second_factor.CodeRefused as refused:
            db.session.commit()  # the failure count, the lock and the audit event stay
            error = refusal_text(refused)
        else:
            db.session.commit()
            complete_sign_in(user, method)
            return redirect(safe_next(state.get("next")))
    return render_template("portal/second_factor/code.html", form=form, error=error), \
        REFUSED_STATUS if error else 200


@bp.route("/sign-in/enrol", methods=["GET", "POST"], endpoint="enrol")
@limit_failed_sign_ins("staff")
def enrol_step():
    """A user who must have a second factor and has none sets it up before the portal opens."""
    from portal.security import refusal_text

    user, state = _pending()
    if user is None:
        return _start_again()
    if second_factor.has_factor(user):
        return redirect(url_for("auth.second_factor"))
    actor = staff_actor(user)
    enrolment = second_factor.enrol(user, actor)
    db.session.commit()
    form = SecondFactorForm()
    error = None
    if form.validate_on_submit():
        try:
            codes = second_factor.confirm_enrolment(user, form.code.data, actor)
        except second_factor.CodeRefused as refused:
            db.session.commit()
            error = refusal_text(refused)
        else:
            db.session.commit()
            complete_sign_in(user, "totp")
            return render_template("portal/second_factor/recovery_codes.html", codes=codes,
                                   continue_to=safe_next(state.get("next")))
    return render_template("portal/second_factor/enrol.html", form=form, error=error, enrolment=enrolment,
                           qr=Markup(enrolment.qr_svg),  # noqa: S704  (qrcode's own SVG: one path, no text)
                           action=url_for("auth.enrol"), during_sign_in=True), REFUSED_STATUS if error else 200


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
