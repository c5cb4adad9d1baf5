"""Bulk actions from the order list: start one on the orders selected (or all that match the filter), confirm an
irreversible one, watch its progress, read and download the result per order, print its pick list."""
import logging

from flask import Blueprint, abort, flash, g, make_response, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.datastructures import MultiDict

from portal.access import requires
from portal.forms import ConfirmForm
from shared import dispatch
from shared.extensions import db
from shared.order_search import parse_filters
from shared.security import sessions
from shared.services import bulk_actions, second_factor
from shared.services.errors import ServiceError
from shared.timekeeping import utc_now
from shared.web import staff_actor

bp = Blueprint("bulk", __name__, url_prefix="/bulk")
log = logging.getLogger("orderloom.portal")
FILTER_PREFIX = "f."  # the list's filters, carried in the bulk form for "all that match"
RESULT_ROWS = 500  # shown on the page; the CSV has every order


def _zone() -> str:
    return g.get("timezone") or "Asia/Shanghai"


def _back_to_list():
    """Back to the list with its filters (never a personal value in the address)."""
    kept = MultiDict([(key[len(FILTER_PREFIX):], value) for key, value in request.form.items(multi=True)
                      if key.startswith(FILTER_PREFIX) and value
                      and key[len(FILTER_PREFIX):] not in ("q", "phone_last4")])
    return redirect(url_for("orders.index", **kept.to_dict(flat=False)), 303)


def _load(bulk_id: str):
    try:
        return bulk_actions.for_owner_or_404(bulk_id, current_user.id)
    except ServiceError:
        abort(404)


def run_inline_if_no_redis(job) -> None:
    """Without Redis the job runs here, now (the service's after-commit send is skipped inline); so does the
    governed export a bulk export asked for."""
    if not dispatch.jobs_run_inline():
        return
    try:
        dispatch.send(bulk_actions.RUN_JOB, job.id, queue=bulk_actions.QUEUE)
    except Exception as error:  # its failure is on the job row; the page says so, not a 500
        db.session.rollback()
        log.warning("job=run_bulk_job bulk=%s failed inline: %s", job.id, error)
        return
    from portal.exports import run_inline_if_no_redis as run_export

    job = db.session.get(type(job), job.id)
    if job is not None and job.export_public_id:
        from shared.services import exports

        export = exports.by_public_id(job.export_public_id)
        if export is not None:
            run_export(export.id)


@bp.post("/")
@requires("orders", "view")  # each action's own permission is the service's, checked for the action and per order
def start():
    """Start a bulk action on the orders ticked (`order`) or, with scope=matching, on every order the list's
    filters (`f.<name>`) match now."""
    form = request.form
    if not ConfirmForm().validate_on_submit():
        flash(_("Not started: the form expired; try again."), "error")
        return _back_to_list()
    actor = staff_actor(current_user)
    matching = None
    try:
        if form.get("scope") == "matching":
            matching = parse_filters(MultiDict([(k[len(FILTER_PREFIX):], v) for k, v in form.items(multi=True)
                                                if k.startswith(FILTER_PREFIX)]), _zone(), drill_down=True)
        job = bulk_actions.start(
            form.get("action", ""), actor, order_nos=form.getlist("order"), matching=matching, zone=_zone(),
            reason=form.get("reason"), assignee=form.get("assignee") or None, team=form.get("team") or None,
            stepped_up=second_factor.is_fresh(current_user, sessions.session_id(session)))
        db.session.commit()
    except ServiceError as refused:
        db.session.rollback()
        flash(_("Not started: %(message)s", message=refused.message), "error")
        return _back_to_list()
    if job.status == "queued":
        run_inline_if_no_redis(job)
    return redirect(url_for("bulk.page", bulk_id=job.public_id), 303)


def _context(job) -> dict:
    finished = job.status in ("done", "failed", "discarded")
    context = {"job": job, "finished": finished, "confirm_form": ConfirmForm(),
               "action_name": bulk_actions.action_name(job.action),
               "outcome_words": bulk_actions.outcome_words, "result_words": bulk_actions.result_words,
               "items": bulk_actions.items_of(job, limit=RESULT_ROWS) if finished else [],
               "result_rows": RESULT_ROWS, "status_words": bulk_actions.status_words(job)}
    if job.status == "awaiting_confirmation":
        context["holding"], context["units"] = bulk_actions.stock_released(job)
    return context


@bp.get("/<bulk_id>")
@requires("orders", "view")
def page(bulk_id: str):
    job = _load(bulk_id)
    return render_template("portal/bulk/page.html", **_context(job))


@bp.get("/<bulk_id>/progress")
@requires("orders", "view")
def progress(bulk_id: str):
    """How far the job has got; htmx asks again every 2 s until it is done, then the results are swapped in."""
    job = _load(bulk_id)
    return render_template("portal/bulk/_progress.html", **_context(job))


@bp.post("/<bulk_id>/confirm")
@requires("orders", "view")
def confirm(bulk_id: str):
    job = _load(bulk_id)
    if ConfirmForm().validate_on_submit():
        try:
            bulk_actions.confirm(job, staff_actor(current_user))
            db.session.commit()
        except ServiceError as refused:
            db.session.rollback()
            flash(_("Not started: %(message)s", message=refused.message), "error")
            return redirect(url_for("bulk.page", bulk_id=bulk_id), 303)
        run_inline_if_no_redis(job)
    return redirect(url_for("bulk.page", bulk_id=bulk_id), 303)


@bp.post("/<bulk_id>/discard")
@requires("orders", "view")
def discard(bulk_id: str):
    job = _load(bulk_id)
    if ConfirmForm().validate_on_submit():
        try:
            bulk_actions.discard(job, staff_actor(current_user))
            db.session.commit()
            flash(_("Nothing was done to the orders."), "info")
        except ServiceError as refused:
            db.session.rollback()
            flash(_("Not changed: %(message)s", message=refused.message), "error")
    return redirect(url_for("bulk.page", bulk_id=bulk_id), 303)


@bp.get("/<bulk_id>/results.csv")
@requires("orders", "view")
def results_csv(bulk_id: str):
    """Every order's result as CSV, in the reader's language."""
    job = _load(bulk_id)
    response = make_response(bulk_actions.results_csv(job))
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="orderloom-bulk-{job.public_id}.csv"'
    return response


@bp.get("/<bulk_id>/pick-list")
@requires("fulfilment", "view")
def pick_list(bulk_id: str):
    """The printed orders' lines by bin, as a plain page for the printer."""
    job = _load(bulk_id)
    if job.action != "print" or job.status != "done":
        abort(404)
    return render_template("portal/bulk/pick_list.html", job=job, lines=bulk_actions.pick_lines(job),
                           printed_at=utc_now())
