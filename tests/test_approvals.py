"""Approvals (issue 11 items 2-3): rules as data, the engine (stages, quorum, delegation, self-approval, rejection,
withdrawal, resubmission), the operations that call it, escalation in business time, the API and the portal."""
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from shared.actors import Actor
from shared.extensions import db
from shared.security import role_table
from shared.models import (ApprovalDecision, ApprovalRequest, ApprovalRule, AuditEvent, StaffUser, StockLevel)
from shared.services import approvals, orders, roles, staff, stock_ops
from shared.services.errors import Conflict, Forbidden, NotFound, ValidationFailed
from shared.timekeeping import utc_now
from tests.factories import ADMIN, PASSWORD, order_payload
from tests.portal_client import current_code, english_client, sign_in, step_up

SHANGHAI = ZoneInfo("Asia/Shanghai")
BIG = [{"sku": "SKU-1", "quantity": 1, "unit_price": "5000.00"}]  # 5,008.00 with the shipping fee
HUGE = [{"sku": "SKU-1", "quantity": 10, "unit_price": "6000.00"}]  # 60,008.00


def as_actor(user: StaffUser) -> Actor:
    return Actor.for_staff(user, ip="127.0.0.1")


@pytest.fixture
def people(session, stocked):
    """Customer service (agent) in team cs led by a cs_lead (lead); cs sits under ops, led by an ops manager (boss);
    a finance director, a second cs_lead and an admin."""
    made = {name: staff.create_user(name, PASSWORD, role, ADMIN, locale="en") for name, role in (
        ("agent", "customer_service"), ("lead", "cs_lead"), ("boss", "ops_manager"), ("fd", "finance_director"),
        ("root", "admin"), ("wm", "warehouse_manager"), ("agent2", "customer_service"))}
    ops = roles.create_team("ops", "运营", "Operations", ADMIN, lead=made["boss"])
    cs = roles.create_team("cs", "客服", "Customer service", ADMIN, lead=made["lead"], parent=ops)
    for name in ("agent", "agent2"):
        roles.assign_team(made[name], cs, ADMIN)
    db.session.commit()
    return made


def big_order(user: StaffUser, lines=BIG, **overrides):
    order = orders.create_order(order_payload(lines=lines, **overrides), as_actor(user))
    db.session.commit()
    return order


def events(action: str) -> list[AuditEvent]:
    return db.session.execute(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
                              ).scalars().all()


def test_the_seeded_rules_name_the_amounts_and_the_transfer_steps(session):
    assert approvals.required("order.create", {"amount": "5000.00", "currency": "CNY"}).code == "order_5k"
    assert approvals.required("order.create", {"amount": "50000.00", "currency": "CNY"}).code == "order_50k"
    assert approvals.required("order.create", {"amount": "4999.99", "currency": "CNY"}) is None
    assert approvals.required("order.create", {"amount": "9000.00", "currency": "USD"}) is None
    transfer = approvals.required("stock.transfer", {"warehouses": ["HZ1", "SZ1"]})
    assert sorted(transfer.steps) == [(1, "role", "customer_service", 1), (1, "role", "warehouse_manager", 1)]
    assert {"order.amount_change", "order.presale_delay", "order.refund", "export.run"} <= set(approvals.OPERATIONS)


def test_a_big_order_is_held_until_the_cs_lead_approves_it(people):
    order = big_order(people["agent"])
    held = order.approval_request
    assert order.status == "pending_review" and held.state == "pending"
    assert held.steps[0].candidates == [people["lead"].id]
    with pytest.raises(Conflict) as locked:  # the order cannot move while its approval is pending
        orders.transition_order(order, "confirmed", ADMIN)
    assert locked.value.code == "approval_pending"
    assert order.status == "pending_review"

    approvals.decide(held, people["lead"], "approve", "ok", as_actor(people["lead"]))
    db.session.commit()
    assert held.state == "approved" and order.status == "confirmed"  # paid: confirmed as auto-review would
    decided = events("approval.decide")
    assert [(e.actor_label, e.after["decision"], e.after["state"]) for e in decided] == [
        ("lead", "approve", "approved")]


def test_a_small_order_or_one_made_by_the_system_is_not_held(people):
    small = orders.create_order(order_payload(), as_actor(people["agent"]))
    by_system = orders.create_order(order_payload(lines=BIG), ADMIN)  # no staff id: a platform/channel order
    assert small.status == by_system.status == "confirmed"
    assert getattr(small, "approval_request", None) is None and by_system.approval_request is None


