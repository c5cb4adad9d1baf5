"""Governed exports: asked for by staff, cleared when personal, made by a job with progress, watermarked, downloaded
by their requester at most 3 times within 24 hours, purged after 7 days.

Personal columns are written in full only for a role whose visibility (shared.security.permissions) is FULL for
them, and only once the export was cleared by a fresh step-up of the requester or by an approval; the role is the
requester's role when the file is made, so a role taken away meanwhile reveals nothing. Everyone else's files show
personal fields masked or hidden, as the portal shows them. Every request, clearance and file made is in the audit
chain; every file made and every download is in the access log.
"""
import hashlib
import secrets
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import force_locale
from sqlalchemy import select, update

from shared import dispatch, exports, timekeeping
from shared.actors import SYSTEM, Actor
from shared.export_lifecycle import EXPORT
from shared import labels
from shared.extensions import db
from shared.models import ExportDownload, ExportRequest, StaffUser
from shared.security.permissions import Visibility, can, visibility
from shared.services import audit
from shared.services.errors import Conflict, Forbidden, Gone, NotFound, ValidationFailed
from shared.services.export_kinds import KINDS, ExportKind, Reader, get
from shared.services.validation import N_, say

# What a person reads when this module refuses: message codes, said in the reader's language (say).
STAFF_ONLY = N_("Exports are asked for by a signed-in staff member")
UNKNOWN_EXPORT_FORMAT = N_("Unknown export format \"%(format)s\" for %(export_kind_code)s; use %(formats)s")
NO_SUCH_FILTER = N_("%(export_kind_code)s exports take no filter \"%(unknown)s\"")
ROLE_MAY_NOT_EXPORT = N_("Your role (%(role)s) may not export %(export_kind_code)s")
INVALID_CLEARANCE = N_("Clearance is by step_up or approval, not \"%(by)s\"")
NO_CLEARANCE_NEEDED = N_("This export has no personal columns: it needs no clearance")
NOT_AWAITING_CLEARANCE = N_("This export is %(export_status)s: it is not waiting for clearance")
CLEARANCE_TOO_LATE = N_("Clearance came more than 24 hours after the request: ask again")
STEP_UP_BY_REQUESTER = N_("Only the requester's own step-up clears an export")
PERSONAL_NOT_ALLOWED = N_("The requester's role may not see personal data in full")
EXPORT_NOT_RUNNING = N_("The export is not running")
NOT_YOURS_OR_NONE = N_("No such export of yours")
NOT_YOUR_EXPORT = N_("Only the person who asked for an export may download it")
EXPORT_PURGED = N_("This export's file was purged (files are kept 7 days)")
EXPORT_EXPIRED = N_("This export's link expired 24 hours after the file was made: ask for a new one")
EXPORT_NOT_READY = N_("This export is %(export_status)s: there is no file yet")
DOWNLOAD_LIMIT = N_("This export was downloaded %(max_downloads)s times already: ask for a new one")
NO_PERSONAL_COLUMNS = N_("%(export_kind_code)s exports have no personal columns")
ROLE_MAY_NOT_SEE_PERSONAL = N_("Your role (%(role)s) may not see personal data in full, so it cannot export it")

RUN_JOB = "jobs.exports.run_export"
QUEUE = "documents"
JOB_TIMEOUT = 1800  # seconds: a large XLSX is more than RQ's default 180 s
FORMATS = {"csv": "text/csv", "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
           "pdf": "application/pdf", "zip": "application/zip"}  # each kind says which it is made in (ExportKind.formats)
LINK_LIFETIME = timedelta(hours=24)
MAX_DOWNLOADS = 3
CLEARANCE_WINDOW = timedelta(hours=24)  # a personal export not cleared by then expires unmade
STALLED_AFTER = timedelta(seconds=JOB_TIMEOUT * 2)  # a running export whose worker died
RESEND_AFTER = timedelta(seconds=60)  # a queued export no job has claimed by then is sent again
CLEARANCE_KINDS = ("step_up", "approval")
PROGRESS_EVERY = 500  # rows between progress commits


