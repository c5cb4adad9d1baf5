"""A message thread per order between the customer and customer service (issue 13 item 6).

The customer writes on the order page; the message opens (or appends to) the order's `customer_message` exception
in the exception center, which carries the SLA (category customer_service); staff answer from the exception's page
and the answer shows in the customer's thread (and is mailed). Bodies are stored encrypted and shown escaped.
"""
from sqlalchemy import select

from shared.actors import SYSTEM, Actor
from shared.extensions import db
from shared.models import ExceptionCase, Order, OrderMessage
from shared.security.permissions import can
from shared.services import audit, exceptions, notifications
from shared.services import validation as check
from shared.services.errors import Forbidden, ValidationFailed
from shared.services.validation import N_, say
from shared.timekeeping import utc_now

# What a person reads when this module refuses: message codes, said in the reader's language (say).
MAY_NOT_ANSWER = N_("Your role may not answer customers")
NO_ORDER = N_("This exception has no order to answer on")

KIND = "customer_message"
MAX_LENGTH = 2000
MAX_PER_ORDER = 200  # a thread is a conversation, not a storage
TOO_LONG = N_("a message is at most %(limit)s characters")
EMPTY = N_("write a message first")
TOO_MANY = N_("this order's thread is full; customer service will contact you")
# While the exception waits on the customer, their answer puts it back into work.
BACK_TO_WORK = ("waiting_customer",)


def _body(text) -> str:
    if text is None or (isinstance(text, str) and not text.strip()):
        raise ValidationFailed(say(EMPTY), field="body", code="required")
    if isinstance(text, str) and len(text.strip()) > MAX_LENGTH:
        raise ValidationFailed(say(TOO_LONG, limit=MAX_LENGTH), field="body", code="too_long")
    return check.text(text, "body", MAX_LENGTH)


def thread(order: Order) -> list[OrderMessage]:
    """The order's messages, oldest first."""
    return list(db.session.execute(select(OrderMessage).where(OrderMessage.order_id == order.id)
                                   .order_by(OrderMessage.id)).scalars())


def exception_of(order: Order) -> ExceptionCase | None:
    return db.session.execute(select(ExceptionCase).where(ExceptionCase.live_key == f"{KIND}:order:{order.id}")
                              ).scalar_one_or_none()


def post_customer_message(order: Order, text, actor: Actor) -> OrderMessage:
    """The customer writes: the order's exception is raised (or reopened, or noted when open) and the message kept."""
    body = _body(text)
    count = db.session.execute(select(db.func.count()).select_from(OrderMessage)
                               .where(OrderMessage.order_id == order.id)).scalar_one()
    if count >= MAX_PER_ORDER:
        raise ValidationFailed(say(TOO_MANY), field="body", code="thread_full")
    now = utc_now()
    existing = exception_of(order)
    was_open = existing is not None and existing.status not in ("resolved", "closed")
    row = exceptions.raise_exception(KIND, f"{KIND}:order:{order.id}",
                                     f"{order.order_no}: {body}"[:300], actor, now=now, order_id=order.id,
                                     buyer_index=order.receiver_phone_index)
    if was_open:
        exceptions.note(row, actor, body[:1000], kind="customer_message", now=now)
        if row.status in BACK_TO_WORK:
            exceptions.transition(row, "in_progress", SYSTEM, comment="the customer answered", now=now)
    message = OrderMessage(order_id=order.id, exception_id=row.id, author="customer", author_label=actor.label[:120],
                           body=body, created_at=now)
    db.session.add(message)
    db.session.flush()
    audit.record(actor, "order.message", "order", order.order_no, after={"message": message.id, "exception": row.id,
                                                                         "author": "customer"})
    return message


def staff_reply(row: ExceptionCase, text, actor: Actor) -> OrderMessage:
    """Staff answer the customer from the exception's page: the answer joins the order's thread, counts as the
    first response (the exception moves into work), and the customer is mailed."""
    if not can(actor.role, "exceptions", "edit"):
        raise Forbidden(say(MAY_NOT_ANSWER), code="forbidden")
    if row.order_id is None:
        raise ValidationFailed(say(NO_ORDER), field="body", code="no_order")
    body = _body(text)
    now = utc_now()
    order = db.session.get(Order, row.order_id)
    message = OrderMessage(order_id=order.id, exception_id=row.id, author="staff", author_label=actor.label[:120],
                           body=body, created_at=now)
    db.session.add(message)
    db.session.flush()
    exceptions.note(row, actor, body[:1000], kind="staff_reply", now=now)
    if row.status in ("open", "assigned", "reopened"):
        exceptions.transition(row, "in_progress", actor, comment="answered the customer", now=now)
    audit.record(actor, "order.message", "order", order.order_no, after={"message": message.id, "exception": row.id,
                                                                         "author": "staff"})
    notifications.notify_customer(order, "message_answered", dedupe=str(message.id))
    return message