def test_fifty_thousand_adds_the_finance_director_as_a_second_stage(people):
    order = big_order(people["agent"], lines=HUGE)
    held = order.approval_request
    assert [(s.stage, s.state) for s in held.steps] == [(1, "pending"), (2, "waiting")]
    with pytest.raises(Forbidden) as early:  # stage 2 is not open yet
        approvals.decide(held, people["fd"], "approve", None, as_actor(people["fd"]))
    assert early.value.code == "not_an_approver"
    approvals.decide(held, people["lead"], "approve", None, as_actor(people["lead"]))
    assert held.state == "pending" and held.stage == 2 and held.steps[1].candidates == [people["fd"].id]
    assert order.status == "pending_review"
    approvals.decide(held, people["fd"], "approve", None, as_actor(people["fd"]))
    db.session.commit()
    assert held.state == "approved" and order.status == "confirmed"


def test_nobody_approves_their_own_request_admins_included_and_the_refusal_is_audited(people):
    for requester in ("lead", "root"):
        order = big_order(people[requester])
        held = order.approval_request
        assert people[requester].id not in held.steps[0].candidates
        with pytest.raises(Forbidden) as refused:
            approvals.decide(held, people[requester], "approve", None, as_actor(people[requester]))
        assert refused.value.code == "self_approval"
        db.session.commit()  # the edge commits the refusal alone
        assert held.state == "pending" and not held.decisions
        assert [e.after["reason"] for e in events("approval.refused") if e.actor_label == requester] == ["own_request"]


def test_whoever_edited_the_object_since_the_request_may_not_decide_it(people):
    order = big_order(people["agent"], paid=False)
    held = order.approval_request
    orders.record_payment(order, utc_now(), Actor.for_staff(people["root"]))  # root touched the order meanwhile
    db.session.commit()
    held.steps[0].candidates = [people["root"].id]  # test set-up: root is the approver of this round
    db.session.commit()
    with pytest.raises(Forbidden) as refused:
        approvals.decide(held, people["root"], "approve", None, as_actor(people["root"]))
    assert refused.value.code == "self_approval"
    assert held.state == "pending"


def test_approving_twice_is_refused_and_a_quorum_of_two_of_three_counts_people(people):
    three = [people[n] for n in ("lead", "boss", "fd")]
    approvals.save_rule(ADMIN, code="two_of_three", operation="order.create", name_zh="三选二", name_en="2 of 3",
                        conditions={"min_amount": "100.00"}, priority=99,
                        steps=[{"stage": 1, "kind": "users", "target": ",".join(str(u.id) for u in three),
                                "quorum": 2}])
    db.session.commit()
    order = orders.create_order(order_payload(lines=[{"sku": "SKU-1", "quantity": 2, "unit_price": "80.00"}]),
                                as_actor(people["agent"]))
    held = order.approval_request
    approvals.decide(held, three[0], "approve", None, as_actor(three[0]))
    assert held.steps[0].state == "pending"
    with pytest.raises(Conflict) as twice:
        approvals.decide(held, three[0], "approve", None, as_actor(three[0]))
    assert twice.value.code == "already_decided"
    assert db.session.execute(select(func.count()).select_from(ApprovalDecision)).scalar_one() == 1
    approvals.decide(held, three[1], "approve", None, as_actor(three[1]))
    assert held.state == "approved" and order.status == "confirmed"


def test_deciding_after_withdrawal_is_refused_and_a_resubmission_is_a_new_round(people):
    order = big_order(people["agent"])
    first = order.approval_request
    with pytest.raises(Forbidden):  # only the requester withdraws
        approvals.withdraw(first, as_actor(people["lead"]))
    approvals.withdraw(first, as_actor(people["agent"]))
    db.session.commit()
    with pytest.raises(Conflict) as late:
        approvals.decide(first, people["lead"], "approve", None, as_actor(people["lead"]))
    assert late.value.code == "approval_withdrawn" and not first.decisions
    with pytest.raises(Conflict) as not_granted:  # withdrawn is not approved: the order still cannot be confirmed
        orders.transition_order(order, "confirmed", ADMIN)
    assert not_granted.value.code == "approval_not_granted"

    second = approvals.resubmit(first, as_actor(people["agent"]))
    db.session.commit()
    assert (second.round, second.previous_id, second.state, first.state) == (2, first.id, "pending", "withdrawn")
    with pytest.raises(Conflict):  # the old round cannot start a third one while the second is open
        approvals.resubmit(first, as_actor(people["agent"]))
    approvals.decide(second, people["lead"], "approve", None, as_actor(people["lead"]))
    assert order.status == "confirmed"
    assert [r.round for r in approvals.history_for("order", order.order_no)] == [1, 2]