def keep_file() -> timedelta:
    """How long a made file is kept: retention's period for export files (7 days unless an admin changed it)."""
    from shared.services import retention

    return retention.period("export_files")


def _now(now: datetime | None) -> datetime:
    return now or timekeeping.utc_now()


def revealable_fields(role: str, kind: ExportKind) -> list[str]:
    """The kind's personal fields this role may see in full (FULL visibility); empty: no personal export."""
    return [name for name in kind.personal_fields if visibility(role, name) is Visibility.FULL]


def may_export(role: str, kind: ExportKind) -> bool:
    resource, action = kind.permission
    return can(role, "exports", "edit") and can(role, resource, action)


def kinds_for(role: str) -> list[ExportKind]:
    return [kind for kind in KINDS.values() if may_export(role, kind)]


def _requester(actor: Actor) -> StaffUser:
    user = db.session.get(StaffUser, actor.id) if actor.id is not None else None
    if user is None or not user.active:
        raise Forbidden(say(STAFF_ONLY), code="forbidden")
    return user


def _new_public_id() -> str:
    # 16 hex digits after "EX": unguessable (64 bits), short enough to read out over the phone.
    return "EX" + secrets.token_hex(8).upper()


def request_export(kind: str, format: str, filters: dict | None, actor: Actor, personal: bool = False,
                   now: datetime | None = None) -> ExportRequest:
    """Record an export request (audited). Without personal columns it is queued at once; with them it waits for
    `clear_export`. Refused: an unknown kind or format, filters the kind does not take, a role that may not export
    the kind, or personal columns for a role that may not see any of them in full."""
    now = _now(now)
    export_kind = get(kind)
    if format not in FORMATS or format not in export_kind.formats:
        raise ValidationFailed(say(UNKNOWN_EXPORT_FORMAT, format=str(format)[:16], export_kind_code=export_kind.code,
                                   formats=", ".join(export_kind.formats)),
                               field="format", code="unknown_export_format")
    filters = dict(filters or {})
    unknown = sorted(set(filters) - set(export_kind.filter_fields))
    if unknown:
        raise ValidationFailed(say(NO_SUCH_FILTER, export_kind_code=export_kind.code, unknown=unknown[0]),
                               field=unknown[0],
                               code="invalid_filter")
    if not may_export(actor.role, export_kind):
        raise Forbidden(say(ROLE_MAY_NOT_EXPORT, role=labels.role_name(actor.role), export_kind_code=export_kind.code),
                        code="forbidden")
    user = _requester(actor)
    if personal:
        if not export_kind.personal_fields:
            raise ValidationFailed(say(NO_PERSONAL_COLUMNS, export_kind_code=export_kind.code), field="personal",
                                   code="no_personal_columns")
        if not revealable_fields(user.role, export_kind):
            raise Forbidden(say(ROLE_MAY_NOT_SEE_PERSONAL, role=labels.role_name(user.role)),
                            code="personal_not_allowed")
    cleaned = export_kind.clean_filters(filters)
    export = ExportRequest(
        public_id=_new_public_id(), kind=export_kind.code, format=format, filters=cleaned, personal=bool(personal),
        requested_by_id=user.id, requested_by_label=user.username, requested_by_name=user.display_name,
        requested_role=user.role, status="awaiting_clearance" if personal else "queued", progress_done=0,
        download_count=0, created_at=now)
    db.session.add(export)
    db.session.flush()
    audit.record(actor, "export.request", "export", export.public_id,
                 after={"kind": export.kind, "format": format, "filters": cleaned, "personal": export.personal,
                        "status": export.status})
    if not personal:
        _send_after_commit(export)
    return export


