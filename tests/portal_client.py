"""Signing in to the portal through its real form, CSRF token included, and through the second factor for the
roles that need it (the test enrols the user in the test database and types the current code, as a phone would)."""
import re
from datetime import timedelta

import pyotp
from sqlalchemy import select

from shared import timekeeping
from shared.extensions import db
from shared.models import SecondFactor
from shared.services import second_factor, staff
from tests.factories import ADMIN, PASSWORD

TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')
SECOND_STEP = ("/sign-in/code", "/sign-in/enrol")


def english_client(app):
    """A test client whose browser asks for English (the default for anonymous visitors is Chinese)."""
    client = app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


def csrf_token(client, path: str = "/sign-in") -> str:
    page = client.get(path)
    match = TOKEN.search(page.text)
    assert match, f"no CSRF token on {path}"
    return match.group(1) or match.group(2)


def _factor(user) -> SecondFactor | None:
    """The user's factor as the database has it now (requests write it through their own sessions)."""
    return db.session.execute(select(SecondFactor).where(SecondFactor.user_id == user.id)
                              .execution_options(populate_existing=True)).scalar_one_or_none()


def ensure_enrolled(user) -> SecondFactor:
    """Give the user a confirmed factor, confirmed ten minutes ago (so every code of the present is unused)."""
    factor = _factor(user)
    if factor is None or not factor.confirmed:
        earlier = timekeeping.utc_now() - timedelta(minutes=10)
        enrolment = second_factor.enrol(user, ADMIN, now=earlier)
        second_factor.confirm_enrolment(user, pyotp.TOTP(enrolment.secret).at(earlier), ADMIN, now=earlier)
        db.session.commit()
        factor = _factor(user)
    return factor


def current_code(user) -> str:
    """A code the server accepts now: this time step's or the next one's when not used yet (a code is never
    accepted twice), else a recovery code from a fresh set."""
    factor = ensure_enrolled(user)
    totp = pyotp.TOTP(factor.secret)
    now_step = totp.timecode(timekeeping.utc_now())
    for step in (now_step, now_step + 1):
        if factor.last_step is None or step > factor.last_step:
            return totp.generate_otp(step)
    codes = second_factor.regenerate_recovery_codes(user, ADMIN)
    db.session.commit()
    return codes[0]


def sign_in(client, username: str, password: str = PASSWORD):
    """Sign in with the password and, when the portal asks for it, the second factor; returns the last answer."""
    response = client.post("/sign-in", data={"username": username, "password": password,
                                             "csrf_token": csrf_token(client)})
    if response.status_code == 302 and response.headers["Location"].endswith(SECOND_STEP):
        user = staff.get_user(username)
        ensure_enrolled(user)
        response = client.post("/sign-in/code", data={"code": current_code(user),
                                                      "csrf_token": csrf_token(client, "/sign-in/code")})
    return response


def step_up(client, username: str) -> None:
    """Confirm with the second factor in this client's session (enrolling the user first if need be)."""
    user = staff.get_user(username)
    response = client.post("/security/step-up", data={"code": current_code(user),
                                                      "csrf_token": csrf_token(client, "/security/step-up")})
    assert response.status_code == 303, (response.status_code, response.text[:300])



EXPORT_LINK = re.compile(r'/exports/(EX[0-9A-F]{16})/download')


def start_export(client, kind: str, format: str = "csv", personal: bool = False, **filters):
    """Post the My exports form (or the personal one) as the page's button would."""
    return client.post("/exports/personal" if personal else "/exports/",
                       data={"csrf_token": csrf_token(client, "/exports/"), "kind": kind, "format": format, **filters})


def exported_file(client, kind: str, format: str = "csv", personal: bool = False, **filters):
    """Start an export (jobs run inline in tests, so it is made within the request), then download it from the
    My exports page: (export id, download response)."""
    started = start_export(client, kind, format, personal, **filters)
    assert started.status_code == 303, started.text[:800]
    match = EXPORT_LINK.search(client.get("/exports/").text)
    assert match, "no download link on My exports"
    return match.group(1), client.get(f"/exports/{match.group(1)}/download")
