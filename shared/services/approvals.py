"""Approvals: rules as data decide which change needs whose approval; requests run their steps stage by stage.

- `required(operation, context)` is the matching active rule of highest priority (or None), answered from this
  process's copy of the rules, kept with the permission table's revision token (no statement per call).
- `request(...)` raises a request for a pending change: the steps of its first stage are activated (candidates
  resolved now, due in business time), the object's guarded fields are locked (`assert_not_locked`, 409
  `approval_pending`).
- `decide(...)`: nobody decides their own request or one on an object they edited since it was raised, admins
  included (403 `self_approval`, the refusal audited); deciding twice or after the request closed is refused; a
  rejection needs a comment and closes the sibling steps; a step completes at its quorum, the next stage starts when
  every step of a stage is approved, and the final approval applies the pending change through its owning service
  (APPLY). A delegate decides on behalf of someone away (date-bounded; no circles, nothing back to the requester).
- `withdraw` / `resubmit` (a new round; the old one stays in the history); `escalate_stalled` (the job): a step idle
  past its due time is marked stalled (审批滞留), the approvers' superiors are added (at most 2 levels) and the
  group robot is told.

Services that own an operation call `gate(...)` before changing anything: it answers None (go on) or the request it
raised, and the service then returns its object with `.approval_request` set instead of making the change.
"""
import re
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from sqlalchemy import or_, select

from shared import business_hours
from shared.actors import Actor
from shared import labels
from shared.extensions import db
from shared.models import (ApprovalDecision, ApprovalDelegation, ApprovalRequest, ApprovalRule, ApprovalRuleStep,
                           ApprovalStep, AuditEvent, StaffRole, StaffUser)
from shared.security import role_table
from shared.services import audit
from shared.services import roles as role_service
from shared.services.errors import Conflict, Forbidden, NotFound, ValidationFailed
from shared.services.validation import N_, say
from shared.timekeeping import local_date, utc_now

# What a person reads when this module refuses: message codes, said in the reader's language (say).
UNKNOWN_RULE = N_("No such approval rule")
NO_RULE_NAMED = N_("No approval rule \"%(code)s\"")
INVALID_PRIORITY = N_("Priority is 0 to 1000")
NO_RULE = N_("No approval rule applies")
UNKNOWN_APPROVAL = N_("No such approval request")
INVALID_STATE = N_("State is one of %(states)s")
CHOOSE_A_REQUEST = N_("Choose at least one request")
DUPLICATE_RULE = N_("The rule %(code)s exists")
NO_RULE_ANY_MORE = N_("No approval rule applies any more")

# --- the vocabulary -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    entity_type: str
    label: str
    guarded: tuple[str, ...]
    wired: bool = True  # False: known to the rules, no service calls the guard yet


OPERATIONS = {
    "order.create": Operation("order", N_("Order creation"), ("status", "lines", "amount", "address")),
    "order.confirm": Operation("order", N_("Order confirmation"), ("status",)),
    "order.cancel_paid": Operation("order", N_("Cancelling a paid order"), ("status",)),
    "order.amount_change": Operation("order", N_("Price or amount change"), ("amount",)),  # orders.change_price
    "order.address_change": Operation("order", N_("Address change after confirmation"), ("address",)),
    "order.presale_delay": Operation("order", N_("Presale delay"), ("promised_at",), wired=False),
    "order.refund": Operation("order", N_("Refund"), ("refund_status",)),  # refunds.refund
    "stock.transfer": Operation("sku", N_("Cross-warehouse transfer"), ("transfer",)),
    "stock_take.variance": Operation("stock_take", N_("Stock-take variance"), ("status",)),
    "export.run": Operation("export", N_("Export"), ("status",)),  # personal exports (exports.clear_or_hold)
    "user.role_change": Operation("staff_user", N_("Role change"), ("role",)),
}
KINDS = {"role": N_("Role"), "team_lead": N_("Team lead"), "superior": N_("The requester's superior"),
         "users": N_("Named users")}
# Condition keys: what the context given by the operation's service must show for the rule to apply.
CONDITIONS = {"min_amount": "money", "currency": "text", "custom_made": "boolean", "channels": "codes",
              "warehouses": "codes", "variance_units": "integer", "variance_value": "money"}
STATES = ("pending", "approved", "rejected", "withdrawn")
DECISIONS = ("approve", "reject")
MAX_ESCALATION = 2  # levels of superiors a stalled step is escalated to
MAX_BULK = 100
MAX_STAGES = 9
MAX_STEPS = 20
RULE_CODE = re.compile(r"[a-z][a-z0-9_]{1,39}")

UNKNOWN_OPERATION = N_("unknown operation %(operation)s")
NO_STEPS = N_("a rule needs at least one step")
BAD_KIND = N_("step %(step)s: unknown approver kind %(kind)s")
UNKNOWN_TARGET = N_("step %(step)s: no %(kind)s named %(target)s")
BAD_QUORUM = N_("step %(step)s: a quorum of %(quorum)s is impossible: between 1 and %(most)s approvers can decide")
BAD_STAGE = N_("step %(step)s: the stage is a number from 1 to 9")
BAD_CONDITION = N_("unknown or malformed condition %(name)s")
BAD_STALL = N_("the idle time before escalation is 15 minutes to 7 days")
PENDING = N_("%(entity)s has a pending approval (#%(id)s): %(fields)s cannot change until it is decided")
NOT_GRANTED = N_("%(entity)s needs approval first (request #%(id)s is %(state)s)")
SELF = N_("you may not decide your own request")
EDITED = N_("you changed this object after the request was raised: someone else must decide")
NOT_APPROVER = N_("you are not an approver of the open step of this request")
TWICE = N_("you have already decided this step")
WITHDRAWN = N_("this request was withdrawn: there is nothing to decide")
CLOSED = N_("this request is already %(state)s")
COMMENT_NEEDED = N_("a rejection needs a comment")
BAD_DECISION = N_("the decision is approve or reject")
NO_APPROVER = N_("nobody can approve step %(step)s of this request (%(kind)s %(target)s)")
NOT_REQUESTER = N_("only the requester may withdraw or resubmit this request")
NOT_CLOSED = N_("only a rejected or withdrawn request can be resubmitted")
NOT_LATEST = N_("a later round of this request exists")
TOO_MANY = N_("at most %(most)s requests can be decided at once")
SELF_DELEGATION = N_("you cannot delegate to yourself")
DELEGATION_CIRCLE = N_("this delegation would make a circle (%(path)s)")
BAD_DATES = N_("the delegation must end on or after its first day, within a year")
BAD_RULE_CODE = N_("a rule code is 2 to 40 lower-case letters, digits or _, starting with a letter")
NOT_STAFF = N_("only a staff user may request an approval")