def clear_export(export: ExportRequest, actor: Actor, by: str, ref: str | None = None,
                 now: datetime | None = None) -> ExportRequest:
    """Clear a personal export for its job: by the requester's fresh step-up, or by an approval (ref: its id).

    Audited with how and by whom. The requester's role is checked again: a role that lost FULL visibility is
    refused here too (and the job checks once more when it writes the file)."""
    now = _now(now)
    if by not in CLEARANCE_KINDS:
        raise ValidationFailed(say(INVALID_CLEARANCE, by=str(by)[:20]), field="by",
                               code="invalid_clearance")
    if not export.personal:
        raise Conflict(say(NO_CLEARANCE_NEEDED), code="no_clearance_needed")
    if export.status != "awaiting_clearance":
        raise Conflict(say(NOT_AWAITING_CLEARANCE, export_status=labels.label(labels.EXPORT_STATUS, export.status)),
                       code="not_awaiting_clearance")
    if now >= timekeeping.as_utc(export.created_at) + CLEARANCE_WINDOW:
        raise Conflict(say(CLEARANCE_TOO_LATE), code="clearance_too_late")
    if by == "step_up" and actor.id != export.requested_by_id:
        raise Forbidden(say(STEP_UP_BY_REQUESTER), code="step_up_by_requester")
    user = db.session.get(StaffUser, export.requested_by_id)
    if user is None or not user.active or not revealable_fields(user.role, KINDS[export.kind]):
        raise Forbidden(say(PERSONAL_NOT_ALLOWED), code="personal_not_allowed")
    EXPORT.move(export, "queued")
    export.clearance, export.clearance_ref = by, (str(ref)[:120] if ref else None)
    export.cleared_by_label, export.cleared_at = actor.label, now
    audit.record(actor, "export.clear", "export", export.public_id, before={"status": "awaiting_clearance"},
                 after={"status": "queued", "by": by, "ref": export.clearance_ref})
    _send_after_commit(export)
    return export


def approval_context(export: ExportRequest) -> dict:
    """What the approval rules of `export.run` look at (approvals.CONDITIONS): the channel and warehouse filtered
    on, besides what is asked for (kind, format, personal columns)."""
    filters = dict(export.filters or {})
    context = {"kind": export.kind, "format": export.format, "personal": export.personal}
    if filters.get("channel"):
        context["channel"] = filters["channel"]
    if filters.get("warehouse"):
        context["warehouses"] = [filters["warehouse"]]
    return context


def clear_or_hold(export: ExportRequest, actor: Actor, ref: str | None = None,
                  now: datetime | None = None) -> ExportRequest:
    """A personal export asked for with the requester's fresh step-up: when an approval rule on `export.run`
    applies, it is held (still awaiting clearance, `export.approval_request` set) until the approval clears it
    (approvals.APPLY); otherwise the step-up clears it now."""
    from shared.services import approvals

    export.approval_request = approvals.gate(
        "export.run", export.public_id, approval_context(export), {"export": export.public_id}, actor,
        summary=f"{export.public_id} {export.kind} {export.format.upper()}", now=now)
    if export.approval_request is not None:
        return export
    return clear_export(export, actor, by="step_up", ref=ref, now=now)


def clear_by_approval(public_id: str, approval_id: int, approver: Actor, now: datetime | None = None) -> bool:
    """The final approval of a held personal export clears it for its job. An export that is no longer waiting
    (its 24-hour clearance window lapsed and the nightly job expired it) is left as it is: False."""
    now = _now(now)
    export = by_public_id(public_id)
    if export is None or export.status != "awaiting_clearance" or \
            now >= timekeeping.as_utc(export.created_at) + CLEARANCE_WINDOW:
        return False
    clear_export(export, approver, by="approval", ref=f"approval:{approval_id}", now=now)
    return True


def held_approvals(rows: list[ExportRequest]) -> dict[str, int]:
    """public id -> id of the pending approval request holding it, for the exports awaiting clearance."""
    from shared.models import ApprovalRequest

    waiting = [row.public_id for row in rows if row.status == "awaiting_clearance"]
    if not waiting:
        return {}
    return dict(db.session.execute(select(ApprovalRequest.entity_id, ApprovalRequest.id).where(
        ApprovalRequest.operation == "export.run", ApprovalRequest.entity_type == "export",
        ApprovalRequest.entity_id.in_(waiting), ApprovalRequest.state == "pending")).all())


