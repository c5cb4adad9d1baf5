"""Sessions and accounts: server-side revocation, idle and absolute timeouts, normalised unique usernames, the
password policy, one rule for codes, and a ceiling on API tokens, on SQLite and PostgreSQL."""
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from shared.extensions import db
from shared.models import ApiToken, AuditEvent, Channel, Customer, Sku, StaffUser, Warehouse
from shared.security import sessions
from shared.services import catalog, customers, staff
from shared.services import validation as check
from shared.services.errors import Conflict, ValidationFailed
from shared.timekeeping import utc_now
from tests.factories import ADMIN, PASSWORD
from tests.portal_client import csrf_token, english_client, sign_in, step_up

COOKIE = "orderloom_portal"


def copy_of(app, client, cookie: str = COOKIE):
    """A second browser holding a copy of the first one's session cookie (what a thief would have)."""
    thief = english_client(app)
    thief.set_cookie(cookie, client.get_cookie(cookie).value)
    return thief


def signed_in(app, user) -> object:
    client = english_client(app)
    assert sign_in(client, user.username).status_code == 302
    return client


def is_signed_out(client) -> bool:
    response = client.get("/orders/")
    return response.status_code == 302 and "/sign-in" in response.headers["Location"]


# --- revocation --------------------------------------------------------------------------------------------

def test_a_copied_session_cookie_is_dead_after_sign_out(portal, create_user):
    user = create_user("leaver", "ops_manager")
    browser = signed_in(portal, user)
    thief = copy_of(portal, browser)
    assert thief.get("/orders/").status_code == 200  # the copy works while the session lives
    browser.post("/sign-out", data={"csrf_token": csrf_token(browser, "/orders/")})
    assert is_signed_out(thief)
    assert "user.sign_out" in db.session.scalars(select(AuditEvent.action).where(
        AuditEvent.entity_id == "leaver")).all()


def test_sign_out_ends_the_users_other_sessions_too(portal, create_user):
    user = create_user("twodesks", "customer_service")
    desk_a, desk_b = signed_in(portal, user), signed_in(portal, user)
    desk_a.post("/sign-out", data={"csrf_token": csrf_token(desk_a, "/orders/")})
    assert is_signed_out(desk_b)


def test_a_password_change_ends_every_session(portal, create_user):
    user = create_user("changer", "finance")
    browser = signed_in(portal, user)
    staff.set_password(user, "a-new-long-passphrase", ADMIN)
    db.session.commit()
    assert is_signed_out(browser)
    assert sign_in(english_client(portal), "changer", "a-new-long-passphrase").status_code == 302


def test_a_role_change_ends_every_session(portal, create_user):
    user = create_user("demoted", "ops_manager")
    browser = signed_in(portal, user)
    staff.update_user(user, ADMIN, role="customer_service")
    db.session.commit()
    assert is_signed_out(browser)
    other = create_user("relabelled", "ops_manager")
    kept = signed_in(portal, other)
    staff.update_user(other, ADMIN, locale="zh_CN")  # a language change is no reason to sign anyone out
    db.session.commit()
    assert kept.get("/orders/").status_code == 200


def test_admin_signs_a_user_out_everywhere_from_the_users_page(portal, create_user):
    victim = create_user("lostlaptop", "warehouse")
    laptop = signed_in(portal, victim)
    admin = signed_in(portal, create_user("boss", "admin"))
    refused = laptop.post(f"/users/{victim.id}/sign-out-everywhere",
                          data={"csrf_token": csrf_token(laptop, "/orders/")})
    assert refused.status_code == 403  # a warehouse role may not do it
    answer = admin.post(f"/users/{victim.id}/sign-out-everywhere", data={"csrf_token": csrf_token(admin, "/users/")})
    assert answer.status_code == 303
    assert is_signed_out(laptop)
    assert admin.get("/orders/").status_code == 200
    assert "user.sign_out_everywhere" in db.session.scalars(select(AuditEvent.action).where(
        AuditEvent.entity_id == "lostlaptop")).all()


def test_sign_out_everywhere_without_csrf_changes_nothing(portal, create_user):
    victim = create_user("keepme", "warehouse")
    laptop = signed_in(portal, victim)
    admin = signed_in(portal, create_user("boss2", "admin"))
    assert admin.post(f"/users/{victim.id}/sign-out-everywhere").status_code == 400
    assert laptop.get("/orders/").status_code == 200


# --- timeouts ----------------------------------------------------------------------------------------------

@pytest.fixture
def clock(monkeypatch):
    """Move the sessions' clock forward: clock(minutes=31)."""
    start = utc_now()
    offset = [timedelta()]
    monkeypatch.setattr(sessions, "utc_now", lambda: start + offset[0])

    def advance(**delta):
        offset[0] += timedelta(**delta)
    return advance