# --- rules ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RuleInfo:
    id: int
    code: str
    operation: str
    conditions: dict
    priority: int
    stall_minutes: int
    calendar: str
    steps: tuple[tuple[int, str, str | None, int], ...]  # (stage, kind, target, quorum)


_rule_copies: dict[str, tuple[str, tuple[RuleInfo, ...]]] = {}


def _load_rules(key: str, token: str) -> tuple[RuleInfo, ...]:
    rules = tuple(
        RuleInfo(rule.id, rule.code, rule.operation, dict(rule.conditions or {}), rule.priority, rule.stall_minutes,
                 rule.calendar, tuple((s.stage, s.kind, s.target, s.quorum) for s in rule.steps))
        for rule in db.session.execute(select(ApprovalRule).where(ApprovalRule.active.is_(True))
                                       .order_by(ApprovalRule.priority.desc(), ApprovalRule.id)).scalars())
    _rule_copies[key] = (token, rules)
    return rules


role_table.on_load(_load_rules)


def active_rules() -> tuple[RuleInfo, ...]:
    """This process's copy of the active rules, as of the permission table's token (reloaded when it changed)."""
    table = role_table.current()
    key = role_table._database_key()
    copy = _rule_copies.get(key)
    if copy is None or copy[0] != table.token:
        return _load_rules(key, table.token)
    return copy[1]


def _money(value) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, TypeError, ValueError):
        return None


def matches(conditions: dict, context: dict) -> bool:
    """Whether an operation's context meets every condition of a rule (an empty condition always does)."""
    for name, wanted in conditions.items():
        if name == "min_amount":
            amount = _money(context.get("amount"))
            if amount is None or amount < _money(wanted):
                return False
        elif name == "currency":
            if (context.get("currency") or "").upper() != str(wanted).upper():
                return False
        elif name == "custom_made":
            if bool(context.get("custom_made")) != bool(wanted):
                return False
        elif name == "channels":
            if context.get("channel") not in wanted:
                return False
        elif name == "warehouses":
            if not set(context.get("warehouses") or ()) & set(wanted):
                return False
        elif name == "variance_units":
            if abs(int(context.get("variance_units") or 0)) <= int(wanted):
                return False
        elif name == "variance_value":
            value = _money(context.get("variance_value")) or Decimal(0)
            if abs(value) <= _money(wanted):
                return False
        else:
            return False  # a condition this code does not know never matches (never approves by accident)
    return True


def rules_look_at(operation: str, condition: str) -> bool:
    return any(rule.operation == operation and condition in rule.conditions for rule in active_rules())


def required(operation: str, context: dict) -> RuleInfo | None:
    """The rule that applies to this operation in this context: the matching active rule of highest priority."""
    for rule in active_rules():
        if rule.operation == operation and matches(rule.conditions, context):
            return rule
    return None


def _clean_conditions(conditions) -> dict:
    if not isinstance(conditions, dict):
        raise ValidationFailed(say(BAD_CONDITION, name="conditions"), field="conditions", code="invalid_condition")
    clean = {}
    for name, value in conditions.items():
        kind = CONDITIONS.get(name)
        if value in (None, "", []):
            continue
        ok = True
        if kind == "money":
            amount = _money(value)
            ok = amount is not None and amount >= 0 and amount == amount.quantize(Decimal("0.01"))
            value = str(amount.quantize(Decimal("0.01"))) if ok else value
        elif kind == "text":
            ok = isinstance(value, str) and 0 < len(value.strip()) <= 8
            value = value.strip().upper() if ok else value
        elif kind == "boolean":
            ok = isinstance(value, bool)
        elif kind == "integer":
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        elif kind == "codes":
            if isinstance(value, str):
                value = [part.strip() for part in value.split(",") if part.strip()]
            ok = isinstance(value, list) and all(isinstance(v, str) and 0 < len(v) <= 32 for v in value)
        else:
            ok = False
        if not ok:
            raise ValidationFailed(say(BAD_CONDITION, name=str(name)[:40]), field="conditions",
                                   code="invalid_condition")
        clean[name] = value
    return clean


def _user_ids(target) -> list[int]:
    parts = target if isinstance(target, list) else str(target or "").replace(" ", "").split(",")
    return [int(p) for p in parts if str(p).isdigit()]


def capacity(kind: str, target: str | None) -> int | None:
    """How many people a step of this kind can have (None: the target does not exist)."""
    if kind == "role":
        if not target or db.session.get(StaffRole, target) is None:
            return None
        return len(role_service.users_with_role(target))
    if kind == "team_lead":
        team = role_service.team_by_code(target or "")
        return None if team is None else 1
    if kind == "superior":
        return 1
    if kind == "users":
        ids = _user_ids(target)
        if not ids or len(ids) != len(str(target).split(",")):
            return None
        found = db.session.execute(select(StaffUser.id).where(StaffUser.id.in_(ids),
                                                             StaffUser.active.is_(True))).scalars().all()
        return len(set(found)) if len(set(found)) == len(set(ids)) else None
    raise AssertionError(kind)


