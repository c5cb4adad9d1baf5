"""Outbound webhooks: every order change writes an outbox row in its own transaction; a job delivers it.

Each delivery is a POST of the full order snapshot with the event id, signed with the subscription's secret
(`X-Orderloom-Hmac-Sha256`: base64 HMAC-SHA256 of the raw body, as Shopify signs), retried with exponential
backoff and kept in a delivery log.
"""
import fnmatch
import json
import time
import uuid
from datetime import timedelta

import httpx
from sqlalchemy import bindparam, insert, select, update

from shared import dispatch
from shared.actors import Actor
from shared.channels.signing import body_hmac_base64
from shared.extensions import db
from shared.models import Order, OutboxEvent, WebhookDelivery, WebhookSubscription
from shared.order_payloads import order_payload
from shared.services import audit
from shared.services import validation as check
from shared.services.errors import NotFound, ValidationFailed
from shared.services.validation import N_, say
from shared.timekeeping import utc_now

# What a person reads when this module refuses: message codes, said in the reader's language (say).
INVALID_URL = N_("The URL must start with https:// or http://")
WEAK_SECRET = N_("The secret needs at least 16 characters")
SUBSCRIPTION_NOT_FOUND = N_("No such webhook subscription")
DELIVERY_NOT_FOUND = N_("No such delivery")

MAX_ATTEMPTS = 6
FIRST_RETRY_SECONDS = 30
TIMEOUT_SECONDS = 5.0
DELIVER_JOB = "jobs.webhooks.deliver_outbox"


def snapshot(order: Order) -> dict:
    """The order as a subscriber sees it (personal data masked): the API's order serializer, one for both."""
    return order_payload(order, "subscriber")


_INSERT_EVENT = insert(OutboxEvent.__table__)


def _event_row(order: Order, event_type: str, now) -> dict:
    """The outbox row of one order event: the shape every subscriber receives (`snapshot`), written once here."""
    event_id = str(uuid.uuid4())
    return {"event_id": event_id, "event_type": event_type, "order_id": order.id, "created_at": now,
            "fanned_out": False, "payload": {"event_id": event_id, "event": event_type, "order": snapshot(order)}}


def order_event(order: Order, event_type: str) -> str:
    """Write the event in the caller's transaction (one Core INSERT, now); delivery starts once that transaction
    commits. Returns the event id. `order` is an Order, or the new-order view of `orders.create_order`."""
    row = _event_row(order, event_type, utc_now())
    db.session.connection().execute(_INSERT_EVENT, row)
    dispatch.after_commit(DELIVER_JOB, skip_inline=True, coalesce_seconds=1)
    return row["event_id"]


_REPLACE_PAYLOAD = (update(OutboxEvent.__table__).where(OutboxEvent.__table__.c.event_id == bindparam("event_id_"))
                    .values(payload=bindparam("payload_")))


def replace_snapshot(event_id: str, event_type: str, order: Order) -> None:
    """Rewrite a not yet committed event's order snapshot (the order changed again in the same transaction)."""
    db.session.connection().execute(_REPLACE_PAYLOAD, {
        "event_id_": event_id, "payload_": {"event_id": event_id, "event": event_type, "order": snapshot(order)}})


def order_events(orders: list[Order], event_type: str) -> int:
    """`order_event` for many orders in the caller's transaction, one INSERT sent as one executemany (a batch's
    lifecycle move); the orders' relations should be loaded, or each snapshot loads them. Returns rows written."""
    now = utc_now()
    rows = [_event_row(order, event_type, now) for order in orders]
    if rows:
        db.session.connection().execute(_INSERT_EVENT, rows)
        dispatch.after_commit(DELIVER_JOB, skip_inline=True, coalesce_seconds=1)
    return len(rows)


def create_subscription(name: str, url: str, secret: str, events: str, actor: Actor) -> WebhookSubscription:
    name = check.text(name, "name", 80)
    url = check.text(url, "url", 500)
    if not url.startswith(("https://", "http://")):
        raise ValidationFailed(say(INVALID_URL), field="url", code="invalid_url")
    secret = check.text(secret, "secret", 200)
    if len(secret) < 16:
        raise ValidationFailed(say(WEAK_SECRET), field="secret", code="weak_secret")
    events = check.text(events or "order.*", "events", 200)
    subscription = WebhookSubscription(name=name, url=url, secret=secret, events=events, active=True)
    db.session.add(subscription)
    db.session.flush()
    audit.record(actor, "webhook.subscribe", "webhook_subscription", subscription.id,
                 after={"name": name, "url": url, "events": events})
    return subscription


def set_active(subscription_id: int, active: bool, actor: Actor) -> WebhookSubscription:
    subscription = db.session.get(WebhookSubscription, subscription_id)
    if subscription is None:
        raise NotFound(say(SUBSCRIPTION_NOT_FOUND), code="subscription_not_found")
    before = {"active": subscription.active}
    subscription.active = active
    audit.record(actor, "webhook.activate" if active else "webhook.deactivate", "webhook_subscription",
                 subscription.id, before=before, after={"active": active})
    return subscription