def test_an_idle_session_ends_after_30_minutes(portal, create_user, clock):
    browser = signed_in(portal, create_user("idler", "finance"))
    clock(minutes=29)
    assert browser.get("/orders/").status_code == 200  # activity restarts the idle clock
    clock(minutes=29)
    assert browser.get("/orders/").status_code == 200
    clock(minutes=31)
    assert is_signed_out(browser)


def test_a_busy_session_still_ends_after_12_hours(portal, create_user, clock):
    browser = signed_in(portal, create_user("worker", "finance"))
    for _ in range(35):  # 11 h 40 min of steady work
        clock(minutes=20)
        assert browser.get("/orders/").status_code == 200
    clock(minutes=21)
    assert is_signed_out(browser)


def test_customer_sessions_end_on_sign_out_and_time_out(customer_app, clock):
    customers.create_account("周杰", "13911112222", "zhou@example.com", PASSWORD, ADMIN)
    db.session.commit()
    browser = english_client(customer_app)
    data = {"email": "zhou@example.com", "password": PASSWORD, "csrf_token": csrf_token(browser)}
    assert browser.post("/sign-in", data=data).status_code == 302
    thief = copy_of(customer_app, browser, "orderloom_customer")
    assert thief.get("/orders/").status_code == 200
    browser.post("/sign-out", data={"csrf_token": csrf_token(browser, "/orders/")})
    assert thief.get("/orders/").status_code == 302
    again = english_client(customer_app)
    data["csrf_token"] = csrf_token(again)
    assert again.post("/sign-in", data=data).status_code == 302
    clock(minutes=31)
    assert again.get("/orders/").status_code == 302


# --- usernames ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("look_alike", ["victim", "VICTIM", "ｖｉｃｔｉｍ", " Victim "])
def test_usernames_are_unique_after_nfkc_and_case_folding(session, look_alike):
    staff.create_user("Victim", PASSWORD, "finance", ADMIN)
    with pytest.raises(Conflict) as refused:
        staff.create_user(look_alike, PASSWORD, "admin", ADMIN)
    assert refused.value.code == "duplicate_username"
    assert db.session.scalar(select(func.count()).select_from(StaffUser)) == 1


def test_sign_in_finds_the_account_whatever_case_or_width_is_typed(portal, create_user):
    create_user("Mixed.Case", "finance")
    for typed in ("mixed.case", "MIXED.CASE", "ｍｉｘｅｄ.ｃａｓｅ"):
        assert sign_in(english_client(portal), typed).status_code == 302


@pytest.mark.parametrize("bad", ["bad name", "名字", "a\u202eb", "<b>x</b>", ""])
def test_a_username_outside_the_character_set_is_refused(session, bad):
    with pytest.raises(ValidationFailed):
        staff.create_user(bad, PASSWORD, "finance", ADMIN)
    assert db.session.scalar(select(func.count()).select_from(StaffUser)) == 0


# --- password policy ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("password", "why"), [
    ("short-pass1", "at least 12"),
    ("password1234", "commonly used"),
    ("qwertyuiop123", "commonly used"),
    ("newhire2026!", "username"),
    ("NEWHIRE-NEWHIRE", "username"),
])
def test_weak_passwords_are_refused_and_nothing_is_created(session, password, why):
    with pytest.raises(ValidationFailed) as refused:
        staff.create_user("newhire", password, "finance", ADMIN)
    assert refused.value.code == "weak_password" and why in refused.value.message
    assert db.session.scalar(select(func.count()).select_from(StaffUser)) == 0


def test_a_weak_new_password_leaves_the_old_one_and_the_sessions(portal, create_user):
    user = create_user("keeper", "finance")
    browser = signed_in(portal, user)
    with pytest.raises(ValidationFailed):
        staff.set_password(user, "password1234", ADMIN)
    db.session.rollback()
    assert browser.get("/orders/").status_code == 200
    assert sign_in(english_client(portal), "keeper").status_code == 302


def test_customer_passwords_follow_the_same_policy(session):
    with pytest.raises(ValidationFailed) as refused:
        customers.create_account("韩梅", "13922223333", "meimei@example.com", "password1234", ADMIN)
    assert refused.value.code == "weak_password"
    with pytest.raises(ValidationFailed):
        customers.create_account("韩梅", "13922223333", "meimei@example.com", "meimei2026!!", ADMIN)
    assert db.session.scalar(select(func.count()).select_from(Customer)) == 0