def test_a_rejection_needs_a_comment_and_closes_the_sibling_steps(people):
    from shared.services import catalog

    catalog.create_warehouse({"code": "SZ1", "name": "深圳仓", "province": "广东省", "city": "深圳市"}, ADMIN)
    db.session.commit()
    held = stock_ops.transfer("SKU-1", "HZ1", "SZ1", 3, "rebalance", as_actor(people["agent2"]))
    db.session.commit()
    assert [s.kind for s in held.steps] == ["role", "role"] and all(s.state == "pending" for s in held.steps)
    with pytest.raises(ValidationFailed) as bare:
        approvals.decide(held, people["wm"], "reject", "  ", as_actor(people["wm"]))
    assert bare.value.code == "comment_required"
    db.session.rollback()
    assert held.state == "pending" and not held.decisions
    approvals.decide(held, people["wm"], "reject", "HZ1 needs them for the sale", as_actor(people["wm"]))
    db.session.commit()
    assert held.state == "rejected"
    assert sorted(s.state for s in held.steps) == ["closed", "rejected"]
    with pytest.raises(Conflict) as closed:  # the sibling step (customer service) cannot decide any more
        approvals.decide(held, people["agent"], "approve", None, as_actor(people["agent"]))
    assert closed.value.code == "approval_closed"
    levels = {lv.warehouse.code: lv.on_hand for lv in db.session.execute(select(StockLevel)).scalars()}
    assert levels.get("SZ1", 0) == 0 and levels["HZ1"] == 20  # nothing moved


def test_a_transfer_moves_when_both_parallel_steps_approve(people):
    from shared.services import catalog

    sz1 = catalog.create_warehouse({"code": "SZ1", "name": "深圳仓", "province": "广东省", "city": "深圳市"}, ADMIN)
    catalog.create_bin(sz1, {"code": "A-01"}, ADMIN)
    db.session.commit()
    held = stock_ops.transfer("SKU-1", "HZ1", "SZ1", 3, "rebalance", as_actor(people["agent2"]))
    db.session.commit()
    approvals.decide(held, people["wm"], "approve", None, as_actor(people["wm"]))
    assert held.state == "pending"  # one of two parallel steps
    approvals.decide(held, people["agent"], "approve", None, as_actor(people["agent"]))
    db.session.commit()
    assert held.state == "approved"
    levels = {lv.warehouse.code: lv.on_hand for lv in db.session.execute(select(StockLevel)).scalars()}
    assert levels == {"HZ1": 17, "SZ1": 3}
    moved = db.session.execute(select(AuditEvent.actor_label).where(AuditEvent.action.like("stock%"))
                               .order_by(AuditEvent.id.desc()).limit(1)).scalar()
    assert moved == "agent2"  # made as the requester's change, once approved


def test_rules_with_an_impossible_quorum_or_unknown_names_are_refused_and_nothing_is_saved(people):
    before = db.session.execute(select(func.count()).select_from(ApprovalRule)).scalar_one()
    two = f"{people['lead'].id},{people['boss'].id}"
    bad = [
        ({"operation": "order.create", "steps": [{"kind": "users", "target": two, "quorum": 3}]}, "impossible_quorum"),
        ({"operation": "order.create", "steps": [{"kind": "users", "target": two, "quorum": 0}]}, "impossible_quorum"),
        ({"operation": "order.create", "steps": [{"kind": "role", "target": "cs_lead", "quorum": 2}]},
         "impossible_quorum"),  # one user holds the role
        ({"operation": "order.create", "steps": [{"kind": "superior", "quorum": 2}]}, "impossible_quorum"),
        ({"operation": "order.teleport", "steps": [{"kind": "role", "target": "cs_lead"}]}, "unknown_operation"),
        ({"operation": "order.create", "steps": [{"kind": "role", "target": "no_such_role"}]}, "unknown_approver"),
        ({"operation": "order.create", "steps": [{"kind": "team_lead", "target": "nope"}]}, "unknown_approver"),
        ({"operation": "order.create", "steps": [{"kind": "users", "target": "999999"}]}, "unknown_approver"),
        ({"operation": "order.create", "steps": []}, "no_steps"),
        ({"operation": "order.create", "steps": [{"kind": "role", "target": "cs_lead"}],
          "conditions": {"min_amount": "-5"}}, "invalid_condition"),
    ]
    for fields, code in bad:
        with pytest.raises(ValidationFailed) as refused:
            approvals.save_rule(ADMIN, code="bad_rule", name_zh="坏", name_en="Bad", **fields)
        assert refused.value.code == code, fields
        db.session.rollback()
    assert db.session.execute(select(func.count()).select_from(ApprovalRule)).scalar_one() == before
    assert not [e for e in events("approval_rule.create")]