def _clean_steps(steps) -> list[tuple[int, str, str | None, int]]:
    if not isinstance(steps, list) or not steps:
        raise ValidationFailed(say(NO_STEPS), field="steps", code="no_steps")
    if len(steps) > MAX_STEPS:
        raise ValidationFailed(say(NO_STEPS), field="steps", code="too_many_steps")
    clean = []
    for number, step in enumerate(steps, start=1):
        step = step if isinstance(step, dict) else {}
        kind, target = step.get("kind"), step.get("target")
        target = ",".join(str(t) for t in target) if isinstance(target, list) else (str(target).strip()
                                                                                    if target else None)
        stage, quorum = step.get("stage", 1), step.get("quorum", 1)
        if kind not in KINDS:
            raise ValidationFailed(say(BAD_KIND, step=number, kind=str(kind)[:20]), field="steps", code="invalid_kind")
        if isinstance(stage, bool) or not isinstance(stage, int) or not 1 <= stage <= MAX_STAGES:
            raise ValidationFailed(say(BAD_STAGE, step=number), field="steps", code="invalid_stage")
        if kind == "superior":
            target = None
        most = capacity(kind, target)
        if most is None:
            raise ValidationFailed(say(UNKNOWN_TARGET, step=number, kind=say(KINDS[kind]), target=str(target)[:60]),
                                   field="steps", code="unknown_approver")
        if isinstance(quorum, bool) or not isinstance(quorum, int) or not 1 <= quorum <= most:
            raise ValidationFailed(say(BAD_QUORUM, step=number, quorum=str(quorum)[:12], most=most), field="steps",
                                   code="impossible_quorum")
        clean.append((stage, kind, target, quorum))
    return sorted(clean, key=lambda s: s[0])


def _rule_state(rule: ApprovalRule) -> dict:
    return {"code": rule.code, "operation": rule.operation, "name_zh": rule.name_zh, "name_en": rule.name_en,
            "conditions": rule.conditions, "priority": rule.priority, "active": rule.active,
            "stall_minutes": rule.stall_minutes,
            "steps": [[s.stage, s.kind, s.target, s.quorum] for s in rule.steps]}


def get_rule(rule_id) -> ApprovalRule:
    row_id = _row_id(rule_id)
    rule = db.session.get(ApprovalRule, row_id) if row_id is not None else None
    if rule is None:
        raise NotFound(say(UNKNOWN_RULE), field="rule", code="unknown_rule")
    return rule


def rule_by_code(code: str) -> ApprovalRule:
    rule = db.session.execute(select(ApprovalRule).where(ApprovalRule.code == code)).scalar_one_or_none()
    if rule is None:
        raise NotFound(say(NO_RULE_NAMED, code=code), field="rule", code="unknown_rule")
    return rule


def all_rules() -> list[ApprovalRule]:
    return list(db.session.execute(select(ApprovalRule).order_by(ApprovalRule.operation,
                                                                 ApprovalRule.priority.desc())).scalars())


def save_rule(actor: Actor, rule: ApprovalRule | None = None, *, code: str | None = None, operation: str | None = None,
              name_zh: str | None = None, name_en: str | None = None, conditions: dict | None = None,
              steps: list | None = None, priority: int | None = None, active: bool | None = None,
              stall_minutes: int | None = None) -> ApprovalRule:
    """Create (rule None) or edit a rule; everything is checked before anything is written; audited."""
    from shared.services import validation as check

    creating = rule is None
    before = None if creating else _rule_state(rule)
    operation = operation if operation is not None else (rule.operation if rule else None)
    if operation not in OPERATIONS:
        raise ValidationFailed(say(UNKNOWN_OPERATION, operation=str(operation)[:40]), field="operation",
                               code="unknown_operation")
    clean_steps = _clean_steps(steps) if steps is not None or creating else None
    clean_conditions = _clean_conditions(conditions) if conditions is not None else None
    if stall_minutes is not None and (isinstance(stall_minutes, bool) or not isinstance(stall_minutes, int)
                                      or not 15 <= stall_minutes <= 7 * 24 * 60):
        raise ValidationFailed(say(BAD_STALL), field="stall_minutes", code="invalid_stall")
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)
                                 or not 0 <= priority <= 1000):
        raise ValidationFailed(say(INVALID_PRIORITY), field="priority", code="invalid_priority")
    if creating:
        code = (code or "").strip().lower()
        if not RULE_CODE.fullmatch(code):
            raise ValidationFailed(say(BAD_RULE_CODE), field="code", code="invalid_rule_code")
        if db.session.execute(select(ApprovalRule.id).where(ApprovalRule.code == code)).first():
            raise Conflict(say(DUPLICATE_RULE, code=code), field="code", code="duplicate_rule")
        rule = ApprovalRule(code=code, operation=operation, conditions={}, priority=0, active=True,
                            stall_minutes=120, calendar="default")
        db.session.add(rule)
    rule.operation = operation
    if name_zh is not None or name_en is not None or creating:
        rule.name_zh = check.text(name_zh if name_zh is not None else rule.name_zh, "name_zh", 80)
        rule.name_en = check.text(name_en if name_en is not None else rule.name_en, "name_en", 80)
    if clean_conditions is not None:
        rule.conditions = clean_conditions
    if priority is not None:
        rule.priority = priority
    if active is not None:
        rule.active = bool(active)
    if stall_minutes is not None:
        rule.stall_minutes = stall_minutes
    rule.updated_at = utc_now()
    if clean_steps is not None:
        rule.steps = [ApprovalRuleStep(stage=stage, kind=kind, target=target, quorum=quorum)
                      for stage, kind, target, quorum in clean_steps]
    db.session.flush()
    after = _rule_state(rule)
    if after != before:
        audit.record(actor, "approval_rule.create" if creating else "approval_rule.update", "approval_rule",
                     rule.code, before=before, after=after)
        role_table.changed()  # every process reloads its copy of the rules with the table
    return rule


# --- locks ---------------------------------------------------------------------------------------------------------

_applying: ContextVar[int | None] = ContextVar("orderloom_approval_applying", default=None)


