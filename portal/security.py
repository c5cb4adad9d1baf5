"""My security: one's own password and second factor (enrol with a QR code, status, new recovery codes) and the
step-up page.

Every staff role reaches these pages: they are declared with `dashboard:view`, the permission every role holds,
because looking after one's own sign-in is not a power over anything else.
"""
from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import Markup

from portal.access import requires
from portal.auth import SECOND_FACTOR, complete_sign_in, safe_next
from portal.forms import ConfirmForm, PasswordChangeForm, SecondFactorForm
from shared import timekeeping
from shared.extensions import db
from shared.security import sessions
from shared.services import second_factor, staff
from shared.services.errors import ServiceError
from shared.services.sign_in import REFUSED_STATUS, limit_failed_sign_ins
from shared.web import staff_actor

bp = Blueprint("security", __name__, url_prefix="/security")

# What a refused code reads in the viewer's language, by the refusal's code.
REFUSALS = {
    "invalid_code": _l("The code is wrong or has expired."),
    "code_reused": _l("This code has already been used; wait for the next one."),
    "recovery_code_used": _l("This recovery code has already been used."),
    "factor_locked": _l("Too many wrong codes: the second factor is locked for 15 minutes. Try again later."),
    "no_second_factor": _l("No second factor is set up for this account."),
    "already_enrolled": _l("A second factor is already set up; another administrator must reset it first."),
    "not_enrolling": _l("Start setting up the second factor first."),
    "step_up_required": _l("Confirm with your second factor first."),
    "own_second_factor": _l("Nobody resets their own second factor: ask another administrator."),
}


def refusal_text(refused: ServiceError) -> str:
    return str(REFUSALS.get(refused.code, refused.message))


def _page(form=None, error=None, status=200):
    user = current_user
    factor = second_factor.factor_for(user)
    enrolment = None
    if factor is not None and not factor.confirmed:
        enrolment = second_factor.enrol(user, staff_actor(user))  # the secret being set up, shown again
    now = timekeeping.utc_now()
    return render_template(
        "portal/second_factor/security.html", factor=factor, enrolment=enrolment,
        qr=Markup(enrolment.qr_svg) if enrolment else None,  # noqa: S704  (qrcode's own SVG: one path, no text)
        required=second_factor.second_factor_required(user), form=form or SecondFactorForm(),
        confirm_form=ConfirmForm(), error=error, locked=bool(factor and factor.locked_until and
                                                            factor.locked_until > now),
        remaining=second_factor.remaining_recovery_codes(user) if factor is not None else 0,
        fresh_until=second_factor.fresh_until(user, sessions.session_id(session), now)), status


@bp.get("/")
@requires("dashboard", "view")
def index():
    return _page()


@bp.post("/enrol")
@requires("dashboard", "view")
def start_enrolment():
    """Start setting up a second factor: a new secret, shown as a QR code on the page."""
    if ConfirmForm().validate_on_submit():
        try:
            second_factor.enrol(current_user, staff_actor(current_user))
            db.session.commit()
        except ServiceError as refused:
            db.session.rollback()
            flash(refusal_text(refused), "error")
    return redirect(url_for("security.index"), 303)


@bp.post("/enrol/confirm")
@requires("dashboard", "view")
def confirm_enrolment():
    form = SecondFactorForm()
    if not form.validate_on_submit():
        return _page(form, status=422)
    try:
        codes = second_factor.confirm_enrolment(current_user, form.code.data, staff_actor(current_user))
    except second_factor.CodeRefused as refused:
        db.session.commit()  # the failure count and the audit event stay
        return _page(form, refusal_text(refused), 422)
    except ServiceError as refused:
        db.session.rollback()
        return _page(form, refusal_text(refused), refused.status)
    db.session.commit()
    return render_template("portal/second_factor/recovery_codes.html", codes=codes,
                           continue_to=url_for("security.index"))


@bp.post("/recovery-codes")
@requires("dashboard", "view", step_up=True)
def regenerate_recovery_codes():
    """Ten new recovery codes (the old ones stop working), shown once: a sensitive operation."""
    if not ConfirmForm().validate_on_submit():
        return redirect(url_for("security.index"), 303)
    try:
        codes = second_factor.regenerate_recovery_codes(current_user, staff_actor(current_user))
    except ServiceError as refused:
        db.session.rollback()
        flash(refusal_text(refused), "error")
        return redirect(url_for("security.index"), 303)
    db.session.commit()
    return render_template("portal/second_factor/recovery_codes.html", codes=codes,
                           continue_to=url_for("security.index"))


@bp.route("/step-up", methods=["GET", "POST"])
@requires("dashboard", "view")
def step_up():
    """Confirm a sensitive operation: a code gives this browser session 5 minutes, then back where the user was."""
    back = request.args.get("next")
    if not second_factor.has_factor(current_user):
        flash(_("Set up a second factor first: sensitive operations need one."), "info")
        return redirect(url_for("security.index"), 303)
    form = SecondFactorForm()
    error = None
    if form.validate_on_submit():
        try:
            second_factor.step_up(current_user, sessions.session_id(session), form.code.data,
                                  staff_actor(current_user))
        except second_factor.CodeRefused as refused:
            db.session.commit()  # the failure count, the lock and the audit event stay
            error = refusal_text(refused)
        else:
            db.session.commit()
            flash(_("Confirmed: sensitive operations are open to this session for 5 minutes."), "success")
            return redirect(safe_next(back), 303)
    status = 422 if error or request.method == "POST" else 200
    return render_template("portal/second_factor/step_up.html", form=form, error=error, back=back), status


@bp.route("/password", methods=["GET", "POST"])
@requires("dashboard", "view")
@limit_failed_sign_ins("staff")  # a wrong current password counts like a failed sign-in: no guessing at speed
def password():
    """Change one's own password (the current one proves it is the owner at the keyboard). After an administrator's
    reset this is the only page the portal opens until it is done. Every other session of the user ends; this one
    starts again, signed in the same way it was."""
    form = PasswordChangeForm()
    error, status = None, 200
    if form.validate_on_submit():
        user = current_user._get_current_object()
        try:
            staff.change_own_password(user, form.current_password.data, form.new_password.data, staff_actor(user))
        except ServiceError as refused:
            db.session.rollback()
            error = refused.message
            status = REFUSED_STATUS if refused.code == "wrong_password" else 422
        else:
            method = session.get(SECOND_FACTOR) or "not_required"
            db.session.commit()
            complete_sign_in(user, method)
            flash(_("Your password was changed; your other sessions have ended."), "success")
            return redirect(url_for("security.index"), 303)
    elif request.method == "POST":
        status = 422
    return render_template("portal/password.html", form=form, error=error,
                           forced=bool(current_user.must_change_password)), status
