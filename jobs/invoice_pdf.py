"""Invoice PDFs in a worker (issue 12 item 6). The worker loads the fonts and the stylesheet before it forks
(jobs/worker.py calls invoice_pdf.warm_up()), so each job's work horse starts warm.

Placeholder until the invoice pipeline lands: the lead wires this to real invoices at merge (load the invoice,
build its PdfInvoice, store the bytes where the provider's PDF would be when the provider sent none).
"""
import logging

from shared.finance import invoice_pdf

log = logging.getLogger("orderloom.jobs")


def render_invoice_pdf(data: dict) -> int:
    """Render one invoice given as plain data (PdfInvoice's fields; decimals as strings, issued_on ISO); returns the
    PDF's size in bytes. InvoicePdfError (a ValueError) for data that cannot be printed as given."""
    pdf = invoice_pdf.render(invoice_pdf.from_dict(data))
    log.info("job=render_invoice_pdf number=%s bytes=%s", data.get("number"), len(pdf))
    return len(pdf)