@contextmanager
def applying(request: ApprovalRequest):
    """While an approved change is applied, its own request does not block it."""
    token = _applying.set(request.id)
    try:
        yield
    finally:
        _applying.reset(token)


def pending_for(entity_type: str, entity_id) -> ApprovalRequest | None:
    return db.session.execute(select(ApprovalRequest).where(
        ApprovalRequest.entity_type == entity_type, ApprovalRequest.entity_id == str(entity_id),
        ApprovalRequest.state == "pending").order_by(ApprovalRequest.id.desc()).limit(1)).scalar_one_or_none()


def latest_for(entity_type: str, entity_id, operation: str | None = None) -> ApprovalRequest | None:
    query = select(ApprovalRequest).where(ApprovalRequest.entity_type == entity_type,
                                          ApprovalRequest.entity_id == str(entity_id))
    if operation:
        query = query.where(ApprovalRequest.operation == operation)
    return db.session.execute(query.order_by(ApprovalRequest.id.desc()).limit(1)).scalar_one_or_none()


def history_for(entity_type: str, entity_id) -> list[ApprovalRequest]:
    """Every round of every request on the object, oldest first (the approval trail on its page)."""
    return list(db.session.execute(select(ApprovalRequest).where(
        ApprovalRequest.entity_type == entity_type, ApprovalRequest.entity_id == str(entity_id))
        .order_by(ApprovalRequest.id)).scalars())


def assert_not_locked(entity_type: str, entity_id, fields=None) -> None:
    """Refuse (409 `approval_pending`) a change to guarded fields of an object whose approval is pending."""
    pending = pending_for(entity_type, entity_id)
    if pending is None or pending.id == _applying.get():
        return
    touched = set(pending.guarded_fields or ()) if fields is None else set(fields) & set(pending.guarded_fields or ())
    if touched:
        raise Conflict(say(PENDING, entity=f"{entity_type} {entity_id}", id=pending.id,
                           fields=", ".join(sorted(touched))), field="approval", code="approval_pending")


def assert_granted(entity_type: str, entity_id, operation: str) -> None:
    """Refuse a move that needs an earlier approval which is pending (409 `approval_pending`) or was not given
    (409 `approval_not_granted`), e.g. confirming an order whose creation was held for approval."""
    latest = latest_for(entity_type, entity_id, operation)
    if latest is None or latest.state == "approved" or latest.id == _applying.get():
        return
    if latest.state == "pending":
        raise Conflict(say(PENDING, entity=f"{entity_type} {entity_id}", id=latest.id,
                           fields=", ".join(latest.guarded_fields or ())), field="approval", code="approval_pending")
    raise Conflict(say(NOT_GRANTED, entity=f"{entity_type} {entity_id}", id=latest.id,
                       state=labels.label(labels.APPROVAL_STATE, latest.state)),
                   field="approval", code="approval_not_granted")


def gate(operation: str, entity_id, context: dict, payload: dict, actor: Actor, summary: str = "",
         now: datetime | None = None, lock_checked: bool = False) -> ApprovalRequest | None:
    """For a service about to make a change: None when it may go on (no rule applies, the actor is not a staff
    user, or this is the approved change being applied); else the request raised for it (the caller returns
    without changing anything). A change to an object with a pending request is refused (409)."""
    spec = OPERATIONS[operation]
    if _applying.get() is not None:
        return None
    if not lock_checked:
        assert_not_locked(spec.entity_type, entity_id, spec.guarded)
    if actor.id is None:  # the system and channel sync act on what already happened on the platform
        return None
    rule = required(operation, context)
    if rule is None:
        return None
    return request(operation, entity_id, context, payload, actor, rule=rule, summary=summary, now=now)


# --- requests ------------------------------------------------------------------------------------------------------

def _calendar(code: str):
    try:
        return business_hours.load(code)
    except LookupError:
        return business_hours.Calendar.always()


def _resolve(step: ApprovalStep, requester: StaffUser) -> list[int]:
    if step.kind == "role":
        people = [u.id for u in role_service.users_with_role(step.target)]
    elif step.kind == "team_lead":
        team = role_service.team_by_code(step.target or "")
        people = [team.lead_id] if team is not None and team.lead is not None and team.lead.active else []
    elif step.kind == "superior":
        superior = role_service.superior_of(requester)
        people = [superior.id] if superior else []
    else:
        ids = _user_ids(step.target)
        people = list(db.session.execute(select(StaffUser.id).where(StaffUser.id.in_(ids),
                                                                    StaffUser.active.is_(True))).scalars())
    people = [p for p in dict.fromkeys(people) if p != requester.id]
    if len(people) < step.quorum:  # the requester was one of them: their own superiors stand in
        people += [s.id for s in role_service.superiors(requester, MAX_ESCALATION) if s.id not in people]
    return people


def _activate(request: ApprovalRequest, stage: int, now: datetime, stall_minutes: int, calendar: str) -> None:
    request.stage = stage
    due = _calendar(calendar).add(now, timedelta(minutes=stall_minutes))
    for step in request.steps:
        if step.stage != stage:
            continue
        step.candidates = _resolve(step, request.requester)
        if len(step.candidates) < step.quorum:
            raise Conflict(say(NO_APPROVER, step=step.stage, kind=say(KINDS[step.kind]), target=step.target or ""),
                           field="approval", code="no_approver")
        step.state, step.activated_at, step.due_at = "pending", now, due


def _staff(actor: Actor) -> StaffUser:
    user = db.session.get(StaffUser, actor.id) if actor.id is not None else None
    if user is None:
        raise Forbidden(say(NOT_STAFF), code="not_staff")
    return user


