"""Approvals in the portal: the inbox of what waits for me (also as a delegate), one request with its trail, bulk
decisions (at most 100, a result per item), delegation while away, and the rules editor (audited)."""
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from portal.access import require_step_up, requires
from portal.forms import BulkDecisionForm, ConfirmForm, DecisionForm, DelegationForm, RuleForm
from portal.outcomes import commit_or_refuse, flash_form_errors
from shared.extensions import db
from shared.models import ApprovalDelegation, ApprovalRequest, StaffUser
from shared.security.permissions import can
from shared.services import approvals
from shared.services.errors import ServiceError, ValidationFailed
from shared.timekeeping import utc_now
from shared.web import staff_actor

bp = Blueprint("approvals", __name__, url_prefix="/approvals")
STATE_LABELS = {"pending": _l("Pending"), "approved": _l("Approved"), "rejected": _l("Rejected"),
                "withdrawn": _l("Withdrawn"), "waiting": _l("Waiting"), "closed": _l("Closed"),
                "approve": _l("Approve"), "reject": _l("Reject")}


@bp.app_context_processor
def _approval_labels():
    def approver_names(ids) -> str:
        names = _names(ids)
        return ", ".join(names.get(i, str(i)) for i in ids) or "—"

    def rule_name(rule) -> str:
        return rule.name_zh if str(get_locale() or "").startswith("zh") else rule.name_en

    return {"operation_labels": {code: spec.label for code, spec in approvals.OPERATIONS.items()},
            "kind_labels": approvals.KINDS, "approver_names": approver_names, "rule_name": rule_name,
            "approval_state_label": lambda state: str(STATE_LABELS.get(state, state))}


def decision_step_up() -> None:
    """THE one place where deciding an approval asks for a fresh second verification (issue 11 item 4): the page
    (session-bound 5-minute window) and the API (X-Orderloom-OTP header) both call it right before deciding."""
    require_step_up()


def _names(ids) -> dict[int, str]:
    ids = {i for i in ids if i is not None}
    if not ids:
        return {}
    return {u.id: u.username for u in db.session.query(StaffUser).filter(StaffUser.id.in_(ids))}


def request_json(item: ApprovalRequest) -> dict:
    """An approval request as the API shows it: its steps (candidates by username) and decisions."""
    names = _names([item.requester_id, *(c for s in item.steps for c in s.candidates),
                    *(d.user_id for d in item.decisions), *(d.on_behalf_of_id for d in item.decisions)])
    stamp = (lambda moment: moment.isoformat() if moment else None)
    return {
        "id": item.id, "operation": item.operation, "entity": {"type": item.entity_type, "id": item.entity_id},
        "round": item.round, "previous_id": item.previous_id, "state": item.state, "stage": item.stage,
        "summary": item.summary, "requester": names.get(item.requester_id), "guarded_fields": item.guarded_fields,
        "created_at": stamp(item.created_at), "closed_at": stamp(item.closed_at),
        "steps": [{"id": s.id, "stage": s.stage, "kind": s.kind, "target": s.target, "quorum": s.quorum,
                   "state": s.state, "candidates": [names.get(c, str(c)) for c in s.candidates],
                   "due_at": stamp(s.due_at), "stalled": s.stalled, "escalation_level": s.escalation_level}
                  for s in item.steps],
        "decisions": [{"user": names.get(d.user_id), "on_behalf_of": names.get(d.on_behalf_of_id),
                       "decision": d.decision, "comment": d.comment, "decided_at": stamp(d.decided_at),
                       "step_id": d.step_id} for d in item.decisions],
    }


def may_see(item: ApprovalRequest, user) -> bool:
    """The requester, anyone named on or deciding a step, whoever stands in for them, rule editors and auditors."""
    if can(user.role, "approvals", "edit") or can(user.role, "audit", "view") or item.requester_id == user.id:
        return True
    people = {c for s in item.steps for c in s.candidates} | {d.user_id for d in item.decisions}
    return user.id in people or bool(set(approvals.delegators_of(user, approvals._today(utc_now()))) & people)


def _me() -> StaffUser:
    return db.session.get(StaffUser, current_user.id)


def _delegation_form() -> DelegationForm:
    form = DelegationForm()
    users = db.session.query(StaffUser).filter(StaffUser.active.is_(True), StaffUser.id != current_user.id) \
        .order_by(StaffUser.username).all()
    form.delegate.choices = [("", "—")] + [(str(u.id), f"{u.display_name} ({u.username})") for u in users]
    return form


@bp.get("/")
@requires("approvals", "view")
def inbox():
    me = _me()
    waiting = approvals.inbox(me)
    mine = approvals.list_requests(me, mine=True, limit=50)
    mine = [r for r in mine if r.requester_id == me.id]
    return render_template("portal/approvals/inbox.html", waiting=waiting, mine=mine,
                           names=_names([r.requester_id for r in waiting]), bulk_form=BulkDecisionForm(),
                           delegation_form=_delegation_form(), delegations=approvals.delegations_of(me),
                           can_decide=can(current_user.role, "approvals", "approve"), confirm_form=ConfirmForm(),
                           most=approvals.MAX_BULK, results=None)


