"""Roles and teams as data: made and changed at run time, effective on the next request, never locking admins out."""
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text

from shared import business_hours
from shared.actors import Actor
from shared.extensions import db
from shared.models import AuditEvent, RoleGrant, StaffRole, StaffUser
from shared.security import role_table
from shared.security.permissions import can, visibility
from shared.services import orders, roles, staff
from shared.services.errors import Conflict, Forbidden, NotFound, ValidationFailed
from tests.factories import ADMIN, PASSWORD
from tests.portal_client import csrf_token, english_client, sign_in, step_up


def _grants(code: str) -> set[str]:
    return {f"{r}:{a}" for r, a in db.session.execute(select(RoleGrant.resource, RoleGrant.action)
                                                      .where(RoleGrant.role_code == code))}


def _actor(user: StaffUser) -> Actor:
    return Actor(id=user.id, label=user.username, role=user.role, ip="127.0.0.1")


def test_seeded_builtin_roles_keep_the_table_they_had_in_code(session):
    table = role_table.current()
    assert set(table.roles) == {"admin", "ops_manager", "customer_service", "warehouse", "finance", "auditor",
                                "cs_lead", "finance_director", "warehouse_manager"}  # approvers, 0009_approvals
    assert can("customer_service", "orders", "edit") and not can("customer_service", "users", "view")
    assert can("warehouse", "fulfilment", "edit") and not can("warehouse", "order_review", "edit")
    assert visibility("customer_service", "phone") == "masked" and visibility("auditor", "name") == "hidden"
    assert table.roles["finance"].second_factor and not table.roles["warehouse"].second_factor


def test_a_role_made_at_run_time_gets_its_grants_and_the_moves_they_allow(session, create_order):
    role = roles.create_role("cs_senior", "客服主管", "Customer service lead", ADMIN, like="customer_service")
    assert _grants("cs_senior") == _grants("customer_service")
    assert visibility("cs_senior", "phone") == "masked"
    roles.set_permissions(role, ADMIN, grants=_grants("cs_senior") | {"approvals:edit"}, fields={"phone": "full"})
    assert can("cs_senior", "approvals", "edit") and visibility("cs_senior", "phone") == "full"
    lead = staff.create_user("lead1", PASSWORD, "cs_senior", ADMIN)
    order = create_order(paid=False)
    orders.transition_order(order, "on_hold", _actor(lead), reason="buyer asked")  # orders:edit, from CS
    assert order.status == "on_hold"
    roles.set_permissions(role, ADMIN, grants=_grants("cs_senior") - {"order_review:edit"})
    with pytest.raises(Forbidden):
        orders.transition_order(order, "cancelled", _actor(lead), reason="buyer asked")
    assert order.status == "on_hold"
    db.session.commit()  # audit events are written in a batch at commit
    event = db.session.execute(select(AuditEvent).where(AuditEvent.action == "role.permissions")
                               .order_by(AuditEvent.id.desc())).scalars().first()
    assert event.after["removed"] == ["order_review:edit"] and event.entity_id == "cs_senior"


def test_a_change_takes_effect_on_the_next_request(portal, create_user):
    roles.create_role("night_cs", "夜班客服", "Night shift service", ADMIN, like="customer_service")
    user = create_user("night1", "night_cs")
    db.session.commit()
    client = english_client(portal)
    assert sign_in(client, user.username).status_code == 302
    assert client.get("/orders/").status_code == 200
    roles.set_permissions(db.session.get(StaffRole, "night_cs"), ADMIN,
                          grants=_grants("night_cs") - {"orders:view"})
    db.session.commit()
    assert client.get("/orders/").status_code == 403


def test_another_processs_change_is_seen_through_the_revision_token(portal, create_user):
    """A change written by another process (raw SQL here: not through this process's copy) is picked up because
    the revision token differs; the copy is not trusted past its token."""
    user = create_user("cs9", "customer_service")
    db.session.commit()
    client = english_client(portal)
    assert sign_in(client, user.username).status_code == 302
    assert client.get("/orders/").status_code == 200
    db.session.execute(text("DELETE FROM role_grants WHERE role_code = 'customer_service' AND resource = 'orders' "
                            "AND action = 'view'"))
    db.session.commit()
    assert client.get("/orders/").status_code == 200  # same token: this process's copy still answers
    db.session.execute(text("UPDATE permission_revision SET token = 'changed-elsewhere' WHERE id = 1"))
    db.session.commit()
    assert client.get("/orders/").status_code == 403


def test_a_rolled_back_change_leaves_no_trace_in_the_copy(session):
    session.begin_nested()
    roles.set_permissions(db.session.get(StaffRole, "finance"), ADMIN, grants=_grants("finance") | {"users:view"})
    assert can("finance", "users", "view")
    session.rollback()
    role_table.forget()
    assert not can("finance", "users", "view")