def test_an_order_with_a_custom_made_sku_is_held_when_a_rule_says_so(people):
    from shared.models import Sku

    approvals.save_rule(ADMIN, code="custom", operation="order.create", name_zh="定制", name_en="Custom-made",
                        conditions={"custom_made": True}, priority=30, steps=[{"kind": "superior", "quorum": 1}])
    db.session.commit()
    plain = orders.create_order(order_payload(channel_order_id="PLAIN"), as_actor(people["agent"]))
    assert plain.approval_request is None and plain.status == "confirmed"
    db.session.execute(Sku.__table__.update().values(custom_made=True))  # test set-up: SKU-1 is made to order
    custom = orders.create_order(order_payload(channel_order_id="CUSTOM"), as_actor(people["agent"]))
    assert custom.status == "pending_review"
    assert custom.approval_request.steps[0].candidates == [people["lead"].id]  # the agent's superior


def test_rule_edits_are_audited_and_take_effect_at_once(people):
    rule = approvals.get_rule(1)
    approvals.save_rule(ADMIN, rule, conditions={"min_amount": "3000.00", "currency": "CNY"})
    db.session.commit()
    assert approvals.required("order.create", {"amount": "3500.00", "currency": "CNY"}).code == "order_5k"
    [edit] = events("approval_rule.update")
    assert edit.before["conditions"]["min_amount"] == "5000.00" and edit.after["conditions"]["min_amount"] == "3000.00"


def test_delegation_lets_a_deputy_decide_on_behalf_and_refuses_circles(people):
    lead, deputy, boss = people["lead"], people["agent2"], people["boss"]
    today = date.today()
    approvals.delegate(lead, deputy, today - timedelta(days=1), today + timedelta(days=3), as_actor(lead))
    with pytest.raises(ValidationFailed) as circle:
        approvals.delegate(deputy, lead, today, today + timedelta(days=1), as_actor(deputy))
    assert circle.value.code == "delegation_circle"
    approvals.delegate(deputy, boss, today, today, as_actor(deputy))
    with pytest.raises(ValidationFailed) as longer:  # lead → deputy → boss → lead
        approvals.delegate(boss, lead, today, today, as_actor(boss))
    assert longer.value.code == "delegation_circle"
    for bad, code in (((lead, lead, today, today), "self_delegation"),
                      ((lead, boss, today, today - timedelta(days=1)), "invalid_dates")):
        with pytest.raises(ValidationFailed) as refused:
            approvals.delegate(*bad, ADMIN)
        assert refused.value.code == code
    db.session.commit()

    order = big_order(people["agent"])
    held = order.approval_request
    assert held in approvals.inbox(deputy)
    approvals.decide(held, deputy, "approve", "for lead, who is away", as_actor(deputy))
    db.session.commit()
    [decision] = held.decisions
    assert (decision.user_id, decision.on_behalf_of_id) == (deputy.id, lead.id) and held.state == "approved"


def test_a_delegation_back_to_the_requester_does_not_let_them_decide(people):
    lead, agent = people["lead"], people["agent"]
    approvals.delegate(lead, agent, date.today(), date.today(), as_actor(lead))
    order = big_order(agent)
    assert order.approval_request not in approvals.inbox(agent)
    with pytest.raises(Forbidden) as refused:
        approvals.decide(order.approval_request, agent, "approve", None, as_actor(agent))
    assert refused.value.code == "self_approval"


