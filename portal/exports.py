"""My exports: start a governed export, watch its progress, download it (its requester only, 3 times in 24 h);
and for auditors, the list of everyone's exports. Every change is one service call (shared.services.exports)."""
import logging

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from portal.access import requires
from portal.forms import ExportForm, TraceForm
from portal.outcomes import flash_form_errors, flash_held
from shared import dispatch, labels
from shared.export_lifecycle import IN_PROGRESS
from shared.extensions import db
from shared.security.masking import may_reveal
from shared.services import audit, exports
from shared.services.errors import NotFound, ServiceError
from shared import timekeeping
from shared.services.validation import N_, say
from shared.web import error_response, staff_actor

# What a person reads when this module refuses: message codes, said in the reader's language (say).
NO_SUCH_EXPORT = N_("No such export")

bp = Blueprint("exports", __name__, url_prefix="/exports")
log = logging.getLogger("orderloom.portal.exports")
PAGE = 100
TRACE_MAX_BYTES = 50 * 1024 * 1024  # a leaked export can be large; only the marker is read


@bp.url_value_preprocessor
def _larger_uploads(endpoint, _values):
    """A file to trace may be larger than the portal's 1 MB request limit (set before the CSRF check reads it)."""
    if endpoint == "exports.trace":
        request.max_content_length = TRACE_MAX_BYTES

bp.add_app_template_filter(lambda code: labels.label(labels.EXPORT_STATUS, code), "export_status_label")
bp.add_app_template_filter(lambda code: str(exports.KINDS[code].label) if code in exports.KINDS else code,
                           "export_kind_label")


def _form() -> ExportForm:
    form = ExportForm()
    form.kind.choices = [(kind.code, str(kind.label)) for kind in exports.kinds_for(current_user.role)]
    return form


def _page(form: ExportForm | None = None, status: int = 200):
    rows = exports.own_exports(current_user.id)
    return render_template("portal/exports/index.html", form=form or _form(), exports=rows, now=timekeeping.utc_now(),
                           max_downloads=exports.MAX_DOWNLOADS, downloads_left=exports.downloads_left,
                           held=exports.held_approvals(rows),
                           personal_allowed=may_reveal(current_user.role)), status


@bp.get("/")
@requires("exports", "view")
def index():
    return _page()


def _start(personal: bool):
    form = _form()
    if not form.validate_on_submit():
        flash_form_errors(form)
        return _page(form, 422)
    actor = staff_actor(current_user)
    try:
        export = exports.request_export(form.kind.data, form.format.data, form.filters(), actor, personal=personal)
        if personal:
            # This route is the requester's fresh step-up (portal.access `step_up=True`): it clears the export,
            # unless an approval rule on exports holds it for approval first.
            exports.clear_or_hold(export, actor, ref=f"session:{current_user.username}")
        db.session.commit()
    except ServiceError as refused:
        db.session.rollback()
        flash(_("No export started: %(message)s", message=refused.message), "error")
        if refused.field and refused.field in form:
            form[refused.field].errors = [*form[refused.field].errors, refused.message]
        return _page(form, refused.status)
    if export.approval_request is not None:  # held: nothing runs until it is approved (like an order, 202)
        flash_held(export.approval_request)
        return _page(_form(), 202)
    run_inline_if_no_redis(export.id)
    flash(_("Export %(id)s started; it appears below when it is ready.", id=export.public_id), "success")
    return redirect(url_for("exports.index"), 303)


def run_inline_if_no_redis(export_id: int) -> None:
    """Without Redis the job runs here, now (the service's after-commit send is skipped inline)."""
    if not dispatch.jobs_run_inline():
        return
    try:
        dispatch.send(exports.RUN_JOB, export_id, queue=exports.QUEUE)
    except Exception as error:  # its failure is on the export row; the page says so, not a 500
        db.session.rollback()
        log.warning("job=run_export export=%s failed inline: %s", export_id, error)


@bp.post("/")
@requires("exports", "edit")
def start():
    """An export without personal columns: personal fields masked or hidden as the role sees them."""
    return _start(personal=False)


@bp.post("/personal")
@requires("exports", "edit", also=may_reveal, step_up=True)  # personal data leaves the system: a fresh second factor
def start_personal():
    """An export with personal columns in full (for roles with FULL visibility), cleared by a fresh step-up."""
    return _start(personal=True)


@bp.get("/<export_id>/progress")
@requires("exports", "view")
def progress(export_id: str):
    """One export's row; htmx asks again every 2 s while it is queued or running."""
    try:
        export = exports.for_requester_or_404(export_id, current_user.id)
    except ServiceError as missing:
        return error_response(missing)
    return render_template("portal/exports/_row.html", export=export, now=timekeeping.utc_now(),
                           in_progress=IN_PROGRESS, held=exports.held_approvals([export]),
                           max_downloads=exports.MAX_DOWNLOADS, downloads_left=exports.downloads_left)


@bp.get("/<export_id>/download")
@requires("exports", "view")
def download(export_id: str):
    """The file, for its requester only (counted, access-logged); anyone else is refused, even an admin."""
    export = exports.by_public_id(export_id)
    if export is None:
        return error_response(NotFound(say(NO_SUCH_EXPORT), code="not_found"))
    try:
        content, filename, mimetype = exports.download(export, staff_actor(current_user))
        db.session.commit()
    except ServiceError as refused:
        db.session.rollback()
        return error_response(refused)
    return Response(content, mimetype=mimetype, headers={"Content-Disposition": f"attachment; filename={filename}",
                                                         "Cache-Control": "no-store"})


@bp.get("/all")
@requires("access_log", "view")
def everyone():
    """Every export, for auditors: who asked for what, cleared how, how many downloads. Files stay their owners'."""
    before = request.args.get("before") or ""
    rows = exports.all_exports(int(before) if before.isdigit() else None, limit=PAGE)
    return render_template("portal/exports/all.html", exports=rows,
                           next_before=rows[-1].id if len(rows) == PAGE else None)


@bp.route("/trace", methods=["GET", "POST"])
@requires("access_log", "view")
def trace():
    """Trace a file back to its export: export id, exporter, time, and whether it is that very file."""
    form = TraceForm()
    found, searched = None, False
    if form.validate_on_submit():
        searched = True
        found = exports.identify(form.file.data.read())
        audit.log_access(staff_actor(current_user), "trace", "export", found["export_id"] if found else "unknown",
                         [], channel="portal")
        db.session.commit()
    elif request.method == "POST":
        flash_form_errors(form)
    return render_template("portal/exports/trace.html", form=form, found=found, searched=searched)
