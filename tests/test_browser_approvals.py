"""An approval that stalls, end to end: a customer-service agent's 5,008.00 CNY order answers pending approval, the
customer-service lead's step stays idle past its 2 business hours, a real RQ worker marks it stalled (审批滞留) and
escalates it to the lead's superior, who signs in with TOTP in headless Chromium, approves from the inbox, confirms
with a step-up code, and the order leaves pending approval. The clock of the escalation is set through the job's
`now`, as tests/test_approvals_worker.py does; TOTP codes are computed with pyotp from the enrolled secret."""
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import httpx
import pyotp
import pytest
from selenium.webdriver.common.by import By
from sqlalchemy import select

from shared import business_hours, timekeeping
from shared.extensions import db
from shared.models import ApprovalRequest, ApprovalStep, AuditEvent, Order
from shared.services import roles, second_factor, staff
from shared.services.audit import verify_chain
from tests.factories import ADMIN, PASSWORD, open_shop, order_payload
from tests.live_servers import browser, portal_server  # noqa: F401  (fixtures)
from tests.test_approvals_worker import JOB
from tests.test_browser import _AUTHENTICATOR, _console_errors, _explain, _next_code, _text, _type_code, _wait
from tests.test_worker import ROOT, WORKER_TIMEOUT, _redis, _worker_env

pytestmark = [pytest.mark.browser, pytest.mark.live,
              pytest.mark.parametrize("live_apps", ["postgresql"], indirect=True)]

STALLED = "Stalled (审批滞留)"


def _seed(live_apps, base: str) -> dict:
    """Agent in team cs (lead: a cs_lead) under ops (lead: boss, an ops manager) under hq (lead: an admin); boss's
    TOTP enrolled ten minutes ago (its secret kept as an authenticator app would); an API token for the agent."""
    with live_apps.core.app_context():
        open_shop()
        made = {name: staff.create_user(name, PASSWORD, role, ADMIN, locale="en") for name, role in (
            ("agent", "customer_service"), ("lead", "cs_lead"), ("boss", "ops_manager"), ("top", "admin"))}
        top = roles.create_team("hq", "总部", "Head office", ADMIN, lead=made["top"])
        ops = roles.create_team("ops", "运营", "Operations", ADMIN, lead=made["boss"], parent=top)
        cs = roles.create_team("cs", "客服", "Customer service", ADMIN, lead=made["lead"], parent=ops)
        roles.assign_team(made["agent"], cs, ADMIN)
        earlier = timekeeping.utc_now() - timedelta(minutes=10)
        enrolment = second_factor.enrol(made["boss"], ADMIN, now=earlier)
        recovery = second_factor.confirm_enrolment(made["boss"], pyotp.TOTP(enrolment.secret).at(earlier), ADMIN,
                                                   now=earlier)
        token = staff.issue_token(made["agent"], ADMIN)
        db.session.commit()
        _AUTHENTICATOR[(base, "boss")] = [enrolment.secret, None, recovery]
        return {"token": token, "ids": {name: user.id for name, user in made.items()}}


def _run_worker(database_url: str) -> subprocess.CompletedProcess:
    """`orderloom worker --burst` as tests/test_approvals_worker.py runs it (no group robot configured here)."""
    command = [str(Path(sys.executable).parent / "orderloom"), "worker", "--burst"]
    try:
        return subprocess.run(command, env=_worker_env(database_url), capture_output=True, text=True,
                              timeout=WORKER_TIMEOUT, cwd=ROOT)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the worker did not finish within {WORKER_TIMEOUT}s:\n{exc.stdout}\n{exc.stderr}")


def _sign_in_with_code(driver, base: str, username: str) -> None:
    """Password, then the code page (the factor is enrolled): the current TOTP code from the enrolled secret."""
    driver.get(f"{base}/sign-in")
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=code-form]"), "the code page")
    assert "/sign-in/code" in driver.current_url
    assert not driver.find_elements(By.CSS_SELECTOR, "[data-testid=signed-in-as]")  # the password alone opens nothing
    _type_code(driver, _next_code(base, username))
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=signed-in-as]"), f"{username} signed in")
    assert _text(driver, "signed-in-as").startswith(username)