def request(operation: str, entity_id, context: dict, payload: dict, actor: Actor, rule: RuleInfo | None = None,
            summary: str = "", now: datetime | None = None, previous: ApprovalRequest | None = None
            ) -> ApprovalRequest:
    """Raise a request for a pending change (the rule's steps; the first stage active now); audited."""
    if operation not in OPERATIONS:
        raise ValidationFailed(say(UNKNOWN_OPERATION, operation=str(operation)[:40]), field="operation",
                               code="unknown_operation")
    spec = OPERATIONS[operation]
    rule = rule or required(operation, context)
    if rule is None:
        raise ValidationFailed(say(NO_RULE), field="operation", code="no_rule")
    requester = _staff(actor)
    now = now or utc_now()
    made = ApprovalRequest(operation=operation, entity_type=spec.entity_type, entity_id=str(entity_id),
                           round=(previous.round + 1) if previous else 1, previous_id=previous.id if previous else None,
                           rule_id=rule.id, state="pending", stage=1, requester=requester, summary=summary[:200],
                           context=audit._as_stored(context), payload=audit._as_stored(payload),
                           guarded_fields=list(spec.guarded), created_at=now)
    made.steps = [ApprovalStep(stage=stage, kind=kind, target=target, quorum=quorum, candidates=[], state="waiting",
                               stalled=False, escalation_level=0) for stage, kind, target, quorum in rule.steps]
    db.session.add(made)
    _activate(made, min(stage for stage, *_ in rule.steps), now, rule.stall_minutes, rule.calendar)
    db.session.flush()
    audit.record(actor, "approval.request", "approval", made.id,
                 after={"operation": operation, "entity": f"{spec.entity_type}:{entity_id}", "round": made.round,
                        "rule": rule.code, "stage": made.stage,
                        "steps": [[s.stage, s.kind, s.target, s.quorum, s.candidates] for s in made.steps]})
    return made


MAX_ROW_ID = 2 ** 31 - 1  # the ids are 32-bit integers: a larger one names nothing (and would overflow the query)


def _row_id(value) -> int | None:
    text = str(value or "")
    return int(text) if text.isdigit() and int(text) <= MAX_ROW_ID else None


def get_request(request_id) -> ApprovalRequest:
    row_id = _row_id(request_id)
    found = db.session.get(ApprovalRequest, row_id) if row_id is not None else None
    if found is None:
        raise NotFound(say(UNKNOWN_APPROVAL), field="approval", code="unknown_approval")
    return found


def delegators_of(user: StaffUser, on: date) -> list[int]:
    """Those who are away on `on` and delegated their approvals to `user`."""
    return list(db.session.execute(select(ApprovalDelegation.user_id).where(
        ApprovalDelegation.delegate_id == user.id, ApprovalDelegation.revoked.is_(False),
        ApprovalDelegation.starts_on <= on, ApprovalDelegation.ends_on >= on)).scalars())


def _today(now: datetime) -> date:
    from flask import current_app

    return local_date(now, current_app.config.get("MERCHANT_TIMEZONE", "Asia/Shanghai"))


def _edited_since(user: StaffUser, request: ApprovalRequest) -> bool:
    return db.session.execute(select(AuditEvent.id).where(
        AuditEvent.entity_type == request.entity_type, AuditEvent.entity_id == request.entity_id,
        AuditEvent.actor_id == user.id, AuditEvent.occurred_at >= request.created_at,
        ~AuditEvent.action.like("approval%")).limit(1)).first() is not None


def _refuse(actor: Actor, request: ApprovalRequest, reason: str, message: str):
    """A self-approval is refused and the refusal kept in the audit chain (the edge commits it before answering)."""
    audit.record(actor, "approval.refused", "approval", request.id, after={"reason": reason, "role": actor.role})
    error = Forbidden(say(message), field="approval", code="self_approval")
    error.keep_audit = True
    raise error


def _acts(request: ApprovalRequest, user: StaffUser, now: datetime) -> list[tuple[ApprovalStep, int | None]]:
    """The open steps this user may decide: as a candidate, or on behalf of a candidate away (delegation)."""
    away = None
    acts = []
    for step in request.steps:
        if step.state != "pending":
            continue
        if user.id in step.candidates:
            acts.append((step, None))
            continue
        away = delegators_of(user, _today(now)) if away is None else away
        principal = next((c for c in step.candidates if c in away and c != request.requester_id), None)
        if principal is not None:
            acts.append((step, principal))
    return acts


def assert_may_decide(request: ApprovalRequest, user: StaffUser, actor: Actor, now: datetime | None = None
                      ) -> list[tuple[ApprovalStep, int | None]]:
    """Refuse a decision on a closed request, one's own request or one on an object one edited since it was raised
    (403 `self_approval`, audited), or by someone not named on an open step; else the steps they may decide."""
    now = now or utc_now()
    if request.state == "withdrawn":
        raise Conflict(say(WITHDRAWN), field="approval", code="approval_withdrawn")
    if request.state != "pending":
        raise Conflict(say(CLOSED, state=labels.label(labels.APPROVAL_STATE, request.state)),
                       field="approval", code="approval_closed")
    if user.id == request.requester_id:
        _refuse(actor, request, "own_request", SELF)
    if _edited_since(user, request):
        _refuse(actor, request, "edited_since_request", EDITED)
    acts = _acts(request, user, now)
    if not acts:
        raise Forbidden(say(NOT_APPROVER), field="approval", code="not_an_approver")
    return acts


