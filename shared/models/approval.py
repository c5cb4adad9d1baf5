"""Approvals as data: rules (operation, condition, steps), the requests they raise, each step's instance with its
candidates and due time, every decision, and delegations while someone is away (shared.services.approvals)."""
from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.extensions import db
from shared.models.types import UTCDateTime
from shared.timekeeping import utc_now


class ApprovalRule(db.Model):
    """Which operation needs approval, under which condition (JSON, see approvals.CONDITIONS), by which steps.

    When several active rules of one operation match, the one with the highest priority is taken."""

    __tablename__ = "approval_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    operation: Mapped[str] = mapped_column(String(40), index=True)
    name_zh: Mapped[str] = mapped_column(String(80))
    name_en: Mapped[str] = mapped_column(String(80))
    conditions: Mapped[dict] = mapped_column(JSON, default=dict)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # A step idle this long (business time of `calendar`) is marked stalled (审批滞留) and escalated.
    stall_minutes: Mapped[int] = mapped_column(Integer, default=120)
    calendar: Mapped[str] = mapped_column(String(32), default="default")
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    updated_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)

    steps = relationship("ApprovalRuleStep", order_by="(ApprovalRuleStep.stage, ApprovalRuleStep.id)",
                         cascade="all, delete-orphan")


class ApprovalRuleStep(db.Model):
    """One step of a rule: steps of the same stage run in parallel, stages in order.

    kind: `role` (target: a role code), `team_lead` (target: a team code), `superior` (the requester's), `users`
    (target: user ids, comma-separated). `quorum` approvals of the candidates complete the step."""

    __tablename__ = "approval_rule_steps"

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("approval_rules.id", ondelete="CASCADE"), index=True)
    stage: Mapped[int] = mapped_column(Integer, default=1)
    kind: Mapped[str] = mapped_column(String(16))
    target: Mapped[str | None] = mapped_column(String(200))
    quorum: Mapped[int] = mapped_column(Integer, default=1)


class ApprovalRequest(db.Model):
    """One round of approval of one change to one object: pending → approved | rejected | withdrawn.

    `payload` is the pending change (what is applied on approval); `guarded_fields` are locked while pending."""

    __tablename__ = "approval_requests"
    __table_args__ = (Index("ix_approval_requests_entity", "entity_type", "entity_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    operation: Mapped[str] = mapped_column(String(40))
    entity_type: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(64))
    round: Mapped[int] = mapped_column(Integer, default=1)
    previous_id: Mapped[int | None] = mapped_column(ForeignKey("approval_requests.id"))
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("approval_rules.id", ondelete="SET NULL"))
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    stage: Mapped[int] = mapped_column(Integer, default=1)
    requester_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"), index=True)
    summary: Mapped[str] = mapped_column(String(200), default="")
    context: Mapped[dict] = mapped_column(JSON, default=dict)
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    guarded_fields: Mapped[list] = mapped_column(JSON, default=list)
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)
    closed_at = mapped_column(UTCDateTime)

    requester = relationship("StaffUser", foreign_keys=[requester_id])
    rule = relationship("ApprovalRule")
    steps = relationship("ApprovalStep", order_by="(ApprovalStep.stage, ApprovalStep.id)", back_populates="request")
    decisions = relationship("ApprovalDecision", order_by="ApprovalDecision.id")


class ApprovalStep(db.Model):
    """A rule step as it runs for one request: waiting (a later stage) → pending → approved | rejected | closed.

    Candidates are resolved when the step is activated; escalation adds the approvers' superiors."""

    __tablename__ = "approval_steps"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("approval_requests.id"), index=True)
    stage: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    target: Mapped[str | None] = mapped_column(String(200))
    quorum: Mapped[int] = mapped_column(Integer, default=1)
    candidates: Mapped[list] = mapped_column(JSON, default=list)
    state: Mapped[str] = mapped_column(String(16), default="waiting", index=True)
    activated_at = mapped_column(UTCDateTime)
    due_at = mapped_column(UTCDateTime, index=True)
    stalled: Mapped[bool] = mapped_column(Boolean, default=False)  # 审批滞留: idle past its due time
    stalled_at = mapped_column(UTCDateTime)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    closed_at = mapped_column(UTCDateTime)

    request = relationship("ApprovalRequest", back_populates="steps")


class ApprovalDecision(db.Model):
    """Who decided what on a step, and on whose behalf when deciding as a delegate."""

    __tablename__ = "approval_decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("approval_requests.id"), index=True)
    step_id: Mapped[int] = mapped_column(ForeignKey("approval_steps.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    on_behalf_of_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    decision: Mapped[str] = mapped_column(String(16))
    comment: Mapped[str | None] = mapped_column(Text)
    decided_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)

    user = relationship("StaffUser", foreign_keys=[user_id])
    on_behalf_of = relationship("StaffUser", foreign_keys=[on_behalf_of_id])


class ApprovalDelegation(db.Model):
    """While `user` is away (starts_on..ends_on, merchant dates, inclusive), `delegate` decides on their behalf."""

    __tablename__ = "approval_delegations"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"), index=True)
    delegate_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"), index=True)
    starts_on = mapped_column(Date, nullable=False)
    ends_on = mapped_column(Date, nullable=False)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at = mapped_column(UTCDateTime, default=utc_now, nullable=False)

    user = relationship("StaffUser", foreign_keys=[user_id])
    delegate = relationship("StaffUser", foreign_keys=[delegate_id])
