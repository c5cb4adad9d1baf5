"""A signed-in customer's after-sales (售后) on their own order: one click from the order page to a request (type,
items and quantities, reason, up to 3 photos), then the request's page with its progress, the decline reason, the
return to book and a cancel button until the goods are received. Owner-scoped: the order through
order_for_customer_or_404 and the request through after_sale_for_customer_or_404 (the customer's id in SQL, and on
that order), so another customer's request is a 404 whatever the URL says. A guest (a look-up by phone digits) sees
that after-sales needs signing in."""
from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _

from customer_site.access import (after_sale_for_customer_or_404, customer_required, order_for_customer_or_404,
                                  signed_in_customer)
from shared import after_sales_lifecycle as lifecycle
from shared.actors import Actor
from shared.extensions import db
from shared.labels import (AFTER_SALE_STATE, AFTER_SALE_TYPE, RETURN_METHOD, RETURN_PICKUP_STATUS, RETURN_REFUND_STATE,
                           translated)
from shared.services import after_sales
from shared.services.errors import ServiceError
from shared.web import client_ip

bp = Blueprint("after_sales", __name__, url_prefix="/orders")
# The request with its photos is larger than the site's 64 KB limit for every other form: 3 × 5 MB and the fields.
UPLOAD_LIMIT = after_sales.MAX_PHOTOS * after_sales.MAX_PHOTO_BYTES + 256 * 1024


def _raise_upload_limit():
    """Before anything reads the body (the CSRF check does), let the request form with photos be as large as its
    photos may be; every other request keeps the site's limit."""
    if request.endpoint == "after_sales.create" and request.method == "POST":
        request.max_content_length = UPLOAD_LIMIT


@bp.record_once
def _first_before_request(state):
    state.app.before_request_funcs.setdefault(None, []).insert(0, _raise_upload_limit)


def _actor() -> Actor:
    return Actor.for_customer(signed_in_customer(), ip=client_ip())


def _language() -> str:
    locale = get_locale()
    return "zh" if locale is not None and locale.language == "zh" else "en"


def _labels() -> dict:
    return {"type_names": translated(AFTER_SALE_TYPE), "state_names": translated(AFTER_SALE_STATE),
            "method_names": translated(RETURN_METHOD)}


def may_request(order) -> bool:
    """Whether the order page offers a new request: paid, delivered (or shipped, for a refund of a parcel that did
    not arrive), and something left to ask for."""
    if order.payment_status != "paid":
        return False
    if after_sales.delivered_at(order) is None and order.status != "shipped":
        return False
    return any(left > 0 for left in after_sales.returnable(order).values())


@bp.app_context_processor
def _order_page_box():
    def after_sales_box(order, guest: bool) -> dict:
        """What the order page's after-sales card shows (templates/customer/_after_sales.html)."""
        package = after_sales.return_package(order)
        customer = signed_in_customer()
        if guest or customer is None or order.customer_id != customer.id:
            from customer_site.self_service import guest_verified

            # A guest who proved the order with a one-time code sees its requests and their state (read only).
            verified = guest and guest_verified(order)
            return {"guest": True, "verified": verified, "package": package if verified else None,
                    "requests": after_sales.for_order(order.id) if verified else [],
                    "countdowns": _countdowns(after_sales.for_order(order.id)) if verified else {}, **_labels()}
        requests = after_sales.for_order(order.id)
        return {"guest": False, "requests": requests, "may_request": may_request(order), "package": package,
                "countdowns": _countdowns(requests), "replaces": after_sales.replaced_for(order), **_labels()}
    return {"after_sales_box": after_sales_box}


def _countdowns(requests) -> dict:
    found = {}
    for case in requests:
        countdown = after_sales.refund_countdown(case)
        if countdown is not None:
            found[case.id] = countdown
    return found


