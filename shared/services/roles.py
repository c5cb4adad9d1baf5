"""Roles and teams as data: the permission table's rows, who leads whom, and the guard that keeps an admin.

Every change here is audited, gives the permission table a new revision token (shared.security.role_table) and is
refused when it would leave no active user able to change roles and users (ADMIN_POWERS).
"""
import re
from contextlib import contextmanager

from sqlalchemy import delete, func, select

from shared.actors import Actor
from shared.extensions import db
from shared.models import RoleFieldVisibility, RoleGrant, StaffRole, StaffUser, Team
from shared.security import role_table
from shared.security.permissions import (ADMIN_POWERS, AUDIENCE_VISIBILITY, PERSONAL_FIELDS, RESOURCES, SYSTEM_ROLE,
                                         Action, Visibility)
from shared.services import audit
from shared.services import validation as check
from shared.services.errors import Conflict, NotFound, ValidationFailed
from shared.services.validation import N_, say

# What a person reads when this module refuses: message codes, said in the reader's language (say).
UNKNOWN_ROLE = N_("No role \"%(code)s\"")
UNKNOWN_TEAM = N_("No team \"%(team_id)s\"")

ROLE_CODE = re.compile(r"[a-z][a-z0-9_]{1,31}")
TEAM_CODE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
RESERVED = {SYSTEM_ROLE, *AUDIENCE_VISIBILITY}
MAX_SUPERIOR_LEVELS = 10  # a reporting line longer than this is a data error, not an organisation

LOCK_OUT = N_("this change would leave no active user who may change roles and users")
BAD_ROLE_CODE = N_("a role code is 2 to 32 lower-case letters, digits or _, starting with a letter")
ROLE_TAKEN = N_("the role %(code)s exists")
ROLE_IN_USE = N_("%(count)s users still have the role %(code)s: give them another role first")
BUILTIN_ROLE = N_("a built-in role cannot be deleted")
UNKNOWN_RESOURCE = N_("unknown resource or action: %(cell)s")
UNKNOWN_FIELD = N_("unknown personal field or visibility: %(cell)s")
TEAM_CYCLE = N_("a team cannot sit under itself or one of its own teams")
LEAD_INACTIVE = N_("the team lead must be an active user")
BAD_TEAM_CODE = N_("a team code is 1 to 32 lower-case letters, digits, - or _")
TEAM_TAKEN = N_("the team %(code)s exists")


# --- roles -------------------------------------------------------------------------------------------------------

def get_role(code: str) -> StaffRole:
    role = db.session.get(StaffRole, code or "")
    if role is None:
        raise NotFound(say(UNKNOWN_ROLE, code=code), field="role", code="unknown_role")
    return role


def _names(name_zh, name_en) -> tuple[str, str]:
    return check.text(name_zh, "name_zh", 60), check.text(name_en, "name_en", 60)


def create_role(code: str, name_zh: str, name_en: str, actor: Actor, second_factor: bool = False,
                like: str | None = None) -> StaffRole:
    """A new role, with no power, or with the grants and visibility of the role `like` (then edited)."""
    code = (code or "").strip()
    if not ROLE_CODE.fullmatch(code) or code in RESERVED:
        raise ValidationFailed(say(BAD_ROLE_CODE), field="code", code="invalid_role_code")
    if db.session.get(StaffRole, code) is not None:
        raise Conflict(say(ROLE_TAKEN, code=code), field="code", code="duplicate_role")
    zh, en = _names(name_zh, name_en)
    template = get_role(like) if like else None
    role = StaffRole(code=code, name_zh=zh, name_en=en, builtin=False, second_factor=bool(second_factor))
    db.session.add(role)
    db.session.flush()
    grants, fields = (_grants_of(template.code), _fields_of(template.code)) if template else (set(), {})
    _write(code, grants, fields)
    audit.record(actor, "role.create", "role", code, after={"name_zh": zh, "name_en": en, "like": like,
                                                          "second_factor": role.second_factor,
                                                          "grants": sorted(grants), "fields": fields})
    role_table.changed()
    return role


def update_role(role: StaffRole, actor: Actor, name_zh: str | None = None, name_en: str | None = None,
                second_factor: bool | None = None) -> StaffRole:
    before = {"name_zh": role.name_zh, "name_en": role.name_en, "second_factor": role.second_factor}
    if name_zh is not None or name_en is not None:
        role.name_zh, role.name_en = _names(name_zh if name_zh is not None else role.name_zh,
                                            name_en if name_en is not None else role.name_en)
    if second_factor is not None:
        role.second_factor = bool(second_factor)
    after = {"name_zh": role.name_zh, "name_en": role.name_en, "second_factor": role.second_factor}
    if after != before:
        db.session.flush()
        audit.record(actor, "role.update", "role", role.code, before=before, after=after)
        role_table.changed()
    return role


