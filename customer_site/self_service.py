"""What a customer does on their order page besides reading it (issue 13 items 3 and 6): cancel (or ask the
warehouse to), change the address before packing, write to customer service; and, for a guest, prove the order
is theirs with a one-time code first.

Every order is loaded owner-scoped (customer_site.access): a signed-in customer's own, or one this browser looked
up as a guest *and* verified with a code within the last 30 minutes; anything else is a 404 (or, for a guest who
has not verified, a message saying to ask for a code). Views are thin: a form, one service call, one commit.
"""
import time

from flask import Blueprint, abort, current_app, flash, g, redirect, session, url_for
from flask_babel import gettext as _
from flask_limiter.util import get_remote_address

from customer_site.access import (guest_order_ids, order_for_customer_or_404, order_for_guest_or_404,
                                  signed_in_customer)
from customer_site.self_service_forms import (AddressForm, CancelForm, GuestCodeForm, GuestCodeRequestForm,
                                              MessageForm)
from shared.actors import Actor
from shared.extensions import db, limiter
from shared.labels import CUSTOMER_REQUEST_STATUS, label
from shared.services import address_book, customer_requests, guest_codes, order_threads
from shared.services import orders as order_service
from shared.services.errors import ServiceError
from shared.web import client_ip

bp = Blueprint("self_service", __name__)
GUEST_VERIFIED_KEY = "guest_verified"
VERIFIED_FOR = 30 * 60  # seconds a guest's code keeps this browser verified for the order


def _code_limit() -> str:
    return current_app.config.get("GUEST_CODE_LIMIT") or "5 per 10 minutes"


def _verify_limit() -> str:
    return current_app.config.get("GUEST_VERIFY_LIMIT") or "20 per 10 minutes"


def guest_verified(order) -> bool:
    stamp = (session.get(GUEST_VERIFIED_KEY) or {}).get(str(order.id))
    return isinstance(stamp, int) and time.time() - stamp < VERIFIED_FOR


def _mark_verified(order) -> None:
    now = int(time.time())
    kept = {k: v for k, v in (session.get(GUEST_VERIFIED_KEY) or {}).items()
            if isinstance(v, int) and now - v < VERIFIED_FOR}
    kept[str(order.id)] = now
    session[GUEST_VERIFIED_KEY] = kept


def guest_actor(order) -> Actor:
    return Actor(id=None, label=f"guest:{order.order_no}", role="guest", ip=client_ip())


def _order_page(order, guest: bool):
    endpoint = "tracking.order" if guest else "orders.detail"
    return redirect(url_for(endpoint, order_no=order.order_no), 303)


def _acting_on(order_no: str):
    """(order, actor, guest) for an action: the signed-in customer's own order, or a guest's verified one."""
    customer = signed_in_customer()
    if customer is not None:
        return order_for_customer_or_404(customer, order_no), Actor.for_customer(customer, ip=client_ip()), False
    order = order_for_guest_or_404(guest_order_ids(), order_no)
    if not guest_verified(order):
        return order, None, True
    return order, guest_actor(order), True


def _refused(order, guest, refused: ServiceError, form_name: str):
    db.session.rollback()
    if refused.status == 404:
        abort(404)
    flash(refused.message, "error")
    return _order_page(order, guest)


def _needs_code(order):
    flash(_("First ask for a one-time code to the order's email or phone, and enter it."), "error")
    return _order_page(order, True)


@bp.post("/orders/<order_no>/cancel")
def cancel(order_no: str):
    """Cancel at once before allocation, else ask the warehouse; refused once shipped, with the reason."""
    order, actor, guest = _acting_on(order_no)
    if actor is None:
        return _needs_code(order)
    form = CancelForm()
    if not form.validate_on_submit():
        flash(_("The reason is at most 500 characters."), "error")
        return _order_page(order, guest)
    customer = signed_in_customer()
    try:
        outcome = customer_requests.request_cancel(order, form.reason.data, actor,
                                                   customer_id=customer.id if customer else None)
    except ServiceError as refused:
        return _refused(order, guest, refused, "cancel")
    db.session.commit()
    flash(_("Your order is cancelled.") if outcome.cancelled else
          _("Your request is sent: the warehouse answers it here, usually within a few hours."), "info")
    return _order_page(order, guest)


@bp.post("/orders/<order_no>/address")
def change_address(order_no: str):
    """A new shipping address before packing (from the address book or typed), checked as staff edits are."""
    order, actor, guest = _acting_on(order_no)
    if actor is None:
        return _needs_code(order)
    form = AddressForm()
    if not form.validate_on_submit():
        flash(_("Check the address: a field is too long."), "error")
        return _order_page(order, guest)
    values = form.values()
    customer = signed_in_customer()
    if form.saved.data and customer is not None:
        try:
            values = address_book.as_shipping_address(address_book.address_for_customer(customer.id,
                                                                                        form.saved.data))
        except ServiceError:
            abort(404)  # another customer's saved address: unreachable, like their orders
    try:
        outcome = customer_requests.change_address(order, values, actor)
    except ServiceError as refused:
        return _refused(order, guest, refused, "address")
    db.session.commit()
    flash(_("The new address is saved."), "info")
    if outcome["rerouted_to"]:
        flash(_("Your order now ships from a warehouse nearer to the new address."), "info")
    return _order_page(order, guest)