def test_bulk_decisions_are_at_most_a_hundred_with_a_result_each(people):
    with pytest.raises(ValidationFailed) as too_many:
        approvals.decide_many(list(range(1, 102)), people["lead"], "approve", None, as_actor(people["lead"]))
    assert too_many.value.code == "too_many"
    theirs = big_order(people["agent"], channel_order_id="BULK-1").approval_request
    own = big_order(people["lead"], channel_order_id="BULK-2").approval_request
    results = approvals.decide_many([theirs.id, own.id, 999999], people["lead"], "approve", None,
                                    as_actor(people["lead"]))
    db.session.commit()
    assert [(r["id"], r["ok"], r.get("code")) for r in results] == [
        (theirs.id, True, None), (own.id, False, "self_approval"), (999999, False, "unknown_approval")]
    assert theirs.state == "approved" and own.state == "pending"
    assert [e.entity_id for e in events("approval.refused")] == [str(own.id)]


def test_a_role_change_waits_for_approval_when_a_rule_says_so(people):
    approvals.save_rule(ADMIN, code="roles", operation="user.role_change", name_zh="角色变更", name_en="Role change",
                        steps=[{"kind": "role", "target": "admin", "quorum": 1}])
    db.session.commit()
    agent = people["agent"]
    staff.update_user(agent, as_actor(people["boss"]), role="finance")
    db.session.commit()
    held = agent.approval_request
    assert agent.role == "customer_service" and held.state == "pending"
    with pytest.raises(Conflict) as locked:
        staff.update_user(agent, as_actor(people["boss"]), role="warehouse")
    assert locked.value.code == "approval_pending"
    db.session.rollback()
    approvals.decide(held, people["root"], "approve", None, as_actor(people["root"]))
    db.session.commit()
    assert agent.role == "finance"


# --- escalation -------------------------------------------------------------------------------------------------

def local(*args) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


def test_an_idle_step_is_stalled_after_two_business_hours_and_escalated_two_levels_at_most(people, monkeypatch):
    requested = local(2026, 12, 4, 17, 0)  # a Friday, one business hour before closing
    monkeypatch.setattr("shared.services.approvals.utc_now", lambda: requested)
    order = big_order(people["agent"])
    step = order.approval_request.steps[0]
    assert step.due_at == local(2026, 12, 7, 10, 0)  # the weekend does not count
    assert approvals.stalled_steps(local(2026, 12, 7, 9, 59)) == []
    approvals.escalate(approvals.stalled_steps(local(2026, 12, 7, 10, 0))[0], local(2026, 12, 7, 10, 0), ADMIN)
    db.session.commit()
    assert step.stalled and step.escalation_level == 1 and step.candidates == [people["lead"].id, people["boss"].id]
    assert step.due_at == local(2026, 12, 7, 12, 0)
    approvals.escalate(step, local(2026, 12, 7, 12, 0), ADMIN)
    assert step.escalation_level == 2
    assert approvals.stalled_steps(local(2026, 12, 9, 12, 0)) == []  # at most two levels
    # the superior decides the escalated step
    approvals.decide(order.approval_request, people["boss"], "approve", None, as_actor(people["boss"]))
    db.session.commit()
    assert order.status == "confirmed"
    assert [e.after["level"] for e in events("approval.escalate")] == [1, 2]


# --- the API ----------------------------------------------------------------------------------------------------

def _token(user) -> dict:
    token = staff.issue_token(user, ADMIN)
    db.session.commit()
    return {"Authorization": f"Bearer {token}"}


