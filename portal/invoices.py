"""Finance's invoice queue: requests by state and order number with the credit line on top, a request's page (the
buyer as the viewer may see it, its invoices, PDF downloads written to the access log), resubmit and cancel, and
requesting an order's invoice from the order page. Every change is one call of shared/services/invoices.py."""
from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from portal.access import requires
from portal.forms import InvoiceCancelForm, InvoiceRequestForm, InvoiceResubmitForm, RedLetterForm
from portal.outcomes import flash_form_errors
from shared.extensions import db
from shared.labels import INVOICE_KIND, INVOICE_PROFILE_KIND, INVOICE_STATUS, RED_REASON, RED_STATUS, translated
from shared.security.masking import masked_name
from shared.security.permissions import can
from shared.services import audit, invoice_profiles, invoice_queue, invoices, orders, red_letters
from shared.services.errors import ServiceError
from shared.web import staff_actor

bp = Blueprint("invoices", __name__, url_prefix="/finance/invoices")


def _request_or_404(invoice_id: int):
    try:
        return invoices.get_request(invoice_id)
    except ServiceError:
        abort(404)


@bp.get("/")
@requires("invoices", "view")
def index():
    """The queue, newest first; filters by state (held: waiting for the credit line) and order number."""
    status = request.args.get("status") or None
    order_no = (request.args.get("order_no") or "").strip()
    error, found = None, None
    try:
        found = invoice_queue.queue(status, order_no, cursor=request.args.get("cursor") or None,
                                    back=request.args.get("before") or None)
    except ServiceError as refused:
        error = refused
    args = {key: value for key, value in (("status", status), ("order_no", order_no)) if value}
    page = render_template("portal/invoices/index.html", found=found, error=error, status=status, order_no=order_no,
                           filters=invoice_queue.QUEUE_FILTERS, statuses=translated(INVOICE_STATUS),
                           kinds=translated(INVOICE_KIND), args=args, credit=invoices.credit_line(),
                           zip_allowed=can(current_user.role, "exports", "edit"))
    return page, 422 if error is not None else 200


@bp.get("/<int:invoice_id>")
@requires("invoices", "view")
def detail(invoice_id: int):
    found = _request_or_404(invoice_id)
    buyer, shown = invoice_queue.buyer_shown_to(found, current_user.role)
    if shown:  # a view of a personal value in full goes to the access log
        audit.log_access(staff_actor(current_user), "view", "invoice_request", found.id, shown, channel="portal")
    editable = can(current_user.role, "invoices", "edit")
    page = render_template("portal/invoices/detail.html", invoice=found, buyer=buyer, editable=editable,
                           statuses=translated(INVOICE_STATUS), kinds=translated(INVOICE_KIND),
                           buyer_kinds=translated(INVOICE_PROFILE_KIND), resubmit_form=_resubmit_form(found),
                           cancel_form=InvoiceCancelForm(), red_form=RedLetterForm(),
                           red_statuses=translated(RED_STATUS), red_reasons=translated(RED_REASON),
                           reds=[red for part in found.parts for red in part.reds],
                           remaining=red_letters.remaining, reversed_in_full=red_letters.fully_reversed(found))
    db.session.commit()  # after rendering: the access-log entry
    return page