@bp.get("/<int:approval_id>")
@requires("approvals", "view")
def detail(approval_id: int):
    item = db.get_or_404(ApprovalRequest, approval_id)
    me = _me()
    if not may_see(item, me):
        abort(404)
    may_decide = item.state == "pending" and can(me.role, "approvals", "approve") and bool(
        approvals._acts(item, me, utc_now())) and item.requester_id != me.id
    return render_template("portal/approvals/detail.html", item=item, trail=[item], view=request_json(item),
                           decision_form=DecisionForm(), confirm_form=ConfirmForm(), may_decide=may_decide,
                           is_requester=item.requester_id == me.id,
                           history=approvals.history_for(item.entity_type, item.entity_id))


def _done(action):
    """The call for commit_or_refuse: a decision returns its request, which is not a change held for approval."""
    def run():
        action()
    return run


def _keep_refusal(refused: ServiceError) -> None:
    """A refused self-approval stays in the audit chain (the service recorded it; commit it alone)."""
    if getattr(refused, "keep_audit", False):
        db.session.commit()
    else:
        db.session.rollback()


@bp.post("/<int:approval_id>/decision")
@requires("approvals", "approve")
def decide(approval_id: int):
    item = db.get_or_404(ApprovalRequest, approval_id)
    form = DecisionForm()
    if not form.validate_on_submit():
        flash_form_errors(form)
        return redirect(url_for("approvals.detail", approval_id=item.id), 303)
    me, actor = _me(), staff_actor(current_user)
    try:
        approvals.assert_may_decide(item, me, actor)
    except ServiceError as refused:
        _keep_refusal(refused)
        flash(_("Not decided: %(message)s", message=refused.message), "error")
        return redirect(url_for("approvals.detail", approval_id=item.id), 303)
    decision_step_up()
    commit_or_refuse(_done(lambda: approvals.decide(item, me, form.decision.data, form.comment.data, actor)),
                     _("Request #%(id)s: your decision is recorded.", id=item.id),
                     failure=_("Not decided: %(message)s"))
    return redirect(url_for("approvals.detail", approval_id=item.id), 303)


@bp.post("/bulk")
@requires("approvals", "approve")
def bulk():
    form = BulkDecisionForm()
    me = _me()
    results = None
    status = 200
    if not form.validate_on_submit():
        flash_form_errors(form)
        status = 422
    else:
        ids = [value for value in request.form.getlist("ids") if value.isdigit()]
        try:
            if len(ids) > approvals.MAX_BULK:  # refused before the second factor is asked for
                raise ValidationFailed(_("At most %(most)s requests can be decided at once.",
                                         most=approvals.MAX_BULK), field="ids", code="too_many")
            decision_step_up()
            results = approvals.decide_many(ids, me, form.decision.data, form.comment.data, staff_actor(current_user))
            db.session.commit()
        except ServiceError as refused:
            db.session.rollback()
            flash(_("Not decided: %(message)s", message=refused.message), "error")
            status = 422
    waiting = approvals.inbox(me)
    return render_template("portal/approvals/inbox.html", waiting=waiting, mine=[], names=_names(
        [r.requester_id for r in waiting]), bulk_form=BulkDecisionForm(formdata=None),
        delegation_form=_delegation_form(), delegations=approvals.delegations_of(me),
        can_decide=True, confirm_form=ConfirmForm(), most=approvals.MAX_BULK, results=results), status


@bp.post("/<int:approval_id>/withdraw")
@requires("approvals", "view")
def withdraw(approval_id: int):
    item = db.get_or_404(ApprovalRequest, approval_id)
    if ConfirmForm().validate_on_submit():
        commit_or_refuse(_done(lambda: approvals.withdraw(item, staff_actor(current_user))),
                         _("Request #%(id)s withdrawn.", id=item.id), failure=_("Not withdrawn: %(message)s"))
    return redirect(url_for("approvals.detail", approval_id=item.id), 303)


@bp.post("/<int:approval_id>/resubmit")
@requires("approvals", "view")
def resubmit(approval_id: int):
    item = db.get_or_404(ApprovalRequest, approval_id)
    made = []
    if ConfirmForm().validate_on_submit():
        commit_or_refuse(lambda: made.append(approvals.resubmit(item, staff_actor(current_user))),
                         _("Resubmitted as a new round."), failure=_("Not resubmitted: %(message)s"))
    return redirect(url_for("approvals.detail", approval_id=made[0].id if made else item.id), 303)


