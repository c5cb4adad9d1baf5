"""Invoice jobs: submit a request's parts to the provider, poll the provider for what is in flight. Thin: they take
ids, load fresh state, check the work is still needed, call shared/services/invoices.py and commit."""
import logging

from jobs import queues
from jobs.runtime import job
from shared import dispatch
from shared.extensions import db
from shared.services import invoices, red_letters

log = logging.getLogger("orderloom.jobs")


@job
def submit_invoice_request(request_id: int) -> dict:
    """Submit the request's pending parts (a held or timed-out one stays for the sweeper), then poll once."""
    request = db.session.get(invoices.InvoiceRequest, request_id)
    if request is None:
        return {"missing": True}
    tally = invoices.submit(request)
    db.session.commit()
    if request.status in ("submitted", "issuing"):
        tally.update(invoices.poll(request))
        db.session.commit()
    log.info("job=submit_invoice_request request=%s status=%s tally=%s", request_id, request.status, tally)
    return {**tally, "status": request.status}


@job
def poll_invoice_request(request_id: int) -> dict:
    request = db.session.get(invoices.InvoiceRequest, request_id)
    if request is None:
        return {"missing": True}
    tally = invoices.poll(request)
    db.session.commit()
    log.info("job=poll_invoice_request request=%s status=%s tally=%s", request_id, request.status, tally)
    return {**tally, "status": request.status}


@job
def sweep_invoice_requests(limit: int = 200) -> dict:
    """Every minute: submit what is pending (after a timeout or a hold for the credit line), poll what is in
    flight, one request per commit."""
    tally = {"requests": 0}
    for request_id in invoices.in_flight_ids(limit):
        request = db.session.get(invoices.InvoiceRequest, request_id)
        invoices.submit(request)
        db.session.commit()
        invoices.poll(request)
        db.session.commit()
        tally["requests"] += 1
    tally["reds"] = 0
    for red_id in red_letters.in_flight_ids(limit):  # red-letter reversals: apply, query, issue
        red_letters.advance(db.session.get(red_letters.RedLetter, red_id))
        db.session.commit()
        tally["reds"] += 1
    missing_reds = red_letters.unrendered_ids()
    db.session.rollback()
    for red_id in missing_reds:
        dispatch.send("jobs.invoices.render_red_letter", red_id, queue=queues.DOCUMENTS)
    missing = invoices.unrendered_part_ids()
    db.session.rollback()
    for part_id in missing:  # our PDFs a lost job (or inline running) left unmade
        dispatch.send("jobs.invoice_pdf.render_invoice_part", part_id, queue=queues.DOCUMENTS)
    tally["pdfs"] = len(missing)
    tally["mails"] = _mail_unmailed()
    log.info("job=sweep_invoice_requests tally=%s", tally)
    return tally


@job
def advance_red_letter(red_id: int) -> dict:
    """Move a red-letter reversal along (apply the 确认单, query it, issue the red invoice); what waits is the
    sweeper's. Once issued, our PDF of it is made on the documents queue."""
    red = db.session.get(red_letters.RedLetter, red_id)
    if red is None:
        return {"missing": True}
    status = red_letters.advance(red)
    db.session.commit()
    if status == "issued" and red.rendered_pdf is None:
        dispatch.send("jobs.invoices.render_red_letter", red_id, queue=queues.DOCUMENTS)
    log.info("job=advance_red_letter red=%s status=%s", red_id, status)
    return {"status": status}


@job
def render_red_letter(red_id: int) -> dict:
    size = red_letters.render_red_pdf(red_id)
    db.session.commit()
    return {"bytes": size}


@job
def mail_invoice_part(part_id: int) -> bool:
    """Mail the customer the link to one issued invoice (once; shared/services/invoice_mail.py)."""
    from shared.services import invoice_mail

    sent = invoice_mail.mail_part(part_id)
    db.session.commit()
    return sent


def _mail_unmailed() -> int:
    """The invoice mails a lost job, inline running or a relay that was down left unsent: sent here, one commit
    each (a relay still down is logged and left for the next sweep)."""
    from shared.services import invoice_mail

    sent = 0
    for part_id in invoice_mail.unmailed_part_ids():
        try:
            sent += invoice_mail.mail_part(part_id)
            db.session.commit()
        except OSError as error:  # smtplib.SMTPException is an OSError; the next sweep retries
            db.session.rollback()
            log.warning("job=sweep_invoice_requests mail part=%s failed: %s", part_id, error)
            break
    return sent
