"""The orderloom command as an operator uses it: real processes against a real database."""
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select, text

from shared.extensions import db
from shared.models import Order, StaffUser
from shared.security import crypto
from shared.services import staff
from tests.conftest import TEST_DATA_KEY

ORDERLOOM = str(Path(sys.executable).parent / "orderloom")


def run(args, env, stdin=""):
    return subprocess.run([ORDERLOOM, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120)


def base_env(url: str, keys: str = TEST_DATA_KEY) -> dict:
    return {"DATABASE_URL": url, "ORDERLOOM_DATA_KEYS": keys, "ORDERLOOM_INDEX_KEY": "test-index-key",
            "PATH": "/usr/bin:/bin", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}  # this tree's code


def test_users_create_reads_password_from_stdin_and_token_is_last_line(live_apps):
    env = base_env(live_apps.url)
    created = run(["users", "create", "ops1", "--role", "ops_manager"], env, stdin="a-strong-password\n")
    assert created.returncode == 0, created.stderr
    refused = run(["users", "create", "ops2", "--role", "wizard"], env, stdin="a-strong-password\n")
    assert refused.returncode != 0 and 'Unknown role "wizard"' in refused.stderr
    weak = run(["users", "create", "ops3", "--role", "finance"], env, stdin="short\n")
    assert weak.returncode != 0 and "at least 12" in weak.stderr
    issued = run(["users", "token", "ops1"], env)
    assert issued.returncode == 0
    token = issued.stdout.strip().splitlines()[-1]
    with live_apps.core.app_context():
        assert staff.user_for_token(token).username == "ops1"
        assert db.session.scalars(select(StaffUser.username)).all() == ["ops1"]
        users = staff.get_user("ops1")
        assert staff.authenticate("ops1", "a-strong-password", "127.0.0.1").id == users.id


def test_key_rotation_needs_an_admins_second_factor_and_re_encrypts_every_encrypted_column(live_apps):
    import pyotp

    from shared.models import InboxItem, SecondFactor
    from shared.services import catalog, orders, staff, stock
    from tests.factories import ADMIN, order_payload
    from tests.portal_client import ensure_enrolled

    with live_apps.core.app_context():
        catalog.create_channel("OS", "官网商城", "own_shop", ADMIN)
        catalog.create_sku({"sku": "SKU-1", "name": "茶"}, ADMIN)
        catalog.create_warehouse({"code": "HZ1", "name": "杭州仓", "province": "浙江省", "city": "杭州市"}, ADMIN)
        stock.adjust_stock("SKU-1", "HZ1", 5, "opening", ADMIN)
        order = orders.create_order(order_payload(phone="13700001111"), ADMIN)
        order_no, channel_id = order.order_no, order.channel_id
        db.session.add(InboxItem(channel_id=channel_id, source="webhook", content_hash="h", content_type="json",
                                 body='{"receiver": "张伟"}'))
        admin = staff.create_user("keeper", "a-strong-password", "admin", ADMIN)
        clerk = staff.create_user("clerk", "a-strong-password", "customer_service", ADMIN)
        db.session.commit()
        secret = ensure_enrolled(admin).secret
        ensure_enrolled(clerk)
        old_cipher = db.session.execute(text("SELECT receiver_phone FROM orders")).scalar_one()
    new_key = crypto.new_key()
    env = base_env(live_apps.url, f"{new_key},{TEST_DATA_KEY}")

    wrong = run(["keys", "rotate", "--as", "keeper"], env, stdin="000000\n")
    not_admin = run(["keys", "rotate", "--as", "clerk"], env, stdin=pyotp.TOTP(secret).now() + "\n")
    assert wrong.returncode == 1 and "not rotated" in wrong.stderr
    assert not_admin.returncode == 1 and "may not rotate keys" in not_admin.stderr
    with live_apps.core.app_context():
        assert db.session.execute(text("SELECT receiver_phone FROM orders")).scalar_one() == old_cipher
        refused = db.session.execute(text("SELECT action FROM audit_events WHERE action LIKE '%refused%' OR action "
                                          "LIKE 'second_factor.%' ORDER BY id")).scalars().all()
        assert "keys.rotate_refused" in refused

    rotated = run(["keys", "rotate", "--as", "keeper"], env, stdin=pyotp.TOTP(secret).now() + "\n")
    assert rotated.returncode == 0 and "re-encrypted" in rotated.stdout and "as keeper" in rotated.stdout, \
        rotated.stderr
    crypto.configure([new_key], "test-index-key")  # the old key is gone: only the new one can read now
    try:
        with live_apps.core.app_context():
            new_cipher = db.session.execute(text("SELECT receiver_phone FROM orders")).scalar_one()
            assert new_cipher != old_cipher
            order = db.session.execute(select(Order).where(
                Order.receiver_phone_index == crypto.blind_index("phone", "137-0000-1111"))).scalar_one()
            assert order.order_no == order_no and order.receiver_phone == "13700001111"
            # Not only personal data: stored payloads and TOTP secrets were re-encrypted too.
            assert db.session.execute(select(InboxItem.body)).scalar_one() == '{"receiver": "张伟"}'
            assert secret in db.session.execute(select(SecondFactor.secret)).scalars().all()
            event = db.session.execute(text("SELECT actor_label FROM audit_events WHERE action = 'keys.rotate'")) \
                .scalar_one()
            assert event == "keeper"
    finally:
        crypto.configure([TEST_DATA_KEY], "test-index-key")


def test_db_upgrade_is_idempotent(live_apps):
    again = run(["db", "upgrade"], base_env(live_apps.url))
    assert again.returncode == 0 and "database at head" in again.stdout