def _send_after_commit(export: ExportRequest) -> None:
    """Start the job once the request is committed; without Redis the portal (or the sweeper) runs it."""
    dispatch.after_commit(RUN_JOB, export.id, queue=QUEUE, skip_inline=True, job_timeout=JOB_TIMEOUT)


# --- the job's steps ---------------------------------------------------------------------------------------

def claim(export_id: int, now: datetime | None = None) -> bool:
    """queued -> running, by one conditional UPDATE: of two jobs sent for one export, one makes the file."""
    now = _now(now)
    claimed = db.session.execute(
        update(ExportRequest).where(ExportRequest.id == export_id, ExportRequest.status == "queued")
        .values(status="running", started_at=now, progress_done=0)).rowcount
    return claimed == 1


def _reader_for(export: ExportRequest, zone: str) -> tuple[Reader, list[str]]:
    """The requester's role now; full values only if the export was cleared and that role has FULL."""
    user = db.session.get(StaffUser, export.requested_by_id)
    role = user.role if user is not None and user.active else "nobody"
    kind = KINDS[export.kind]
    revealed = revealable_fields(role, kind) if export.personal and export.clearance else []
    locale = (user.locale if user is not None else None) or "zh_CN"
    return Reader(role=role, reveal=bool(revealed), zone=zone, locale=locale), revealed


def build(export_id: int, commit, now: datetime | None = None) -> ExportRequest:
    """Write the claimed export's file: count, then read its rows a batch at a time, committing progress every
    PROGRESS_EVERY rows through `commit`; the file carries the watermark. Leaves the export done (not committed).
    `now`: the file's time (tests); otherwise the clock, read at the start (watermark) and at the end."""
    given, now = now, _now(now)
    export = db.session.get(ExportRequest, export_id)
    if export is None or export.status != "running":
        raise Conflict(say(EXPORT_NOT_RUNNING), code="export_not_running")
    kind = get(export.kind)
    zone = current_app.config.get("MERCHANT_TIMEZONE", "Asia/Shanghai")
    reader, revealed = _reader_for(export, zone)
    filters = dict(export.filters or {})
    total = kind.count(filters, reader)
    db.session.execute(update(ExportRequest).where(ExportRequest.id == export_id).values(progress_total=total))
    commit()
    watermark = exports.Watermark(export_id=export.public_id, username=export.requested_by_label,
                                  display_name=export.requested_by_name,
                                  made_at=timekeeping.to_zone(now, zone), zone=zone, kind=export.kind)
    written = [0]

    def counted():
        for row in kind.rows(filters, reader):
            yield row
            written[0] += 1
            if written[0] % PROGRESS_EVERY == 0:
                db.session.execute(update(ExportRequest).where(ExportRequest.id == export_id)
                                   .values(progress_done=written[0]))
                commit()

    if kind.document is not None:
        # A report made whole (not one table of rows), written in the requester's language.
        def progress(done: int) -> None:
            db.session.execute(update(ExportRequest).where(ExportRequest.id == export_id).values(progress_done=done))
            commit()

        extra = {"progress": progress} if kind.document_progress else {}
        with force_locale(reader.locale):
            content, written[0] = kind.document(filters, reader, export.format, watermark, **extra)
    elif export.format == "xlsx":
        content = exports.xlsx_bytes(kind.headers(reader), counted(), sheet_title=kind.sheet_title, zone=zone,
                                     watermark=watermark)
    else:
        content = exports.csv_bytes(kind.headers(reader), counted(), zone=zone, watermark=watermark)
    finished = given or timekeeping.utc_now()
    export = db.session.get(ExportRequest, export_id)
    EXPORT.move(export, "done")
    digest = hashlib.sha256(content).hexdigest()
    export.content, export.content_bytes, export.sha256 = content, len(content), digest
    export.row_count = export.progress_done = written[0]
    export.progress_total = max(total, written[0])
    export.revealed_fields = ",".join(revealed) or None
    export.filename = f"orderloom-{export.kind.replace('_', '-')}-{export.public_id}.{export.format}"
    export.finished_at = finished
    export.expires_at = finished + LINK_LIFETIME
    export.purge_after = finished + keep_file()
    audit.record(SYSTEM, "export.made", "export", export.public_id, before={"status": "running"},
                 after={"status": "done", "rows": written[0], "sha256": digest, "revealed": revealed})
    # The file holds these rows as the requester may see them: the access log says so (fields: what is in full).
    audit.log_access(Actor(id=export.requested_by_id, label=export.requested_by_label, role=reader.role),
                     "export", f"export:{export.kind}", export.public_id, revealed, channel="export")
    return export


