"""Customer notifications (issue 13 item 6): one outbox of messages to customers, by email through the real SMTP
client (shared/mail.py) or by simulated SMS (recorded here and marked sent: there is no SMS gateway), each rendered
from its message code in the customer's language (zh/en) when it is sent.

`notify_customer(order, event, **params)` is the one entry the other features call (tracking steps, after-sales
decisions, refunds, cancel answers, staff replies); it queues a row in the caller's transaction and the mail job
sends it after the commit. A row is queued → sent, or → failed once its attempts are used up; a relay that refuses
or cannot be reached is retried with a growing pause by the sweeper (jobs.notifications), like the invoice mail.
An event is notified once per order and key (`dedupe_key`): a parcel reported delivered twice mails once.

The same outbox carries mail to others than customers (`queue_mail`: the purchase suggestions to each supplier); a
row's `attachment` parameter ("<kind>:<reference>") names a file that ATTACHMENTS makes again when it is sent, so
the outbox never stores the file and a retry sends the same one.
"""
import json
import logging
import smtplib
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select
from werkzeug.utils import import_string
from sqlalchemy.dialects import postgresql, sqlite

from shared import dispatch, mail, sets
from shared.extensions import db
from shared.models import Customer, CustomerNotification, Order
from shared.services.validation import N_
from shared.timekeeping import utc_now

log = logging.getLogger("orderloom.notifications")

JOB = "jobs.notifications.deliver_notification"
MAX_ATTEMPTS = 5
RETRY_AFTER = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1))
STATUSES = ("queued", "sent", "failed")
CHANNELS = ("email", "sms")

# event → (subject, body): message codes, translated when the message is sent. Parameters besides order_no are the
# caller's (after-sales: `reason`, a pickup's `slot` and `waybill_no`, a return's `hours`; refunds: `amount`,
# `currency`; a guest code: `code`).
MESSAGES = {
    "shipped": (N_("Your order %(order_no)s is on its way"),
                N_("Your order %(order_no)s has been handed to the carrier. Tracking number: %(waybill_no)s.")),
    "out_for_delivery": (N_("Your order %(order_no)s is out for delivery"),
                         N_("The courier is bringing your order %(order_no)s today.")),
    "delivered": (N_("Your order %(order_no)s was delivered"),
                  N_("Your order %(order_no)s was delivered. If anything is wrong with it, you can ask for "
                     "after-sales service on the order page.")),
    "stalled": (N_("Your parcel for order %(order_no)s has not moved for a while"),
                N_("The carrier has not reported any progress on the parcel of order %(order_no)s for a while. "
                   "We are checking with the carrier; you do not need to do anything.")),
    "after_sales_approved": (N_("Your after-sales request for order %(order_no)s is approved"),
                             N_("Your after-sales request for order %(order_no)s is approved. %(reason)s")),
    "after_sales_declined": (N_("Your after-sales request for order %(order_no)s is declined"),
                             N_("Your after-sales request for order %(order_no)s is declined: %(reason)s")),
    "pickup_booked": (N_("A courier will collect your return for order %(order_no)s"),
                      N_("A courier collects your return for order %(order_no)s on %(slot)s. Return waybill: "
                         "%(waybill_no)s. Please have the parcel packed and ready.")),
    "return_received": (N_("We received your return for order %(order_no)s"),
                        N_("Your return for order %(order_no)s reached our warehouse. We check it and answer within "
                           "%(hours)s hours.")),
    "refunded": (N_("Your refund for order %(order_no)s"),
                 N_("We refunded %(amount)s %(currency)s for order %(order_no)s. It reaches your account as your "
                    "payment provider handles it.")),
    "cancel_approved": (N_("Your order %(order_no)s is cancelled"),
                        N_("Your request is approved: order %(order_no)s is cancelled and will not be shipped.")),
    "cancelled_by_shop": (N_("Your order %(order_no)s is cancelled"),
                          N_("The shop cancelled your order %(order_no)s: it will not be shipped. Write to us from "
                             "the order page if you have a question.")),
    "cancel_declined": (N_("Your order %(order_no)s could not be cancelled"),
                        N_("We could not cancel order %(order_no)s: %(reason)s")),
    "message_answered": (N_("Customer service answered about order %(order_no)s"),
                         N_("Customer service answered your message about order %(order_no)s. Read it on the "
                            "order page.")),
    # out-of-stock choices (shared/services/stock_offers.py): `sku`, the accepted `offer` in words
    "stock_offers": (N_("Order %(order_no)s: an item is out of stock, choose how we go on"),
                     N_("An item of your order %(order_no)s is out of stock. We can transfer it from another "
                        "warehouse, let you pre-order it with a coupon, or send a substitute: choose on the order "
                        "page.")),
    "stock_arrived": (N_("Order %(order_no)s: the item arrived"),
                      N_("%(sku)s of your order %(order_no)s is in stock again: we reserved it as you ordered it, "
                         "and the offers we made are no longer needed.")),
    "stock_offer_accepted": (N_("Order %(order_no)s: your choice is taken"),
                             N_("For your order %(order_no)s we go on with: %(offer)s.")),
    "guest_code": (N_("Your code for order %(order_no)s"),
                   N_("Your one-time code for order %(order_no)s is %(code)s. It expires in 10 minutes. If you did "
                      "not ask for it, ignore this message.")),
    # To a supplier (shared/services/purchasing.py): `supplier`, `week`, `lines`, `units`; the XLSX attached.
    "purchase_suggestions": (N_("Purchase suggestions for %(week)s"),
                             N_("Dear %(supplier)s, attached are our suggested order quantities for %(week)s: "
                                "%(lines)s lines, %(units)s units in all. Each line shows the sales, lead time and "
                                "safety stock it was computed from. Please confirm quantities and delivery dates.")),
}
# Files attached when a row is sent, by the kind its `attachment` parameter names: the dotted path of a function
# that takes the reference and returns (file name, (maintype, subtype), bytes).
ATTACHMENTS = {"purchase_suggestions": "shared.services.purchasing.mail_attachment"}
LINK = N_("Your order: %(link)s")