def _grants_of(code: str) -> set[str]:
    return {f"{resource}:{action}" for resource, action in db.session.execute(
        select(RoleGrant.resource, RoleGrant.action).where(RoleGrant.role_code == code))}


def _fields_of(code: str) -> dict[str, str]:
    return dict(db.session.execute(select(RoleFieldVisibility.field, RoleFieldVisibility.visibility)
                                   .where(RoleFieldVisibility.role_code == code)).all())


def _parse_grants(cells) -> set[str]:
    """`resource:action` cells (or (resource, action) pairs), each checked against the table's vocabulary."""
    parsed = set()
    for cell in cells:
        resource, _, action = cell.partition(":") if isinstance(cell, str) else (cell[0], ":", cell[1])
        if resource not in RESOURCES or action not in {a.value for a in Action}:
            raise ValidationFailed(say(UNKNOWN_RESOURCE, cell=str(cell)[:80]), field="grants",
                                   code="unknown_permission")
        parsed.add(f"{resource}:{action}")
    return parsed


def _parse_fields(fields: dict) -> dict[str, str]:
    parsed = {}
    for field, seen in fields.items():
        if field not in PERSONAL_FIELDS or seen not in {v.value for v in Visibility}:
            raise ValidationFailed(say(UNKNOWN_FIELD, cell=f"{field}={seen}"[:80]), field="fields",
                                   code="unknown_visibility")
        parsed[field] = str(seen)
    return parsed


def _write(code: str, grants: set[str], fields: dict[str, str]) -> None:
    db.session.execute(delete(RoleGrant).where(RoleGrant.role_code == code))
    db.session.execute(delete(RoleFieldVisibility).where(RoleFieldVisibility.role_code == code))
    if grants:
        db.session.execute(RoleGrant.__table__.insert(), [
            {"role_code": code, "resource": cell.partition(":")[0], "action": cell.partition(":")[2]}
            for cell in sorted(grants)])
    if fields:
        db.session.execute(RoleFieldVisibility.__table__.insert(), [
            {"role_code": code, "field": field, "visibility": seen} for field, seen in sorted(fields.items())])


def set_permissions(role: StaffRole, actor: Actor, grants=None, fields: dict | None = None) -> dict:
    """Replace a role's grants (`resource:action` cells) and/or field visibility; audited with before and after.

    Refused, changing nothing, when it names a resource, action, field or visibility the table does not have, or
    when it would leave no active user who may change roles and users."""
    before = {"grants": sorted(_grants_of(role.code)), "fields": _fields_of(role.code)}
    new_grants = _parse_grants(grants) if grants is not None else set(before["grants"])
    new_fields = {**before["fields"], **_parse_fields(fields)} if fields is not None else before["fields"]
    after = {"grants": sorted(new_grants), "fields": new_fields}
    if after == before:
        return after
    with keeping_admins():
        _write(role.code, new_grants, new_fields)
    role_table.changed()
    added, removed = sorted(new_grants - set(before["grants"])), sorted(set(before["grants"]) - new_grants)
    audit.record(actor, "role.permissions", "role", role.code, before=before, after={**after, "added": added,
                                                                                    "removed": removed})
    return after


def delete_role(role: StaffRole, actor: Actor) -> None:
    if role.builtin:
        raise Conflict(say(BUILTIN_ROLE), field="role", code="builtin_role")
    holders = db.session.execute(select(func.count()).select_from(StaffUser)
                                 .where(StaffUser.role == role.code)).scalar_one()
    if holders:
        raise Conflict(say(ROLE_IN_USE, count=holders, code=role.code), field="role", code="role_in_use")
    before = {"grants": sorted(_grants_of(role.code)), "fields": _fields_of(role.code), "name_en": role.name_en}
    _write(role.code, set(), {})
    db.session.delete(role)
    db.session.flush()
    audit.record(actor, "role.delete", "role", role.code, before=before)
    role_table.changed()


def admins_count() -> int:
    """Active users whose role may change roles and users (ADMIN_POWERS)."""
    power = select(RoleGrant.role_code).where(*[
        RoleGrant.role_code.in_(select(RoleGrant.role_code).where(RoleGrant.resource == resource,
                                                                  RoleGrant.action == action))
        for resource, action in ADMIN_POWERS])
    return db.session.execute(select(func.count()).select_from(StaffUser).where(
        StaffUser.active.is_(True), StaffUser.role.in_(power))).scalar_one()


@contextmanager
def keeping_admins():
    """Refuse a change (raise before the caller commits) that takes the last admin's power away; a database that
    had no admin yet (a fresh install, before `users create`) may be set up freely."""
    had = admins_count()
    yield
    db.session.flush()
    if had and not admins_count():
        raise Conflict(say(LOCK_OUT), field="role", code="would_lock_out_admins")


