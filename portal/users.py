"""Users: accounts, their role, team, language and lock state (the roles themselves: portal.roles)."""
from flask import Blueprint, flash, make_response, redirect, render_template, session, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from portal.access import requires
from portal.forms import ConfirmForm, UserCreateForm, UserEditForm
from portal.outcomes import commit_or_refuse, flash_form_errors
from shared.extensions import db
from shared.models import SecondFactor, StaffUser
from shared.security import sessions
from shared.services import roles, second_factor, staff
from shared.services.errors import ServiceError
from shared.web import staff_actor

bp = Blueprint("users", __name__, url_prefix="/users")


def _page(create_form=None, status=200):
    users = db.session.execute(select(StaffUser).order_by(StaffUser.username)).scalars().all()
    forms, teams = {}, _team_choices()
    for user in users:
        form = UserEditForm(prefix=f"u{user.id}", role=user.role, active=user.active, locale=user.locale,
                            team=str(user.team_id or ""))
        form.team.choices = teams
        forms[user.id] = form
    factors = {f.user_id: f for f in db.session.execute(select(SecondFactor)).scalars()}
    return render_template("portal/users.html", users=users, edit_forms=forms, factors=factors,
                           live_tokens=staff.live_token_counts(),
                           create_form=create_form or UserCreateForm(), confirm_form=ConfirmForm()), status


def _team_choices():
    return [("", "—")] + [(str(team.id), f"{team.name_zh} / {team.name_en}") for team in roles.all_teams()]


@bp.get("/")
@requires("users", "view")
def index():
    return _page()


@bp.post("/")
@requires("users", "edit", step_up=True)  # a new account comes with a role: a role change
def create():
    form = UserCreateForm()
    if form.validate_on_submit():
        try:
            staff.create_user(form.username.data, form.password.data, form.role.data, staff_actor(current_user),
                              display_name=form.display_name.data, locale=form.locale.data)
            db.session.commit()
            flash(_("User %(name)s created.", name=form.username.data), "success")
            return redirect(url_for("users.index"), 303)
        except ServiceError as refused:
            db.session.rollback()
            form.form_errors.append(refused.message)
    return _page(form, 422)


@bp.post("/<int:user_id>")
@requires("users", "edit", step_up=True)  # role edits
def update(user_id: int):
    user = db.get_or_404(StaffUser, user_id)
    form = UserEditForm(prefix=f"u{user.id}")
    if form.validate_on_submit():
        def save():
            actor = staff_actor(current_user)
            saved = staff.update_user(user, actor, role=form.role.data, active=form.active.data,
                                      locale=form.locale.data)
            team = roles.get_team(form.team.data) if form.team.data else None
            roles.assign_team(user, team, actor)
            return saved

        commit_or_refuse(save, _("User %(name)s saved.", name=user.username))
    else:
        flash_form_errors(form)
    return redirect(url_for("users.index"), 303)


@bp.post("/<int:user_id>/unlock")
@requires("users", "edit")
def unlock(user_id: int):
    user = db.get_or_404(StaffUser, user_id)
    if ConfirmForm().validate_on_submit():
        commit_or_refuse(lambda: staff.unlock_user(user, staff_actor(current_user)),
                         _("User %(name)s unlocked.", name=user.username))
    return redirect(url_for("users.index"), 303)


@bp.post("/<int:user_id>/revoke-tokens")
@requires("users", "edit")
def revoke_tokens(user_id: int):
    user = db.get_or_404(StaffUser, user_id)
    if ConfirmForm().validate_on_submit():
        count = staff.revoke_tokens(user, staff_actor(current_user))
        db.session.commit()
        flash(_("%(count)s API tokens revoked.", count=count), "success")  # the count is known only after the call
    return redirect(url_for("users.index"), 303)


@bp.post("/<int:user_id>/reset-password")
@requires("users", "edit", step_up=True)  # it hands an account over: a sensitive operation
def reset_password(user_id: int):
    """A temporary password for someone else's account, shown once on this page (never through a redirect, so it
    is in no cookie or log), with a change forced at their next sign-in."""
    user = db.get_or_404(StaffUser, user_id)
    if not ConfirmForm().validate_on_submit():
        return redirect(url_for("users.index"), 303)
    try:
        temporary = staff.reset_password(user, staff_actor(current_user))
    except ServiceError as refused:
        db.session.rollback()
        flash(_("Not reset: %(message)s", message=refused.message), "error")
        return redirect(url_for("users.index"), 303)
    db.session.commit()
    response = make_response(render_template("portal/password_reset.html", user=user, temporary=temporary))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/<int:user_id>/sign-out-everywhere")
@requires("users", "edit")
def end_sessions(user_id: int):
    """End every session of the user at once, wherever they are signed in (a lost laptop, a leaver)."""
    user = db.get_or_404(StaffUser, user_id)
    if ConfirmForm().validate_on_submit():
        commit_or_refuse(lambda: staff.end_sessions(user, staff_actor(current_user)),
                         _("Every session of %(name)s has ended.", name=user.username))
    return redirect(url_for("users.index"), 303)


@bp.post("/<int:user_id>/second-factor/reset")
@requires("users", "edit", step_up=True)
def reset_second_factor(user_id: int):
    """Another administrator resets a user's second factor (a lost phone): they set it up again at sign-in.
    Never one's own; the service checks that and the resetting admin's fresh step-up again."""
    from portal.security import refusal_text

    user = db.get_or_404(StaffUser, user_id)
    if ConfirmForm().validate_on_submit():
        try:
            second_factor.reset_factor(user, staff_actor(current_user), sessions.session_id(session))
        except ServiceError as refused:
            db.session.commit()  # the refusal's audit event; the service wrote nothing else
            flash(_("Not reset: %(message)s", message=refusal_text(refused)), "error")
        else:
            db.session.commit()
            flash(_("The second factor of %(name)s was reset; they set up a new one at their next sign-in.",
                    name=user.username), "success")
    return redirect(url_for("users.index"), 303)