def _form_lines(order) -> list[dict]:
    left = after_sales.returnable(order)
    seen, rows = set(), []
    for line in order.lines:
        if line.sku_id in seen:
            continue
        seen.add(line.sku_id)
        rows.append({"sku": line.sku, "left": max(left.get(line.sku_id, 0), 0)})
    return rows


def render_form(order, status: int = 200, chosen: dict | None = None):
    return render_template("customer/after_sale_form.html", order=order, lines=_form_lines(order),
                           reasons=[(r.code, after_sales.reason_label(r, _language())) for r in after_sales.reasons()],
                           types=lifecycle.TYPES, chosen=chosen or {}, max_photos=after_sales.MAX_PHOTOS,
                           **_labels()), status


@bp.get("/<order_no>/after-sales/new")
@customer_required
def new(order_no: str):
    return render_form(order_for_customer_or_404(signed_in_customer(), order_no))


@bp.post("/<order_no>/after-sales")
@customer_required
def create(order_no: str):
    """One request: the items with a quantity above 0, each with its reason, and the photos chosen."""
    order = order_for_customer_or_404(signed_in_customer(), order_no)
    form = request.form
    lines = [{"sku": row["sku"].code, "quantity": form.get(f"quantity_{row['sku'].code}", "0").strip() or "0",
              "reason": form.get(f"reason_{row['sku'].code}") or form.get("reason")} for row in _form_lines(order)]
    lines = [line for line in lines if line["quantity"] != "0"]
    photos = [upload.read(after_sales.MAX_PHOTO_BYTES + 1) for upload in request.files.getlist("photos")
              if upload and upload.filename]
    try:
        case = after_sales.request_after_sale(order, form.get("type", ""), lines, _actor(), photos=photos)
        db.session.commit()
    except ServiceError as refused:
        db.session.rollback()
        flash(_("Your request was not sent: %(message)s", message=refused.message), "error")
        return render_form(order_for_customer_or_404(signed_in_customer(), order_no), 422, chosen=form)
    flash(_("Your after-sales request is sent. We answer within 24 hours."), "info")
    return redirect(url_for("after_sales.detail", order_no=order.order_no, after_sale_id=case.id), 303)


@bp.get("/<order_no>/after-sales/<int:after_sale_id>")
@customer_required
def detail(order_no: str, after_sale_id: int):
    customer = signed_in_customer()
    order = order_for_customer_or_404(customer, order_no)
    case = after_sale_for_customer_or_404(customer, order, after_sale_id)
    return render_detail(order, case)


def render_detail(order, case, status: int = 200):
    """The request's page: progress, decision, the return (pickup with its waybill, courier, slot and tracking, or
    the drop-off address and code), the refund countdown once received, and the refund."""
    from shared.services import refunds

    steps = lifecycle.path(case.type)
    reached = steps.index(case.status) if case.status in steps else -1
    may_book = lifecycle.find_move(case.type, case.status, "awaiting_return") is not None
    slots, no_pickup = [], None
    if may_book:
        try:
            slots = after_sales.pickup_slots(case)
        except ServiceError as refused:
            no_pickup = refused.message
    refund = next((row for row in refunds.refunds_of(order) if row.after_sale_id == case.id), None)
    return render_template("customer/after_sale.html", order=order, case=case, steps=steps, reached=reached,
                           may_cancel=any(m.target == "cancelled" and m.customer
                                          for m in lifecycle.moves_from(case.type, case.status)),
                           may_book=may_book, slots=slots, no_pickup=no_pickup, booking=after_sales.pickup_of(case),
                           replacement=after_sales.replacement_of(case),
                           countdown=after_sales.refund_countdown(case), refund=refund,
                           refund_hours=after_sales.refund_promise_hours(),
                           reference=after_sales.return_reference(case),
                           pickup_states=translated(RETURN_PICKUP_STATUS),
                           refund_states=translated(RETURN_REFUND_STATE),
                           reason_names={r.code: after_sales.reason_label(r, _language())
                                         for r in after_sales.reasons(False)}, **_labels()), status


