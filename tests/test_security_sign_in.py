"""Sign-in limits: only failures count, the two sites count apart, one answer for every refusal, and sign-in
works with Redis down (the limiter falls back to memory), on SQLite and PostgreSQL."""
import re
import socket

import pytest

from shared.extensions import db, limiter
from shared.services import customers
from tests.conftest import app_config
from tests.factories import ADMIN, PASSWORD
from tests.portal_client import csrf_token, english_client, sign_in

ERROR = re.compile(r'<p class="error" role="alert">([^<]*)</p>')
CUSTOMER_EMAIL = "office@example.com"


def customer_sign_in(client, email: str = CUSTOMER_EMAIL, password: str = PASSWORD):
    return client.post("/sign-in", data={"email": email, "password": password, "csrf_token": csrf_token(client)})


def sign_out(client):
    return client.post("/sign-out", data={"csrf_token": csrf_token(client, "/")})


@pytest.fixture
def shopper(session):
    customer = customers.create_account("王芳", "13800138000", CUSTOMER_EMAIL, PASSWORD, ADMIN)
    db.session.commit()
    return customer


def test_successful_sign_ins_never_count_against_the_address(portal, create_user, monkeypatch):
    monkeypatch.setitem(portal.config, "SIGN_IN_LIMIT", "3 per 10 minutes")
    create_user("office1", "customer_service")
    client = english_client(portal)
    for _ in range(6):  # a whole office signing in from one address
        assert sign_in(client, "office1").status_code == 302
        assert sign_out(client).status_code == 302
    statuses = [sign_in(client, "office1", "not-the-password").status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]


def test_staff_and_customer_sites_are_limited_apart(portal, customer_app, create_user, shopper, monkeypatch):
    monkeypatch.setitem(portal.config, "SIGN_IN_LIMIT", "2 per 10 minutes")
    monkeypatch.setitem(customer_app.config, "SIGN_IN_LIMIT", "2 per 10 minutes")
    create_user("office2", "admin")
    staff_client = english_client(portal)
    assert [sign_in(staff_client, "nobody", "guess-guess-1").status_code for _ in range(3)] == [401, 401, 429]
    shop_client = english_client(customer_app)
    assert customer_sign_in(shop_client).status_code == 302  # the shop's own counter is untouched
    assert customer_sign_in(english_client(customer_app), password="wrong-password-123").status_code == 401


def test_unknown_and_locked_staff_accounts_read_the_same(portal, create_user):
    create_user("victim", "ops_manager")
    client = english_client(portal)
    for _ in range(5):
        sign_in(client, "victim", "wrong-password!")
    locked = sign_in(client, "victim", PASSWORD)  # right password, locked account
    unknown = sign_in(client, "no-such-user", PASSWORD)
    assert locked.status_code == unknown.status_code == 401
    assert ERROR.findall(locked.text) == ERROR.findall(unknown.text) != []


def test_unknown_and_locked_customer_accounts_read_the_same(customer_app, shopper):
    client = english_client(customer_app)
    for _ in range(5):
        customer_sign_in(client, password="wrong-password-123")
    locked = customer_sign_in(client)
    unknown = customer_sign_in(client, email="nobody@example.com")
    assert locked.status_code == unknown.status_code == 401
    assert ERROR.findall(locked.text) == ERROR.findall(unknown.text) != []


def _closed_port() -> int:
    """A loopback port nobody listens on: bound, then released."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def redis_down_apps(apps, session):
    """Portal and customer site whose REDIS_URL points at a closed loopback port; the shared limiter is put
    back as it was afterwards (one Limiter serves every app of the process)."""
    from customer_site import create_app as create_customer
    from portal import create_app as create_portal

    saved = dict(vars(limiter))
    dead = f"redis://127.0.0.1:{_closed_port()}/0"
    config = {**app_config(apps.url), "REDIS_URL": dead, "RATELIMIT_STORAGE_URI": dead, "JOBS_INLINE": None}
    try:
        yield create_portal(config), create_customer(config)
    finally:
        vars(limiter).clear()
        vars(limiter).update(saved)


def test_sign_in_works_on_both_sites_with_redis_down(redis_down_apps, create_user, shopper):
    portal_app, customer_site_app = redis_down_apps
    create_user("redisless", "admin")
    staff_client = english_client(portal_app)
    assert sign_in(staff_client, "redisless", "wrong-password!").status_code == 401
    assert sign_in(staff_client, "redisless").status_code == 302
    assert staff_client.get("/").status_code == 200
    shop_client = english_client(customer_site_app)
    assert customer_sign_in(shop_client, password="wrong-password-123").status_code == 401
    assert customer_sign_in(shop_client).status_code == 302
    assert shop_client.get("/orders/").status_code == 200


def test_the_failure_limit_still_holds_with_redis_down(redis_down_apps, create_user, monkeypatch):
    portal_app, _customer_site_app = redis_down_apps
    monkeypatch.setitem(portal_app.config, "SIGN_IN_LIMIT", "2 per 10 minutes")
    client = english_client(portal_app)
    assert [sign_in(client, "nobody", "guess-guess-1").status_code for _ in range(3)] == [401, 401, 429]
