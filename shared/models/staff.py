"""Staff users of the portal, their role and team, the roles themselves (as data), and API tokens."""
from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy import false as sa_false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.extensions import db
from shared.models.types import UTCDateTime
from shared.timekeeping import utc_now


class StaffLogin:
    """Flask-Login's protocol for a staff user (the ORM row, or the API's TokenUser): needs `id` and `active`."""

    is_authenticated = True
    is_anonymous = False

    @property
    def is_active(self) -> bool:
        return self.active

    def get_id(self) -> str:
        return f"staff:{self.id}"


class StaffUser(StaffLogin, db.Model):
    # Not a column: set by a service that held a change for approval instead of making it (approvals.gate).
    approval_request = None
    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    # NFKC + casefold of the username: "Victim" and "ｖｉｃｔｉｍ" are one account (shared.security.accounts).
    username_key: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(32), ForeignKey("staff_roles.code"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"), index=True)
    locale: Mapped[str] = mapped_column(String(8), default="zh_CN")
    timezone: Mapped[str] = mapped_column(String(40), default="Asia/Shanghai")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until = mapped_column(UTCDateTime)
    last_login_at = mapped_column(UTCDateTime)
    # Raised to end every session of the user at once (sign-out, password or role change, "sign out everywhere").
    session_generation: Mapped[int] = mapped_column(Integer, default=0)
    # Set when an administrator resets the password: the portal opens only the password change until it is done.
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)

    team = relationship("Team", foreign_keys=[team_id])


class StaffRole(db.Model):
    """A role as data: the six built-in ones are seeded; admins make more (客服组长, 仓储经理, ...)."""

    __tablename__ = "staff_roles"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(60))
    name_en: Mapped[str] = mapped_column(String(60))
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    # Sign-in asks this role's users for their second factor (admin, auditor and finance from the start).
    second_factor: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)


class RoleGrant(db.Model):
    """One cell of the permission table: this role may take this action on this resource."""

    __tablename__ = "role_grants"

    role_code: Mapped[str] = mapped_column(String(32), ForeignKey("staff_roles.code", ondelete="CASCADE"),
                                           primary_key=True)
    resource: Mapped[str] = mapped_column(String(32), primary_key=True)
    action: Mapped[str] = mapped_column(String(16), primary_key=True)


class RoleFieldVisibility(db.Model):
    """What a role sees of one personal field (full, masked, hidden); a field without a row is hidden."""

    __tablename__ = "role_field_visibility"

    role_code: Mapped[str] = mapped_column(String(32), ForeignKey("staff_roles.code", ondelete="CASCADE"),
                                           primary_key=True)
    field: Mapped[str] = mapped_column(String(32), primary_key=True)
    visibility: Mapped[str] = mapped_column(String(8))


class PermissionRevision(db.Model):
    """One row whose token changes with every change to the roles: each process reloads its copy of the table
    when the token it last read differs (shared.security.role_table)."""

    __tablename__ = "permission_revision"

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(32))
    changed_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)


class Team(db.Model):
    """A team of staff with its lead; a team may sit under a parent team, whose lead is the next superior."""

    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name_zh: Mapped[str] = mapped_column(String(60))
    name_en: Mapped[str] = mapped_column(String(60))
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", use_alter=True, name="fk_teams_lead"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"))
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)

    lead = relationship("StaffUser", foreign_keys=[lead_id])


class ApiToken(db.Model):
    """Bearer tokens: only a SHA-256 of the token is stored; the token itself is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    expires_at = mapped_column(UTCDateTime, nullable=False)
    revoked_at = mapped_column(UTCDateTime)
    last_used_at = mapped_column(UTCDateTime)

    user = relationship("StaffUser")
