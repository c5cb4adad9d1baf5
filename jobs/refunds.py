"""Refund jobs: refunds a provider or a platform left unanswered (a timeout) are asked about by their out_refund_no."""
import logging

from shared.extensions import db
from shared.services import platform_refunds, refunds

from jobs.runtime import job

log = logging.getLogger("orderloom.jobs")


def _resolve(row) -> str:
    """A refund sent to a platform (Shopify, WooCommerce) is asked of the platform; any other of its provider."""
    return (platform_refunds.resolve if platform_refunds.is_pushed(row) else refunds.resolve)(row)


@job
def resolve_refund(refund_id: int) -> str:
    """One refund still processing: ask its provider or platform (sent again if it never got it)."""
    status = _resolve(refunds.get_refund(refund_id))
    db.session.commit()
    log.info("job=resolve_refund refund=%s status=%s", refund_id, status)
    return status


@job
def resolve_processing_refunds() -> dict:
    """Every few minutes: every refund still processing is asked about; one provider down does not stop the rest."""
    tally: dict[str, int] = {}
    for refund_id in refunds.processing_ids():
        try:
            status = _resolve(refunds.get_refund(refund_id))
            db.session.commit()
        except Exception:  # noqa: BLE001  (kept processing: the next run asks again)
            db.session.rollback()
            log.exception("job=resolve_processing_refunds refund=%s failed", refund_id)
            status = "error"
        tally[status] = tally.get(status, 0) + 1
    log.info("job=resolve_processing_refunds tally=%s", tally)
    return tally