def decide(request: ApprovalRequest, user: StaffUser, decision: str, comment: str | None, actor: Actor,
           now: datetime | None = None) -> ApprovalRequest:
    """Approve or reject the open step(s) this user is named on (or decides as a delegate for); audited.

    The one place a second verification (step-up) for approvers belongs is the edge's call of this function:
    `portal.approvals.decision_step_up` (see docs/SECURITY.md)."""
    now = now or utc_now()
    if decision not in DECISIONS:
        raise ValidationFailed(say(BAD_DECISION), field="decision", code="invalid_decision")
    comment = (comment or "").strip()[:1000] or None
    acts = assert_may_decide(request, user, actor, now)
    decided = {(d.step_id, d.on_behalf_of_id or d.user_id) for d in request.decisions} | {
        (d.step_id, d.user_id) for d in request.decisions}
    acts = [(step, principal) for step, principal in acts
            if (step.id, principal or user.id) not in decided and (step.id, user.id) not in decided]
    if not acts:
        raise Conflict(say(TWICE), field="approval", code="already_decided")
    if decision == "reject" and not comment:
        raise ValidationFailed(say(COMMENT_NEEDED), field="comment", code="comment_required")
    for step, principal in acts:
        db.session.add(ApprovalDecision(request_id=request.id, step_id=step.id, user_id=user.id,
                                        on_behalf_of_id=principal, decision=decision, comment=comment,
                                        decided_at=now))
    db.session.flush()
    db.session.refresh(request, ["decisions"])
    if decision == "reject":
        for step in request.steps:
            if step.state in ("pending", "waiting"):
                step.state, step.closed_at = ("rejected" if any(step is s for s, _p in acts) else "closed"), now
        request.state, request.closed_at = "rejected", now
    else:
        for step, _principal in acts:
            approvals = {d.on_behalf_of_id or d.user_id for d in request.decisions
                         if d.step_id == step.id and d.decision == "approve"}
            if len(approvals) >= step.quorum:
                step.state, step.closed_at = "approved", now
        stage_steps = [s for s in request.steps if s.stage == request.stage]
        if all(s.state == "approved" for s in stage_steps):
            later = sorted({s.stage for s in request.steps if s.stage > request.stage})
            if later:
                rule = db.session.get(ApprovalRule, request.rule_id) if request.rule_id else None
                _activate(request, later[0], now, rule.stall_minutes if rule else 120,
                          rule.calendar if rule else "default")
            else:
                request.state, request.closed_at = "approved", now
    db.session.flush()
    audit.record(actor, "approval.decide", "approval", request.id, reason=comment,
                 after={"decision": decision, "steps": [s.id for s, _p in acts],
                        "on_behalf_of": [p for _s, p in acts if p], "state": request.state, "stage": request.stage,
                        "entity": f"{request.entity_type}:{request.entity_id}"})
    if request.state == "approved":
        _apply(request, now)
    return request


def withdraw(request: ApprovalRequest, actor: Actor, now: datetime | None = None) -> ApprovalRequest:
    now = now or utc_now()
    if actor.id != request.requester_id:
        raise Forbidden(say(NOT_REQUESTER), field="approval", code="not_requester")
    if request.state != "pending":
        raise Conflict(say(CLOSED, state=labels.label(labels.APPROVAL_STATE, request.state)),
                       field="approval", code="approval_closed")
    for step in request.steps:
        if step.state in ("pending", "waiting"):
            step.state, step.closed_at = "closed", now
    request.state, request.closed_at = "withdrawn", now
    db.session.flush()
    audit.record(actor, "approval.withdraw", "approval", request.id,
                 after={"entity": f"{request.entity_type}:{request.entity_id}", "round": request.round})
    return request


def resubmit(request: ApprovalRequest, actor: Actor, now: datetime | None = None) -> ApprovalRequest:
    """A new round of a rejected or withdrawn request (the old round stays, linked as `previous`)."""
    if actor.id != request.requester_id:
        raise Forbidden(say(NOT_REQUESTER), field="approval", code="not_requester")
    if request.state not in ("rejected", "withdrawn"):
        raise Conflict(say(NOT_CLOSED), field="approval", code="approval_not_closed")
    latest = latest_for(request.entity_type, request.entity_id, request.operation)
    if latest is not None and latest.id != request.id:
        raise Conflict(say(NOT_LATEST), field="approval", code="not_latest_round")
    assert_not_locked(request.entity_type, request.entity_id)
    rule = required(request.operation, request.context or {})
    if rule is None:  # the rules changed meanwhile: the old rule's steps still stand for this change
        rule = next((r for r in active_rules() if r.id == request.rule_id), None)
        if rule is None:
            raise Conflict(say(NO_RULE_ANY_MORE), field="approval", code="no_rule")
    return globals()["request"](request.operation, request.entity_id, request.context or {}, request.payload or {},
                                actor, rule=rule, summary=request.summary, now=now, previous=request)


# --- applying an approved change -----------------------------------------------------------------------------------

def _requester_actor(request: ApprovalRequest) -> Actor:
    return Actor(id=request.requester.id, label=request.requester.username, role=request.requester.role)


def _apply_order_create(request: ApprovalRequest) -> None:
    """The order was made and held in pending review: a paid one is now confirmed (as auto-review would have)."""
    from shared.actors import SYSTEM
    from shared.services import orders

    order = orders.get_order(request.entity_id, for_update=True)
    if order.status == "pending_review" and order.payment_status == "paid":
        orders.transition_order(order, "confirmed", SYSTEM, reason=f"approval #{request.id} approved")


def _apply_order_transition(request: ApprovalRequest) -> None:
    from shared.services import orders

    order = orders.get_order(request.entity_id, for_update=True)
    orders.transition_order(order, request.payload["to"], _requester_actor(request), request.payload.get("reason"))


def _apply_transfer(request: ApprovalRequest) -> None:
    from shared.services import stock_ops

    p = request.payload
    stock_ops.transfer(p["sku"], p["from"], p["to"], p["quantity"], p["reason"], _requester_actor(request))


def _apply_stock_take(request: ApprovalRequest) -> None:
    from shared.services import stock_ops

    stock_ops.decide(int(request.entity_id), True, _requester_actor(request), request.payload.get("note"))


def _apply_role_change(request: ApprovalRequest) -> None:
    from shared.services import staff

    staff.update_user(staff.get_user(request.entity_id), _requester_actor(request), role=request.payload["role"])


def _apply_export(request: ApprovalRequest) -> None:
    """A held personal export is cleared by the approval, in the name of whoever gave the final approval."""
    from shared.services import exports

    final = request.decisions[-1].user if request.decisions else request.requester
    exports.clear_by_approval(request.entity_id, request.id,
                              Actor(id=final.id, label=final.username, role=final.role))


