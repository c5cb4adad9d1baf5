"""The after-sales queue (售后): every request with filters by type, state and SLA, sortable; a page per request with
its lines, the customer's photos, the decisions the viewer's role may take (from the declared lifecycle) and its
history. Every change is one call of shared.services.after_sales."""
from flask import Blueprint, Response, abort, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from portal.access import requires
from portal.outcomes import commit_or_refuse
from shared import after_sales_lifecycle as lifecycle
from shared.extensions import db
from shared.labels import AFTER_SALE_STATE, AFTER_SALE_TYPE, RETURN_METHOD, RETURN_PICKUP_STATUS, translated
from shared.models import AuditEvent
from shared.security.permissions import can
from shared.services import after_sales
from shared.services.errors import NotFound, ServiceError
from shared.timekeeping import utc_now
from shared.web import staff_actor

bp = Blueprint("after_sales", __name__, url_prefix="/after-sales")


def _language() -> str:
    locale = get_locale()
    return "zh" if locale is not None and locale.language == "zh" else "en"


def _labels() -> dict:
    return {"type_names": translated(AFTER_SALE_TYPE), "state_names": translated(AFTER_SALE_STATE),
            "method_names": translated(RETURN_METHOD),
            "reason_names": {r.code: after_sales.reason_label(r, _language()) for r in after_sales.reasons(False)}}


@bp.get("/")
@requires("after_sales", "view")
def index():
    """The queue: by type, state, overdue (SLA) and order number; newest, oldest or soonest due first."""
    problem, rows = None, []
    try:
        filters = after_sales.parse_filters(request.args)
        rows = after_sales.queue(filters)
    except ServiceError as refused:
        problem, filters = refused.message, after_sales.Filters()
    return render_template("portal/after_sales/index.html", rows=rows, filters=filters, problem=problem,
                           now=utc_now(), types=lifecycle.TYPES, states=lifecycle.STATES,
                           sorts=list(after_sales.SORTS), overdue=after_sales.overdue, **_labels()), \
        422 if problem else 200


def _case_or_404(after_sale_id: int):
    try:
        return after_sales.get_after_sale(after_sale_id)
    except NotFound:
        abort(404)


def _history(case) -> list[AuditEvent]:
    return list(db.session.execute(select(AuditEvent).where(AuditEvent.entity_type == "after_sale",
                                                            AuditEvent.entity_id == str(case.id))
                                   .order_by(AuditEvent.id)).scalars())


def render_detail(case, status: int = 200, error: str | None = None):
    targets = after_sales.allowed_targets(case, current_user.role)
    return render_template("portal/after_sales/detail.html", case=case, error=error, targets=targets,
                           # what the refund button sends back, asked before it is sent: money cannot be recalled
                           refund_preview=after_sales.refund_amount(case) if "refunded" in targets else None,
                           needs_reason={m.target for m in lifecycle.moves_from(case.type, case.status)
                                         if m.needs_reason},
                           history=_history(case), overdue=after_sales.overdue(case),
                           booking=after_sales.pickup_of(case), refund_deadline=after_sales.refund_deadline(case),
                           replacement=after_sales.replacement_of(case),
                           pickup_states=translated(RETURN_PICKUP_STATUS),
                           may_refund=can(current_user.role, *lifecycle.DECIDE), **_labels()), status


@bp.get("/<int:after_sale_id>")
@requires("after_sales", "view")
def detail(after_sale_id: int):
    return render_detail(_case_or_404(after_sale_id))


@bp.get("/<int:after_sale_id>/photos/<int:photo_id>")
@requires("after_sales", "view")
def photo(after_sale_id: int, photo_id: int):
    """One of the customer's photos, as the image type its bytes were checked to be."""
    found = after_sales.photo_of(_case_or_404(after_sale_id), photo_id)
    if found is None:
        abort(404)
    from shared.services import audit

    audit.log_access(staff_actor(current_user), "view", "after_sale_photo", found.id, ["photo"], channel="portal")
    db.session.commit()  # a photo may show a face or a label: who looked is kept, like every reveal
    return Response(found.data, mimetype=found.content_type,
                    headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store",
                             "Content-Disposition": f'inline; filename="after-sale-{after_sale_id}-{photo_id}"'})


def _inspection(case, form) -> list[dict]:
    """The inspection fields of the form, one result per line: passed (yes/no), restock (yes/no), note."""
    return [{"sku": line.sku.code, "passed": form.get(f"passed_{line.id}") == "yes",
             "restock": form.get(f"restock_{line.id}", form.get(f"passed_{line.id}")) == "yes",
             "note": form.get(f"note_{line.id}") or None} for line in case.lines]


@bp.post("/<int:after_sale_id>/transitions")
@requires("after_sales", "view")
def transition(after_sale_id: int):
    """Fire one move; who may is the lifecycle's, checked by the service (a refusal is said on the page)."""
    case = _case_or_404(after_sale_id)
    target = request.form.get("to", "")
    pickup = request.form.get("pickup_at") or None
    if pickup and len(pickup) == 16:  # a datetime-local field: the merchant's zone
        from datetime import datetime
        from zoneinfo import ZoneInfo

        from flask import current_app

        try:
            pickup = datetime.fromisoformat(pickup).replace(
                tzinfo=ZoneInfo(current_app.config["MERCHANT_TIMEZONE"])).isoformat()
        except ValueError:
            pass  # the service refuses it with its own message
    ok = commit_or_refuse(lambda: after_sales.transition(
        case, target, staff_actor(current_user), request.form.get("reason") or None,
        return_method=request.form.get("return_method") or None, pickup_at=pickup,
        inspection=_inspection(case, request.form) if target == "inspected" else None),
        _("After-sales request #%(id)s: %(state)s.", id=after_sale_id,
          state=translated(AFTER_SALE_STATE).get(target, target)))
    if not ok:
        return render_detail(_case_or_404(after_sale_id), 422)
    return redirect(url_for("after_sales.detail", after_sale_id=after_sale_id), 303)


# --- the merchant's data: reasons offered and return windows (after_sales approve to change) ------------------------

def render_settings(status: int = 200):
    from shared.models import AfterSalePolicy

    policies = db.session.execute(select(AfterSalePolicy).order_by(AfterSalePolicy.channel_id.is_not(None),
                                                                   AfterSalePolicy.sku_id.is_not(None),
                                                                   AfterSalePolicy.id)).scalars().all()
    return render_template("portal/after_sales/settings.html", reasons=after_sales.reasons(False), policies=policies,
                           may_edit=can(current_user.role, *lifecycle.DECIDE)), status


@bp.get("/settings")
@requires("after_sales", "view")
def settings():
    return render_settings()


@bp.post("/settings/reasons")
@requires("after_sales", "approve")
def save_reason():
    form = request.form
    ok = commit_or_refuse(lambda: after_sales.save_reason(
        form.get("code", ""), form.get("label_zh", ""), form.get("label_en", ""), form.get("active") == "yes",
        staff_actor(current_user)), _("Reason %(code)s saved.", code=form.get("code", "")[:32]))
    return redirect(url_for("after_sales.settings"), 303) if ok else render_settings(422)


@bp.post("/settings/policies")
@requires("after_sales", "approve")
def save_policy():
    form = request.form
    days = form.get("return_days", "").strip()
    ok = commit_or_refuse(lambda: after_sales.set_policy(
        form.get("channel") or None, form.get("sku") or None, int(days) if days.isdigit() else days,
        form.get("final_sale") == "yes", staff_actor(current_user)), _("Return window saved."))
    return redirect(url_for("after_sales.settings"), 303) if ok else render_settings(422)
