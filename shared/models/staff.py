"""Staff users of the portal, their role, and API tokens."""
from sqlalchemy import Boolean, ForeignKey, Integer, String
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
    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    # NFKC + casefold of the username: "Victim" and "ｖｉｃｔｉｍ" are one account (shared.security.accounts).
    username_key: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(32))
    locale: Mapped[str] = mapped_column(String(8), default="zh_CN")
    timezone: Mapped[str] = mapped_column(String(40), default="Asia/Shanghai")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until = mapped_column(UTCDateTime)
    last_login_at = mapped_column(UTCDateTime)
    # Raised to end every session of the user at once (sign-out, password or role change, "sign out everywhere").
    session_generation: Mapped[int] = mapped_column(Integer, default=0)
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)



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