def test_no_change_may_lock_every_admin_out(session, create_user):
    only = create_user("root1", "admin")
    admin_role = db.session.get(StaffRole, "admin")
    before = _grants("admin")
    with pytest.raises(Conflict) as refused:
        roles.set_permissions(admin_role, ADMIN, grants=before - {"roles:edit"})
    assert refused.value.code == "would_lock_out_admins"
    db.session.rollback()
    assert _grants("admin") == before
    with pytest.raises(Conflict):
        staff.update_user(db.session.get(StaffUser, only.id), ADMIN, role="auditor")
    db.session.rollback()
    assert db.session.get(StaffUser, only.id).role == "admin"
    second = create_user("root2", "admin")
    staff.update_user(db.session.get(StaffUser, only.id), _actor(second), active=False)  # another admin remains
    with pytest.raises(Conflict):
        staff.update_user(db.session.get(StaffUser, second.id), _actor(second), role="ops_manager")


def test_bad_role_edits_are_refused_and_change_nothing(session, create_user):
    for code in ("system", "customer", "X", "9lives", "a"):
        with pytest.raises(ValidationFailed):
            roles.create_role(code, "名", "Name", ADMIN)
    with pytest.raises(Conflict):
        roles.create_role("finance", "财务", "Finance", ADMIN)
    with pytest.raises(NotFound):
        roles.create_role("copycat", "复制", "Copy", ADMIN, like="nobody")
    role = roles.create_role("buyer", "采购", "Purchasing", ADMIN)
    with pytest.raises(ValidationFailed):
        roles.set_permissions(role, ADMIN, grants={"orders:explode"})
    with pytest.raises(ValidationFailed):
        roles.set_permissions(role, ADMIN, grants={"nuclear:view"})
    with pytest.raises(ValidationFailed):
        roles.set_permissions(role, ADMIN, fields={"phone": "everything"})
    assert _grants("buyer") == set()
    with pytest.raises(Conflict) as builtin:
        roles.delete_role(db.session.get(StaffRole, "auditor"), ADMIN)
    assert builtin.value.code == "builtin_role"
    create_user("buyer1", "buyer")
    with pytest.raises(Conflict) as in_use:
        roles.delete_role(role, ADMIN)
    assert in_use.value.code == "role_in_use"
    with pytest.raises(ValidationFailed):
        staff.create_user("ghost", PASSWORD, "nobody", ADMIN)


def test_deleting_an_unused_role_removes_its_grants(session):
    role = roles.create_role("temp", "临时", "Temporary", ADMIN, like="warehouse")
    roles.delete_role(role, ADMIN)
    assert db.session.get(StaffRole, "temp") is None and _grants("temp") == set()
    assert not can("temp", "fulfilment", "edit")


def test_superiors_follow_team_leads_up_the_teams(session, create_user):
    director, manager = create_user("director", "ops_manager"), create_user("cs_manager", "ops_manager")
    agent, lead = create_user("agent", "customer_service"), create_user("cs_lead1", "customer_service")
    operations = roles.create_team("ops", "运营部", "Operations", ADMIN, lead=director)
    service = roles.create_team("service", "客服部", "Service", ADMIN, lead=manager, parent=operations)
    shift = roles.create_team("shift-a", "客服一组", "Shift A", ADMIN, lead=lead, parent=service)
    roles.assign_team(agent, shift, ADMIN)
    assert [u.username for u in roles.superiors(agent)] == ["cs_lead1", "cs_manager", "director"]
    assert roles.superior_of(lead).username == "cs_manager"  # a lead's superior is the lead above
    assert roles.superior_of(director) is None
    with pytest.raises(ValidationFailed) as cycle:
        roles.update_team(operations, ADMIN, parent=shift)
    assert cycle.value.code == "team_cycle"
    staff.update_user(db.session.get(StaffUser, manager.id), ADMIN, active=False)
    assert [u.username for u in roles.superiors(agent, levels=2)] == ["cs_lead1", "director"]
    with pytest.raises(ValidationFailed):
        roles.create_team("ghosts", "幽灵", "Ghosts", ADMIN, lead=db.session.get(StaffUser, manager.id))


