"""Server-side checks on a signed-in browser session, the same for staff and customers.

The session cookie is signed but lives in the browser, so a copy of it would work for as long as the cookie
does. Three checks on every request take that away (ASVS 3.3):

- generation: the account carries `session_generation`; a session remembers the value it started with.
  Signing out, a password change, a role change, deactivation and an admin's "sign out everywhere" raise it,
  and every session started before is refused from then on, wherever its cookie is.
- idle timeout: a session unused for SESSION_IDLE_MINUTES (30) ends.
- absolute timeout: a session older than SESSION_ABSOLUTE_HOURS (12) ends, however busy.

Each sign-in also gets a random session id (`session_id`): step-up grants (shared/services/second_factor.py) are
bound to it, so a verification in one browser never unlocks another.
"""
import secrets
from datetime import timedelta

from flask import current_app

from shared.timekeeping import utc_now

GENERATION, STARTED, SEEN, SESSION_ID = "_generation", "_started", "_seen", "_sid"
SEEN_RESOLUTION = 30  # seconds: refresh the idle clock at most this often (each refresh rewrites the cookie)


def _now() -> int:
    return int(utc_now().timestamp())


def start(session, account) -> None:
    """Mark a freshly cleared session as belonging to this sign-in of `account`."""
    now = _now()
    session[GENERATION] = account.session_generation or 0
    session[STARTED] = session[SEEN] = now
    session[SESSION_ID] = secrets.token_urlsafe(24)


def session_id(session) -> str | None:
    """This sign-in's random id (None before sign-in)."""
    value = session.get(SESSION_ID)
    return value if isinstance(value, str) and value else None


def still_valid(session, account) -> bool:
    """Whether this session may go on; refreshes its idle clock when it may."""
    config = current_app.config
    now = _now()
    started, seen = session.get(STARTED), session.get(SEEN)
    if session.get(GENERATION) != (account.session_generation or 0) or not isinstance(started, int) \
            or not isinstance(seen, int):
        return False
    if now - started > timedelta(hours=config.get("SESSION_ABSOLUTE_HOURS", 12)).total_seconds():
        return False
    if now - seen > timedelta(minutes=config.get("SESSION_IDLE_MINUTES", 30)).total_seconds():
        return False
    if now - seen >= SEEN_RESOLUTION:
        session[SEEN] = now
    return True


def end_all(account) -> None:
    """End every session of the account (the caller audits why)."""
    account.session_generation = (account.session_generation or 0) + 1
