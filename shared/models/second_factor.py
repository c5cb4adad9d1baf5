"""A staff user's second factor (TOTP), its recovery codes, and step-up grants bound to one browser session."""
from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.extensions import db
from shared.models.types import EncryptedText, UTCDateTime
from shared.timekeeping import utc_now


class SecondFactor(db.Model):
    """One TOTP factor per staff user (RFC 6238). The secret is encrypted with the data keys (rotated with them);
    `last_step` is the time step of the last accepted code, so no code is ever accepted twice."""

    __tablename__ = "second_factors"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"), unique=True)
    secret: Mapped[str] = mapped_column(EncryptedText, nullable=False)
    enrolled_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    confirmed_at = mapped_column(UTCDateTime)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until = mapped_column(UTCDateTime)
    last_step = mapped_column(BigInteger)
    last_used_at = mapped_column(UTCDateTime)


class RecoveryCode(db.Model):
    """A single-use recovery code: only a keyed hash (HMAC-SHA256 with the blind-index key) is stored."""

    __tablename__ = "recovery_codes"
    __table_args__ = (Index("ix_recovery_codes_user_id_code_hash", "user_id", "code_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    code_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    used_at = mapped_column(UTCDateTime)


class StepUpGrant(db.Model):
    """A fresh second verification: valid for one sign-in session (a SHA-256 of its random id) until expires_at."""

    __tablename__ = "step_up_grants"
    __table_args__ = (Index("ix_step_up_grants_user_id_session_digest", "user_id", "session_digest"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    session_digest: Mapped[str] = mapped_column(String(64), nullable=False)
    method: Mapped[str] = mapped_column(String(16), nullable=False)
    granted_at = mapped_column(UTCDateTime, nullable=False)
    expires_at = mapped_column(UTCDateTime, nullable=False)
