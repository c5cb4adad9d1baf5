"""Who works on an order: assign it to a staff user and/or a team, or take the assignment away; audited."""
from sqlalchemy import select

from shared.actors import Actor
from shared import labels
from shared.extensions import db
from shared.models import Order, OrderAssignment, StaffUser, Team
from shared.security.permissions import can
from shared.services import audit
from shared.services.errors import Forbidden, ValidationFailed
from shared.services.validation import N_, say
from shared.timekeeping import utc_now

MAY_NOT_ASSIGN = N_("your role (%(role)s) may not assign orders")
NO_SUCH_ASSIGNEE = N_("no active staff user %(name)s to assign to")
NO_SUCH_TEAM = N_("no team %(code)s to assign to")
ALREADY_SO = N_("order %(no)s already has this assignee and team")


def may_assign(role: str) -> bool:
    """Assigning is editing the order: the same permission as putting it on hold (`orders` edit)."""
    return can(role, "orders", "edit")


def resolve(username: str | None, team_code: str | None) -> tuple[StaffUser | None, Team | None]:
    """The user and team named (either may be empty: nobody); an unknown or inactive one is a clear error."""
    user = team = None
    if username:
        user = db.session.execute(select(StaffUser).where(StaffUser.username == str(username)[:64])).scalar()
        if user is None or not user.active:
            raise ValidationFailed(say(NO_SUCH_ASSIGNEE, name=str(username)[:64]), field="assignee",
                                   code="unknown_assignee")
    if team_code:
        team = db.session.execute(select(Team).where(Team.code == str(team_code)[:32])).scalar()
        if team is None:
            raise ValidationFailed(say(NO_SUCH_TEAM, code=str(team_code)[:32]), field="team", code="unknown_team")
    return user, team


def assignment_of(order: Order) -> OrderAssignment | None:
    return db.session.get(OrderAssignment, order.id)


def _words(row: OrderAssignment | None) -> dict:
    if row is None:
        return {"assignee": None, "team": None}
    user = db.session.get(StaffUser, row.assignee_id) if row.assignee_id else None
    team = db.session.get(Team, row.team_id) if row.team_id else None
    return {"assignee": user.username if user else None, "team": team.code if team else None}


def assign(order: Order, actor: Actor, user: StaffUser | None, team: Team | None) -> OrderAssignment | None:
    """Assign the order (user and team both None: unassign). Audited as `order.assign` with before and after;
    refused (nothing changed): a role that may not edit orders, or the order already assigned exactly so."""
    if not may_assign(actor.role):
        raise Forbidden(say(MAY_NOT_ASSIGN, role=labels.role_name(actor.role)), code="assign_forbidden")
    row = assignment_of(order)
    before = _words(row)
    after = {"assignee": user.username if user else None, "team": team.code if team else None}
    if before == after:
        raise ValidationFailed(say(ALREADY_SO, no=order.order_no), code="already_assigned")
    if user is None and team is None:
        db.session.delete(row)
        row = None
    else:
        if row is None:
            row = OrderAssignment(order_id=order.id)
            db.session.add(row)
        row.assignee_id, row.team_id = (user.id if user else None), (team.id if team else None)
        row.assigned_at, row.assigned_by_label = utc_now(), actor.label
    db.session.flush()
    audit.record(actor, "order.assign", "order", order.order_no, before=before, after=after)
    return row


def assignees_of(order_ids: list[int]) -> dict[int, tuple[str | None, str | None]]:
    """order id -> (username, team code) for the orders that are assigned, in one query."""
    if not order_ids:
        return {}
    rows = db.session.execute(
        select(OrderAssignment.order_id, StaffUser.username, Team.code)
        .outerjoin(StaffUser, StaffUser.id == OrderAssignment.assignee_id)
        .outerjoin(Team, Team.id == OrderAssignment.team_id)
        .where(OrderAssignment.order_id.in_(order_ids))).all()
    return {order_id: (username, team) for order_id, username, team in rows}
