"""Device tokens expire, are listed and revocable in the portal and by CLI, on SQLite and PostgreSQL."""
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from shared.extensions import db
from shared.models import AuditEvent, Device
from shared.services import catalog, devices
from shared.services.errors import Conflict, ValidationFailed
from shared.timekeeping import utc_now
from tests.factories import ADMIN
from tests.portal_client import csrf_token, english_client, sign_in
from tests.test_cli import base_env, run


@pytest.fixture
def warehouse(session):
    catalog.create_warehouse({"code": "DV1", "name": "设备仓", "province": "浙江省", "city": "杭州市"}, ADMIN)
    db.session.commit()
    return "DV1"


def tasks(portal, token):
    return portal.test_client().get("/scan/v1/tasks", headers={"Authorization": f"Bearer {token}"})


def test_a_fresh_token_works_and_notes_its_use(portal, warehouse):
    device, token = devices.register_device("PDA-1", warehouse, ADMIN)
    db.session.commit()
    assert timedelta(days=89) < device.expires_at - utc_now() <= timedelta(days=90)
    assert tasks(portal, token).status_code == 200
    db.session.refresh(device)
    assert device.last_used_at is not None


def test_an_expired_token_is_refused(portal, warehouse):
    device, token = devices.register_device("PDA-2", warehouse, ADMIN, days=1)
    device.expires_at = utc_now() - timedelta(seconds=1)
    db.session.commit()
    refused = tasks(portal, token)
    assert refused.status_code == 401 and refused.get_json()["error"]["code"] == "device_refused"


def test_a_revoked_token_is_refused_at_once(portal, warehouse):
    device, token = devices.register_device("PDA-3", warehouse, ADMIN)
    db.session.commit()
    assert tasks(portal, token).status_code == 200
    devices.revoke_device(device, ADMIN)
    db.session.commit()
    assert tasks(portal, token).status_code == 401
    assert "device.revoke" in db.session.scalars(select(AuditEvent.action)).all()
    with pytest.raises(Conflict):
        devices.revoke_device(device, ADMIN)


@pytest.mark.parametrize("days", [0, 367, -5, True])
def test_a_lifetime_outside_1_to_366_days_is_refused(session, warehouse, days):
    with pytest.raises(ValidationFailed) as refused:
        devices.register_device("PDA-X", warehouse, ADMIN, days=days)
    assert refused.value.field == "days"
    assert db.session.scalar(select(func.count()).select_from(Device)) == 0


def test_a_duplicate_name_or_unknown_warehouse_creates_nothing(session, warehouse):
    devices.register_device("PDA-4", warehouse, ADMIN)
    with pytest.raises(Conflict):
        devices.register_device("PDA-4", warehouse, ADMIN)
    with pytest.raises(Exception):
        devices.register_device("PDA-5", "NOPE", ADMIN)
    assert db.session.scalar(select(func.count()).select_from(Device)) == 1


def signed_in(portal, create_user, role):
    user = create_user(f"dev_{role}", role)
    client = english_client(portal)
    assert sign_in(client, user.username).status_code == 302
    return client


def test_the_portal_registers_lists_and_revokes_devices(portal, create_user, warehouse):
    client = signed_in(portal, create_user, "warehouse")
    page = client.post("/devices/", data={"name": "PDA-Web", "warehouse": warehouse, "days": "30",
                                          "csrf_token": csrf_token(client, "/devices/")})
    assert page.status_code == 201
    token = re.search(r'data-testid="new-device-token".*?<code>([^<]+)</code>', page.text, re.S).group(1)
    assert tasks(portal, token).status_code == 200
    listing = client.get("/devices/").text
    assert "PDA-Web" in listing and 'data-state="active"' in listing and token not in listing  # shown once
    device = db.session.scalar(select(Device).where(Device.name == "PDA-Web"))
    answer = client.post(f"/devices/{device.id}/revoke", data={"csrf_token": csrf_token(client, "/devices/")})
    assert answer.status_code == 303
    assert tasks(portal, token).status_code == 401
    assert 'data-state="revoked"' in client.get("/devices/").text


def test_roles_without_fulfilment_edit_cannot_revoke_and_bad_forms_change_nothing(portal, create_user, warehouse):
    device, token = devices.register_device("PDA-6", warehouse, ADMIN)
    db.session.commit()
    viewer = signed_in(portal, create_user, "customer_service")
    assert viewer.get("/devices/").status_code == 200
    refused = viewer.post(f"/devices/{device.id}/revoke", data={"csrf_token": csrf_token(viewer, "/devices/")})
    assert refused.status_code == 403
    assert tasks(portal, token).status_code == 200
    editor = signed_in(portal, create_user, "ops_manager")
    bad = editor.post("/devices/", data={"name": "", "warehouse": warehouse, "days": "900",
                                         "csrf_token": csrf_token(editor, "/devices/")})
    assert bad.status_code == 422
    assert editor.post(f"/devices/{device.id}/revoke").status_code == 400  # no CSRF token
    assert db.session.scalar(select(func.count()).select_from(Device)) == 1
    assert tasks(portal, token).status_code == 200


def test_the_cli_registers_lists_and_revokes_devices(live_apps):
    env = base_env(live_apps.url)
    with live_apps.core.app_context():
        catalog.create_warehouse({"code": "CL1", "name": "命令行仓", "province": "浙江省", "city": "杭州市"}, ADMIN)
        db.session.commit()
    registered = run(["devices", "register", "PDA-CLI", "--warehouse", "CL1", "--days", "7"], env)
    assert registered.returncode == 0, registered.stderr
    token = registered.stdout.strip().splitlines()[-1]
    listed = run(["devices", "list"], env)
    assert listed.returncode == 0 and re.search(r"PDA-CLI\s+CL1\s+.*active", listed.stdout)
    assert run(["devices", "revoke", "PDA-CLI"], env).returncode == 0
    assert re.search(r"PDA-CLI\s+CL1\s+.*revoked", run(["devices", "list"], env).stdout)
    again = run(["devices", "revoke", "PDA-CLI"], env)
    assert again.returncode != 0 and "already revoked" in again.stderr
    unknown = run(["devices", "revoke", "PDA-NONE"], env)
    assert unknown.returncode != 0 and "No device" in unknown.stderr
    with live_apps.portal.test_client() as client:
        assert client.get("/scan/v1/tasks", headers={"Authorization": f"Bearer {token}"}).status_code == 401
