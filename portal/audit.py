"""The audit viewer, the chain check, and the access log; their exports are governed exports (portal/exports.py)."""
from flask import Blueprint, render_template, request
from flask_login import current_user
from sqlalchemy import select

from portal.access import requires
from shared import history
from shared.extensions import db
from shared.models import AccessLogEntry, AuditEvent
from shared.services import export_kinds, sealing

bp = Blueprint("audit", __name__, url_prefix="/audit")
PAGE = 100


def _before(query, column, raw):
    return query.where(column < int(raw)) if raw and raw.isdigit() else query


def _event_query():
    """The events the filters ask for, newest first (by id: an event not sealed yet has no number so far); the
    same filters as the audit-trail export (shared.services.export_kinds), which the page's Export button starts."""
    filters = {"action": (request.args.get("action") or "").strip()[:64],
               "entity": (request.args.get("entity") or "").strip()[:64],
               "actor": (request.args.get("actor") or "").strip()[:120]}
    return export_kinds.audit_event_query(filters).order_by(AuditEvent.id.desc()), filters


def _shown(event, role: str) -> dict:
    """One event as a reader of `role` may see it, told as a sentence (shared.history) with the raw event beside:
    personal fields hidden to the role are hidden in both."""
    return {"event": event, "told": history.describe(event, role)}


@bp.get("/")
@requires("audit", "view")
def index():
    query, filters = _event_query()
    query = _before(query, AuditEvent.id, request.args.get("before"))
    events = db.session.execute(query.limit(PAGE)).scalars().all()
    windows = [sealing.unsealed_window(name) for name in sealing.LOGS]
    return render_template("portal/audit/index.html", rows=[_shown(e, current_user.role) for e in events], windows=windows, **filters,
                           next_before=events[-1].id if len(events) == PAGE else None)


@bp.post("/verify")
@requires("audit", "view")
def verify():
    """Seal what waits and check every chain against its checkpoints."""
    try:
        sealing.seal_all(commit=db.session.commit)
    except sealing.SealRefused:
        db.session.rollback()  # the verify below names the problem
    reports = sealing.verify_all()
    return render_template("portal/audit/_verify.html", reports=reports)


@bp.get("/access-log")
@requires("access_log", "view")
def access_log():
    query = _before(select(AccessLogEntry).order_by(AccessLogEntry.id.desc()), AccessLogEntry.id,
                    request.args.get("before"))
    entries = db.session.execute(query.limit(PAGE)).scalars().all()
    words = [(entry, history.access_words(entry)) for entry in entries]
    return render_template("portal/audit/access_log.html", entries=words,
                           next_before=entries[-1].id if len(entries) == PAGE else None)


@bp.get("/access-report")
@requires("access_log", "view")
def access_report():
    """The access report for a chosen range (default: last month), with buttons that export it as XLSX or PDF."""
    from shared.services import access_report as report_service
    from shared.services.errors import ValidationFailed

    first, last = report_service.last_month()
    date_from = (request.args.get("date_from") or first.isoformat()).strip()[:10]
    date_to = (request.args.get("date_to") or last.isoformat()).strip()[:10]
    try:
        report = report_service.build(date_from, date_to)
    except ValidationFailed as refused:
        return render_template("portal/audit/access_report.html", error=refused, date_from=date_from,
                               date_to=date_to, sections=None, report=None), 422
    db.session.commit()  # how far each chain verified (sealing.record_verified): the next load hashes only what is new
    return render_template("portal/audit/access_report.html", error=None, date_from=date_from, date_to=date_to,
                           sections=report_service.sections(report), report=report)