def users_with_role(code: str) -> list[StaffUser]:
    return list(db.session.execute(select(StaffUser).where(StaffUser.role == code, StaffUser.active.is_(True))
                                   .order_by(StaffUser.id)).scalars())


# --- teams -------------------------------------------------------------------------------------------------------

def get_team(team_id) -> Team:
    team = db.session.get(Team, team_id) if str(team_id or "").isdigit() else None
    if team is None:
        raise NotFound(say(UNKNOWN_TEAM, team_id=team_id), field="team", code="unknown_team")
    return team


def team_by_code(code: str) -> Team | None:
    return db.session.execute(select(Team).where(Team.code == code)).scalar_one_or_none()


def _lead(lead: StaffUser | None) -> StaffUser | None:
    if lead is not None and not lead.active:
        raise ValidationFailed(say(LEAD_INACTIVE), field="lead", code="inactive_lead")
    return lead


def _team_state(team: Team) -> dict:
    return {"code": team.code, "name_zh": team.name_zh, "name_en": team.name_en,
            "lead": team.lead.username if team.lead else None, "parent_id": team.parent_id}


def create_team(code: str, name_zh: str, name_en: str, actor: Actor, lead: StaffUser | None = None,
                parent: Team | None = None) -> Team:
    code = (code or "").strip().lower()
    if not TEAM_CODE.fullmatch(code):
        raise ValidationFailed(say(BAD_TEAM_CODE), field="code", code="invalid_team_code")
    if team_by_code(code) is not None:
        raise Conflict(say(TEAM_TAKEN, code=code), field="code", code="duplicate_team")
    zh, en = _names(name_zh, name_en)
    team = Team(code=code, name_zh=zh, name_en=en, lead=_lead(lead), parent_id=parent.id if parent else None)
    db.session.add(team)
    db.session.flush()
    if lead is not None and lead.team_id is None:
        lead.team_id = team.id  # a lead belongs to the team they lead unless they already sit elsewhere
    audit.record(actor, "team.create", "team", code, after=_team_state(team))
    return team


def update_team(team: Team, actor: Actor, name_zh: str | None = None, name_en: str | None = None,
                lead: StaffUser | None = None, clear_lead: bool = False, parent: Team | None = None,
                clear_parent: bool = False) -> Team:
    before = _team_state(team)
    if name_zh is not None or name_en is not None:
        team.name_zh, team.name_en = _names(name_zh or team.name_zh, name_en or team.name_en)
    if lead is not None or clear_lead:
        team.lead = None if clear_lead else _lead(lead)
    if parent is not None or clear_parent:
        if parent is not None and (parent.id == team.id or team.id in _ancestor_ids(parent)):
            raise ValidationFailed(say(TEAM_CYCLE), field="parent", code="team_cycle")
        team.parent_id = None if clear_parent else parent.id
    db.session.flush()
    after = _team_state(team)
    if after != before:
        audit.record(actor, "team.update", "team", team.code, before=before, after=after)
    return team


def _ancestor_ids(team: Team) -> list[int]:
    seen, current = [], team.parent_id
    while current is not None and current not in seen and len(seen) < MAX_SUPERIOR_LEVELS:
        seen.append(current)
        current = db.session.execute(select(Team.parent_id).where(Team.id == current)).scalar()
    return seen


def assign_team(user: StaffUser, team: Team | None, actor: Actor) -> StaffUser:
    before = user.team.code if user.team else None
    user.team_id = team.id if team else None
    db.session.flush()
    db.session.refresh(user, ["team"])
    if before != (team.code if team else None):
        audit.record(actor, "user.team", "staff_user", user.username, before={"team": before},
                     after={"team": team.code if team else None})
    return user


def superiors(user: StaffUser, levels: int = MAX_SUPERIOR_LEVELS) -> list[StaffUser]:
    """The user's reporting line, nearest first: their team's lead, then each parent team's lead, skipping the
    user themself and anyone already named (so a lead's superior is the lead of the team above)."""
    line: list[StaffUser] = []
    team_id, hops = user.team_id, 0
    while team_id is not None and len(line) < levels and hops < MAX_SUPERIOR_LEVELS:
        team = db.session.get(Team, team_id)
        if team is None:
            break
        lead = team.lead
        if lead is not None and lead.active and lead.id != user.id and all(lead.id != s.id for s in line):
            line.append(lead)
        team_id, hops = team.parent_id, hops + 1
    return line


def superior_of(user: StaffUser) -> StaffUser | None:
    line = superiors(user, levels=1)
    return line[0] if line else None


def team_members(team: Team) -> list[StaffUser]:
    return list(db.session.execute(select(StaffUser).where(StaffUser.team_id == team.id)
                                   .order_by(StaffUser.username)).scalars())


def all_teams() -> list[Team]:
    return list(db.session.execute(select(Team).order_by(Team.code)).scalars())
