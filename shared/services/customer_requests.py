"""Requests before shipping (issue 13 item 3), made by the customer on their order page (or a guest who proved
the order is theirs with a one-time code):

- cancel: at once while the order is not yet allocated (shared.services.orders.cancel_for_customer: the declared
  move, its reservation released, the customer the actor); once allocated or being picked, a request the warehouse
  answers within its SLA: an exception (`cancel_request`, category customer_service, routed to the warehouse) is
  raised, staff approve (the order cancelled through the lifecycle, with their role's permission) or decline with
  a reason, and the answer is shown on the order page and mailed. Packed or later: refused, with the reason.
- change of address: until packing, through the staff edit's own rule and validation (orders.change_address),
  audited; an order not yet allocated is re-routed to the nearest warehouse that can ship it
  (allocation.reroute_unallocated). After packing: refused with the reason.
"""
from dataclasses import dataclass

from sqlalchemy import select

from shared.actors import Actor
from shared.extensions import db
from shared.lifecycle import OrderStatus
from shared.models import CustomerRequest, ExceptionCase, Order
from shared.security.permissions import can
from shared.services import allocation, audit, exceptions, notifications
from shared.services import orders as order_service
from shared.services import validation as check
from shared.services.errors import Conflict, Forbidden, NotFound, ValidationFailed
from shared.services.validation import N_, say
from shared.timekeeping import utc_now

# What a person reads when this module refuses: message codes, said in the reader's language (say).
REQUEST_NOT_FOUND = N_("No such request")
MAY_NOT_ANSWER_REQUESTS = N_("Your role may not answer customer requests")

S = OrderStatus
# Once allocated the goods are the warehouse's to put back: it decides, until the parcel is packed and labelled
# (then the way back is a return once it arrives).
REQUESTABLE = (S.ALLOCATED, S.PICKING)
TOO_LATE_STATES = (S.PACKED, S.SHIPPED, S.COMPLETED)
CANCEL_KIND = "cancel_request"

TOO_LATE = N_("order %(order)s is %(status)s: it can no longer be cancelled; once it arrives you can ask for a "
              "return")
ALREADY_ASKED = N_("you already asked to cancel order %(order)s; the warehouse answers here")
NOT_PENDING = N_("this request was answered already")
DECLINE_REASON = N_("say why the request is declined (the customer reads it)")
ADDRESS_TOO_LATE = N_("the parcel of order %(order)s is already packed: its address can no longer change. Write to "
                      "customer service below if the parcel must go elsewhere.")
CUSTOMER_REASON = "asked by the customer on the customer site"


@dataclass
class CancelOutcome:
    cancelled: bool  # at once
    request: CustomerRequest | None  # a request the warehouse answers


def _standing(order: Order) -> str:
    return order_service.standing_status(order)


def cancel_mode(order: Order) -> str | None:
    """How this order may be cancelled by its customer now: "now", "request", or None (too late / done)."""
    standing = _standing(order)
    if order.status in (S.CANCELLED, S.CLOSED):
        return None
    if standing in order_service.CUSTOMER_CANCELLABLE:
        return "now"
    if standing in REQUESTABLE:
        return None if pending_cancel(order) is not None else "request"
    return None


def pending_cancel(order: Order) -> CustomerRequest | None:
    return db.session.execute(select(CustomerRequest).where(
        CustomerRequest.order_id == order.id, CustomerRequest.kind == "cancel",
        CustomerRequest.status == "pending")).scalars().first()


def requests_for(order: Order) -> list[CustomerRequest]:
    """The order's requests, newest first (what its page shows)."""
    return list(db.session.execute(select(CustomerRequest).where(CustomerRequest.order_id == order.id)
                                   .order_by(CustomerRequest.id.desc())).scalars())


def shown_status(request: CustomerRequest) -> str:
    """A request's state as the customer and staff read it: a cancel still pending on an order cancelled meanwhile
    (an approval applied it, or staff cancelled the order directly) reads approved."""
    if request.status == "pending" and request.kind == "cancel" and request.order.status in (S.CANCELLED, S.CLOSED):
        return "approved"
    return request.status