def _flashes(driver) -> list[str]:
    return [element.text.strip() for element in driver.find_elements(By.CSS_SELECTOR, ".flash")]


def _events(live_apps, approval_id: int, order_no: str) -> list[tuple]:
    with live_apps.core.app_context():
        rows = db.session.execute(select(AuditEvent).where(
            ((AuditEvent.entity_type == "approval") & (AuditEvent.entity_id == str(approval_id)))
            | ((AuditEvent.entity_type == "order") & (AuditEvent.entity_id == order_no))
            | ((AuditEvent.entity_type == "staff_user") & (AuditEvent.entity_id == "boss")))
            .order_by(AuditEvent.id)).scalars().all()
        return [(e.actor_label, e.action, e.after or {}) for e in rows]


def test_a_stalled_approval_is_escalated_and_the_superior_approves_it_with_a_step_up(live_apps, portal_server,
                                                                                     browser):
    from rq import Queue
    from rq.job import Job

    from jobs import queues

    driver, base = browser, portal_server
    seeded = _seed(live_apps, base)
    ids = seeded["ids"]

    # 1. The agent's order of 5,008.00 CNY (5,000.00 + 8.00 shipping) answers 202 pending approval.
    answer = httpx.post(f"{base}/api/v1/orders", headers={"Authorization": f"Bearer {seeded['token']}"},
                        json=order_payload(lines=[{"sku": "SKU-1", "quantity": 1, "unit_price": "5000.00"}]),
                        timeout=20)
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["status"] == "pending_approval"
    order_no, approval_id = body["order_no"], body["approval_id"]
    with live_apps.core.app_context():
        request = db.session.get(ApprovalRequest, approval_id)
        [step] = request.steps
        assert (request.operation, request.state, request.requester_id) == ("order.create", "pending", ids["agent"])
        assert (step.kind, step.target, step.candidates, step.stalled) == ("role", "cs_lead", [ids["lead"]], False)
        # Due when 2 business hours of the rule's calendar have passed since the step opened.
        assert step.due_at == business_hours.load("default").add(step.activated_at, timedelta(minutes=120))
        assert step.due_at - step.activated_at >= timedelta(hours=2)
        step_id, due = step.id, step.due_at
        assert db.session.execute(select(Order.status).where(Order.order_no == order_no)).scalar_one() \
            == "pending_review"

    # 2. The superior signs in with the TOTP code: before the escalation nothing waits for them.
    _sign_in_with_code(driver, base, "boss")
    driver.get(f"{base}/approvals/")
    assert "Nothing waits for you." in _text(driver, "inbox"), _explain(driver)
    assert not driver.find_elements(By.CSS_SELECTOR, "[data-testid=inbox-row]")

    # 3. The lead's step stays idle: a minute before its due time the job changes nothing; at it, a real RQ worker
    #    marks it stalled and adds the lead's superior (boss).
    redis = _redis()
    redis.flushdb()  # only this test's Redis database (TEST_REDIS_URL), never FLUSHALL
    queue = Queue(queues.DEFAULT, connection=redis)
    early = queue.enqueue(JOB, now=(due - timedelta(minutes=1)).isoformat())
    at_due = queue.enqueue(JOB, now=due.isoformat())
    finished = _run_worker(live_apps.url)
    assert finished.returncode == 0, f"{finished.stdout}\n{finished.stderr}"
    assert [Job.fetch(j.id, connection=redis).return_value()["escalated"] for j in (early, at_due)] == [0, 1]
    redis.flushdb()
    with live_apps.core.app_context():
        step = db.session.get(ApprovalStep, step_id)
        assert step.stalled and step.escalation_level == 1 and step.state == "pending"
        assert step.candidates == [ids["lead"], ids["boss"]]

    # 4. The inbox now shows the request, marked stalled; its page shows the step stalled and escalated once.
    driver.get(f"{base}/approvals/")
    row = _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, f"[data-testid=inbox-row][data-id='{approval_id}']"),
                "the escalated request in the inbox")[0]
    assert order_no in row.text and STALLED in row.text and "agent" in row.text
    row.find_element(By.LINK_TEXT, f"#{approval_id}").click()
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=decide]"), "the decision form")
    trail_step = driver.find_element(By.CSS_SELECTOR, f"[data-testid=step-{step_id}]")
    assert trail_step.get_attribute("data-state") == "pending"
    assert STALLED in trail_step.text and "1×" in trail_step.text and "lead, boss" in trail_step.text

    # 5. Approving asks for a step-up first: nothing is decided until the code is given.
    driver.find_element(By.CSS_SELECTOR, "[data-testid=decide] input[name=decision][value=approve]").click()
    driver.find_element(By.CSS_SELECTOR, "[data-testid=submit-decision]").click()
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=step-up]"), "the step-up page")
    _wait(driver, lambda d: any("confirm it with your second factor" in text for text in _flashes(d)),
          "the step-up's request for a code")
    with live_apps.core.app_context():
        assert db.session.get(ApprovalRequest, approval_id).state == "pending"
    _type_code(driver, _next_code(base, "boss"))
    _wait(driver, lambda d: d.current_url.endswith(f"/approvals/{approval_id}"),
          "back at the request after the step-up")
    # The page's flash may render a moment after the address changes: wait for it rather than read it once.
    _wait(driver, lambda d: any("Confirmed: sensitive operations are open" in text for text in _flashes(d)),
          "the step-up's confirmation")

    # 6. Approve again, now with the fresh step-up: the request is approved and the order confirmed.
    driver.find_element(By.CSS_SELECTOR, "[data-testid=decide] input[name=decision][value=approve]").click()
    driver.find_element(By.CSS_SELECTOR, "[data-testid=submit-decision]").click()
    _wait(driver, lambda d: any(f"Request #{approval_id}: your decision is recorded." in t for t in _flashes(d)),
          "the decision to be recorded")
    assert not driver.find_elements(By.CSS_SELECTOR, "[data-testid=decide]")
    round_ = driver.find_element(By.CSS_SELECTOR, f"[data-testid=approval-{approval_id}]")
    assert round_.get_attribute("data-state") == "approved"
    assert "boss: Approve" in round_.find_element(By.CSS_SELECTOR, "[data-testid=decision]").text
    driver.get(f"{base}/orders/{order_no}")
    assert _text(driver, "order-status") == "Confirmed", _explain(driver)
    assert driver.find_element(By.CSS_SELECTOR, f"[data-testid=approval-{approval_id}]").get_attribute(
        "data-state") == "approved"
    driver.get(f"{base}/approvals/")
    assert not driver.find_elements(By.CSS_SELECTOR, f"[data-testid=inbox-row][data-id='{approval_id}']")
    assert _console_errors(driver) == []
    driver.save_screenshot("/tmp/orderloom-approval-escalated.png")

    # 7. The audit trail tells the whole story, and the chain is intact.
    events = _events(live_apps, approval_id, order_no)
    actions = [(who, what) for who, what, _after in events]
    assert actions.index(("agent", "order.create")) < actions.index(("agent", "approval.request")) \
        < actions.index(("system", "approval.escalate")) < actions.index(("boss", "step_up.refused")) \
        < actions.index(("boss", "step_up.granted")) < actions.index(("boss", "approval.decide"))
    escalated = next(after for who, what, after in events if what == "approval.escalate")
    assert (escalated["level"], escalated["added"], escalated["stalled"]) == (1, [ids["boss"]], True)
    refused = next(after for who, what, after in events if what == "step_up.refused")
    assert (refused["path"], refused["reason"]) == (f"/approvals/{approval_id}/decision", "no_fresh_step_up")
    purposes = [after.get("purpose") for who, what, after in events if what == "second_factor.verified"]
    assert purposes == ["sign_in", "step_up"]
    decided = next(after for who, what, after in events if what == "approval.decide")
    assert (decided["decision"], decided["state"]) == ("approve", "approved")
    moves = [(who, after["status"]) for who, what, after in events if what == "order.transition"]
    assert moves == [("system", "confirmed")], moves  # confirmed by the approval (a paid order), after the decision
    assert actions.index(("boss", "approval.decide")) < actions.index(("system", "order.transition"))
    with live_apps.core.app_context():
        assert db.session.execute(select(Order.status).where(Order.order_no == order_no)).scalar_one() == "confirmed"
        intact, _checked, problem = verify_chain()
        assert intact, problem