def _language(locale: str | None) -> str:
    return "en" if (locale or "").startswith("en") else "zh_Hans_CN"


def render(row: CustomerNotification) -> tuple[str, str]:
    """Subject and body of one notification in its language (a guest code's SMS is the body alone)."""
    params = json.loads(row.params or "{}")
    subject_id, body_id = MESSAGES[row.event]
    with force_locale(_language(row.locale)):
        values = {"order_no": "", "waybill_no": "—", "reason": "", "amount": "", "currency": "", "code": "",
                  "slot": "", "hours": "", "supplier": "", "week": "", "lines": "", "units": "", **params}
        subject = _(subject_id, **values)
        parts = [_(body_id, **values)]
        if values.get("order_no") and row.event != "guest_code":
            base = current_app.config.get("CUSTOMER_SITE_URL", "").rstrip("/")
            link = base + "/orders/" + values["order_no"]
            parts.append(_(LINK, link=link))
    return subject, "\n\n".join(parts)


def _insert(rows: list[dict]) -> list[int]:
    """Insert outbox rows; a dedupe key notified before inserts nothing. Returns the new ids."""
    if not rows:
        return []
    table = CustomerNotification.__table__
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    # EncryptedText encrypts in bind processing, as with the ORM.
    statement = insert.on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(table.c.id)
    return [row_id for (row_id,) in db.session.execute(statement, rows).all()]


def _row(order: Order | None, customer: Customer | None, channel: str, recipient: str, event: str, params: dict,
         dedupe_key: str | None, now: datetime) -> dict:
    return {"order_id": order.id if order is not None else None,
            "customer_id": customer.id if customer is not None else None, "channel": channel,
            "recipient": recipient, "event": event, "params": json.dumps(params, ensure_ascii=False, default=str),
            "locale": (customer.locale if customer is not None else None) or "zh_CN", "status": "queued",
            "attempts": 0, "dedupe_key": dedupe_key, "next_attempt_at": now, "created_at": now}


def _params(order: Order, params: dict) -> dict:
    return {"order_no": order.order_no, **{k: v for k, v in params.items() if v is not None}}


def queue_mail(recipient: str, event: str, params: dict, locale: str = "zh_CN",
               dedupe_key: str | None = None) -> int | None:
    """Queue a mail to an address that is not a customer's (a supplier): rendered in `locale`, sent after the
    caller's commit; None when `dedupe_key` was queued before."""
    if event not in MESSAGES:
        raise ValueError(f"unknown notification event {event!r}")
    row = _row(None, None, "email", recipient, event, params, dedupe_key, utc_now())
    ids = _insert([{**row, "locale": locale}])
    for row_id in ids:
        dispatch.after_commit(JOB, row_id, skip_inline=True)
    return ids[0] if ids else None


def attachments(row: CustomerNotification) -> list:
    """The files a row carries (its `attachment` parameter), made now."""
    reference = json.loads(row.params or "{}").get("attachment")
    if not reference:
        return []
    kind, _sep, rest = reference.partition(":")
    return [import_string(ATTACHMENTS[kind])(rest)]


def reaches_customer(order: Order) -> bool:
    """Whether a notification about this order reaches its customer (there is an address to mail)."""
    customer = order.customer
    return bool(customer is not None and (customer.email or "").strip())


