"""Staff's side of customer self-service (issue 13 items 3 and 6), worked from the exception center: answer a
customer's cancel request (approve: the order cancelled through the lifecycle; decline with the reason the customer
reads), answer the order's thread; and the customer notification outbox (mail and simulated SMS) with its status."""
from flask import Blueprint, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.exceptions import NotFound as HttpNotFound
from wtforms import HiddenField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from portal.access import requires
from portal.outcomes import commit_or_refuse, flash_form_errors
from shared.labels import CUSTOMER_REQUEST_STATUS, NOTIFICATION_CHANNEL, NOTIFICATION_EVENT, NOTIFICATION_STATUS, label
from shared.models import Order
from shared.extensions import db
from shared.security.masking import masked_email, masked_phone
from shared.security.permissions import can
from shared.services import customer_requests, exceptions, notifications, order_threads
from shared.services.errors import ServiceError
from shared.web import staff_actor

bp = Blueprint("customer_care", __name__)


class CancelDecisionForm(FlaskForm):
    decision = HiddenField(validators=[DataRequired()])
    reason = StringField(_l("Reason (the customer reads it; required to decline)"),
                         validators=[Optional(), Length(max=500)])


class ReplyForm(FlaskForm):
    body = TextAreaField(_l("Answer to the customer"), validators=[
        DataRequired(_l("Write the answer first.")), Length(max=order_threads.MAX_LENGTH)])


def _exception_or_404(exception_id: int):
    try:
        return exceptions.get_exception(exception_id)
    except ServiceError:
        raise HttpNotFound() from None


def customer_care_box(row) -> dict | None:
    """What the exception page shows of the customer (a template global): the cancel request and its decision
    forms, the order's thread and the reply form. None for exceptions that are not about an order."""
    if row.order_id is None:
        return None
    order = db.session.get(Order, row.order_id)
    request_row = customer_requests.request_for_exception(row) if row.kind == customer_requests.CANCEL_KIND else None
    messages = order_threads.thread(order)
    if request_row is None and not messages and row.kind != order_threads.KIND:
        return None
    editable = can(current_user.role, "exceptions", "edit")
    status = label(CUSTOMER_REQUEST_STATUS, customer_requests.shown_status(request_row)) if request_row else None
    return {"request": request_row, "status_label": status, "messages": messages, "editable": editable,
            "approve_form": CancelDecisionForm(formdata=None, prefix="approve", decision="approve"),
            "decline_form": CancelDecisionForm(formdata=None, prefix="decline", decision="decline"),
            "reply_form": ReplyForm(formdata=None)}


@bp.app_context_processor
def _helpers():
    return {"customer_care_box": customer_care_box}


@bp.post("/exceptions/<int:exception_id>/cancel-decision")
@requires("exceptions", "edit")
def decide_cancel(exception_id: int):
    row = _exception_or_404(exception_id)
    found = customer_requests.request_for_exception(row)
    if found is None:
        raise HttpNotFound()
    prefix = "approve" if request.form.get("approve-decision") == "approve" else "decline"
    form = CancelDecisionForm(prefix=prefix)
    if form.validate_on_submit():
        approve = form.decision.data == "approve"
        commit_or_refuse(lambda: customer_requests.decide_cancel(found, approve, form.reason.data,
                                                                 staff_actor(current_user)),
                         _("The order is cancelled; the customer is told.") if approve else
                         _("The request is declined; the customer reads your reason."))
    else:
        flash_form_errors(form)
    return redirect(url_for("exceptions.detail", exception_id=exception_id), 303)


@bp.post("/exceptions/<int:exception_id>/reply")
@requires("exceptions", "edit")
def reply(exception_id: int):
    row = _exception_or_404(exception_id)
    form = ReplyForm()
    if form.validate_on_submit():
        commit_or_refuse(lambda: order_threads.staff_reply(row, form.body.data, staff_actor(current_user)),
                         _("Your answer is in the customer's thread."))
    else:
        flash_form_errors(form)
    return redirect(url_for("exceptions.detail", exception_id=exception_id), 303)


def shown_recipient(row) -> str:
    return masked_email(row.recipient) if row.channel == "email" else masked_phone(row.recipient)


@bp.get("/notifications")
@requires("customers", "view")
def outbox():
    """The customer notification outbox: what was mailed (or texted) to whom (masked), its status and attempts."""
    status = request.args.get("status") or None
    rows = notifications.recent(status if status in notifications.STATUSES else None)
    orders = {o.id: o.order_no for o in db.session.query(Order).filter(
        Order.id.in_({r.order_id for r in rows if r.order_id})).all()} if rows else {}
    return render_template("portal/notifications.html", rows=rows, orders=orders, status=status,
                           statuses={s: label(NOTIFICATION_STATUS, s) for s in notifications.STATUSES},
                           events={e: label(NOTIFICATION_EVENT, e) for e in notifications.MESSAGES},
                           channels={c: label(NOTIFICATION_CHANNEL, c) for c in notifications.CHANNELS},
                           recipient=shown_recipient)
