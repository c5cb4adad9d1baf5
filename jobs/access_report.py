"""The monthly access report for auditors: last month's report asked for once for every auditor."""
import logging

from shared.extensions import db
from shared.services import access_report

from jobs.runtime import job

log = logging.getLogger("orderloom.jobs")


@job
def request_monthly_access_reports() -> int:
    """Hourly: any auditor without last month's report gets one asked for (its export job then makes the file)."""
    made = access_report.request_monthly()
    db.session.commit()
    log.info("job=request_monthly_access_reports requested=%s", len(made))
    return len(made)
