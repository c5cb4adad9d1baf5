"""Second verification (issue 11 item 4): TOTP at sign-in and step-up for sensitive operations, and its bad input,
on SQLite and PostgreSQL. Time is passed in (`now=`) or moved with `shared.timekeeping.utc_now`."""
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, unquote, urlsplit

import pyotp
import pytest
from sqlalchemy import func, select, text

from shared import timekeeping
from shared.actors import Actor
from shared.extensions import db
from shared.models import AccessLogEntry, AuditEvent, ExportRequest, Order, RecoveryCode, StaffUser, StepUpGrant
from shared.security import crypto
from shared.services import second_factor as sf
from shared.services import staff
from tests.factories import ADMIN, PASSWORD
from tests.portal_client import csrf_token, current_code, english_client, sign_in, step_up

# 10:00:05 UTC on a fixed day: the middle of no particular step, far from any boundary that matters below.
T0 = datetime(2026, 12, 2, 10, 0, 5, tzinfo=UTC)


def actor_for(user) -> Actor:
    return Actor.for_staff(user, ip="127.0.0.1")


@pytest.fixture
def enrolled(create_user):
    """A user with a confirmed factor (confirmed at T0 - 10 min); returns (user, secret, recovery codes)."""
    def make(username="alice", role="admin"):
        user = create_user(username, role)
        earlier = T0 - timedelta(minutes=10)
        enrolment = sf.enrol(user, actor_for(user), now=earlier)
        codes = sf.confirm_enrolment(user, pyotp.TOTP(enrolment.secret).at(earlier), actor_for(user), now=earlier)
        db.session.commit()
        return user, enrolment.secret, codes
    return make


def events(username: str, action: str) -> list[AuditEvent]:
    db.session.expire_all()
    return db.session.execute(select(AuditEvent).where(AuditEvent.entity_id == username,
                                                       AuditEvent.action == action)).scalars().all()


def refused_reasons(username: str) -> list[str]:
    return [e.after["reason"] for e in events(username, "second_factor.refused")]


def code_at(secret: str, moment: datetime) -> str:
    return pyotp.TOTP(secret).at(moment)


# --- enrolment -------------------------------------------------------------------------------------------------

