"""The nightly retention run: anonymise, purge and archive what its period says is due (shared/services/retention.py)."""
import logging

from shared.extensions import db
from shared.services import retention, sealing
from shared.timekeeping import parse_aware

from jobs.runtime import job

log = logging.getLogger("orderloom.jobs")


@job
def apply_retention(now: str | None = None) -> dict:
    """Seal first (only sealed rows are archived), then apply every period; counts per class are audited.

    `now` (ISO 8601) lets a caller (a test) set the clock; a re-run with nothing due changes nothing."""
    sealing.seal_all(commit=db.session.commit)
    counts = retention.run(parse_aware(now, "now") if now else None, commit=db.session.commit)
    log.info("job=apply_retention %s", " ".join(f"{code}={count}" for code, count in counts.items()))
    return counts