def test_the_portal_form_shows_the_policy_refusal(portal, create_user):
    admin = signed_in(portal, create_user("boss3", "admin"))
    step_up(admin, "boss3")  # creating an account gives a role: a sensitive operation
    answer = admin.post("/users/", data={"username": "cs9", "role": "finance", "locale": "en",
                                         "password": "password1234", "csrf_token": csrf_token(admin, "/users/")})
    assert answer.status_code == 422 and "commonly used" in answer.text
    assert db.session.scalar(select(func.count()).select_from(StaffUser).where(StaffUser.username == "cs9")) == 0


# --- codes -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["TEA\u202eGNP", "TEA\u200b", "<b>TEA</b>", "TEA 1", "-TEA", "茶叶", "TEA\"'"])
def test_sku_codes_outside_the_character_set_are_refused(session, bad):
    with pytest.raises(ValidationFailed) as refused:
        catalog.create_sku({"sku": bad, "name": "茶"}, ADMIN)
    assert refused.value.field == "sku"
    assert db.session.scalar(select(func.count()).select_from(Sku)) == 0


def test_a_full_width_sku_is_the_same_code_as_its_ascii_twin(session):
    catalog.create_sku({"sku": "TEA-1", "name": "龙井"}, ADMIN)
    with pytest.raises(Conflict):
        catalog.create_sku({"sku": "ＴＥＡ－１", "name": "假龙井"}, ADMIN)
    assert db.session.scalars(select(Sku.code)).all() == ["TEA-1"]
    assert catalog.create_sku({"sku": "ＧＲＥＥＮ/２５０Ｇ", "name": "绿茶"}, ADMIN).code == "GREEN/250G"


def test_warehouse_and_channel_codes_use_the_same_rule(session):
    assert catalog.create_warehouse({"code": "ＳＨ－１", "name": "上海", "province": "上海", "city": "上海"},
                                    ADMIN).code == "SH-1"
    with pytest.raises(ValidationFailed):
        catalog.create_warehouse({"code": "SH\u202e2", "name": "x", "province": "上海", "city": "上海"}, ADMIN)
    assert catalog.create_channel("ｔｂ", "淘宝", "taobao", ADMIN).code == "TB"
    with pytest.raises(ValidationFailed):
        catalog.create_channel("T<", "坏", "taobao", ADMIN)
    assert db.session.scalar(select(func.count()).select_from(Warehouse)) == 1
    assert db.session.scalar(select(func.count()).select_from(Channel)) == 1


@pytest.mark.parametrize(("kind", "value", "expected"), [
    ("bin", "Ａ-01.2", "A-01.2"), ("bin", "A<script>", None), ("bin", "A\u202e1", None),
    ("warehouse", "WH_1", "WH_1"), ("warehouse", "WH/1", None), ("channel", "jd", "JD"), ("channel", "JDX", None),
    ("sku", 12, None),
])
def test_the_one_code_rule_per_kind(kind, value, expected):
    if expected is None:
        with pytest.raises(ValidationFailed):
            check.code(value, kind, kind)
    else:
        assert check.code(value, kind, kind) == expected


# --- API tokens --------------------------------------------------------------------------------------------

def test_a_user_holds_at_most_five_live_api_tokens(portal, create_user):
    user = create_user("tokens", "ops_manager")
    for _ in range(5):
        staff.issue_token(user, ADMIN)
    with pytest.raises(Conflict) as refused:
        staff.issue_token(user, ADMIN)
    assert refused.value.code == "too_many_tokens"
    assert db.session.scalar(select(func.count()).select_from(ApiToken).where(ApiToken.user_id == user.id)) == 5
    staff.revoke_tokens(user, ADMIN)
    assert staff.issue_token(user, ADMIN).startswith("olt_")


def test_the_migration_fills_normalised_keys_and_never_merges_two_accounts(live_apps):
    """Accounts made before 0006_accounts: 'Boss' keeps its name and key; a later 'boss' gets a key nobody can
    type until an admin renames it, so the upgrade neither fails nor lets one account take over another."""
    from alembic import command
    from sqlalchemy import create_engine, text

    from shared.database import alembic_config

    config = alembic_config(live_apps.url)
    command.downgrade(config, "0006_inbox_topics")
    engine = create_engine(live_apps.url)
    try:
        with engine.begin() as connection:
            for username in ("Boss", "boss"):
                connection.execute(text(
                    "INSERT INTO staff_users (username, display_name, password_hash, role, locale, timezone, active, "
                    "failed_logins, created_at) VALUES (:u, :u, 'x', 'admin', 'en', 'UTC', true, 0, CURRENT_TIMESTAMP)"),
                    {"u": username})
        command.upgrade(config, "head")
        with engine.connect() as connection:
            keys = dict(connection.execute(text("SELECT username, username_key FROM staff_users ORDER BY id")).all())
    finally:
        engine.dispose()
    assert keys["Boss"] == "boss" and keys["boss"].startswith("boss#duplicate-")