def test_the_api_answers_202_then_409_and_403_and_the_superior_approves(portal, people):
    client = portal.test_client()
    agent, lead = _token(people["agent"]), _token(people["lead"])
    created = client.post("/api/v1/orders", json=order_payload(lines=BIG, channel_order_id="API-BIG"), headers=agent)
    assert created.status_code == 202, created.text
    body = created.get_json()
    assert body["status"] == "pending_approval" and body["order_no"] and body["approval_id"]
    number, approval_id = body["order_no"], body["approval_id"]

    moved = client.post(f"/api/v1/orders/{number}/transitions", json={"to": "confirmed"}, headers=agent)
    assert moved.status_code == 409 and moved.get_json()["error"]["code"] == "approval_pending"

    own = client.post(f"/api/v1/approvals/{approval_id}/decision", json={"decision": "approve"}, headers=agent)
    assert own.status_code == 403 and own.get_json()["error"]["code"] == "self_approval"
    assert [e.actor_label for e in events("approval.refused")] == ["agent"]  # kept although refused

    inbox = client.get("/api/v1/approvals?state=pending", headers=lead).get_json()["items"]
    assert [(i["id"], i["entity"]["id"], i["steps"][0]["candidates"]) for i in inbox] == [
        (approval_id, number, ["lead"])]
    bad = client.get("/api/v1/approvals?state=sideways", headers=lead)
    assert bad.status_code == 422
    no_code = client.post(f"/api/v1/approvals/{approval_id}/decision", json={"decision": "approve"}, headers=lead)
    assert no_code.status_code == 403 and no_code.get_json()["error"]["code"] == "step_up_required"
    reject_bare = client.post(f"/api/v1/approvals/{approval_id}/decision", json={"decision": "reject"},
                              headers={**lead, "X-Orderloom-OTP": current_code(people["lead"])})
    assert reject_bare.status_code == 422 and reject_bare.get_json()["error"]["code"] == "comment_required"
    decided = client.post(f"/api/v1/approvals/{approval_id}/decision", json={"decision": "approve", "comment": "ok"},
                          headers={**lead, "X-Orderloom-OTP": current_code(people["lead"])})
    assert decided.status_code == 200, decided.text
    assert decided.get_json()["state"] == "approved"
    assert client.get(f"/api/v1/orders/{number}", headers=lead).get_json()["status"] == "confirmed"
    again = client.post(f"/api/v1/approvals/{approval_id}/decision", json={"decision": "approve"}, headers=lead)
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "approval_closed"


# --- the portal -------------------------------------------------------------------------------------------------

def _form(client, path: str) -> str:
    from tests.portal_client import csrf_token

    return csrf_token(client, path)


def test_the_portal_inbox_bulk_decision_and_trail(portal, people):
    order = big_order(people["agent"], channel_order_id="PORTAL-1")
    held = order.approval_request
    client = english_client(portal)
    assert sign_in(client, "lead").status_code == 302
    page = client.get("/approvals/")
    assert f'data-id="{held.id}"' in page.text
    step_up(client, "lead")
    too_many = client.post("/approvals/bulk", data={"csrf_token": _form(client, "/approvals/"), "decision": "approve",
                                                    "ids": [str(i) for i in range(1, 102)]})
    assert too_many.status_code == 422 and held.state == "pending"
    done = client.post("/approvals/bulk", data={"csrf_token": _form(client, "/approvals/"), "decision": "approve",
                                                "ids": [str(held.id)]})
    assert done.status_code == 200 and 'data-ok="yes"' in done.text
    db.session.expire_all()
    assert db.session.get(ApprovalRequest, held.id).state == "approved"
    trail = client.get(f"/orders/{order.order_no}").text
    assert 'data-testid="approval-trail"' in trail and f'data-testid="approval-{held.id}"' in trail
    assert "lead" in trail


def test_the_rules_editor_refuses_an_impossible_quorum_and_saves_a_good_rule(portal, people):
    client = english_client(portal)
    assert sign_in(client, "root").status_code == 302
    form = {"csrf_token": _form(client, "/approvals/rules/new"), "code": "custom", "operation": "order.create",
            "name_zh": "定制品", "name_en": "Custom-made", "priority": "50", "stall_minutes": "120", "active": "y",
            "custom_made": "y", "steps": "1 role cs_lead 2"}
    refused = client.post("/approvals/rules", data=form)
    assert refused.status_code == 422 and "impossible" in refused.text
    assert approvals.required("order.create", {"custom_made": True}) is None
    saved = client.post("/approvals/rules", data={**form, "steps": "1 role cs_lead 1\n2 superior - 1"})
    assert saved.status_code == 303
    role_table.forget()  # as the next request would: the token is read again, so the new rule is seen
    rule = approvals.required("order.create", {"custom_made": True, "amount": "10"})
    assert rule.code == "custom" and rule.steps == ((1, "role", "cs_lead", 1), (2, "superior", None, 1))
    assert [e.entity_id for e in events("approval_rule.create")] == ["custom"]