@bp.post("/delegations")
@requires("approvals", "approve")
def delegate():
    form = _delegation_form()
    if form.validate_on_submit():
        to = db.session.get(StaffUser, int(form.delegate.data)) if form.delegate.data.isdigit() else None
        commit_or_refuse(lambda: approvals.delegate(_me(), to, form.starts_on.data, form.ends_on.data,
                                                    staff_actor(current_user)),
                         _("Delegation saved."), failure=_("Not saved: %(message)s"))
    else:
        flash_form_errors(form)
    return redirect(url_for("approvals.inbox"), 303)


@bp.post("/delegations/<int:delegation_id>/revoke")
@requires("approvals", "approve")
def revoke(delegation_id: int):
    delegation = db.get_or_404(ApprovalDelegation, delegation_id)
    if delegation.user_id != current_user.id:
        abort(404)
    if ConfirmForm().validate_on_submit():
        commit_or_refuse(lambda: approvals.revoke_delegation(delegation, staff_actor(current_user)),
                         _("Delegation ended."))
    return redirect(url_for("approvals.inbox"), 303)


# --- rules ---------------------------------------------------------------------------------------------------------

def _rule_form(rule=None) -> RuleForm:
    form = RuleForm()
    form.operation.choices = [(code, _(spec.label)) for code, spec in approvals.OPERATIONS.items()]
    if rule is not None and request.method == "GET":
        conditions = rule.conditions or {}
        form.code.data, form.operation.data = rule.code, rule.operation
        form.name_zh.data, form.name_en.data = rule.name_zh, rule.name_en
        form.priority.data, form.active.data, form.stall_minutes.data = rule.priority, rule.active, rule.stall_minutes
        form.min_amount.data, form.currency.data = conditions.get("min_amount"), conditions.get("currency")
        form.custom_made.data = bool(conditions.get("custom_made"))
        form.channels.data = ",".join(conditions.get("channels") or [])
        form.warehouses.data = ",".join(conditions.get("warehouses") or [])
        form.variance_units.data, form.variance_value.data = conditions.get("variance_units"), conditions.get(
            "variance_value")
        form.steps.data = "\n".join(f"{s.stage} {s.kind} {s.target or '-'} {s.quorum}" for s in rule.steps)
    return form


def _parse_steps(text: str) -> list[dict]:
    steps = []
    for line in (text or "").splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 4 or not parts[0].isdigit() or not parts[3].lstrip("-").isdigit():
            raise ValidationFailed(_("Each step is one line: stage kind target quorum, e.g. 1 role cs_lead 1."),
                                   field="steps", code="invalid_step")
        steps.append({"stage": int(parts[0]), "kind": parts[1], "target": None if parts[2] == "-" else parts[2],
                      "quorum": int(parts[3])})
    return steps


def _conditions(form: RuleForm) -> dict:
    return {"min_amount": (form.min_amount.data or "").strip() or None,
            "currency": (form.currency.data or "").strip() or None,
            "custom_made": True if form.custom_made.data else None, "channels": form.channels.data or None,
            "warehouses": form.warehouses.data or None, "variance_units": form.variance_units.data,
            "variance_value": (form.variance_value.data or "").strip() or None}


@bp.get("/rules")
@requires("approvals", "view")
def rules():
    return render_template("portal/approvals/rules.html", rules=approvals.all_rules(),
                           operations=approvals.OPERATIONS, editable=can(current_user.role, "approvals", "edit"))


@bp.get("/rules/new")
@requires("approvals", "edit")
def new_rule():
    return render_template("portal/approvals/rule.html", form=_rule_form(), rule=None, kinds=approvals.KINDS)


@bp.get("/rules/<int:rule_id>")
@requires("approvals", "edit")
def edit_rule(rule_id: int):
    rule = approvals.get_rule(rule_id)
    return render_template("portal/approvals/rule.html", form=_rule_form(rule), rule=rule, kinds=approvals.KINDS)


def _save_rule(rule):
    form = _rule_form(rule)
    if form.validate_on_submit():
        def save():
            return approvals.save_rule(
                staff_actor(current_user), rule, code=form.code.data, operation=form.operation.data,
                name_zh=form.name_zh.data, name_en=form.name_en.data, conditions=_conditions(form),
                steps=_parse_steps(form.steps.data), priority=form.priority.data, active=form.active.data,
                stall_minutes=form.stall_minutes.data)

        if commit_or_refuse(save, _("Rule saved."), form=form):
            return redirect(url_for("approvals.rules"), 303)
    return render_template("portal/approvals/rule.html", form=form, rule=rule, kinds=approvals.KINDS), 422


@bp.post("/rules")
@requires("approvals", "edit")
def create_rule():
    return _save_rule(None)


@bp.post("/rules/<int:rule_id>")
@requires("approvals", "edit")
def update_rule(rule_id: int):
    return _save_rule(approvals.get_rule(rule_id))