def notify_customer(order: Order, event: str, dedupe: str | None = "", **params) -> int | None:
    """Queue a mail to the order's customer about `event` (a MESSAGES code) with `params`; the id of the new row,
    or None when the customer has no email or the event was notified before for this order (`dedupe`: a key that
    makes it once; default once per order and event; None: every time). Sent after the caller's commit."""
    if event not in MESSAGES:
        raise ValueError(f"unknown notification event {event!r}")
    if not reaches_customer(order):
        return None
    customer = order.customer
    to = customer.email.strip()
    key = None if dedupe is None else f"{event}:{order.id}:{dedupe}"[:120]
    ids = _insert([_row(order, customer, "email", to, event, _params(order, params), key, utc_now())])
    for row_id in ids:
        dispatch.after_commit(JOB, row_id, skip_inline=True)
    return ids[0] if ids else None


def notify_many(items: list[tuple[Order, str, dict]]) -> list[int]:
    """Many (order, event, params) at once (a tracking batch): one row each, once per order and event, one INSERT
    and one job after the commit for the set (the sweeper catches up on what it misses)."""
    now = utc_now()
    rows = []
    for order, event, params in items:
        if event not in MESSAGES:
            raise ValueError(f"unknown notification event {event!r}")
        customer = order.customer
        to = (customer.email or "").strip() if customer is not None else ""
        if to:
            rows.append(_row(order, customer, "email", to, event, _params(order, params), f"{event}:{order.id}:",
                             now))
    ids = _insert(rows)
    if ids:
        dispatch.after_commit("jobs.notifications.send_due_notifications", skip_inline=True, coalesce_seconds=5)
    return ids


def notify_address(order: Order, channel: str, recipient: str, event: str, **params) -> int:
    """A message to an address the caller names (a guest's code to the order's email or phone), never deduped."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    ids = _insert([_row(order, order.customer, channel, recipient, event, _params(order, params), None,
                        utc_now())])
    dispatch.after_commit(JOB, ids[0], skip_inline=True)
    return ids[0]


def deliver(notification_id: int, now: datetime | None = None) -> str | None:
    """Send one queued notification whose time has come; its status after (None: nothing to do). A relay that
    refuses or cannot be reached counts an attempt and waits (failed after MAX_ATTEMPTS); the caller commits."""
    now = now or utc_now()
    row = db.session.get(CustomerNotification, notification_id, with_for_update=True)
    if row is None or row.status != "queued":
        return None
    row.attempts += 1
    try:
        if row.channel == "sms":
            # Simulated SMS: no gateway. The outbox row is the record the demo and the tests read.
            log.info("notification=%s channel=sms event=%s simulated", row.id, row.event)
            sent = True
        else:
            subject, body = render(row)
            files = attachments(row)
            sent = mail.send(row.recipient, subject, body, attachments=files) if files else \
                mail.send(row.recipient, subject, body)
            if not sent:
                raise smtplib.SMTPException("no SMTP relay configured (ORDERLOOM_SMTP_HOST)")
    except (OSError, smtplib.SMTPException) as error:
        row.last_error = f"{type(error).__name__}: {error}"[:300]
        if row.attempts >= MAX_ATTEMPTS:
            row.status, row.next_attempt_at = "failed", None
        else:
            row.next_attempt_at = now + RETRY_AFTER[min(row.attempts, len(RETRY_AFTER)) - 1]
        log.warning("notification=%s event=%s attempt=%s failed: %s", row.id, row.event, row.attempts, error)
        return row.status
    row.status, row.sent_at, row.next_attempt_at, row.last_error = "sent", now, None, None
    log.info("notification=%s event=%s channel=%s sent", row.id, row.event, row.channel)
    return row.status


def due_ids(now: datetime | None = None, limit: int = 200) -> list[int]:
    """Queued notifications whose (next) attempt is due, oldest first."""
    now = now or utc_now()
    return list(db.session.scalars(select(CustomerNotification.id).where(
        CustomerNotification.status == "queued", CustomerNotification.next_attempt_at <= now)
        .order_by(CustomerNotification.id).limit(limit)))


def recent(status: str | None = None, limit: int = 100) -> list[CustomerNotification]:
    """The newest outbox rows (the portal's page), optionally of one status."""
    query = select(CustomerNotification).order_by(CustomerNotification.id.desc()).limit(limit)
    if status in STATUSES:
        query = query.where(CustomerNotification.status == status)
    return list(db.session.scalars(query))


def for_orders(order_ids) -> list[CustomerNotification]:
    return list(db.session.scalars(select(CustomerNotification).where(
        sets.among(CustomerNotification.order_id, set(order_ids))).order_by(CustomerNotification.id)))