def fail(export_id: int, reason: str, now: datetime | None = None) -> None:
    """A job that could not make the file: the export fails with its reason (audited)."""
    now = _now(now)
    export = db.session.get(ExportRequest, export_id)
    if export is None or not EXPORT.allowed(export.status, "failed"):
        return
    before = export.status
    EXPORT.move(export, "failed")
    export.error, export.finished_at, export.purge_after = reason[:500], now, now + keep_file()
    audit.record(SYSTEM, "export.failed", "export", export.public_id, before={"status": before},
                 after={"status": "failed", "error": export.error})


# --- downloads ---------------------------------------------------------------------------------------------

def for_requester_or_404(public_id: str, user_id: int) -> ExportRequest:
    """One of the user's own exports (another's is unreachable: not found)."""
    export = by_public_id(public_id)
    if export is None or export.requested_by_id != user_id:
        raise NotFound(say(NOT_YOURS_OR_NONE), code="not_found")
    return export


def by_public_id(public_id: str) -> ExportRequest | None:
    return db.session.execute(select(ExportRequest).where(ExportRequest.public_id == str(public_id)[:24])) \
        .scalar_one_or_none()


def downloads_left(export: ExportRequest, now: datetime | None = None) -> int:
    now = _now(now)
    if export.status != "done" or export.expires_at is None or now >= timekeeping.as_utc(export.expires_at):
        return 0
    return max(MAX_DOWNLOADS - export.download_count, 0)


def download(export: ExportRequest, actor: Actor, now: datetime | None = None) -> tuple[bytes, str, str]:
    """The file (bytes, filename, mimetype) for its requester, counted: at most 3 downloads within 24 h of the
    file being made. Writes a download row and an access-log entry. Refused (nothing written): someone else,
    a file not made yet, an expired or used-up link, a purged file."""
    now = _now(now)
    if actor.id is None or actor.id != export.requested_by_id:
        raise Forbidden(say(NOT_YOUR_EXPORT), code="not_your_export")
    if export.status == "purged" or (export.purged_at is not None):
        raise Gone(say(EXPORT_PURGED), code="export_purged")
    if export.status == "expired" or (export.status == "done" and export.expires_at is not None
                                      and now >= timekeeping.as_utc(export.expires_at)):
        if export.status == "expired" and export.download_count >= MAX_DOWNLOADS:
            raise Gone(say(DOWNLOAD_LIMIT, max_downloads=MAX_DOWNLOADS),
                       code="download_limit")
        raise Gone(say(EXPORT_EXPIRED),
                   code="export_expired")
    if export.status != "done":
        raise Conflict(say(EXPORT_NOT_READY, export_status=labels.label(labels.EXPORT_STATUS, export.status)),
                       code="export_not_ready")
    if export.download_count >= MAX_DOWNLOADS:
        raise Gone(say(DOWNLOAD_LIMIT, max_downloads=MAX_DOWNLOADS),
                   code="download_limit")
    # One conditional UPDATE: two downloads at once cannot both take the last of the three.
    counted = db.session.execute(
        update(ExportRequest).where(ExportRequest.id == export.id, ExportRequest.status == "done",
                                    ExportRequest.download_count < MAX_DOWNLOADS, ExportRequest.expires_at > now)
        .values(download_count=ExportRequest.download_count + 1)).rowcount
    if counted != 1:
        raise Gone(say(DOWNLOAD_LIMIT, max_downloads=MAX_DOWNLOADS),
                   code="download_limit")
    db.session.refresh(export)
    if export.download_count >= MAX_DOWNLOADS:
        EXPORT.move(export, "expired")  # the link is used up; the file stays until it is purged
    db.session.add(ExportDownload(export_id=export.id, actor_id=actor.id, actor_label=actor.label, ip=actor.ip,
                                  downloaded_at=now))
    revealed = export.revealed_fields.split(",") if export.revealed_fields else []
    audit.log_access(actor, "download", f"export:{export.kind}", export.public_id, revealed, channel="export")
    return export.content, export.filename, FORMATS[export.format]