def test_admin_edits_the_matrix_in_the_portal_and_it_is_audited(portal, create_user):
    admin = create_user("matrix_admin", "admin")
    db.session.commit()
    client = english_client(portal)
    assert sign_in(client, admin.username).status_code == 302
    step_up(client, admin.username)  # role and permission changes are sensitive operations
    page = client.get("/roles/")
    assert page.status_code == 200 and 'data-role="customer_service"' in page.text
    token = csrf_token(client, "/roles/")
    created = client.post("/roles/", data={"csrf_token": token, "code": "purchasing", "name_zh": "采购",
                                           "name_en": "Purchasing", "like": "warehouse"})
    assert created.status_code == 303 and _grants("purchasing") == _grants("warehouse")
    saved = client.post("/roles/purchasing", data={
        "r-purchasing-csrf_token": token, "r-purchasing-name_zh": "采购", "r-purchasing-name_en": "Purchasing",
        "r-purchasing-grant": ["stock:view", "catalog:view", "catalog:edit"], "r-purchasing-field-phone": "masked"},
        follow_redirects=True)
    assert saved.status_code == 200, saved.text
    assert "Role purchasing saved." in saved.text, saved.text[saved.text.find("flash"):][:500]
    assert _grants("purchasing") == {"stock:view", "catalog:view", "catalog:edit"}
    role_table.forget()  # this test's own app context read the table before the requests changed it
    assert visibility("purchasing", "phone") == "masked"
    actions = db.session.execute(select(AuditEvent.action).where(AuditEvent.entity_id == "purchasing")).scalars()
    assert set(actions) == {"role.create", "role.permissions"}


def test_a_form_that_would_lock_out_admins_says_so_and_saves_nothing(portal, create_user):
    admin = create_user("lone_admin", "admin")
    db.session.commit()
    client = english_client(portal)
    assert sign_in(client, admin.username).status_code == 302
    step_up(client, admin.username)
    token = csrf_token(client, "/roles/")
    response = client.post("/roles/admin", data={"r-admin-csrf_token": token, "r-admin-name_zh": "管理员",
                                                "r-admin-name_en": "Administrator", "r-admin-grant": ["orders:view"]},
                           follow_redirects=True)
    assert "no active user who may change roles and users" in response.text
    assert "roles:edit" in _grants("admin") and can("admin", "users", "edit")


# --- the business-hours calendar --------------------------------------------------------------------------------

SHANGHAI = ZoneInfo("Asia/Shanghai")
WEEK = {str(day): ([["09:00", "12:00"], ["13:00", "18:00"]] if day <= 5 else []) for day in range(1, 8)}


def at(*args) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


def test_business_time_skips_nights_weekends_and_holidays_and_counts_make_up_days():
    calendar = business_hours.Calendar.from_data("Asia/Shanghai", WEEK, {
        date(2026, 10, 1): [], date(2026, 10, 2): [],  # 国庆 holidays (Thursday, Friday)
        date(2026, 10, 10): [["09:00", "18:00"]],  # a 调休 Saturday that is a working day
    })
    assert calendar.add(at(2026, 9, 28, 10, 30), timedelta(hours=2)) == at(2026, 9, 28, 13, 30)  # across lunch
    assert calendar.add(at(2026, 9, 28, 10, 0), timedelta(hours=2)) == at(2026, 9, 28, 12, 0)  # ends at lunch
    assert calendar.add(at(2026, 9, 28, 17, 0), timedelta(hours=2)) == at(2026, 9, 29, 10, 0)  # overnight
    assert calendar.add(at(2026, 9, 30, 17, 30), timedelta(hours=1)) == at(2026, 10, 5, 9, 30)  # holidays, weekend
    assert calendar.add(at(2026, 10, 9, 17, 0), timedelta(hours=2)) == at(2026, 10, 10, 10, 0)  # make-up Saturday
    assert calendar.add(at(2026, 10, 3, 22, 0), timedelta(minutes=1)) == at(2026, 10, 5, 9, 1)  # started off hours
    assert calendar.between(at(2026, 9, 28, 8, 0), at(2026, 9, 29, 8, 0)) == timedelta(hours=8)
    assert calendar.between(at(2026, 9, 30, 17, 0), at(2026, 10, 5, 10, 0)) == timedelta(hours=2)
    assert calendar.between(at(2026, 9, 30, 17, 0), at(2026, 9, 30, 16, 0)) == timedelta(0)
    always = business_hours.Calendar.always()
    assert always.add(at(2026, 10, 1, 23, 0), timedelta(hours=2)) == at(2026, 10, 2, 1, 0)


def test_a_calendar_with_a_backwards_interval_or_no_hours_is_refused():
    with pytest.raises(ValueError):
        business_hours.Calendar.from_data("Asia/Shanghai", {"1": [["18:00", "09:00"]]})
    with pytest.raises(ValueError):
        business_hours.Calendar.from_data("Asia/Shanghai", {}).add(at(2026, 1, 5, 9, 0), timedelta(hours=1))


def test_the_seeded_calendar_is_weekdays_nine_to_six_in_the_merchant_zone(session):
    calendar = business_hours.load()
    assert calendar.zone == "Asia/Shanghai"
    assert calendar.add(at(2026, 12, 4, 17, 0), timedelta(hours=2)) == at(2026, 12, 7, 10, 0)  # Friday → Monday