def request_cancel(order: Order, reason: str | None, actor: Actor, customer_id: int | None = None) -> CancelOutcome:
    """The customer's cancel: immediate before allocation, a request for the warehouse after, refused once shipped."""
    reason = check.text(reason, "reason", 500, required=False) or CUSTOMER_REASON
    standing = _standing(order)
    if standing in order_service.CUSTOMER_CANCELLABLE and order.status not in (S.CANCELLED, S.CLOSED):
        order_service.cancel_for_customer(order, actor, reason)
        return CancelOutcome(True, None)
    if standing not in REQUESTABLE or order.status in (S.CANCELLED, S.CLOSED):
        raise Conflict(say(TOO_LATE, order=order.order_no, status=order.status), field="order_no",
                       code="cancel_too_late")
    if pending_cancel(order) is not None:
        raise Conflict(say(ALREADY_ASKED, order=order.order_no), field="order_no", code="already_requested")
    now = utc_now()
    row = exceptions.raise_exception(
        CANCEL_KIND, f"{CANCEL_KIND}:order:{order.id}",
        f"{order.order_no}: the customer asks to cancel ({reason})"[:300],
        actor, now=now, order_id=order.id, buyer_index=order.receiver_phone_index)
    request = CustomerRequest(order_id=order.id, customer_id=customer_id, kind="cancel", status="pending",
                              reason=reason, exception_id=row.id, requested_by=actor.label[:80], created_at=now)
    db.session.add(request)
    db.session.flush()
    audit.record(actor, "order.cancel_requested", "order", order.order_no,
                 after={"request": request.id, "exception": row.id, "status": order.status}, reason=reason)
    return CancelOutcome(False, request)


def request_for_exception(row: ExceptionCase) -> CustomerRequest | None:
    """The pending or answered cancel request an exception was raised for (the portal's decision box)."""
    return db.session.execute(select(CustomerRequest).where(CustomerRequest.exception_id == row.id)
                              .order_by(CustomerRequest.id.desc())).scalars().first()


def get_request(request_id, for_update: bool = False) -> CustomerRequest:
    row = db.session.get(CustomerRequest, int(request_id), with_for_update=for_update) \
        if str(request_id).isdigit() else None
    if row is None:
        raise NotFound(say(REQUEST_NOT_FOUND), field="request", code="request_not_found")
    return row


def decide_cancel(request: CustomerRequest, approve: bool, reason: str | None, actor: Actor) -> CustomerRequest:
    """Staff answer a cancel request: approved → the order cancelled through the lifecycle (with the actor's own
    permission for that move); declined → with a reason the customer reads. The exception is resolved with the
    answer, the customer mailed. A request answered before is refused."""
    if actor.role != "system" and not can(actor.role, "exceptions", "edit"):
        raise Forbidden(say(MAY_NOT_ANSWER_REQUESTS), code="forbidden")
    db.session.refresh(request, with_for_update=True)
    if request.status != "pending":
        raise Conflict(say(NOT_PENDING), field="request", code="already_decided")
    order = request.order
    reason = check.text(reason, "reason", 500, required=False)
    if not approve and not reason:
        raise ValidationFailed(say(DECLINE_REASON), field="reason", code="reason_required")
    now = utc_now()
    if approve:
        if order.status != S.CANCELLED:
            order_service.transition_order(order, S.CANCELLED, actor,
                                           reason=f"the customer asked to cancel: {request.reason}"[:500],
                                           tell_customer=False)  # the answer below is the customer's one mail
            if order.status != S.CANCELLED:  # an approval rule holds the cancel of a paid order: kept pending,
                request.approval_request = order.approval_request  # shown approved once the order is cancelled
                return request
        request.status = "approved"
    else:
        request.status, request.answer = "declined", reason
    request.decided_by, request.decided_at = actor.label[:80], now
    db.session.flush()
    audit.record(actor, "order.cancel_request_decided", "order", order.order_no,
                 after={"request": request.id, "decision": request.status}, reason=reason)
    row = db.session.get(ExceptionCase, request.exception_id) if request.exception_id else None
    if row is not None and row.status not in ("resolved", "closed"):
        exceptions.transition(row, "resolved", actor, comment=(
            "approved: the order is cancelled" if approve else f"declined: {reason}")[:1000], now=now)
    notifications.notify_customer(order, "cancel_approved" if approve else "cancel_declined",
                                  dedupe=str(request.id), reason=reason)
    return request


def change_address(order: Order, address: dict, actor: Actor) -> dict:
    """The customer changes the shipping address before packing: the staff edit's rule and validation, audited;
    an order not yet allocated is re-routed when another warehouse is nearer. Returns {"rerouted_to": code or
    None, "kept_warehouse": bool} (an allocated order keeps its warehouse: no re-routing exists for it)."""
    if _standing(order) not in order_service.ADDRESS_EDITABLE and not order.platform_protected:
        raise Conflict(say(ADDRESS_TOO_LATE, order=order.order_no), field="shipping_address", code="address_locked")
    order_service.change_address(order, address, actor, reason=CUSTOMER_REASON)
    moved = allocation.reroute_unallocated(order, actor)
    return {"rerouted_to": moved.code if moved is not None else None,
            "kept_warehouse": moved is None and order.status not in (S.PENDING_REVIEW, S.CONFIRMED)}

