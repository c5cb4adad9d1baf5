"""An administrator resets someone else's password (issue 14 item 5): a temporary password shown once, every session
and API token of the account ended, and the portal closed but for the password change until the user chose their
own. The change itself proves the current password and follows the password policy."""
import re

import pytest
from sqlalchemy import select

from shared.extensions import db
from shared.models import ApiToken, AuditEvent, StaffUser
from shared.security.passwords import verify_password
from shared.services import staff
from shared.services.errors import Forbidden, ValidationFailed
from shared.actors import Actor
from tests.factories import ADMIN, PASSWORD
from tests.portal_client import csrf_token, english_client, sign_in, step_up

TEMPORARY = re.compile(r'data-testid="temporary-password">([^<]+)<')
NEW = "a long phrase nobody guesses 42"


def staff_actor(user: StaffUser) -> Actor:
    return Actor(id=user.id, label=user.username, role=user.role)


def _user(username: str) -> StaffUser:
    db.session.expire_all()
    return db.session.execute(select(StaffUser).where(StaffUser.username == username)).scalar_one()


def _events(username: str, action: str) -> list[AuditEvent]:
    return db.session.execute(select(AuditEvent).where(AuditEvent.entity_id == username,
                                                       AuditEvent.action == action)).scalars().all()


def _reset_through_the_page(portal, admin_name: str, target: StaffUser):
    client = english_client(portal)
    sign_in(client, admin_name)
    step_up(client, admin_name)
    return client, client.post(f"/users/{target.id}/reset-password",
                               data={"csrf_token": csrf_token(client, "/users/")})


def test_the_service_hands_out_a_temporary_password_and_ends_everything(create_user):
    target = create_user("forgetful", "warehouse")
    admin = create_user("root", "admin")
    staff.issue_token(target, ADMIN)
    generation = target.session_generation
    target.failed_logins = 5
    temporary = staff.reset_password(target, staff_actor(admin))
    db.session.commit()
    target = _user("forgetful")
    assert len(temporary) >= 12 and verify_password(target.password_hash, temporary)
    assert not verify_password(target.password_hash, PASSWORD)
    assert target.must_change_password and target.failed_logins == 0
    assert target.session_generation == generation + 1
    assert db.session.execute(select(ApiToken).where(ApiToken.user_id == target.id,
                                                     ApiToken.revoked_at.is_(None))).first() is None
    [event] = _events("forgetful", "user.password_reset")
    assert event.actor_label == "root" and event.after["tokens_revoked"] == 1
    assert temporary not in str(event.after)  # never written down


def test_nobody_resets_their_own_password(create_user):
    admin = create_user("self.service", "admin")
    before = admin.password_hash
    with pytest.raises(Forbidden) as refused:
        staff.reset_password(admin, staff_actor(admin))
    assert refused.value.code == "own_password_reset"
    db.session.rollback()
    assert _user("self.service").password_hash == before and not _user("self.service").must_change_password


def test_the_change_proves_the_current_password_and_follows_the_policy(create_user):
    user = create_user("changer", "finance")
    actor = staff_actor(user)
    for current, new, field, code in (("wrong password here", NEW, "current_password", "wrong_password"),
                                      (PASSWORD, PASSWORD, "new_password", "same_password"),
                                      (PASSWORD, "short", "password", "weak_password"),
                                      (PASSWORD, "changer-changer", "password", "weak_password")):
        with pytest.raises(ValidationFailed) as refused:
            staff.change_own_password(user, current, new, actor)
        assert (refused.value.field, refused.value.code) == (field, code), (current, new)
        db.session.rollback()
        assert verify_password(_user("changer").password_hash, PASSWORD)  # nothing changed
    staff.change_own_password(user, PASSWORD, NEW, actor)
    db.session.commit()
    assert verify_password(_user("changer").password_hash, NEW)
    assert _events("changer", "user.password_changed")[0].after["after_reset"] is False