def test_the_enrolment_uri_follows_the_key_uri_format_and_the_secret_is_encrypted(create_user):
    user = create_user("bob.li", "finance")
    enrolment = sf.enrol(user, actor_for(user), now=T0)
    db.session.commit()
    # Key URI format: otpauth://TYPE/LABEL?PARAMETERS, label "issuer:account", secret base32, issuer repeated.
    parts = urlsplit(enrolment.uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert unquote(parts.path) == "/Orderloom:bob.li"
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    assert query == {"secret": enrolment.secret, "issuer": "Orderloom", "algorithm": "SHA1", "digits": "6",
                     "period": "30"}
    assert len(enrolment.secret) == 32 and set(enrolment.secret) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    parsed = pyotp.parse_uri(enrolment.uri)  # an authenticator reads back the same factor
    assert (parsed.secret, parsed.digits, parsed.interval, parsed.issuer) == (enrolment.secret, 6, 30, "Orderloom")
    stored = db.session.execute(text("SELECT secret FROM second_factors")).scalar_one()
    assert enrolment.secret not in stored and crypto.decrypt(stored) == enrolment.secret
    assert sf.has_factor(user) is False  # not confirmed yet
    assert [e.action for e in db.session.execute(select(AuditEvent).where(
        AuditEvent.entity_id == "bob.li", AuditEvent.action.startswith("second_factor"))).scalars()] == \
        ["second_factor.enrolment_started"]


def test_the_qr_code_is_inline_svg_of_geometry_only(create_user):
    user = create_user("qr.user", "admin")
    svg = sf.enrol(user, actor_for(user), now=T0).qr_svg
    root = ET.fromstring(svg)
    tags = {element.tag.split("}")[-1] for element in root.iter()}
    assert tags == {"svg", "path"}  # no text, no script, no style element
    assert all(not (element.text or "").strip() for element in root.iter())
    assert "qr.user" not in svg and not any(name.startswith("on") or name == "style"
                                            for element in root.iter() for name in element.attrib)


def test_confirming_gives_ten_single_use_recovery_codes_stored_only_as_keyed_hashes(create_user):
    user = create_user("carol", "auditor")
    enrolment = sf.enrol(user, actor_for(user), now=T0)
    with pytest.raises(sf.CodeRefused) as wrong:
        sf.confirm_enrolment(user, "000000" if code_at(enrolment.secret, T0) != "000000" else "111111",
                             actor_for(user), now=T0)
    assert wrong.value.code == "invalid_code" and not sf.has_factor(user)
    codes = sf.confirm_enrolment(user, code_at(enrolment.secret, T0), actor_for(user), now=T0)
    db.session.commit()
    assert len(codes) == len(set(codes)) == 10 and all(len(code) == 11 and code[5] == "-" for code in codes)
    hashes = db.session.execute(select(RecoveryCode.code_hash).where(RecoveryCode.user_id == user.id)).scalars().all()
    assert len(hashes) == 10
    for code in codes:
        plain = code.replace("-", "")
        assert all(plain not in h and plain.lower() not in h and code not in h for h in hashes)
        assert crypto.blind_index("recovery_code", plain) in hashes
    assert sf.has_factor(user) and sf.remaining_recovery_codes(user) == 10
    with pytest.raises(sf.ServiceError) as again:
        sf.enrol(user, actor_for(user), now=T0)  # a confirmed factor is replaced only through a reset
    assert again.value.code == "already_enrolled"


# --- bad input: codes ------------------------------------------------------------------------------------------

def test_a_code_is_never_accepted_twice(enrolled):
    user, secret, _codes = enrolled()
    code = code_at(secret, T0)
    assert sf.verify(user, code, actor_for(user), now=T0) == "totp"
    with pytest.raises(sf.CodeRefused) as reused:
        sf.verify(user, code, actor_for(user), now=T0 + timedelta(seconds=5))  # the same step again
    assert reused.value.code == "code_reused"
    # An older code that is still inside the window is refused too: steps only move forward.
    later = T0 + timedelta(seconds=30)
    assert sf.verify(user, code_at(secret, later), actor_for(user), now=later) == "totp"
    with pytest.raises(sf.CodeRefused) as older:
        sf.verify(user, code, actor_for(user), now=later)
    assert older.value.code == "code_reused"
    db.session.commit()
    assert refused_reasons("alice") == ["code_reused", "code_reused"]
    assert [e.after["method"] for e in events("alice", "second_factor.verified")] == ["totp", "totp"]


def test_a_code_older_than_the_window_is_refused(enrolled):
    user, secret, _codes = enrolled()
    with pytest.raises(sf.CodeRefused) as expired:
        sf.verify(user, code_at(secret, T0 - timedelta(seconds=60)), actor_for(user), now=T0)  # two steps back
    assert expired.value.code == "invalid_code"
    with pytest.raises(sf.CodeRefused):
        sf.verify(user, code_at(secret, T0 + timedelta(seconds=60)), actor_for(user), now=T0)  # two steps ahead
    # One step either side is the window (valid_window=1): the previous step's code still passes.
    assert sf.verify(user, code_at(secret, T0 - timedelta(seconds=30)), actor_for(user), now=T0) == "totp"
    db.session.commit()
    assert refused_reasons("alice") == ["invalid_code", "invalid_code"]


def test_a_recovery_code_works_once(enrolled):
    user, _secret, codes = enrolled()
    assert sf.verify(user, codes[3].lower(), actor_for(user), now=T0) == "recovery"  # typed in lower case
    assert sf.remaining_recovery_codes(user) == 9
    with pytest.raises(sf.CodeRefused) as twice:
        sf.verify(user, codes[3], actor_for(user), now=T0 + timedelta(minutes=1))
    assert twice.value.code == "recovery_code_used"
    with pytest.raises(sf.CodeRefused) as unknown:
        sf.verify(user, "ABCDE-FGHJK", actor_for(user), now=T0)
    assert unknown.value.code == "invalid_code"
    db.session.commit()
    assert refused_reasons("alice") == ["recovery_code_used", "invalid_code"]
    assert sf.remaining_recovery_codes(user) == 9


def test_five_wrong_codes_lock_the_factor_for_15_minutes_then_it_opens_again(enrolled):
    user, secret, codes = enrolled()
    wrong = "000000" if code_at(secret, T0) != "000000" else "111111"
    for attempt in range(4):
        with pytest.raises(sf.CodeRefused):
            sf.verify(user, wrong, actor_for(user), now=T0 + timedelta(seconds=attempt))
    assert sf.factor_for(user).locked_until is None and sf.factor_for(user).failed_attempts == 4
    with pytest.raises(sf.CodeRefused):
        sf.verify(user, "ZZZZZ-ZZZZZ", actor_for(user), now=T0 + timedelta(seconds=4))  # a wrong recovery code
    db.session.commit()
    factor = sf.factor_for(user)
    assert factor.locked_until == T0 + timedelta(seconds=4) + timedelta(minutes=15)
    assert len(events("alice", "second_factor.locked")) == 1
    # Locked: the right code and a right recovery code are refused alike, and the recovery code is not used up.
    during = T0 + timedelta(minutes=14, seconds=30)
    for right in (code_at(secret, during), codes[0]):
        with pytest.raises(sf.CodeRefused) as locked:
            sf.verify(user, right, actor_for(user), now=during)
        assert locked.value.code == "factor_locked"
    assert sf.remaining_recovery_codes(user) == 10
    after = T0 + timedelta(minutes=15, seconds=5)
    assert sf.verify(user, code_at(secret, after), actor_for(user), now=after) == "totp"
    db.session.commit()
    assert refused_reasons("alice") == ["invalid_code"] * 5 + ["factor_locked"] * 2


# --- step-up grants --------------------------------------------------------------------------------------------

def test_a_step_up_grant_serves_only_its_own_session_and_only_for_5_minutes(enrolled):
    user, secret, _codes = enrolled()
    grant = sf.step_up(user, "session-a", code_at(secret, T0), actor_for(user), now=T0)
    db.session.commit()
    assert grant.expires_at == T0 + timedelta(minutes=5)
    sf.assert_fresh(user, "session-a", T0 + timedelta(minutes=4, seconds=59))
    for session_id, moment in (("session-b", T0 + timedelta(minutes=1)), (None, T0),
                               ("session-a", T0 + timedelta(minutes=5))):
        with pytest.raises(sf.StepUpRequired) as refused:
            sf.assert_fresh(user, session_id, moment)
        assert refused.value.code == "step_up_required" and refused.value.status == 403
    assert db.session.execute(select(StepUpGrant.session_digest)).scalar_one() == sf.session_digest("session-a")
    assert len(events("alice", "step_up.granted")) == 1


def test_nobody_resets_their_own_factor(enrolled):
    admin, secret, _codes = enrolled("root1")
    sf.step_up(admin, "sid-1", code_at(secret, T0), actor_for(admin), now=T0)  # even with a fresh step-up
    with pytest.raises(sf.ServiceError) as refused:
        sf.reset_factor(admin, actor_for(admin), "sid-1", now=T0)
    assert refused.value.code == "own_second_factor" and refused.value.status == 403
    db.session.commit()
    assert sf.has_factor(admin) and sf.remaining_recovery_codes(admin) == 10
    assert [e.after["reason"] for e in events("root1", "second_factor.reset_refused")] == ["own_second_factor"]


def test_a_reset_by_another_admin_needs_their_own_fresh_step_up(enrolled):
    target, target_secret, _codes = enrolled("lost.phone", "finance")
    other, other_secret, _ = enrolled("root2")
    generation = target.session_generation
    with pytest.raises(sf.StepUpRequired):
        sf.reset_factor(target, actor_for(other), "sid-2", now=T0)
    sf.step_up(target, "sid-2", code_at(target_secret, T0), actor_for(target), now=T0)  # the target's, not theirs
    with pytest.raises(sf.StepUpRequired):
        sf.reset_factor(target, actor_for(other), "sid-2", now=T0)
    db.session.commit()
    assert sf.has_factor(target)
    sf.step_up(other, "sid-2", code_at(other_secret, T0), actor_for(other), now=T0)
    with pytest.raises(sf.StepUpRequired):  # the other admin's grant, from another session
        sf.reset_factor(target, actor_for(other), "sid-3", now=T0)
    sf.reset_factor(target, actor_for(other), "sid-2", now=T0 + timedelta(minutes=1))
    db.session.commit()
    db.session.refresh(target)
    assert sf.factor_for(target) is None and sf.remaining_recovery_codes(target) == 0
    assert db.session.scalar(select(func.count()).select_from(StepUpGrant).where(StepUpGrant.user_id == target.id)) == 0
    assert target.session_generation == generation + 1  # signed out everywhere: enrols again at sign-in
    assert [e.after["reason"] for e in events("lost.phone", "second_factor.reset_refused")] == \
        ["step_up_required"] * 3
    reset = events("lost.phone", "second_factor.reset")
    assert len(reset) == 1 and reset[0].actor_label == "root2" and reset[0].before["confirmed"] is True


def test_who_must_use_the_second_factor_is_one_policy(create_user, monkeypatch):
    from shared.services import roles

    roles.create_role("fin_director", "财务总监", "Finance director", ADMIN, second_factor=True, like="finance")
    roles.create_role("buyer", "采购", "Buyer", ADMIN, like="warehouse")
    db.session.commit()
    users = {role: create_user(f"p_{role}", role) for role in
             ("admin", "auditor", "finance", "ops_manager", "customer_service", "warehouse", "fin_director", "buyer")}
    # The seeded roles, a role made with the flag, and customer service: the seeded transfer rule names that role
    # on one of its steps, so the approvals engine's hook says its users are approvers.
    assert {role for role, user in users.items() if sf.second_factor_required(user)} == \
        {"admin", "auditor", "finance", "fin_director", "customer_service"}
    # Whoever a hook names is asked, and only through the hooks (here one hook alone).
    monkeypatch.setattr(sf, "APPROVER_CHECKS", [lambda user: user.username == "p_ops_manager"])
    assert {role for role, user in users.items() if sf.second_factor_required(user)} == \
        {"admin", "auditor", "finance", "fin_director", "ops_manager"}


def test_key_rotation_re_encrypts_the_totp_secrets(enrolled, apps):
    from shared.services import keys

    user, secret, _codes = enrolled()
    old_key = apps.core.config["DATA_KEYS"][0]
    new_key = crypto.new_key()
    before = db.session.execute(text("SELECT secret FROM second_factors")).scalar_one()
    crypto.configure([new_key, old_key], apps.core.config["BLIND_INDEX_KEY"])
    try:
        keys.rotate_all(ADMIN)
        db.session.commit()
        after = db.session.execute(text("SELECT secret FROM second_factors")).scalar_one()
        assert after != before and crypto.decrypt(after) == secret
        crypto.configure([new_key], apps.core.config["BLIND_INDEX_KEY"])  # the old key can go
        db.session.expire_all()
        assert sf.verify(user, code_at(secret, T0), actor_for(user), now=T0) == "totp"
    finally:
        crypto.configure(apps.core.config["DATA_KEYS"], apps.core.config["BLIND_INDEX_KEY"])


# --- sign-in over HTTP -----------------------------------------------------------------------------------------

def password_only(client, username: str):
    return client.post("/sign-in", data={"username": username, "password": PASSWORD, "csrf_token": csrf_token(client)})


def is_signed_out(client) -> bool:
    response = client.get("/orders/")
    return response.status_code == 302 and "/sign-in" in response.headers["Location"]


def test_an_admin_without_the_code_never_gets_a_usable_session(portal, enrolled):
    user, secret, _codes = enrolled("gatekeeper")
    client = english_client(portal)
    answer = password_only(client, "gatekeeper")
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/sign-in/code")
    assert is_signed_out(client)  # the password alone opens nothing
    for path in ("/", "/users/", "/security/", "/security/step-up", "/exports/", "/audit/access-log"):
        assert client.get(path).status_code == 302, path
    assert client.post("/users/", data={"username": "intruder", "role": "admin", "password": "x" * 16,
                                        "csrf_token": csrf_token(client, "/sign-in/code")}).status_code == 302
    wrong = client.post("/sign-in/code", data={"code": "ABCDE-FGHJK",
                                               "csrf_token": csrf_token(client, "/sign-in/code")})
    assert wrong.status_code == 401 and "The code is wrong or has expired." in wrong.text
    assert is_signed_out(client)
    assert db.session.scalar(select(func.count()).select_from(StaffUser).where(StaffUser.username == "intruder")) == 0
    # A session cookie cooked by hand as "signed in" but without the second step is refused by the user loader.
    forged = english_client(portal)
    sign_in(forged, "gatekeeper")
    with forged.session_transaction() as state:
        state.pop("_second_factor")
    assert is_signed_out(forged)
    # The right code completes it.
    done = client.post("/sign-in/code", data={"code": current_code(user),
                                              "csrf_token": csrf_token(client, "/sign-in/code")})
    assert done.status_code == 302 and client.get("/orders/").status_code == 200
    assert refused_reasons("gatekeeper") == ["invalid_code"]


def test_the_password_step_expires_after_10_minutes(portal, enrolled, monkeypatch):
    user, _secret, _codes = enrolled("slowpoke")
    client = english_client(portal)
    password_only(client, "slowpoke")
    start = timekeeping.utc_now()
    monkeypatch.setattr(timekeeping, "utc_now", lambda: start + timedelta(minutes=10, seconds=5))
    late = client.post("/sign-in/code", data={"code": current_code(user), "csrf_token": csrf_token(client)})
    assert late.status_code == 302 and late.headers["Location"].endswith("/sign-in")
    assert is_signed_out(client)


def test_a_role_that_needs_the_factor_enrols_before_the_portal_opens(portal, create_user):
    user = create_user("newfinance", "finance")
    client = english_client(portal)
    answer = password_only(client, "newfinance")
    assert answer.headers["Location"].endswith("/sign-in/enrol")
    page = client.get("/sign-in/enrol")
    assert page.status_code == 200 and 'data-testid="qr-code"><svg' in page.text
    secret = sf.factor_for(user).secret
    assert f'data-testid="totp-secret">{secret}<' in page.text
    assert is_signed_out(client)  # nothing opens before the factor is confirmed
    token = csrf_token(client, "/sign-in/enrol")
    assert client.post("/sign-in/enrol", data={"code": "12345", "csrf_token": token}).status_code == 401
    assert is_signed_out(client)
    done = client.post("/sign-in/enrol", data={"code": pyotp.TOTP(secret).now(), "csrf_token": token})
    assert done.status_code == 200 and done.text.count("<li><code>") == 10
    assert client.get("/orders/").status_code == 200
    assert sf.has_factor(user)


def test_a_role_without_the_requirement_signs_in_with_the_password_alone(portal, create_user):
    create_user("plain.wh", "warehouse")  # no rule step names the warehouse role: not an approver
    client = english_client(portal)
    answer = password_only(client, "plain.wh")
    assert answer.status_code == 302 and not answer.headers["Location"].endswith(("/sign-in/code", "/sign-in/enrol"))
    assert client.get("/orders/").status_code == 200


def test_whoever_an_approval_step_can_name_enrols_at_sign_in_and_a_plain_user_does_not(portal, create_user):
    """The approvals engine's APPROVER_CHECKS hook: a step's role, a user named in a step, a team lead (team-lead
    and superior steps and escalations name leads), a delegate; anyone else signs in with the password alone."""
    from datetime import date

    from shared.services import approvals, roles

    roles.create_role("buyer", "采购", "Buyer", ADMIN, like="warehouse")  # no "second factor" flag on the role
    roles.create_role("planner", "计划", "Planner", ADMIN, like="warehouse")
    db.session.commit()
    people = {name: create_user(name, role) for name, role in (
        ("by.role", "buyer"), ("by.name", "warehouse"), ("a.lead", "warehouse"), ("a.delegate", "warehouse"),
        ("was.delegate", "warehouse"), ("away", "cs_lead"), ("plain", "warehouse"), ("other", "planner"))}
    assert not any(approvals.is_approver(people[n]) for n in ("by.role", "by.name", "a.lead", "plain", "other"))
    approvals.save_rule(ADMIN, code="buyer_transfers", operation="stock.transfer", name_zh="调拨", name_en="Transfers",
                        conditions={"warehouses": ["HZ9"]}, priority=50,
                        steps=[{"kind": "role", "target": "buyer"},
                               {"kind": "users", "target": str(people["by.name"].id), "stage": 2}])
    roles.create_team("buying", "采购组", "Buying", ADMIN, lead=people["a.lead"])
    today = approvals._today(timekeeping.utc_now())
    approvals.delegate(people["away"], people["a.delegate"], today, today + timedelta(days=3), ADMIN)
    approvals.delegate(people["away"], people["was.delegate"], date(2020, 1, 1), date(2020, 1, 5), ADMIN)
    db.session.commit()

    named = {name for name, user in people.items() if approvals.is_approver(user)}
    assert named == {"by.role", "by.name", "a.lead", "a.delegate", "away"}  # away: cs_lead is a seeded step role
    assert approvals.is_approver in sf.APPROVER_CHECKS  # registered by the approvals module itself
    for name in ("by.role", "by.name", "a.lead", "a.delegate"):
        answer = password_only(english_client(portal), name)
        assert answer.status_code == 302 and answer.headers["Location"].endswith("/sign-in/enrol"), name
    for name in ("plain", "was.delegate", "other"):  # an ended delegation names nobody any more
        client = english_client(portal)
        answer = password_only(client, name)
        assert answer.status_code == 302 and not answer.headers["Location"].endswith(
            ("/sign-in/code", "/sign-in/enrol")), name
        assert client.get("/orders/").status_code == 200, name
    # A rule switched off names nobody: its step role is plain again.
    approvals.save_rule(ADMIN, approvals.rule_by_code("buyer_transfers"), active=False)
    db.session.commit()
    assert not approvals.is_approver(people["by.role"]) and not approvals.is_approver(people["by.name"])


# --- sensitive routes ------------------------------------------------------------------------------------------

def test_a_sensitive_route_is_refused_without_a_step_up_and_allowed_with_it(portal, create_user):
    create_user("exporter", "ops_manager")  # may see personal data in full: may ask for a personal export
    client = english_client(portal)
    assert sign_in(client, "exporter").status_code == 302
    personal = lambda: db.session.scalar(select(func.count()).select_from(ExportRequest).where(  # noqa: E731
        ExportRequest.personal.is_(True)))
    form = {"kind": "orders", "format": "csv"}
    refused = client.post("/exports/personal", data={**form, "csrf_token": csrf_token(client, "/exports/")})
    assert refused.status_code == 303
    assert "/security/step-up" in refused.headers["Location"]
    htmx = client.post("/exports/personal", data={**form, "csrf_token": csrf_token(client, "/exports/")},
                       headers={"HX-Request": "true"})
    assert htmx.status_code == 403 and "/security/step-up" in htmx.headers["HX-Redirect"]
    assert personal() == 0 and len(events("exporter", "step_up.refused")) == 2
    step = client.post("/security/step-up?next=/exports/", data={
        "code": current_code(staff.get_user("exporter")), "csrf_token": csrf_token(client, "/security/step-up")})
    assert step.status_code == 303 and step.headers["Location"].endswith("/exports/")
    allowed = client.post("/exports/personal", data={**form, "csrf_token": csrf_token(client, "/exports/")})
    assert allowed.status_code == 303 and "/security/step-up" not in allowed.headers["Location"]
    assert personal() == 1


def test_a_grant_from_another_browser_session_is_refused(portal, enrolled, create_user):
    create_user("twobrowsers", "ops_manager")
    first, second = english_client(portal), english_client(portal)
    sign_in(first, "twobrowsers")
    sign_in(second, "twobrowsers")
    step_up(first, "twobrowsers")
    form = {"kind": "orders", "format": "csv"}
    done = first.post("/exports/personal", data={**form, "csrf_token": csrf_token(first, "/exports/")})
    assert done.status_code == 303 and "/security/step-up" not in done.headers["Location"]
    other = second.post("/exports/personal", data={**form, "csrf_token": csrf_token(second, "/exports/")})
    assert other.status_code == 303 and "/security/step-up" in other.headers["Location"]  # no grant there


def test_a_role_edit_posted_without_step_up_changes_nothing(portal, enrolled, create_user):
    enrolled("boss")
    target = create_user("clerk", "customer_service")
    client = english_client(portal)
    sign_in(client, "boss")
    form = {f"u{target.id}-role": "admin", f"u{target.id}-locale": "en", f"u{target.id}-active": "y",
            "csrf_token": csrf_token(client, "/users/")}
    refused = client.post(f"/users/{target.id}", data=form, headers={"Referer": "http://localhost/users/"})
    assert refused.status_code == 303 and refused.headers["Location"].endswith("/security/step-up?next=/users/")
    db.session.expire_all()
    assert db.session.get(StaffUser, target.id).role == "customer_service"
    step_up(client, "boss")
    assert client.post(f"/users/{target.id}", data=form).status_code == 303
    db.session.expire_all()
    assert db.session.get(StaffUser, target.id).role == "admin"


def test_voiding_a_paid_order_needs_a_step_up_in_the_portal(portal, enrolled, create_order):
    order = create_order()  # paid, confirmed
    enrolled("voider")
    client = english_client(portal)
    sign_in(client, "voider")
    detail = f"/orders/{order.order_no}"
    body = {"to": "cancelled", "reason": "buyer asked", "csrf_token": csrf_token(client, detail)}
    refused = client.post(f"{detail}/transitions", data=body, headers={"Referer": f"http://localhost{detail}"})
    assert refused.status_code == 303 and f"/security/step-up?next={detail}" in refused.headers["Location"]
    db.session.expire_all()
    assert db.session.get(Order, order.id).status == "confirmed"
    step_up(client, "voider")
    assert client.post(f"{detail}/transitions", data=body).status_code == 303
    db.session.expire_all()
    assert db.session.get(Order, order.id).status == "cancelled"


def test_an_unpaid_order_is_cancelled_without_a_step_up(portal, create_user, create_order):
    order = create_order(paid=False)
    create_user("cs.lead", "customer_service")
    client = english_client(portal)
    sign_in(client, "cs.lead")
    detail = f"/orders/{order.order_no}"
    client.post(f"{detail}/transitions", data={"to": "cancelled", "reason": "never paid",
                                               "csrf_token": csrf_token(client, detail)})
    db.session.expire_all()
    assert db.session.get(Order, order.id).status == "cancelled"


def test_the_api_takes_a_code_per_sensitive_call_and_never_the_same_twice(portal, enrolled, create_order):
    user, secret, _codes = enrolled("api.boss")
    token = staff.issue_token(user, ADMIN)
    db.session.commit()
    first, second = create_order(), create_order()
    client = portal.test_client()

    def cancel(order, code=None):
        headers = {"Authorization": f"Bearer {token}"} | ({"X-Orderloom-OTP": code} if code else {})
        return client.post(f"/api/v1/orders/{order.order_no}/transitions", headers=headers,
                           json={"to": "cancelled", "reason": "refunded by phone"})

    missing = cancel(first)
    assert missing.status_code == 403 and missing.get_json()["error"]["code"] == "step_up_required"
    assert "X-Orderloom-OTP" in missing.get_json()["error"]["message"]
    wrong = cancel(first, "ABCDEF")
    assert wrong.status_code == 403 and wrong.get_json()["error"]["code"] == "invalid_code"
    code = current_code(user)
    assert cancel(first, code).status_code == 200
    reused = cancel(second, code)
    assert reused.status_code == 403 and reused.get_json()["error"]["code"] == "code_reused"
    db.session.expire_all()
    assert (db.session.get(Order, first.id).status, db.session.get(Order, second.id).status) == \
        ("cancelled", "confirmed")
    assert refused_reasons("api.boss") == ["invalid_code", "code_reused"]


# --- pages: my security and the users page ---------------------------------------------------------------------

def test_my_security_enrols_with_a_qr_code_and_new_recovery_codes_need_a_step_up(portal, create_user):
    user = create_user("ops.keen", "ops_manager")
    client = english_client(portal)
    sign_in(client, "ops.keen")
    assert "Not set up." in client.get("/security/").text
    client.post("/security/enrol", data={"csrf_token": csrf_token(client, "/security/")})
    page = client.get("/security/")
    assert 'data-testid="qr-code"><svg' in page.text
    secret = sf.factor_for(user).secret
    confirmed = client.post("/security/enrol/confirm", data={"code": pyotp.TOTP(secret).now(),
                                                             "csrf_token": csrf_token(client, "/security/")})
    assert confirmed.status_code == 200 and confirmed.text.count("<li><code>") == 10
    old = db.session.execute(select(RecoveryCode.code_hash)).scalars().all()
    regenerate = {"csrf_token": csrf_token(client, "/security/")}
    assert client.post("/security/recovery-codes", data=regenerate).status_code == 303  # to the step-up page
    assert sorted(db.session.execute(select(RecoveryCode.code_hash)).scalars().all()) == sorted(old)
    step_up(client, "ops.keen")
    fresh = client.post("/security/recovery-codes", data=regenerate)
    assert fresh.status_code == 200 and fresh.text.count("<li><code>") == 10
    db.session.expire_all()
    assert set(db.session.execute(select(RecoveryCode.code_hash)).scalars().all()).isdisjoint(old)


def test_the_users_page_resets_another_users_factor_never_ones_own(portal, enrolled):
    enrolled("helpdesk")
    target, _secret, _codes = enrolled("dropped.phone", "finance")
    victim_browser = english_client(portal)
    sign_in(victim_browser, "dropped.phone")
    client = english_client(portal)
    sign_in(client, "helpdesk")
    page = client.get("/users/")
    assert 'data-testid="reset-factor-dropped.phone"' in page.text
    assert 'data-testid="reset-factor-helpdesk"' not in page.text
    token = csrf_token(client, "/users/")
    without = client.post(f"/users/{target.id}/second-factor/reset", data={"csrf_token": token})
    assert without.status_code == 303 and "/security/step-up" in without.headers["Location"]
    assert sf.has_factor(target)
    step_up(client, "helpdesk")
    own = db.session.execute(select(StaffUser).where(StaffUser.username == "helpdesk")).scalar_one()
    client.post(f"/users/{own.id}/second-factor/reset", data={"csrf_token": token})
    assert sf.has_factor(own)
    assert client.post(f"/users/{target.id}/second-factor/reset", data={"csrf_token": token}).status_code == 303
    db.session.expire_all()
    assert sf.factor_for(target) is None
    assert is_signed_out(victim_browser)  # signed out everywhere; the next sign-in enrols again
    assert password_only(english_client(portal), "dropped.phone").headers["Location"].endswith("/sign-in/enrol")
    assert [e.after["reason"] for e in events("helpdesk", "second_factor.reset_refused")] == ["own_second_factor"]


def test_every_step_up_route_refuses_an_admin_without_a_grant(portal, enrolled, create_order):
    """Each route declared step_up=True answers the step-up page to a signed-in admin without a fresh grant."""
    order = create_order()
    admin, _secret, _codes = enrolled("walker")
    client = english_client(portal)
    sign_in(client, "walker")
    token = csrf_token(client)
    adapter = portal.url_map.bind("localhost")
    sensitive = [rule for rule in portal.url_map.iter_rules()
                 if getattr(portal.view_functions[rule.endpoint], "step_up", False)]
    assert {rule.endpoint for rule in sensitive} >= {"users.create", "users.update", "users.reset_second_factor",
                                                     "exports.start_personal", "roles.update",
                                                     "security.regenerate_recovery_codes"}
    for rule in sensitive:
        method = "GET" if "GET" in rule.methods else "POST"
        url = adapter.build(rule.endpoint, {arg: admin.id for arg in rule.arguments}, method=method)
        answer = client.open(url, method=method, data={"csrf_token": token} if method == "POST" else None)
        assert answer.status_code == 303 and "/security/step-up" in answer.headers["Location"], rule.rule
    db.session.expire_all()
    assert db.session.get(Order, order.id).status == "confirmed" and sf.has_factor(admin)


# --- the published formats ---------------------------------------------------------------------------------------

def test_the_uri_we_show_gives_the_codes_of_rfc_6238_appendix_b():
    """What an authenticator app reads from our QR code yields RFC 6238's SHA1 codes (6 digits: the RFC's 8-digit
    values mod 10^6, as RFC 4226 truncation defines), and is shaped like Google's Key URI example."""
    import base64
    import json
    from pathlib import Path
    from urllib.parse import parse_qs, urlsplit

    published = json.loads((Path(__file__).parent / "fixtures/totp/rfc6238_appendix_b_sha1.json").read_text())
    secret = base64.b32encode(published["secret_ascii"].encode()).decode()
    ours = pyotp.parse_uri(sf.provisioning_uri("alice@example.com", secret))
    for vector in published["vectors"]:
        assert ours.timecode(datetime.fromtimestamp(vector["unix_time"], UTC)) == int(vector["t_hex"], 16)
        assert ours.at(vector["unix_time"]) == vector["totp"][-6:], vector
    example, mine = urlsplit(published["key_uri_example"]["uri"]), urlsplit(sf.provisioning_uri("alice", secret))
    assert (mine.scheme, mine.netloc) == (example.scheme, example.netloc) == ("otpauth", "totp")
    issuer = parse_qs(mine.query)["issuer"][0]
    assert mine.path == f"/{issuer}:alice" and parse_qs(mine.query)["secret"] == [secret.rstrip("=")]
    assert parse_qs(example.query)["issuer"] == [example.path[1:].split(":")[0]]  # the same label/issuer rule
