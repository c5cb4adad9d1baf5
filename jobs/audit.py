"""Sealing the audit chains every second, and the daily signed checkpoint."""
import logging

from shared.extensions import db
from shared.models import AuditSeal
from shared.services import sealing

from jobs.runtime import job

log = logging.getLogger("orderloom.jobs")


@job
def seal_audit_logs(limit: int = 5000) -> dict:
    """Chain every unsealed row of the audit events, access log and stock ledger; one sealer at a time.

    A chain that has never been checkpointed gets its first checkpoint as soon as it has rows, so a wiped
    chain is caught from the first day on.
    """
    sealed = sealing.seal_all(commit=db.session.commit, limit=limit)
    log.info("job=seal_audit_logs %s", " ".join(f"{name}={count}" for name, count in sealed.items()))
    unanchored = db.session.query(AuditSeal).filter(AuditSeal.checkpoints == 0, AuditSeal.last_seq > 0).count()
    db.session.rollback()
    if unanchored:
        _checkpoint()
    return sealed


@job
def write_audit_checkpoint() -> list[dict]:
    """Seal, then sign (sequence, head MAC, time) of every chain into the checkpoint file; send copies out."""
    return _checkpoint()


def _checkpoint() -> list[dict]:
    sealing.seal_all(commit=db.session.commit)
    lines = sealing.write_checkpoints()
    db.session.commit()
    log.info("job=write_audit_checkpoint %s", " ".join(f"{line['log']}=#{line['seq']}" for line in lines))
    sealing.publish_checkpoints(lines)
    return lines