# --- the sweeper and the nightly purge ---------------------------------------------------------------------

def unclaimed_export_ids(now: datetime | None = None) -> list[int]:
    """Queued exports no job has claimed for a minute (Redis was down, or a clearance came from elsewhere)."""
    now = _now(now)
    cutoff = now - RESEND_AFTER
    return list(db.session.execute(
        select(ExportRequest.id).where(ExportRequest.status == "queued",
                                       ((ExportRequest.cleared_at.is_(None) & (ExportRequest.created_at <= cutoff))
                                        | (ExportRequest.cleared_at <= cutoff)))
        .order_by(ExportRequest.id).limit(100)).scalars())


def expire_and_purge(now: datetime | None = None) -> dict:
    """Nightly: links past 24 h expire, personal exports never cleared in 24 h expire, exports whose job died
    fail, and files 7 days old are dropped (the row stays, with its SHA-256, for tracing). Audited as system;
    a re-run changes nothing."""
    now = _now(now)
    tally = {}

    def moved(target: str, condition, values: dict, action: str) -> None:
        rows = db.session.execute(select(ExportRequest.id, ExportRequest.status, ExportRequest.public_id)
                                  .where(condition)).all()
        names = {row.id: row.public_id for row in rows}
        result = EXPORT.move_set(ExportRequest, [(row.id, row.status) for row in rows], target, values)
        if result.moved:
            audit.record_many(SYSTEM, action, "export",
                              [(names[i], None, {"status": target}) for i in result.moved])
        tally[action] = len(result.moved)

    moved("expired", (ExportRequest.status == "done") & (ExportRequest.expires_at <= now), {}, "export.expire")
    moved("expired", (ExportRequest.status == "awaiting_clearance")
          & (ExportRequest.created_at <= now - CLEARANCE_WINDOW),
          {"finished_at": now, "purge_after": now + keep_file()}, "export.clearance_lapsed")
    moved("failed", (ExportRequest.status == "running") & (ExportRequest.started_at <= now - STALLED_AFTER),
          {"error": "the export job stopped before it finished", "finished_at": now, "purge_after": now + keep_file()},
          "export.stalled")
    moved("purged", ExportRequest.status.in_(EXPORT.sources("purged")) & (ExportRequest.purge_after <= now),
          {"content": None, "purged_at": now}, "export.purge")
    return tally


# --- tracing a leaked file ---------------------------------------------------------------------------------

def trace_export(file_bytes: bytes) -> str | None:
    """The export id a file carries (shared.exports.trace)."""
    return exports.trace(file_bytes)


def identify(file_bytes: bytes) -> dict | None:
    """Which export a file came from, who made it and when, and whether it is that file byte for byte."""
    public_id = exports.trace(file_bytes)
    export = by_public_id(public_id) if public_id else None
    if export is None:
        return None
    return {"export": export, "export_id": export.public_id, "exporter": export.requested_by_label,
            "exporter_name": export.requested_by_name, "made_at": export.finished_at,
            "exact_copy": export.sha256 == hashlib.sha256(file_bytes).hexdigest()}


def own_exports(user_id: int, limit: int = 100) -> list[ExportRequest]:
    return list(db.session.execute(select(ExportRequest).where(ExportRequest.requested_by_id == user_id)
                                   .order_by(ExportRequest.id.desc()).limit(limit)).scalars())


def all_exports(before: int | None = None, limit: int = 100) -> list[ExportRequest]:
    query = select(ExportRequest).order_by(ExportRequest.id.desc())
    if before:
        query = query.where(ExportRequest.id < before)
    return list(db.session.execute(query.limit(limit)).scalars())