@bp.get("/<int:invoice_id>/parts/<int:position>/pdf")
@requires("invoices", "view")
def download(invoice_id: int, position: int):
    """One issued invoice's PDF (the provider's, else ours); it names the buyer, so the download is access-logged."""
    found = _request_or_404(invoice_id)
    try:
        content, filename = invoices.part_pdf(found, position)
    except ServiceError as refused:
        if refused.status == 404:
            abort(404)
        flash(invoice_queue.refusal_text(refused), "error")
        return redirect(url_for("invoices.detail", invoice_id=found.id), 303)
    audit.log_access(staff_actor(current_user), "download", "invoice_request", found.id, ["name", "invoice_pdf"],
                     channel="portal")
    db.session.commit()
    return Response(content, mimetype="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _act(action, success: str) -> None:
    try:
        action()
        db.session.commit()
    except ServiceError as refused:
        db.session.rollback()
        flash(_("Not done: %(message)s", message=invoice_queue.refusal_text(refused)), "error")
    else:
        flash(success, "success")


def _resubmit_form(found) -> InvoiceResubmitForm:
    form = InvoiceResubmitForm()
    form.profile_id.choices = [(0, _("The profile it was made from"))] + _profile_choices(found.customer_id)
    return form


@bp.post("/<int:invoice_id>/resubmit")
@requires("invoices", "edit")
def resubmit(invoice_id: int):
    """A failed request goes to the provider again, its buyer re-read from its profile (which may have been put
    right) or from another of the buyer's profiles."""
    found = _request_or_404(invoice_id)
    form = _resubmit_form(found)
    if form.validate_on_submit():
        profile_id = form.profile_id.data or None  # 0 or empty: the profile it was made from
        _act(lambda: invoices.resubmit(found, staff_actor(current_user), profile_id=profile_id),
             _("Invoice request %(id)s is submitted again.", id=invoice_id))
    else:
        flash_form_errors(form)
    return redirect(url_for("invoices.detail", invoice_id=invoice_id), 303)


@bp.post("/<int:invoice_id>/cancel")
@requires("invoices", "edit")
def cancel(invoice_id: int):
    found = _request_or_404(invoice_id)
    form = InvoiceCancelForm()
    if form.validate_on_submit():
        _act(lambda: invoices.cancel(found, staff_actor(current_user), form.reason.data.strip()),
             _("Invoice request %(id)s is cancelled.", id=invoice_id))
    else:
        flash_form_errors(form)
    return redirect(url_for("invoices.detail", invoice_id=invoice_id), 303)


def _profile_choices(customer_id: int) -> list[tuple[int, str]]:
    """The buyer's invoice profiles as a choice list; an individual's name stays masked here (no access log)."""
    return [(p.id, " · ".join(filter(None, (
        str(INVOICE_PROFILE_KIND.get(p.kind, p.kind)), masked_name(p.name) if p.kind == "individual" else p.name,
        p.tax_id if p.kind != "individual" else None, _("default") if p.is_default else None))))
        for p in invoice_profiles.profiles_for_customer(customer_id)]


def order_request_form(order) -> InvoiceRequestForm:
    """The order page's "request an invoice" form, its profiles those of the order's customer."""
    form = InvoiceRequestForm()
    form.profile_id.choices = _profile_choices(order.customer_id)
    return form


@bp.post("/orders/<order_no>")
@requires("invoices", "edit")
def request_for_order(order_no: str):
    """Request an order's invoice with one of its customer's profiles; a refusal says why (the SKUs lacking tax
    data listed) and changes nothing."""
    try:
        order = orders.get_order(order_no)
    except ServiceError:
        abort(404)
    form = order_request_form(order)
    if not form.validate_on_submit():
        flash_form_errors(form)
        return redirect(url_for("orders.detail", order_no=order.order_no), 303)
    try:
        made = invoices.request_invoice([order.order_no], form.profile_id.data, form.kind.data,
                                        staff_actor(current_user))
        db.session.commit()
    except ServiceError as refused:
        db.session.rollback()
        flash(_("No invoice was requested: %(message)s", message=invoice_queue.refusal_text(refused)), "error")
        return redirect(url_for("orders.detail", order_no=order.order_no), 303)
    flash(_("Invoice request %(id)s is made: it goes to the invoicing provider.", id=made.id), "success")
    return redirect(url_for("invoices.detail", invoice_id=made.id), 303)


@bp.post("/<int:invoice_id>/reds")
@requires("invoices", "edit")
def open_red(invoice_id: int):
    """红字: open a red-letter confirmation (确认单) for one issued invoice of this request, in full or in part;
    over what remains, or bad input, is refused in words (422) and changes nothing."""
    found = _request_or_404(invoice_id)
    form = RedLetterForm()
    if not form.validate_on_submit():
        flash_form_errors(form)
        return redirect(url_for("invoices.detail", invoice_id=invoice_id), 303)
    part = next((p for p in found.parts if p.id == form.part_id.data), None)
    if part is None:
        abort(404)
    amount = None if form.scope.data == "full" else (form.amount.data or "").strip()
    if amount == "":
        amount = "0"  # partial without an amount: refused as an invalid amount
    try:
        red = red_letters.open_red(part.id, form.reason.data, amount, staff_actor(current_user))
        db.session.commit()
    except ServiceError as refused:
        db.session.rollback()
        flash(_("No red-letter reversal was opened: %(message)s", message=invoice_queue.refusal_text(refused)),
              "error")
        return redirect(url_for("invoices.detail", invoice_id=invoice_id), 303)
    flash(_("Red-letter confirmation %(serial)s is opened: it goes to the invoicing provider.", serial=red.serial),
          "success")
    return redirect(url_for("invoices.detail", invoice_id=invoice_id), 303)


@bp.get("/<int:invoice_id>/reds/<int:red_id>/pdf")
@requires("invoices", "view")
def red_download(invoice_id: int, red_id: int):
    """The PDF of an issued red invoice (the provider's when it sent one, else ours); access-logged like a blue one."""
    found = _request_or_404(invoice_id)
    try:
        red = red_letters.get_red(red_id)
    except ServiceError:
        abort(404)
    if red.part.request_id != found.id:
        abort(404)
    try:
        content, filename = red_letters.red_pdf(red)
    except ServiceError as refused:
        flash(invoice_queue.refusal_text(refused), "error")
        return redirect(url_for("invoices.detail", invoice_id=found.id), 303)
    audit.log_access(staff_actor(current_user), "download", "invoice_request", found.id, ["name", "invoice_pdf"],
                     channel="portal")
    db.session.commit()
    return Response(content, mimetype="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