def _apply_address_change(request: ApprovalRequest) -> None:
    """The staff member's address change, made as they asked it once approved (checked again: not packed since)."""
    from shared.services import orders

    order = orders.get_order(request.entity_id, for_update=True)
    orders.change_address(order, orders.approved_address(request.payload), _requester_actor(request),
                          request.payload.get("reason"))


def _apply_price_change(request: ApprovalRequest) -> None:
    """The price change as asked, once approved (checked again: still unpaid and open)."""
    from shared.services import orders

    order = orders.get_order(request.entity_id, for_update=True)
    changes = {name: value for name, value in request.payload.items() if name != "reason"}
    orders.change_price(order, changes, _requester_actor(request), request.payload.get("reason"))


def _apply_refund(request: ApprovalRequest) -> None:
    """The refund held for approval is made now (sent to the provider, or left to the platform)."""
    from shared.services import refunds

    refunds.apply_approved(request.payload["out_refund_no"])


APPLY = {"order.create": _apply_order_create, "order.confirm": _apply_order_transition,
         "order.cancel_paid": _apply_order_transition, "order.address_change": _apply_address_change,
         "order.amount_change": _apply_price_change, "stock.transfer": _apply_transfer,
         "stock_take.variance": _apply_stock_take, "user.role_change": _apply_role_change,
         "export.run": _apply_export, "order.refund": _apply_refund}


def _apply(request: ApprovalRequest, now: datetime) -> None:
    handler = APPLY.get(request.operation)
    if handler is None:  # an operation whose service asks for the approval before acting (e.g. a future export)
        return
    with applying(request):
        handler(request)


# --- delegation ----------------------------------------------------------------------------------------------------

def _delegates_from(user_id: int, starts_on: date, ends_on: date) -> dict[int, int]:
    rows = db.session.execute(select(ApprovalDelegation.user_id, ApprovalDelegation.delegate_id).where(
        ApprovalDelegation.revoked.is_(False), ApprovalDelegation.starts_on <= ends_on,
        ApprovalDelegation.ends_on >= starts_on)).all()
    return {u: d for u, d in rows}


def delegate(user: StaffUser, to: StaffUser, starts_on: date, ends_on: date, actor: Actor) -> ApprovalDelegation:
    """While `user` is away, `to` decides on their behalf. Refused: to oneself, backwards or longer than a year,
    a circle with delegations overlapping these dates (A→B while B→A)."""
    if to is None or to.id == user.id:
        raise ValidationFailed(say(SELF_DELEGATION), field="delegate", code="self_delegation")
    if not isinstance(starts_on, date) or not isinstance(ends_on, date) or ends_on < starts_on or (
            ends_on - starts_on).days > 366:
        raise ValidationFailed(say(BAD_DATES), field="ends_on", code="invalid_dates")
    if not to.active:
        raise ValidationFailed(say(UNKNOWN_TARGET, step=1, kind=say(KINDS["users"]), target=to.username),
                               field="delegate", code="inactive_delegate")
    links = _delegates_from(user.id, starts_on, ends_on)
    path, current = [user.username, to.username], to.id
    for _hop in range(50):
        current = links.get(current)
        if current is None:
            break
        person = db.session.get(StaffUser, current)
        path.append(person.username if person else str(current))
        if current == user.id:
            raise ValidationFailed(say(DELEGATION_CIRCLE, path=" → ".join(path)), field="delegate",
                                   code="delegation_circle")
    made = ApprovalDelegation(user_id=user.id, delegate_id=to.id, starts_on=starts_on, ends_on=ends_on,
                              revoked=False)
    db.session.add(made)
    db.session.flush()
    audit.record(actor, "approval.delegate", "staff_user", user.username,
                 after={"delegate": to.username, "starts_on": starts_on.isoformat(), "ends_on": ends_on.isoformat()})
    return made


def revoke_delegation(delegation: ApprovalDelegation, actor: Actor) -> None:
    delegation.revoked = True
    audit.record(actor, "approval.delegation_revoked", "staff_user", delegation.user.username,
                 after={"delegate": delegation.delegate.username})


def delegations_of(user: StaffUser) -> list[ApprovalDelegation]:
    return list(db.session.execute(select(ApprovalDelegation).where(
        or_(ApprovalDelegation.user_id == user.id, ApprovalDelegation.delegate_id == user.id),
        ApprovalDelegation.revoked.is_(False)).order_by(ApprovalDelegation.starts_on.desc())).scalars())


# --- who is an approver (second factor at sign-in) ---------------------------------------------------------------

def is_approver(user) -> bool:
    """Whether any active rule's step can name this user, so they must pass the second factor at sign-in: their
    role is a step's role, they are named in a step, they lead a team (team-lead and superior steps, and every
    escalation, name team leads), or someone delegated their approvals to them (a delegation not yet over).
    Answered from the process's copy of the rules; at most two small reads (teams led, delegations)."""
    from shared.models import Team

    user_id = getattr(user, "id", None)
    rules = active_rules()
    if user_id is None or not rules:
        return False
    role = getattr(user, "role", None)
    for rule in rules:
        for _stage, kind, target, _quorum in rule.steps:
            if kind == "role" and target == role:
                return True
            if kind == "users" and user_id in _user_ids(target):
                return True
    if db.session.execute(select(Team.id).where(Team.lead_id == user_id).limit(1)).first() is not None:
        return True
    return db.session.execute(select(ApprovalDelegation.id).where(
        ApprovalDelegation.delegate_id == user_id, ApprovalDelegation.revoked.is_(False),
        ApprovalDelegation.ends_on >= _today(utc_now())).limit(1)).first() is not None


def _register_approver_check() -> None:
    from shared.services import second_factor

    if is_approver not in second_factor.APPROVER_CHECKS:
        second_factor.APPROVER_CHECKS.append(is_approver)


_register_approver_check()


# --- inbox, bulk ---------------------------------------------------------------------------------------------------

