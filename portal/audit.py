"""The audit viewer, the chain check, and the access-log export for auditors."""
import csv
import io
import json

from flask import Blueprint, Response, render_template, request, stream_with_context
from flask_login import current_user
from sqlalchemy import select

from portal.access import requires
from shared.extensions import db
from shared.models import AccessLogEntry, AuditEvent
from shared.services import audit, sealing
from shared.web import staff_actor

bp = Blueprint("audit", __name__, url_prefix="/audit")
PAGE = 100


def _before(query, column, raw):
    return query.where(column < int(raw)) if raw and raw.isdigit() else query


def _cell(value):
    """Neutralise spreadsheet formulas (CSV injection): a leading = + - @ is prefixed with a quote."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _event_query():
    """The events the filters ask for, newest first (by id: an event not sealed yet has no number so far)."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc())
    action = (request.args.get("action") or "").strip()[:64]
    entity = (request.args.get("entity") or "").strip()[:64]
    actor = (request.args.get("actor") or "").strip()[:120]
    if action:
        query = query.where(AuditEvent.action.startswith(action, autoescape=True))
    if entity:
        query = query.where(AuditEvent.entity_id == entity)
    if actor:
        query = query.where(AuditEvent.actor_label == actor)
    return query, {"action": action, "entity": entity, "actor": actor}


def _shown(event, role: str) -> dict:
    """One event as a reader of `role` may see it: personal fields hidden to the role are hidden here too."""
    return {"event": event, "before": audit.visible_values(event.before, event.entity_type, role),
            "after": audit.visible_values(event.after, event.entity_type, role)}


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


@bp.get("/events.csv")
@requires("audit", "view", step_up=True)  # an export with personal data: a fresh second verification
def events_csv():
    """The filtered events as CSV, personal fields as the reader may see them; the export is access-logged."""
    query, filters = _event_query()
    role = current_user.role
    audit.log_access(staff_actor(current_user), "export", "audit_events", filters["entity"] or "all", ["audit"],
                     channel="export")
    db.session.commit()

    def rows():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["seq", "id", "occurred_at_utc", "actor", "ip", "action", "entity_type", "entity_id",
                         "before", "after", "reason"])
        before_id = None
        while True:
            page = query.where(AuditEvent.id < before_id) if before_id else query
            batch = db.session.execute(page.limit(1000)).scalars().all()
            if not batch:
                break
            for event in batch:
                shown = _shown(event, role)
                writer.writerow([_cell(v) for v in (
                    event.seq, event.id, event.occurred_at.isoformat(), event.actor_label, event.ip, event.action,
                    event.entity_type, event.entity_id,
                    json.dumps(shown["before"], ensure_ascii=False) if shown["before"] else "",
                    json.dumps(shown["after"], ensure_ascii=False) if shown["after"] else "", event.reason)])
                before_id = event.id
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            for event in batch:
                db.session.expunge(event)
        yield buffer.getvalue()

    return Response(stream_with_context(rows()), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=audit-events.csv"})


@bp.get("/access-log")
@requires("access_log", "view")
def access_log():
    query = _before(select(AccessLogEntry).order_by(AccessLogEntry.id.desc()), AccessLogEntry.id,
                    request.args.get("before"))
    entries = db.session.execute(query.limit(PAGE)).scalars().all()
    return render_template("portal/audit/access_log.html", entries=entries,
                           next_before=entries[-1].id if len(entries) == PAGE else None)


@bp.get("/access-log.csv")
@requires("access_log", "view", step_up=True)  # who saw whose data, from which address: personal data
def access_log_csv():
    """The whole access log as CSV; the export itself is logged too."""
    audit.log_access(staff_actor(current_user), "export", "access_log", "all", ["access_log"], channel="export")
    db.session.commit()

    def rows():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["id", "occurred_at_utc", "actor", "ip", "action", "entity_type", "entity_id", "fields",
                         "channel"])
        last_id = 0
        while True:
            batch = db.session.execute(select(AccessLogEntry).where(AccessLogEntry.id > last_id)
                                       .order_by(AccessLogEntry.id).limit(1000)).scalars().all()
            if not batch:
                break
            for entry in batch:
                writer.writerow([_cell(v) for v in (entry.id, entry.occurred_at.isoformat(), entry.actor_label,
                                                    entry.ip, entry.action, entry.entity_type, entry.entity_id,
                                                    entry.fields, entry.channel)])
                last_id = entry.id
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        yield buffer.getvalue()

    return Response(stream_with_context(rows()), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=access-log.csv"})
