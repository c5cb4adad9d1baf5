"""The exception center: one list with filters and a countdown, a page per exception to work it, the routing / SLA
/ canned-reply settings (for `exceptions` approve) and the monthly closed-loop report."""
from datetime import timedelta

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.exceptions import NotFound as HttpNotFound

from portal.access import requires
from portal.forms import (CannedReplyForm, ExceptionAssignForm, ExceptionRouteForm, ExceptionSlaForm,
                          ExceptionTransitionForm, StockOfferForm)
from portal.outcomes import commit_or_refuse, flash_form_errors
from shared.exception_lifecycle import EXCEPTION, STATES
from shared.extensions import db
from shared.labels import (EXCEPTION_CATEGORY, EXCEPTION_KIND, EXCEPTION_STATE, SLA_CLOCK, STOCK_OFFER_KIND,
                           STOCK_OFFER_STATUS, label, translated)
from shared.models import StaffUser
from shared.security.permissions import can
from shared.services import exceptions, roles, stock_offers
from shared.services.errors import ServiceError
from shared.timekeeping import local_date, utc_now
from shared.web import staff_actor

bp = Blueprint("exceptions", __name__, url_prefix="/exceptions")


def _span(delta: timedelta) -> str:
    minutes = int(abs(delta).total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    return (f"{days}d " if days else "") + (f"{hours}h " if hours or days else "") + f"{minutes}m"


def countdown(row, now) -> tuple[str, str]:
    """What the countdown column says (time left, overdue, paused, done) and its CSS class."""
    if row.status in ("resolved", "closed"):
        return (_("Met") if not row.breached else _("Breached"), "muted" if not row.breached else "bad")
    left = exceptions.time_left(row, now)
    if left is None:
        return _("Paused"), "muted"
    if left.total_seconds() < 0:
        return _("%(span)s overdue", span=_span(left)), "bad"
    return _("%(span)s left", span=_span(left)), "warn" if row.warned_at else "ok"


def _language() -> str:
    locale = get_locale()
    return "zh" if locale is not None and locale.language == "zh" else "en"


@bp.get("/")
@requires("exceptions", "view")
def index():
    try:
        filters = exceptions.parse_filters(request.args)
        window = exceptions.page(filters, current_user.id, cursor=request.args.get("cursor"),
                                 back=request.args.get("before"))
        problem = None
    except ServiceError as refused:
        filters, window, problem = exceptions.Filters(), None, refused.message
    now = utc_now()
    rows = window.rows if window else []
    return render_template("portal/exceptions/index.html", rows=rows, window=window, filters=filters,
                           problem=problem, now=now, countdown=countdown, teams=roles.all_teams(),
                           categories=exceptions.CATEGORIES, kinds=EXCEPTION_KIND, states=STATES,
                           unrouted=exceptions.unrouted_count() if can(current_user.role, "exceptions", "approve")
                           else None, args=request.args, zh=_language() == "zh")


def _exception_or_404(exception_id: int):
    try:
        return exceptions.get_exception(exception_id)
    except ServiceError:
        raise HttpNotFound() from None


def _assignable():
    users = db.session.query(StaffUser).filter(StaffUser.active.is_(True)).order_by(StaffUser.username).all()
    return [(str(u.id), f"{u.display_name} ({u.username})") for u in users if can(u.role, "exceptions", "edit")]


@bp.get("/<int:exception_id>")
@requires("exceptions", "view")
def detail(exception_id: int):
    return _detail_page(_exception_or_404(exception_id))


def _detail_page(row, refused_form=None, status: int = 200):
    """The exception; after a refused move, shown again (422) with that move's comment as it was typed."""
    language = _language()
    replies = exceptions.canned_replies(row.category)
    move_forms = {}
    for target in EXCEPTION.targets(row.status):
        if target == "assigned":
            continue
        kept = refused_form is not None and refused_form.to.data == target
        form = refused_form if kept else ExceptionTransitionForm(prefix=f"m-{target}", to=target, formdata=None)
        form.canned.choices = [("", "—")] + [(r.code, r.text_zh if language == "zh" else r.text_en) for r in replies]
        move_forms[target] = form
    assign_form = ExceptionAssignForm()
    assign_form.assignee.choices = _assignable()
    return render_template("portal/exceptions/detail.html", row=row, history=exceptions.history(row),
                           move_forms=move_forms, assign_form=assign_form, now=utc_now(), countdown=countdown,
                           needs_comment=EXCEPTION.needs_comment,
                           editable=can(current_user.role, "exceptions", "edit"),
                           assignable=row.status not in ("resolved", "closed"), zh=language == "zh",
                           offers=stock_offers.offers_for_exception(row), describe_offer=stock_offers.describe,
                           offer_form=StockOfferForm(formdata=None), offer_kinds=translated(STOCK_OFFER_KIND),
                           offer_states=translated(STOCK_OFFER_STATUS),
                           may_accept=can(current_user.role, "orders", "edit")), status


@bp.post("/<int:exception_id>/transition")
@requires("exceptions", "edit")
def transition(exception_id: int):
    row = _exception_or_404(exception_id)
    target = request.form.get("target", "")
    form = ExceptionTransitionForm(prefix=f"m-{target}")
    if not form.validate_on_submit():
        flash_form_errors(form)
        return _detail_page(row, form if form.to.data else None, 422)
    if not commit_or_refuse(lambda: exceptions.transition(row, form.to.data, staff_actor(current_user),
                                                          comment=form.comment.data, canned=form.canned.data or None,
                                                          language=_language()),
                            _("Exception #%(id)s is now %(state)s.", id=row.id,
                              state=label(EXCEPTION_STATE, form.to.data)), form=form):
        return _detail_page(_exception_or_404(exception_id), form, 422)
    return redirect(url_for("exceptions.detail", exception_id=exception_id), 303)


@bp.post("/<int:exception_id>/assign")
@requires("exceptions", "edit")
def assign(exception_id: int):
    row = _exception_or_404(exception_id)
    form = ExceptionAssignForm()
    if form.validate_on_submit():
        assignee = db.session.get(StaffUser, int(form.assignee.data)) if form.assignee.data.isdigit() else None
        commit_or_refuse(lambda: exceptions.assign(row, assignee, staff_actor(current_user)),
                         _("Exception #%(id)s assigned.", id=row.id))
    else:
        flash_form_errors(form)
    return redirect(url_for("exceptions.detail", exception_id=exception_id), 303)


# --- settings (exceptions: approve) --------------------------------------------------------------------------

def _settings_forms():
    route_form, sla_form, reply_form = ExceptionRouteForm(prefix="route"), ExceptionSlaForm(prefix="sla"), \
        CannedReplyForm(prefix="reply")
    route_form.key.choices = ([(c, label(EXCEPTION_CATEGORY, c)) for c in exceptions.CATEGORIES]
                              + [(k, label(EXCEPTION_KIND, k)) for k in exceptions.KINDS])
    route_form.team.choices = [(t.code, f"{t.name_zh} / {t.name_en} ({t.code})") for t in roles.all_teams()]
    sla_form.category.choices = reply_form.category.choices = [(c, label(EXCEPTION_CATEGORY, c))
                                                               for c in exceptions.CATEGORIES]
    sla_form.clock.choices = [(c, label(SLA_CLOCK, c)) for c in exceptions.CLOCKS]
    return route_form, sla_form, reply_form


@bp.get("/settings")
@requires("exceptions", "approve")
def settings():
    route_form, sla_form, reply_form = _settings_forms()
    teams = {t.code for t in roles.all_teams()}
    return render_template("portal/exceptions/settings.html", routes=exceptions.routes(), teams=teams,
                           targets=exceptions.sla_targets(), replies=exceptions.canned_replies(),
                           route_form=route_form, sla_form=sla_form, reply_form=reply_form,
                           categories=exceptions.CATEGORIES)


@bp.post("/settings/routes")
@requires("exceptions", "approve")
def save_route():
    form = _settings_forms()[0]
    if form.validate_on_submit():
        commit_or_refuse(lambda: exceptions.set_route(form.key.data, form.team.data, staff_actor(current_user)),
                         _("Routing saved."))
    else:
        flash_form_errors(form)
    return redirect(url_for("exceptions.settings"), 303)


@bp.post("/settings/sla")
@requires("exceptions", "approve")
def save_sla():
    form = _settings_forms()[1]
    if form.validate_on_submit():
        commit_or_refuse(lambda: exceptions.set_sla_target(form.category.data, form.first_response_minutes.data,
                                                           form.resolve_minutes.data, form.clock.data,
                                                           staff_actor(current_user)),
                         _("SLA target saved."))
    else:
        flash_form_errors(form)
    return redirect(url_for("exceptions.settings"), 303)


@bp.post("/settings/replies")
@requires("exceptions", "approve")
def save_reply():
    form = _settings_forms()[2]
    if form.validate_on_submit():
        commit_or_refuse(lambda: exceptions.save_canned_reply(form.category.data, form.code.data, form.text_zh.data,
                                                              form.text_en.data, staff_actor(current_user)),
                         _("Canned reply saved."))
    else:
        flash_form_errors(form)
    return redirect(url_for("exceptions.settings"), 303)


# --- the monthly report --------------------------------------------------------------------------------------

@bp.get("/report")
@requires("exceptions", "view")
def report():
    zone = current_app.config["MERCHANT_TIMEZONE"]
    today = local_date(utc_now(), zone)
    month = request.args.get("month") or f"{today.year:04d}-{today.month:02d}"
    problem, rows = None, []
    try:
        year, number = (int(part) for part in month.split("-", 1)) if len(month) == 7 else (0, 0)
        rows = exceptions.monthly_report(year, number, zone)
    except (ValueError, ServiceError):
        problem = _("The month is written YYYY-MM, e.g. 2026-11.")
    return render_template("portal/exceptions/report.html", rows=rows, month=month, problem=problem)


def _offer_outcome(action, exception_id: int):
    """Run an out-of-stock offer action and commit; a refusal rolls back and says why (nothing changed)."""
    try:
        outcome = action()
        db.session.commit()
    except ServiceError as refused:
        db.session.rollback()
        flash(_("Not saved: %(message)s") % {"message": refused.message}, "error")
    else:
        if outcome is None:
            flash(_("The stock has not arrived yet: the order still waits."), "info")
        else:
            said = _("%(outcome)s The order goes on.", outcome=outcome.message) if outcome.released \
                else outcome.message
            flash(said, "success")
    return redirect(url_for("exceptions.detail", exception_id=exception_id), 303)


@bp.post("/<int:exception_id>/offers/accept")
@requires("orders", "edit")
def accept_offer(exception_id: int):
    """Customer service accepts one of the offers of an out-of-stock exception (the customer agreed)."""
    row = _exception_or_404(exception_id)
    form = StockOfferForm()
    if not form.validate_on_submit():
        flash_form_errors(form)
        return redirect(url_for("exceptions.detail", exception_id=exception_id), 303)
    offer = next((o for o in stock_offers.offers_for_exception(row) if str(o.id) == (form.offer.data or "")), None)
    if offer is None:
        raise HttpNotFound()
    return _offer_outcome(lambda: stock_offers.accept(offer, staff_actor(current_user)), exception_id)


@bp.post("/<int:exception_id>/offers/recheck")
@requires("orders", "edit")
def recheck_offers(exception_id: int):
    """Look at the stock again for the waiting order (a receipt arrived, an approved transfer was made)."""
    row = _exception_or_404(exception_id)
    if row.order is None or not stock_offers.offers_for_exception(row):
        raise HttpNotFound()
    form = StockOfferForm()
    if not form.validate_on_submit():
        flash_form_errors(form)
        return redirect(url_for("exceptions.detail", exception_id=exception_id), 303)
    return _offer_outcome(lambda: stock_offers.check_stock_again(row.order, staff_actor(current_user)), exception_id)
