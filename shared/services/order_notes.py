"""Staff notes on orders and customers, and order tags from a small vocabulary: each addition audited.

Notes are stored as typed (length-limited, no control characters) and escaped wherever they are shown; the audit
event keeps the note's length, not its text (a note may quote a phone number the audit viewer would show in full)."""
from sqlalchemy import delete, select

from shared.actors import Actor
from shared.extensions import db
from shared.labels import ORDER_TAG
from shared.models import Customer, CustomerNote, Order, OrderNote, OrderTag
from shared.services import audit
from shared.services import validation as check
from shared.services.errors import Conflict, ValidationFailed
from shared.services.validation import N_, say
from shared.timekeeping import utc_now

NOTE_MAX = 1000
# The vocabulary: the codes of shared/labels.py ORDER_TAG (which names each in the viewer's language).
TAGS = tuple(ORDER_TAG)


def check_tag(tag: str, field: str = "tag") -> str:
    """A tag of the vocabulary, or a clear error."""
    if tag not in TAGS:
        raise ValidationFailed(say(N_("unknown tag %(tag)s"), tag=str(tag)[:30]), field=field, code="unknown_tag")
    return tag


def _note_body(body) -> str:
    return check.text(body, "body", NOTE_MAX)


def add_order_note(order: Order, body, actor: Actor) -> OrderNote:
    """A note on the order, by the actor; audited `order.note_added`."""
    text = _note_body(body)
    note = OrderNote(order_id=order.id, author_id=actor.id, body=text, created_at=utc_now())
    db.session.add(note)
    audit.record(actor, "order.note_added", "order", order.order_no, after={"length": len(text)})
    return note


def add_customer_note(customer: Customer, body, actor: Actor) -> CustomerNote:
    """A note on the customer, by the actor; audited `customer.note_added`."""
    text = _note_body(body)
    note = CustomerNote(customer_id=customer.id, author_id=actor.id, body=text, created_at=utc_now())
    db.session.add(note)
    audit.record(actor, "customer.note_added", "customer", customer.id, after={"length": len(text)})
    return note


def order_tags(order_id: int) -> list[str]:
    return list(db.session.scalars(select(OrderTag.tag).where(OrderTag.order_id == order_id).order_by(OrderTag.tag)))


def add_tag(order: Order, tag, actor: Actor) -> None:
    """Tag the order; a tag it already has is refused (409), so a double click changes nothing twice."""
    tag = check_tag((tag or "").strip())
    if tag in order_tags(order.id):
        raise Conflict(say(N_("the order already has the tag %(tag)s"), tag=tag), field="tag", code="tag_exists")
    db.session.add(OrderTag(order_id=order.id, tag=tag, added_by_id=actor.id, added_at=utc_now()))
    audit.record(actor, "order.tag_added", "order", order.order_no, after={"tag": tag})


def remove_tag(order: Order, tag, actor: Actor) -> None:
    tag = check_tag((tag or "").strip())
    removed = db.session.execute(delete(OrderTag).where(OrderTag.order_id == order.id, OrderTag.tag == tag))
    if not removed.rowcount:
        raise Conflict(say(N_("the order does not have the tag %(tag)s"), tag=tag), field="tag", code="tag_missing")
    audit.record(actor, "order.tag_removed", "order", order.order_no, before={"tag": tag})


def order_notes(order_id: int) -> list[OrderNote]:
    return list(db.session.scalars(select(OrderNote).where(OrderNote.order_id == order_id).order_by(OrderNote.id)))


def customer_notes(customer_id: int) -> list[CustomerNote]:
    return list(db.session.scalars(select(CustomerNote).where(CustomerNote.customer_id == customer_id)
                                   .order_by(CustomerNote.id)))
