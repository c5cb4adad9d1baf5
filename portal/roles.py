"""Roles and teams: the permission matrix as data (shown to whoever may view it, edited by admins), and the teams
whose leads are each member's superior."""
from flask import Blueprint, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from portal.access import requires
from portal.forms import ConfirmForm, RoleCreateForm, RolePermissionsForm, TeamForm
from portal.outcomes import commit_or_refuse, flash_form_errors
from shared.extensions import db
from shared.labels import role_name
from shared.models import StaffRole, StaffUser, Team
from shared.security import role_table
from shared.security.permissions import PERSONAL_FIELDS, RESOURCES, Action, Visibility, can
from shared.services import roles
from shared.web import staff_actor

bp = Blueprint("roles", __name__, url_prefix="/roles")


def _user_choices():
    users = db.session.query(StaffUser).filter(StaffUser.active.is_(True)).order_by(StaffUser.username).all()
    return [("", "—")] + [(str(u.id), f"{u.display_name} ({u.username})") for u in users]


def _team_form(team=None, prefix=""):
    teams = roles.all_teams()
    form = TeamForm(prefix=prefix, obj=team) if team is not None else TeamForm(prefix=prefix)
    form.lead.choices = _user_choices()
    form.parent.choices = [("", "—")] + [(str(t.id), t.name_zh if t.name_zh else t.code) for t in teams
                                         if team is None or t.id != team.id]
    if team is not None and request.method == "GET":
        form.lead.data = str(team.lead_id or "")
        form.parent.data = str(team.parent_id or "")
    return form


@bp.get("/")
@requires("roles", "view")
def index():
    table = role_table.current()
    role_forms = {code: RolePermissionsForm(prefix=f"r-{code}", name_zh=info.name_zh, name_en=info.name_en,
                                            second_factor=info.second_factor)
                  for code, info in table.roles.items()}
    create_form = RoleCreateForm()
    create_form.like.choices = [("", "—")] + [(code, role_name(code)) for code in table.roles]
    teams = roles.all_teams()
    return render_template("portal/roles.html", table=table, resources=RESOURCES, actions=list(Action),
                           fields=PERSONAL_FIELDS, visibilities=list(Visibility), role_forms=role_forms,
                           create_form=create_form, team_forms={t.id: _team_form(t, f"t{t.id}") for t in teams},
                           new_team_form=_team_form(), teams=teams, members={t.id: roles.team_members(t) for t in teams},
                           holders={code: len(roles.users_with_role(code)) for code in table.roles},
                           editable=can(current_user.role, "roles", "edit"), confirm_form=ConfirmForm())


@bp.post("/")
@requires("roles", "edit")
def create():
    form = RoleCreateForm()
    if form.validate_on_submit():
        commit_or_refuse(lambda: roles.create_role(form.code.data, form.name_zh.data, form.name_en.data,
                                                   staff_actor(current_user), second_factor=form.second_factor.data,
                                                   like=form.like.data or None),
                         _("Role %(code)s created.", code=form.code.data))
    else:
        flash_form_errors(form)
    return redirect(url_for("roles.index"), 303)


@bp.post("/<code>")
@requires("roles", "edit")
def update(code: str):
    role = db.get_or_404(StaffRole, code)
    form = RolePermissionsForm(prefix=f"r-{code}")
    if form.validate_on_submit():
        fields = {field: request.form[f"r-{code}-field-{field}"] for field in PERSONAL_FIELDS
                  if f"r-{code}-field-{field}" in request.form}

        def save():
            actor = staff_actor(current_user)
            roles.update_role(role, actor, name_zh=form.name_zh.data, name_en=form.name_en.data,
                              second_factor=form.second_factor.data)
            roles.set_permissions(role, actor, grants=request.form.getlist(f"r-{code}-grant"), fields=fields)

        commit_or_refuse(save, _("Role %(code)s saved.", code=code))
    else:
        flash_form_errors(form)
    return redirect(url_for("roles.index", _anchor=f"role-{code}"), 303)


@bp.post("/<code>/delete")
@requires("roles", "edit")
def delete(code: str):
    role = db.get_or_404(StaffRole, code)
    if ConfirmForm().validate_on_submit():
        commit_or_refuse(lambda: roles.delete_role(role, staff_actor(current_user)),
                         _("Role %(code)s deleted.", code=code))
    return redirect(url_for("roles.index"), 303)


def _chosen_user(value):
    return db.session.get(StaffUser, int(value)) if value and str(value).isdigit() else None


@bp.post("/teams")
@requires("roles", "edit")
def create_team():
    form = _team_form()
    if form.validate_on_submit():
        parent = roles.get_team(form.parent.data) if form.parent.data else None
        commit_or_refuse(lambda: roles.create_team(form.code.data, form.name_zh.data, form.name_en.data,
                                                   staff_actor(current_user), lead=_chosen_user(form.lead.data),
                                                   parent=parent),
                         _("Team %(code)s created.", code=form.code.data))
    else:
        flash_form_errors(form)
    return redirect(url_for("roles.index", _anchor="teams"), 303)


@bp.post("/teams/<int:team_id>")
@requires("roles", "edit")
def update_team(team_id: int):
    team = db.get_or_404(Team, team_id)
    form = _team_form(team, f"t{team.id}")
    if form.validate_on_submit():
        lead, parent = _chosen_user(form.lead.data), roles.get_team(form.parent.data) if form.parent.data else None
        commit_or_refuse(lambda: roles.update_team(team, staff_actor(current_user), name_zh=form.name_zh.data,
                                                   name_en=form.name_en.data, lead=lead, clear_lead=lead is None,
                                                   parent=parent, clear_parent=parent is None),
                         _("Team %(code)s saved.", code=team.code))
    else:
        flash_form_errors(form)
    return redirect(url_for("roles.index", _anchor="teams"), 303)