def _matches(patterns: str, event_type: str) -> bool:
    return any(fnmatch.fnmatchcase(event_type, pattern.strip()) for pattern in patterns.split(",") if pattern.strip())


def fan_out(limit: int = 1000) -> int:
    """Turn new outbox events into one pending delivery per matching active subscription.

    Ids and event types only, written with set-based statements: an ingest commits hundreds of events a
    second, and loading each one (with its snapshot) to flip a flag cost more than creating the order.
    """
    events = db.session.execute(select(OutboxEvent.id, OutboxEvent.event_type)
                                .where(OutboxEvent.fanned_out.is_(False)).order_by(OutboxEvent.id).limit(limit)
                                .with_for_update(skip_locked=True)).all()
    if not events:
        return 0
    subscriptions = db.session.execute(select(WebhookSubscription.id, WebhookSubscription.events)
                                       .where(WebhookSubscription.active)).all()
    now = utc_now()
    deliveries = [{"outbox_event_id": event_id, "subscription_id": subscription_id, "status": "pending",
                   "attempts": 0, "next_attempt_at": now}
                  for event_id, event_type in events for subscription_id, patterns in subscriptions
                  if _matches(patterns, event_type)]
    if deliveries:
        db.session.execute(insert(WebhookDelivery), deliveries)
    db.session.execute(update(OutboxEvent).where(OutboxEvent.id.in_([event_id for event_id, _type in events]))
                       .values(fanned_out=True).execution_options(synchronize_session=False))
    return len(events)


def due_delivery_ids(limit: int = 200) -> list[int]:
    return db.session.execute(
        select(WebhookDelivery.id).where(WebhookDelivery.status.in_(("pending", "retry")),
                                         WebhookDelivery.next_attempt_at <= utc_now())
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(limit)
    ).scalars().all()


def backoff(attempts: int) -> timedelta:
    """30 s, 60 s, 2 min, 4 min, 8 min …: doubling after each failed attempt."""
    return timedelta(seconds=FIRST_RETRY_SECONDS * 2 ** max(attempts - 1, 0))


def signed_request(delivery: WebhookDelivery) -> tuple[bytes, dict]:
    body = json.dumps(delivery.event.payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "X-Orderloom-Event": delivery.event.event_type,
        "X-Orderloom-Event-Id": delivery.event.event_id,
        "X-Orderloom-Delivery-Id": str(delivery.id),
        "X-Orderloom-Hmac-Sha256": body_hmac_base64(delivery.subscription.secret, body),
    }
    return body, headers


def deliver(delivery_id: int, client: httpx.Client) -> WebhookDelivery | None:
    """Send one due delivery; the row is locked so two workers never send it twice."""
    delivery = db.session.execute(
        select(WebhookDelivery).where(WebhookDelivery.id == delivery_id,
                                      WebhookDelivery.status.in_(("pending", "retry")))
        .with_for_update(skip_locked=True, of=WebhookDelivery)
    ).scalar_one_or_none()
    if delivery is None:
        return None
    body, headers = signed_request(delivery)
    started = time.perf_counter()
    delivery.attempts += 1
    delivery.last_attempt_at = utc_now()
    try:
        response = client.post(delivery.subscription.url, content=body, headers=headers, timeout=TIMEOUT_SECONDS)
        delivery.last_status_code, delivery.last_error = response.status_code, None
        ok = 200 <= response.status_code < 300
        if not ok:
            delivery.last_error = f"HTTP {response.status_code}: {response.text[:300]}"
    except httpx.HTTPError as error:
        ok, delivery.last_status_code, delivery.last_error = False, None, f"{type(error).__name__}: {error}"[:1000]
    delivery.duration_ms = int((time.perf_counter() - started) * 1000)
    if ok:
        delivery.status, delivery.delivered_at, delivery.next_attempt_at = "delivered", utc_now(), None
    elif delivery.attempts >= MAX_ATTEMPTS:
        delivery.status, delivery.next_attempt_at = "dead", None
    else:
        delivery.status, delivery.next_attempt_at = "retry", utc_now() + backoff(delivery.attempts)
    return delivery


def redeliver(delivery_id: int, actor: Actor) -> WebhookDelivery:
    """Send a dead or delivered event again (a subscriber lost it): a fresh set of attempts, audited."""
    delivery = db.session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        raise NotFound(say(DELIVERY_NOT_FOUND), code="delivery_not_found")
    before = {"status": delivery.status, "attempts": delivery.attempts}
    delivery.status, delivery.attempts, delivery.next_attempt_at = "pending", 0, utc_now()
    audit.record(actor, "webhook.redeliver", "webhook_delivery", delivery.id, before=before,
                 after={"status": "pending"})
    dispatch.after_commit(DELIVER_JOB, skip_inline=True)
    return delivery
