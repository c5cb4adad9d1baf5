"""Handheld scanners and their tokens: registered with a lifetime, listed, revoked; the scan API's door.

A device token is a bearer secret carried on a shared handheld: it expires (DEVICE_TOKEN_DAYS, 90 by default),
a lost or retired handheld is revoked at once from the portal (/devices/) or the CLI (`orderloom devices
revoke NAME`), and only a SHA-256 of the token is stored.
"""
import hashlib
import secrets
from datetime import timedelta

from flask import current_app
from sqlalchemy import select

from shared.actors import Actor
from shared.extensions import db
from shared.models import Device
from shared.services import audit
from shared.services import stock as stock_service
from shared.services import validation as check
from shared.services.errors import Conflict, Forbidden, NotFound, ValidationFailed
from shared.services.validation import N_, say
from shared.timekeeping import utc_now

# What a person reads when this module refuses: message codes, said in the reader's language (say).
DEVICE_REFUSED = N_("Unknown, expired or revoked device token")
INVALID_DAYS = N_("A device token lives 1 to %(max_days)s days")
DUPLICATE_DEVICE = N_("A device named %(name)s exists")
UNKNOWN_DEVICE = N_("No device \"%(name)s\"")
ALREADY_REVOKED = N_("%(device_name)s is already revoked")

MAX_DAYS = 366
LAST_USED_RESOLUTION = timedelta(minutes=5)  # at most one write per device per 5 minutes


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def state(device: Device, now=None) -> str:
    """active, expired or revoked."""
    now = now or utc_now()
    if device.revoked_at is not None or not device.active:
        return "revoked"
    if device.expires_at is None or device.expires_at <= now:
        return "expired"
    return "active"


def device_for_token(token: str) -> Device:
    """The device behind a token; unknown, revoked and expired tokens are refused alike."""
    device = db.session.execute(select(Device).where(Device.token_hash == _digest(token or ""))).scalar_one_or_none()
    now = utc_now()
    if device is None or state(device, now) != "active":
        raise Forbidden(say(DEVICE_REFUSED), code="device_refused")
    if device.last_used_at is None or now - device.last_used_at > LAST_USED_RESOLUTION:
        device.last_used_at = now
    return device


def register_device(name: str, warehouse_code: str, actor: Actor, days: int | None = None) -> tuple[Device, str]:
    """A new handheld and its token (shown once)."""
    name = check.text(name, "name", 60)
    lifetime = current_app.config.get("DEVICE_TOKEN_DAYS", 90) if days is None else days
    if isinstance(lifetime, bool) or not isinstance(lifetime, int) or not 1 <= lifetime <= MAX_DAYS:
        raise ValidationFailed(say(INVALID_DAYS, max_days=MAX_DAYS), field="days", code="invalid_days")
    warehouse = stock_service.get_warehouse(warehouse_code)
    if db.session.execute(select(Device.id).where(Device.name == name)).first():
        raise Conflict(say(DUPLICATE_DEVICE, name=name), field="name", code="duplicate_device")
    token = secrets.token_urlsafe(32)
    device = Device(name=name, warehouse_id=warehouse.id, token_hash=_digest(token), active=True,
                    expires_at=utc_now() + timedelta(days=lifetime))
    db.session.add(device)
    db.session.flush()
    audit.record(actor, "device.register", "device", device.id,
                 after={"name": device.name, "warehouse": warehouse.code, "expires_at": device.expires_at})
    return device, token


def get_device(name: str) -> Device:
    device = db.session.execute(select(Device).where(Device.name == (name or "").strip())).scalar_one_or_none()
    if device is None:
        raise NotFound(say(UNKNOWN_DEVICE, name=name), field="name", code="unknown_device")
    return device


def list_devices() -> list[Device]:
    return db.session.execute(select(Device).order_by(Device.name)).scalars().all()


def revoke_device(device: Device, actor: Actor) -> None:
    """The token stops working at once; the device and its scans stay for the record."""
    if device.revoked_at is not None:
        raise Conflict(say(ALREADY_REVOKED, device_name=device.name), field="name", code="already_revoked")
    device.revoked_at, device.revoked_by, device.active = utc_now(), actor.label[:120], False
    audit.record(actor, "device.revoke", "device", device.id, after={"name": device.name})
