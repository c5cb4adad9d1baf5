"""Invoice PDFs in a worker (issue 12 item 6). The worker loads the fonts and the stylesheet before it forks
(jobs/worker.py calls invoice_pdf.warm_up()), so each job's work horse starts warm.

`render_invoice_part` is sent when a part is issued (shared/services/invoices.py): it renders our PDF of it and
keeps it beside the provider's (which is served first when the provider sent one).
"""
import logging

from shared.extensions import db
from shared.finance import invoice_pdf

from jobs.runtime import job

log = logging.getLogger("orderloom.jobs")


def render_invoice_pdf(data: dict) -> int:
    """Render one invoice given as plain data (PdfInvoice's fields; decimals as strings, issued_on ISO); returns the
    PDF's size in bytes. InvoicePdfError (a ValueError) for data that cannot be printed as given."""
    pdf = invoice_pdf.render(invoice_pdf.from_dict(data))
    log.info("job=render_invoice_pdf number=%s bytes=%s", data.get("number"), len(pdf))
    return len(pdf)


@job
def render_invoice_part(part_id: int) -> int:
    """Render and keep our PDF of one issued invoice part; returns its size (0: nothing to render)."""
    from shared.services import invoices

    size = invoices.render_part_pdf(part_id)
    db.session.commit()
    log.info("job=render_invoice_part part=%s bytes=%s", part_id, size)
    return size