@bp.post("/orders/<order_no>/messages")
def post_message(order_no: str):
    """Write to customer service about this order; the answer appears in the thread."""
    order, actor, guest = _acting_on(order_no)
    if actor is None:
        return _needs_code(order)
    form = MessageForm()
    if not form.validate_on_submit():
        for errors in form.errors.values():
            for error in errors:
                flash(error, "error")
        return _order_page(order, guest)
    try:
        order_threads.post_customer_message(order, form.body.data, actor)
    except ServiceError as refused:
        return _refused(order, guest, refused, "message")
    db.session.commit()
    flash(_("Your message is sent to customer service."), "info")
    return _order_page(order, guest)


@bp.post("/track/<order_no>/code")
@limiter.limit(_code_limit, key_func=get_remote_address)
def send_code(order_no: str):
    """A guest asks for a one-time code to the order's email or (simulated SMS) phone."""
    order = order_for_guest_or_404(guest_order_ids(), order_no)
    form = GuestCodeRequestForm()
    if form.validate_on_submit():
        try:
            guest_codes.send_code(order, form.channel.data, guest_actor(order))
        except ServiceError as refused:
            return _refused(order, True, refused, "code")
        db.session.commit()
        flash(_("A code is on its way. It expires in 10 minutes."), "info")
    return _order_page(order, True)


@bp.post("/track/<order_no>/verify")
@limiter.limit(_verify_limit, key_func=get_remote_address)
def verify_code(order_no: str):
    """A guest enters the code; five wrong tries spend it (the count is committed even when refused)."""
    order = order_for_guest_or_404(guest_order_ids(), order_no)
    form = GuestCodeForm()
    if form.validate_on_submit():
        try:
            guest_codes.verify(order, form.code.data, guest_actor(order))
        except ServiceError as refused:
            db.session.commit()  # keep the count of wrong tries
            flash(refused.message, "error")
            return _order_page(order, True)
        db.session.commit()
        _mark_verified(order)
        flash(_("Thank you: you can now act on this order for 30 minutes."), "info")
    return _order_page(order, True)


def order_self_service(order, guest: bool) -> dict:
    """What the order page's self-service partials show (a template global, so the page's view stays as it is);
    worked out once per request and order."""
    cached = getattr(g, "_order_self_service", {})
    if (order.id, guest) not in cached:
        cached[(order.id, guest)] = _self_service_box(order, guest)
        g._order_self_service = cached
    return cached[(order.id, guest)]


def _self_service_box(order, guest: bool) -> dict:
    customer = None if guest else signed_in_customer()
    may_act = customer is not None or (guest and guest_verified(order))
    mode = customer_requests.cancel_mode(order)
    refusal = order_service.address_editable(order)
    address_form = None
    if may_act and refusal is None:
        address_form = AddressForm(formdata=None)
        saved = address_book.addresses_for_customer(customer.id) if customer is not None else []
        address_form.saved.choices = [("", _("Type a new address below"))] + [
            (str(a.id), f"{a.receiver} · {a.province}{a.city}{a.district} {a.street}") for a in saved]
    requests = [{"kind": r.kind, "status": customer_requests.shown_status(r),
                 "status_label": label(CUSTOMER_REQUEST_STATUS, customer_requests.shown_status(r)),
                 "answer": r.answer, "at": r.decided_at or r.created_at}
                for r in (customer_requests.requests_for(order) if may_act else [])]  # a guest verifies first
    box = {
        "may_act": may_act, "cancel_mode": mode if may_act else None, "cancel_form": CancelForm(formdata=None),
        "address_form": address_form, "address_refusal": refusal,
        "requests": requests, "messages": order_threads.thread(order) if may_act else [],
        "message_form": MessageForm(formdata=None), "max_message": order_threads.MAX_LENGTH,
        "cancel_refused": mode is None and order_service.standing_status(order) in customer_requests.TOO_LATE_STATES,
    }
    if guest:
        destinations = guest_codes.destinations(order)
        code_request = GuestCodeRequestForm(formdata=None)
        code_request.channel.choices = [(channel, shown) for channel, shown in destinations.items()]
        if destinations:
            code_request.channel.data = next(iter(destinations))
        box.update({"verified": guest_verified(order), "destinations": destinations, "code_request": code_request,
                    "code_form": GuestCodeForm(formdata=None)})
    return box


@bp.app_context_processor
def _self_service_helpers():
    return {"order_self_service": order_self_service}