def test_cancelling_a_paid_order_waits_for_approval_when_a_rule_says_so(people):
    approvals.save_rule(ADMIN, code="void", operation="order.cancel_paid", name_zh="取消已付款", name_en="Void paid",
                        steps=[{"kind": "superior", "quorum": 1}])
    db.session.commit()
    order = orders.create_order(order_payload(channel_order_id="VOID"), ADMIN)
    db.session.commit()
    orders.transition_order(order, "cancelled", as_actor(people["agent"]), reason="buyer changed their mind")
    held = order.approval_request
    db.session.commit()
    assert order.status == "confirmed" and held.steps[0].candidates == [people["lead"].id]
    approvals.decide(held, people["lead"], "approve", None, as_actor(people["lead"]))
    db.session.commit()
    assert order.status == "cancelled" and order.cancel_reason == "buyer changed their mind"
    [moved] = [e for e in events("order.transition") if e.entity_id == order.order_no and e.after["status"] ==
               "cancelled"]
    assert moved.actor_label == "agent"  # the requester's change, made when approved


def test_a_stock_take_variance_over_the_threshold_needs_a_second_approval(people):
    approvals.save_rule(ADMIN, code="variance", operation="stock_take.variance", name_zh="盘点差异",
                        name_en="Variance", conditions={"variance_units": 5},
                        steps=[{"kind": "role", "target": "warehouse_manager", "quorum": 1}])
    counter = staff.create_user("counter", PASSWORD, "warehouse", ADMIN)
    db.session.commit()
    take = stock_ops.start_stock_take("HZ1", as_actor(counter))
    stock_ops.record_count(take.id, "SKU-1", 12, as_actor(counter))  # 8 short of 20
    stock_ops.submit(take.id, as_actor(counter))
    db.session.commit()
    decided = stock_ops.decide(take.id, True, as_actor(people["boss"]), note="recount done")
    held = decided.approval_request
    db.session.commit()
    assert take.status == "submitted" and held.context["variance_units"] == 8
    level = db.session.execute(select(StockLevel)).scalar_one()
    assert level.on_hand == 20
    approvals.decide(held, people["wm"], "approve", None, as_actor(people["wm"]))
    db.session.commit()
    assert take.status == "approved" and level.on_hand == 12


def test_the_portal_decision_needs_the_step_up_and_the_delegation_form_refuses_a_circle(portal, people):
    order = big_order(people["agent"], channel_order_id="PORTAL-2")
    held = order.approval_request
    client = english_client(portal)
    assert sign_in(client, "lead").status_code == 302
    page = client.get(f"/approvals/{held.id}")
    assert 'data-testid="decide"' in page.text
    token = _form(client, f"/approvals/{held.id}")
    without = client.post(f"/approvals/{held.id}/decision", data={"csrf_token": token, "decision": "approve"})
    assert without.status_code == 303 and "/security/step-up" in without.headers["Location"]
    assert held.state == "pending"
    step_up(client, "lead")
    bare = client.post(f"/approvals/{held.id}/decision", data={"csrf_token": token, "decision": "reject"},
                       follow_redirects=True)
    assert "a rejection needs a comment" in bare.text and held.state == "pending"
    client.post(f"/approvals/{held.id}/decision", data={"csrf_token": token, "decision": "reject",
                                                        "comment": "price looks wrong"})
    db.session.expire_all()
    assert db.session.get(ApprovalRequest, held.id).state == "rejected"

    today = date.today().isoformat()
    approvals.delegate(people["boss"], people["lead"], date.today(), date.today(), as_actor(people["boss"]))
    db.session.commit()
    circle = client.post("/approvals/delegations", data={"csrf_token": _form(client, "/approvals/"),
                                                         "delegate": str(people["boss"].id), "starts_on": today,
                                                         "ends_on": today}, follow_redirects=True)
    assert "circle" in circle.text
    staff.update_user(people["agent"], ADMIN, locale="zh_CN")
    db.session.commit()
    chinese = portal.test_client()
    assert sign_in(chinese, "agent").status_code == 302
    mine = chinese.get(f"/approvals/{held.id}").text
    assert "审批记录" in mine and 'data-testid="resubmit"' in mine


@pytest.mark.parametrize("request_id", ["2147483648", "99999999999999999999", "0"])
def test_an_approval_id_beyond_the_column_names_nothing(session, request_id):
    """A 32-bit id column: a larger number is an unknown request (404), never an overflowing query (500)."""
    with pytest.raises(NotFound):
        approvals.get_request(request_id)
    with pytest.raises(NotFound):
        approvals.get_rule(request_id)
