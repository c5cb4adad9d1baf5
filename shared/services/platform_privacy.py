"""Revealing platform-encrypted buyer data: only through the platform's own decrypt API, only for people who may.

An order whose buyer fields arrived as platform ciphertext keeps the ciphertext (encrypted at rest) and shows the
platform's masked forms. Plain text exists only in memory, for the request that asked for it:

- a person whose role has FULL visibility reveals the receiver (portal reveal, API reveal, a printed label):
  the decrypt API is called once, and the access log records the reveal and that it went through the platform;
- a waybill that is not the platform's own e-waybill needs the plain receiver (logged the same way).

A role without full visibility is refused before anything is called. A refusal or timeout of the decrypt API
changes nothing on the order (it flows on with its masked receiver); the person is told why, in their language.
"""
import json
import logging

import httpx
from flask_babel import gettext as _
from sqlalchemy import select

from shared.actors import Actor
from shared.channels import adapter_for
from shared.channels.base import DecryptRefused, DecryptRequest, PlatformError
from shared.extensions import db
from shared.models import ChannelConnection, Order
from shared.security.masking import may_reveal, order_contact
from shared.services import audit
from shared.services.errors import Forbidden, ServiceError
from shared.services.polling import credentials

log = logging.getLogger("orderloom.privacy")
DECRYPT_TIMEOUT = 5.0  # seconds: a person is waiting for the answer
REVEALED = ["receiver", "phone", "address"]
# Platforms whose own e-waybill (菜鸟 / 拼多多 / 抖音电子面单) takes the ciphertext: their orders are never decrypted
# for a waybill. JD orders shipped through another e-waybill service need the plain receiver.
CIPHERTEXT_WAYBILLS = frozenset({"taobao", "pinduoduo", "douyin"})


class RevealNotAllowed(Forbidden):
    code = "reveal_not_allowed"


class DecryptFailed(ServiceError):
    """The platform's decrypt API refused or did not answer; nothing was changed or revealed."""

    status = 502
    code = "platform_decrypt_failed"


class DecryptTimedOut(DecryptFailed):
    status = 504
    code = "platform_decrypt_timeout"


def ciphertext_of(order: Order) -> dict:
    return json.loads(order.platform_ciphertext) if order.platform_ciphertext else {}


def connection_of(order: Order) -> ChannelConnection:
    connection = db.session.execute(
        select(ChannelConnection).where(ChannelConnection.channel_id == order.channel_id)).scalar_one_or_none()
    if connection is None or not connection.base_url:
        raise DecryptFailed(_("%(channel)s has no API connection, so its platform cannot decrypt the receiver.",
                              channel=order.channel.name), field="receiver", code="platform_decrypt_unavailable")
    return connection


def decrypt(order: Order, actor: Actor, door: str, purpose: str = "reveal",
            transport: httpx.BaseTransport | None = None) -> dict:
    """The plain receiver of one platform-encrypted order, from the platform's decrypt API, access-logged.

    `door` is where it was asked (portal, api, label, waybill); `purpose` names the access-log action."""
    connection = connection_of(order)
    adapter = adapter_for(order.channel.kind)
    request = DecryptRequest(order.channel_order_id, ciphertext_of(order))
    entity = order.order_no
    try:
        with httpx.Client(timeout=DECRYPT_TIMEOUT, transport=transport) as client:
            plain = adapter.decrypt(client, credentials(connection), [request])[order.channel_order_id]
    except DecryptRefused as refusal:
        audit.log_access(actor, f"{purpose}:decrypt_refused", "order", entity, REVEALED, channel=door)
        log.info("decrypt=refused order=%s channel=%s reason=%s", entity, order.channel.code, refusal.reason)
        raise DecryptFailed(_("The platform refused to decrypt the receiver: %(reason)s", reason=refusal.reason),
                            field="receiver") from None
    except httpx.TimeoutException:
        audit.log_access(actor, f"{purpose}:decrypt_timeout", "order", entity, REVEALED, channel=door)
        log.info("decrypt=timeout order=%s channel=%s", entity, order.channel.code)
        raise DecryptTimedOut(_("The platform's decrypt service did not answer in time; try again in a moment."),
                              field="receiver") from None
    except (httpx.HTTPError, PlatformError) as error:
        audit.log_access(actor, f"{purpose}:decrypt_failed", "order", entity, REVEALED, channel=door)
        log.info("decrypt=unavailable order=%s channel=%s error=%s", entity, order.channel.code, error)
        raise DecryptFailed(_("The platform's decrypt service could not be reached: %(error)s", error=str(error)),
                            field="receiver") from None
    audit.log_access(actor, f"{purpose}:platform_decrypt", "order", entity, REVEALED, channel=door)
    return plain


def reveal_contact(order: Order, actor: Actor, door: str, purpose: str = "reveal",
                   transport: httpx.BaseTransport | None = None) -> dict:
    """The receiver in full for a role with FULL visibility, access-logged; refused (nothing called) otherwise."""
    if not may_reveal(actor.role):
        raise RevealNotAllowed(_("Your role may not see the receiver's full details."), field="receiver")
    if not order.platform_protected:
        audit.log_access(actor, purpose, "order", order.order_no, REVEALED, channel=door)
        return order_contact(order, actor.role, reveal=True)
    plain = decrypt(order, actor, door, purpose, transport)
    return order_contact(order, actor.role, reveal=True, plain=plain)


def waybill_receiver(order: Order, actor: Actor) -> dict | None:
    """Plain receiver fields for a waybill service that cannot take the platform's ciphertext, or None when the
    order is plain (its own fields serve). Never called for the platforms' own e-waybills."""
    if not order.platform_protected:
        return None
    return decrypt(order, actor, "waybill", "waybill")
