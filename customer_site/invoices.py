"""A signed-in customer's invoices on their order page: the issued ones to download, and a request for a delivered
or completed order with one of their invoice profiles (the same service as finance's). Owner-scoped: the order is
loaded by order_for_customer_or_404 and the request by the customer's id in SQL, so another customer's invoice is
a 404 whatever the URL says."""
from flask import Blueprint, Response, abort, flash, redirect, url_for
from flask_babel import gettext as _

from customer_site.access import customer_required, order_for_customer_or_404, signed_in_customer
from customer_site.forms import InvoiceRequestForm
from shared.actors import Actor
from shared.extensions import db
from shared.labels import INVOICE_KIND, INVOICE_PROFILE_KIND, INVOICE_STATUS, RED_REASON, RED_STATUS, translated
from shared.services import audit, invoice_profiles, invoice_queue, invoices, red_letters, tracking
from shared.services.errors import ServiceError
from shared.web import client_ip

bp = Blueprint("invoices", __name__, url_prefix="/orders")
IN_PROGRESS = ("requested", "submitted", "issuing", "failed")  # a failed one is finance's to put right


def _actor() -> Actor:
    return Actor.for_customer(signed_in_customer(), ip=client_ip())


def may_request(order) -> bool:
    """A customer asks for an invoice once the order is delivered (or completed)."""
    if order.status == "completed":
        return True
    shipment, _events = tracking.timeline(order.id)
    return shipment is not None and shipment.delivered_at is not None and order.status == "shipped"


def request_form(customer) -> InvoiceRequestForm:
    form = InvoiceRequestForm()
    form.profile_id.choices = [(p.id, " · ".join(filter(None, (str(INVOICE_PROFILE_KIND.get(p.kind, p.kind)), p.name,
                                                               _("default") if p.is_default else None))))
                               for p in invoice_profiles.profiles_for_customer(customer.id)]
    return form


def order_invoices(customer, order) -> dict:
    """What the customer's order page shows of invoices."""
    requests = [r for r in invoice_queue.requests_for_order(order.id) if r.customer_id == customer.id]
    live = [r for r in requests if r.status != "cancelled"]
    return {
        "issued": invoice_queue.issued_parts_for_customer_order(customer.id, order.id),
        "in_progress": any(r.status in IN_PROGRESS for r in live),
        "request_form": request_form(customer) if not live and may_request(order) else None,
        "statuses": translated(INVOICE_STATUS), "kinds": translated(INVOICE_KIND),
        # each issued part's red-letter reversals (红字), shown under it (part.reds, in the order opened)
        "red_statuses": translated(RED_STATUS), "red_reasons": translated(RED_REASON),
    }


@bp.get("/<order_no>/invoices/<int:invoice_id>/<int:position>.pdf")
@customer_required
def download(order_no: str, invoice_id: int, position: int):
    """One issued invoice of the customer's own order."""
    customer = signed_in_customer()
    order = order_for_customer_or_404(customer, order_no)
    found = invoice_queue.request_for_customer(customer.id, invoice_id)
    if found is None or order.id not in {link.order_id for link in found.orders}:
        abort(404)
    try:
        content, filename = invoices.part_pdf(found, position)
    except ServiceError as refused:
        if refused.status == 404:
            abort(404)
        flash(invoice_queue.refusal_text(refused), "error")
        return redirect(url_for("orders.detail", order_no=order.order_no), 303)
    audit.log_access(_actor(), "download", "invoice_request", found.id, ["name", "invoice_pdf"], channel="customer")
    db.session.commit()
    return Response(content, mimetype="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@bp.get("/<order_no>/invoices/<int:invoice_id>/<int:position>/reds/<int:red_id>.pdf")
@customer_required
def download_red(order_no: str, invoice_id: int, position: int, red_id: int):
    """One issued red invoice (红字) of an invoice of the customer's own order: scoped exactly as `download`, and the
    red must belong to that invoice part."""
    customer = signed_in_customer()
    order = order_for_customer_or_404(customer, order_no)
    found = invoice_queue.request_for_customer(customer.id, invoice_id)
    if found is None or order.id not in {link.order_id for link in found.orders}:
        abort(404)
    try:
        content, filename = red_letters.red_pdf(red_letters.red_of_request(found, position, red_id))
    except ServiceError as refused:
        if refused.status == 404:
            abort(404)
        flash(invoice_queue.refusal_text(refused), "error")
        return redirect(url_for("orders.detail", order_no=order.order_no), 303)
    audit.log_access(_actor(), "download", "invoice_request", found.id, ["name", "invoice_pdf"], channel="customer")
    db.session.commit()
    return Response(content, mimetype="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@bp.post("/<order_no>/invoices")
@customer_required
def request_invoice(order_no: str):
    """Ask for the invoice of a delivered order with one of the customer's profiles; a refusal says why."""
    customer = signed_in_customer()
    order = order_for_customer_or_404(customer, order_no)
    form = request_form(customer)
    back = redirect(url_for("orders.detail", order_no=order.order_no), 303)
    if not form.validate_on_submit():  # CSRF is checked before the view: what is left is the kind
        flash(_("Choose a normal (普票) or special (专票) invoice."), "error")
        return back
    if not may_request(order):
        flash(_("An invoice can be requested once the order is delivered."), "error")
        return back
    try:
        invoices.request_invoice([order.order_no], form.profile_id.data, form.kind.data, _actor())
        db.session.commit()
    except ServiceError as refused:
        db.session.rollback()
        if refused.code == "unknown_profile":
            abort(404)  # another customer's profile id: unreachable, like their orders
        flash(_("No invoice was requested: %(message)s", message=invoice_queue.refusal_text(refused)), "error")
        return back
    flash(_("Your invoice is requested: it appears here once it is issued."), "info")
    return back