def _move(order_no: str, after_sale_id: int, target: str, done: str, **options):
    customer = signed_in_customer()
    order = order_for_customer_or_404(customer, order_no)
    case = after_sale_for_customer_or_404(customer, order, after_sale_id)
    try:
        after_sales.transition(case, target, _actor(), request.form.get("reason") or None, **options)
        db.session.commit()
        flash(done, "info")
    except ServiceError as refused:
        db.session.rollback()
        flash(_("Not done: %(message)s", message=refused.message), "error")
    return redirect(url_for("after_sales.detail", order_no=order.order_no, after_sale_id=after_sale_id), 303)


@bp.post("/<order_no>/after-sales/<int:after_sale_id>/cancel")
@customer_required
def cancel(order_no: str, after_sale_id: int):
    return _move(order_no, after_sale_id, "cancelled", _("Your after-sales request is cancelled."))


@bp.post("/<order_no>/after-sales/<int:after_sale_id>/return")
@customer_required
def book_return(order_no: str, after_sale_id: int):
    """How the goods come back: a courier pickup at a time the customer chooses, or a drop-off."""
    pickup = request.form.get("pickup_at") or None
    if pickup and len(pickup) == 16:  # datetime-local: the merchant's zone, as shown on the page
        from datetime import datetime
        from zoneinfo import ZoneInfo

        from flask import current_app

        try:
            pickup = datetime.fromisoformat(pickup).replace(
                tzinfo=ZoneInfo(current_app.config["MERCHANT_TIMEZONE"])).isoformat()
        except ValueError:
            pass  # the service refuses it with its own message
    return _move(order_no, after_sale_id, "awaiting_return", _("Your return is booked."),
                 return_method=request.form.get("return_method") or None, pickup_at=pickup)


@bp.post("/<order_no>/after-sales/<int:after_sale_id>/pickup")
@customer_required
def book_pickup(order_no: str, after_sale_id: int):
    """The customer chooses one of the offered slots and the courier is booked (上门取件)."""
    customer = signed_in_customer()
    order = order_for_customer_or_404(customer, order_no)
    case = after_sale_for_customer_or_404(customer, order, after_sale_id)
    try:
        after_sales.book_pickup(case, request.form.get("slot", ""), _actor())
        db.session.commit()
    except ServiceError as refused:
        db.session.rollback()
        flash(_("Not booked: %(message)s", message=refused.message), "error")
        return render_detail(order_for_customer_or_404(customer, order_no),
                             after_sale_for_customer_or_404(customer, order, after_sale_id), 422)
    flash(_("The courier is booked. You will get an email with the return waybill."), "info")
    return redirect(url_for("after_sales.detail", order_no=order.order_no, after_sale_id=after_sale_id), 303)


@bp.get("/<order_no>/after-sales/<int:after_sale_id>/return-code.svg")
@customer_required
def return_code(order_no: str, after_sale_id: int):
    """The return's QR code (request number and return waybill or reference) for the drop-off counter."""
    customer = signed_in_customer()
    case = after_sale_for_customer_or_404(customer, order_for_customer_or_404(customer, order_no), after_sale_id)
    if case.type not in lifecycle.RETURNS:
        abort(404)
    return Response(after_sales.return_code_svg(case), mimetype="image/svg+xml",
                    headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store"})


@bp.get("/<order_no>/after-sales/<int:after_sale_id>/photos/<int:photo_id>")
@customer_required
def photo(order_no: str, after_sale_id: int, photo_id: int):
    customer = signed_in_customer()
    case = after_sale_for_customer_or_404(customer, order_for_customer_or_404(customer, order_no), after_sale_id)
    found = after_sales.photo_of(case, photo_id)
    if found is None:
        abort(404)
    return Response(found.data, mimetype=found.content_type,
                    headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store"})