def _json_contains(column, user_id: int):
    """Candidates are a JSON list of ids: matched as text so the query is the same on SQLite and PostgreSQL."""
    from sqlalchemy import String, cast

    text = cast(column, String)
    return or_(text.like(f"[{user_id}]"), text.like(f"[{user_id},%"), text.like(f"%, {user_id}]"),
               text.like(f"%, {user_id},%"), text.like(f"%,{user_id}]"), text.like(f"%,{user_id},%"))


def inbox(user: StaffUser, now: datetime | None = None, limit: int = 200) -> list[ApprovalRequest]:
    """Pending requests with an open step that waits for this user, or for someone they stand in for."""
    now = now or utc_now()
    people = [user.id, *delegators_of(user, _today(now))]
    steps = select(ApprovalStep.request_id).where(ApprovalStep.state == "pending",
                                                  or_(*[_json_contains(ApprovalStep.candidates, p) for p in people]))
    found = db.session.execute(select(ApprovalRequest).where(
        ApprovalRequest.state == "pending", ApprovalRequest.id.in_(steps), ApprovalRequest.requester_id != user.id)
        .order_by(ApprovalRequest.created_at).limit(limit)).scalars().all()
    return [r for r in found if _acts(r, user, now)]


def list_requests(user: StaffUser, state: str | None = None, mine: bool = False, limit: int = 200
                  ) -> list[ApprovalRequest]:
    """For the API: with `state` pending, the inbox; otherwise requests the user raised or was named on."""
    if state is not None and state not in STATES:
        raise ValidationFailed(say(INVALID_STATE, states=', '.join(STATES)), field="state", code="invalid_state")
    if state == "pending" and not mine:
        return inbox(user, limit=limit)
    named = select(ApprovalStep.request_id).where(_json_contains(ApprovalStep.candidates, user.id))
    query = select(ApprovalRequest).where(or_(ApprovalRequest.requester_id == user.id,
                                              ApprovalRequest.id.in_(named)))
    if state:
        query = query.where(ApprovalRequest.state == state)
    return list(db.session.execute(query.order_by(ApprovalRequest.id.desc()).limit(limit)).scalars())


def decide_many(request_ids: list, user: StaffUser, decision: str, comment: str | None, actor: Actor,
                now: datetime | None = None) -> list[dict]:
    """Bulk decision, at most MAX_BULK: each in its own savepoint, a result per item (decided or the refusal)."""
    from shared.services.errors import ServiceError

    ids = list(dict.fromkeys(request_ids or []))
    if not ids:
        raise ValidationFailed(say(CHOOSE_A_REQUEST), field="ids", code="required")
    if len(ids) > MAX_BULK:
        raise ValidationFailed(say(TOO_MANY, most=MAX_BULK), field="ids", code="too_many")
    results = []
    for request_id in ids:
        try:
            with db.session.begin_nested():
                found = get_request(request_id)
                decide(found, user, decision, comment, actor, now=now)
            results.append({"id": found.id, "ok": True, "state": found.state})
        except ServiceError as refused:
            if getattr(refused, "keep_audit", False):  # the savepoint rolled the refusal back: keep it
                audit.record(actor, "approval.refused", "approval", request_id, after={"reason": "self_approval",
                                                                                      "role": actor.role})
            results.append({"id": request_id, "ok": False, "code": refused.code, "message": refused.message})
    return results


# --- escalation ----------------------------------------------------------------------------------------------------

def stalled_steps(now: datetime, limit: int = 500) -> list[ApprovalStep]:
    return list(db.session.execute(select(ApprovalStep).where(
        ApprovalStep.state == "pending", ApprovalStep.due_at <= now, ApprovalStep.escalation_level < MAX_ESCALATION)
        .order_by(ApprovalStep.due_at, ApprovalStep.id).limit(limit)).scalars())


def escalate(step: ApprovalStep, now: datetime, actor: Actor) -> list[int]:
    """Mark a step stalled (审批滞留) and add the superiors of its present approvers as candidates (one level per
    escalation, at most MAX_ESCALATION); the next due time starts now. Returns the ids added."""
    request = step.request
    added = []
    for candidate in list(step.candidates):
        person = db.session.get(StaffUser, candidate)
        if person is None:
            continue
        for superior in role_service.superiors(person, 1):
            if superior.id not in step.candidates and superior.id not in added and superior.id != request.requester_id:
                added.append(superior.id)
    if not added:  # nobody above the approvers: the requester's line stands in
        added = [s.id for s in role_service.superiors(request.requester, MAX_ESCALATION)
                 if s.id not in step.candidates][:1]
    step.candidates = [*step.candidates, *added]
    step.stalled, step.stalled_at = True, step.stalled_at or now
    step.escalation_level += 1
    rule = db.session.get(ApprovalRule, request.rule_id) if request.rule_id else None
    step.due_at = _calendar(rule.calendar if rule else "default").add(
        now, timedelta(minutes=rule.stall_minutes if rule else 120))
    db.session.flush()
    audit.record(actor, "approval.escalate", "approval", request.id,
                 after={"step": step.id, "level": step.escalation_level, "added": added, "stalled": True})
    return added


def notify_stalled(step: ApprovalStep, added: list[int]) -> bool:
    """Tell the configured WeCom/DingTalk group robot, as the fulfilment alarms do; without one, the inbox shows it."""
    from flask import current_app

    from shared.notify.robots import Alert
    from shared.notify.robots import deliver as send

    kind, url = current_app.config.get("ALERT_ROBOT_KIND"), current_app.config.get("ALERT_ROBOT_URL")
    if not kind or not url:
        return False
    request = step.request
    names = [u.username for u in db.session.execute(select(StaffUser).where(StaffUser.id.in_(added))).scalars()]
    result = send(kind, url, Alert(title="审批滞留 Approval stalled", lines=[
        f"#{request.id} {request.operation} {request.entity_type} {request.entity_id}",
        f"{request.summary}", f"→ {', '.join('@' + n for n in names) or '-'} (level {step.escalation_level})"]),
        secret=current_app.config.get("ALERT_ROBOT_SECRET"))
    return result.ok
