"""Customers: a search through blind indexes (as the viewer's role may search) and one customer's page: their orders
across channels, after-sales requests, invoices and staff notes, every personal value masked as the role sees it."""
from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user

from portal.access import requires
from portal.forms import ConfirmForm, CustomerTierForm, NoteForm
from portal.outcomes import commit_or_refuse, flash_form_errors
from shared import customer_search, labels
from shared.extensions import db
from shared.models import Customer
from shared.security.masking import order_contact, shown_value
from shared.security.permissions import can
from shared.services import customers, order_notes, stock_offers
from shared.services.errors import ServiceError
from shared.web import staff_actor

bp = Blueprint("customers", __name__, url_prefix="/customers")


def _shown(customer: Customer) -> dict:
    role = current_user.role
    return {field: shown_value(role, field, getattr(customer, field)) for field in ("name", "phone", "email")}


@bp.route("/", methods=["GET", "POST"])
@requires("customers", "view")
def index():
    """The search form is POSTed: a phone, an email or a name never travels in an address."""
    found, error, status = None, None, 200
    form = ConfirmForm()
    q, name = "", ""
    if request.method == "POST":
        name = (request.form.get("name") or "").strip()
        q = name or (request.form.get("q") or "").strip()
        try:
            found = customer_search.find_customers(q, staff_actor(current_user), by_name=bool(name))
        except ServiceError as refused:
            error, status, found = refused, refused.status, None
        db.session.commit()  # the access-log entry of the search (or of its refusal)
    rows = [(c, _shown(c)) for c in found] if found else []
    role = current_user.role
    return render_template("portal/customers/index.html", rows=rows, searched=found is not None, error=error,
                           form=form, q="" if name else q, name=name,
                           may_search={kind: customer_search.may_search(role, kind)
                                       for kind in ("phone", "phone_masked", "email", "name")}), status


@bp.get("/<int:customer_id>")
@requires("customers", "view")
def detail(customer_id: int):
    customer = db.session.get(Customer, customer_id)
    if customer is None or customer.anonymised_at is not None:
        abort(404)
    role = current_user.role
    file = customer_search.customer_file(customer, with_invoices=can(role, "invoices", "view"))
    return render_template(
        "portal/customers/detail.html", customer=customer, shown=_shown(customer), file=file,
        contacts={o.id: order_contact(o, role, address=False) for o in file.orders},
        channels=sorted({o.channel.name for o in file.orders}), notes=order_notes.customer_notes(customer.id),
        note_form=NoteForm() if can(role, "customers", "edit") else None,
        status_names=labels.translated(labels.STATUS), after_sale_types=labels.translated(labels.AFTER_SALE_TYPE),
        after_sale_states=labels.translated(labels.AFTER_SALE_STATE),
        invoice_statuses=labels.translated(labels.INVOICE_STATUS), tier=stock_offers.tier(customer.tier),
        zh=str(get_locale() or "").startswith("zh"),
        tier_form=_tier_form(customer) if can(role, "customers", "edit") else None)


def _tier_form(customer: Customer) -> CustomerTierForm:
    form = CustomerTierForm(formdata=None, tier=customer.tier)
    form.tier.choices = [(t.code, f"{t.name_zh} / {t.name_en}") for t in stock_offers.tiers()]
    return form


@bp.post("/<int:customer_id>/tier")
@requires("customers", "edit")
def set_tier(customer_id: int):
    """Move the customer to another tier (a priority tier's out-of-stock orders wait with offers)."""
    customer = db.session.get(Customer, customer_id)
    if customer is None or customer.anonymised_at is not None:
        abort(404)
    form = CustomerTierForm()
    if not form.validate_on_submit():
        flash_form_errors(form)
    else:
        commit_or_refuse(lambda: customers.set_tier(customer, form.tier.data, staff_actor(current_user)),
                         _("The customer's tier is now %(tier)s.", tier=form.tier.data))
    return redirect(url_for("customers.detail", customer_id=customer_id), 303)


@bp.post("/<int:customer_id>/notes")
@requires("customers", "edit")
def add_note(customer_id: int):
    customer = db.session.get(Customer, customer_id)
    if customer is None:
        abort(404)
    form = NoteForm()
    if not form.validate_on_submit():
        flash_form_errors(form)
    else:
        commit_or_refuse(lambda: order_notes.add_customer_note(customer, form.body.data, staff_actor(current_user)),
                         _("The note was added."))
    return redirect(url_for("customers.detail", customer_id=customer_id) + "#notes", 303)