def test_after_a_reset_the_portal_opens_only_the_password_change(portal, create_user):
    target = create_user("picker.li", "warehouse")
    create_user("helpdesk", "admin")
    victim = english_client(portal)
    sign_in(victim, "picker.li")
    assert victim.get("/orders/").status_code == 200
    admin, page = _reset_through_the_page(portal, "helpdesk", target)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    temporary = TEMPORARY.search(page.text).group(1)
    assert victim.get("/orders/").status_code == 302  # the old session ended with the reset
    stranger = english_client(portal)
    assert stranger.post("/sign-in", data={"username": "picker.li", "password": PASSWORD,
                                           "csrf_token": csrf_token(stranger)}).status_code == 401  # gone

    browser = english_client(portal)
    assert sign_in(browser, "picker.li", temporary).status_code == 302
    for path in ("/orders/", "/stock/", "/"):
        answer = browser.get(path)
        assert answer.status_code == 303 and answer.headers["Location"].endswith("/security/password"), path
    hx = browser.get("/orders/", headers={"HX-Request": "true"})
    assert hx.status_code == 204 and hx.headers["HX-Redirect"].endswith("/security/password")
    form = browser.get("/security/password")
    assert form.status_code == 200 and 'data-testid="password-forced"' in form.text
    token = csrf_token(browser, "/security/password")
    wrong = browser.post("/security/password", data={"csrf_token": token, "current_password": "not it at all",
                                                     "new_password": NEW, "confirm_password": NEW})
    assert wrong.status_code == 401 and "The current password is wrong" in wrong.text
    differ = browser.post("/security/password", data={"csrf_token": token, "current_password": temporary,
                                                      "new_password": NEW, "confirm_password": NEW + "!"})
    assert differ.status_code == 422 and "The two new passwords differ." in differ.text
    assert _user("picker.li").must_change_password  # still closed
    done = browser.post("/security/password", data={"csrf_token": token, "current_password": temporary,
                                                    "new_password": NEW, "confirm_password": NEW})
    assert done.status_code == 303
    assert browser.get("/orders/").status_code == 200  # open again, in the same browser
    user = _user("picker.li")
    assert not user.must_change_password and verify_password(user.password_hash, NEW)
    assert _events("picker.li", "user.password_changed")[0].after["after_reset"] is True


def test_the_reset_needs_users_edit_a_step_up_and_the_csrf_token(portal, create_user):
    target = create_user("target.user", "finance")
    create_user("cs.agent", "customer_service")
    create_user("admin.nostep", "admin")
    before = target.password_hash
    agent = english_client(portal)
    sign_in(agent, "cs.agent")
    assert agent.post(f"/users/{target.id}/reset-password",
                      data={"csrf_token": csrf_token(agent, "/security/")}).status_code == 403
    admin = english_client(portal)
    sign_in(admin, "admin.nostep")
    token = csrf_token(admin, "/users/")
    without = admin.post(f"/users/{target.id}/reset-password", data={"csrf_token": token})
    assert without.status_code == 303 and "/security/step-up" in without.headers["Location"]
    step_up(admin, "admin.nostep")
    assert admin.post(f"/users/{target.id}/reset-password", data={}).status_code in (302, 303, 400)
    assert _user("target.user").password_hash == before and not _user("target.user").must_change_password
    page = admin.get("/users/")
    assert f'data-testid="reset-password-{target.username}"' in page.text
    assert 'data-testid="reset-password-admin.nostep"' not in page.text  # never one's own
    assert "data-confirm=" in page.text


def test_the_policy_speaks_the_readers_language(portal, create_user):
    create_user("zh.user", "finance", locale="zh_CN")
    browser = portal.test_client()
    sign_in(browser, "zh.user")
    token = csrf_token(browser, "/security/password")
    answer = browser.post("/security/password", data={"csrf_token": token, "current_password": PASSWORD,
                                                      "new_password": "short", "confirm_password": "short"})
    assert answer.status_code == 422 and "密码至少需要 12 个字符" in answer.text
