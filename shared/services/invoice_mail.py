"""The customer's invoice by email link (issue 12 item 7): when a part is issued, the buyer (the request's buyer
snapshot's email, else the customer's) gets one mail, in the customer's language, with the link to the invoice's
download on the customer site. The link is not a secret: it opens only for the customer, signed in (owner-scoped,
another customer gets a 404). Sent once per issued part: the audit event `invoice.mailed` on the part is the
record, checked before sending; a failed send leaves no record and the sweeper tries again."""
import logging
from datetime import timedelta

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import String, cast, exists, select

from shared import mail
from shared.actors import SYSTEM
from shared.extensions import db
from shared.models import AuditEvent, Customer
from shared.models.invoices import InvoicePart, InvoiceRequest
from shared.services import audit
from shared.timekeeping import utc_now

log = logging.getLogger("orderloom.invoices")

MAILED = "invoice.mailed"
SWEEP_WINDOW = timedelta(days=3)  # the sweeper mails parts issued this recently that have no mail yet
JOB = "jobs.invoices.mail_invoice_part"


def _mailed(part_id: int) -> bool:
    return db.session.execute(select(exists().where(AuditEvent.action == MAILED,
                                                    AuditEvent.entity_type == "invoice_part",
                                                    AuditEvent.entity_id == str(part_id)))).scalar_one()


def recipient(request: InvoiceRequest) -> str | None:
    if request.buyer_email:
        return request.buyer_email.strip() or None
    customer = db.session.get(Customer, request.customer_id)
    return (customer.email or "").strip() or None if customer is not None else None


def link(request: InvoiceRequest, part: InvoicePart) -> str:
    """The customer-site download of the part (the customer signs in first; not a bearer link)."""
    order_no = request.orders[0].order.order_no
    base = current_app.config["CUSTOMER_SITE_URL"].rstrip("/")
    return f"{base}/orders/{order_no}/invoices/{request.id}/{part.position}.pdf"


def message(request: InvoiceRequest, part: InvoicePart, locale: str) -> tuple[str, str]:
    """Subject and body in the customer's language (zh/en)."""
    total = f"{part.total_gross:.2f}"
    with force_locale("en" if (locale or "").startswith("en") else "zh_Hans_CN"):
        subject = _("Your invoice %(number)s is issued", number=part.number)
        body = "\n\n".join([
            _("Your invoice for order %(order_no)s is issued: number %(number)s, total %(total)s.",
              order_no=request.orders[0].order.order_no, number=part.number, total=total),
            _("Download it on our customer site (sign in with your account first):"),
            link(request, part),
            _("This link works only for you when you are signed in; nobody else can open your invoice with it."),
        ])
    return subject, body


def mail_part(part_id: int) -> bool:
    """Mail one issued part's link to its buyer, once. True when a mail went out now; False when there is nothing
    to send (not issued, no email, mailed before, no relay configured). A relay failure raises (retried)."""
    # The part's row locked (PostgreSQL) until the caller commits: the job and the sweeper never both send it.
    part = db.session.get(InvoicePart, part_id, with_for_update=True)
    if part is None or part.status != "issued" or not part.number or _mailed(part_id):
        return False
    request = part.request
    to = recipient(request)
    if to is None:
        return False
    customer = db.session.get(Customer, request.customer_id)
    subject, body = message(request, part, customer.locale if customer is not None else "zh_CN")
    if not mail.send(to, subject, body):
        return False
    audit.record(SYSTEM, MAILED, "invoice_part", part.id, after={"number": part.number, "to_domain": to.split("@")[-1]})
    log.info("invoice_part=%s number=%s mailed", part.id, part.number)
    return True


def unmailed_part_ids(limit: int = 200) -> list[int]:
    """Parts issued recently whose mail has not gone out (a lost job, inline running, a relay that was down)."""
    since = utc_now() - SWEEP_WINDOW
    mailed = exists().where(AuditEvent.action == MAILED, AuditEvent.entity_type == "invoice_part",
                            AuditEvent.entity_id == cast(InvoicePart.id, String))
    return list(db.session.scalars(select(InvoicePart.id).where(InvoicePart.status == "issued",
                                                                InvoicePart.issued_at >= since, ~mailed)
                                   .order_by(InvoicePart.id).limit(limit)))
