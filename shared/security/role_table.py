"""This process's copy of the permission table, read from the roles' rows and kept while the database's revision
token stays the same.

Every change to a role writes a new random token (shared.services.roles), in the same transaction. A request reads
the token once (the API's token check brings it in its own SELECT; anything else reads it on the first question)
and reloads the table only when the token differs from the copy's. A rolled-back change restores the old token,
whose copy no longer matches either, so nothing uncommitted outlives its transaction. Copies are kept per database
(the tests, the demo and a benchmark may run several in one process).
"""
import uuid
from dataclasses import dataclass

from flask import g, has_app_context
from sqlalchemy import select

from shared.extensions import db

_G_KEY = "_orderloom_permission_table"


@dataclass(frozen=True)
class RoleInfo:
    code: str
    name_zh: str
    name_en: str
    builtin: bool
    second_factor: bool


@dataclass(frozen=True)
class Table:
    token: str
    roles: dict[str, RoleInfo]
    grants: dict[str, dict[str, frozenset[str]]]  # role → resource → actions
    fields: dict[str, dict[str, str]]  # role → personal field → visibility


_copies: dict[str, Table] = {}
# Called with the new token whenever this process loads the table, so caches keyed by the same token (the approval
# rules, shared.services.approvals) are filled in the same place and cost no statement of their own later.
_on_load: list = []


def on_load(callback) -> None:
    if callback not in _on_load:
        _on_load.append(callback)


def _database_key() -> str:
    bind = db.session.get_bind()
    return str(getattr(bind, "engine", bind).url)


def _read_token() -> str:
    from shared.models import PermissionRevision

    return db.session.execute(select(PermissionRevision.token).where(PermissionRevision.id == 1)).scalar() or ""


def _load(token: str) -> Table:
    from shared.models import RoleFieldVisibility, RoleGrant, StaffRole
    from shared.security.permissions import Visibility

    roles = {row.code: RoleInfo(row.code, row.name_zh, row.name_en, row.builtin, row.second_factor)
             for row in db.session.execute(select(StaffRole)).scalars()}
    grants: dict[str, dict[str, set[str]]] = {code: {} for code in roles}
    for role, resource, action in db.session.execute(select(RoleGrant.role_code, RoleGrant.resource,
                                                            RoleGrant.action)):
        grants[role].setdefault(resource, set()).add(action)
    fields: dict[str, dict[str, str]] = {code: {} for code in roles}
    for role, field, seen in db.session.execute(select(RoleFieldVisibility.role_code, RoleFieldVisibility.field,
                                                       RoleFieldVisibility.visibility)):
        fields[role][field] = Visibility(seen)
    return Table(token, roles, {role: {r: frozenset(a) for r, a in by.items()} for role, by in grants.items()},
                 fields)


def use_token(token: str) -> Table:
    """The table as of `token` (read by the caller in its own statement): this process's copy when it matches."""
    key = _database_key()
    table = _copies.get(key)
    if table is None or table.token != token:
        table = _copies[key] = _load(token)
        for callback in _on_load:
            callback(key, token)
    if has_app_context():
        setattr(g, _G_KEY, table)
    return table


def current() -> Table:
    """The table for this request or job: read (token first) once per app context."""
    if has_app_context():
        table = getattr(g, _G_KEY, None)
        if table is not None:
            return table
    return use_token(_read_token())


def changed() -> str:
    """Give the table a new token (the caller changed a role, in its transaction) and drop this request's copy."""
    from shared.models import PermissionRevision
    from shared.timekeeping import utc_now

    token = uuid.uuid4().hex
    revision = db.session.get(PermissionRevision, 1)
    if revision is None:
        db.session.add(PermissionRevision(id=1, token=token, changed_at=utc_now()))
    else:
        revision.token, revision.changed_at = token, utc_now()
    db.session.flush()
    forget()
    return token


def forget() -> None:
    """Drop this app context's copy: the next question reads the token again (a job starting, a role changed)."""
    if has_app_context() and hasattr(g, _G_KEY):
        delattr(g, _G_KEY)
