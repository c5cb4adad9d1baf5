"""Every role against every route: the server answers exactly as the permission table says."""
import re

import pytest
from werkzeug.routing import Rule

from portal.access import PUBLIC_ENDPOINTS
from shared.extensions import db
from shared.security.permissions import Role, can
from shared.security import role_table
from shared.services import exceptions, roles, staff
from tests.factories import ADMIN
from tests.portal_client import csrf_token, english_client, sign_in, step_up


def protected_rules(app) -> list[Rule]:
    return [rule for rule in app.url_map.iter_rules() if rule.endpoint not in PUBLIC_ENDPOINTS]


def test_every_route_declares_a_permission(portal):
    undeclared = [rule.rule for rule in protected_rules(portal)
                  if not hasattr(portal.view_functions[rule.endpoint], "required_permission")]
    assert undeclared == []


def _url(app, rule: Rule, samples: dict) -> str:
    missing = set(rule.arguments) - set(samples)
    assert not missing, f"add a sample value for {missing} ({rule.rule})"
    adapter = app.url_map.bind("localhost")
    return adapter.build(rule.endpoint, {arg: samples[arg] for arg in rule.arguments}, method=_method(rule))


def _method(rule: Rule) -> str:
    return next(method for method in ("GET", "POST", "PUT", "PATCH", "DELETE") if method in rule.methods)


# Roles made at run time, as an admin would in the portal: a lead made from customer service with more power, and a
# role with no grant at all. The matrix walks them like the built-in ones.
RUNTIME_ROLES = {
    "cs_senior": ("客服主管", "Customer service senior", "customer_service",
                {"approvals:edit", "exceptions:approve", "roles:view", "exports:edit", "exports:view"}),
    "no_power": ("无权限", "No power", None, set()),
}


def _make_runtime_role(code: str) -> None:
    name_zh, name_en, like, extra = RUNTIME_ROLES[code]
    role = roles.create_role(code, name_zh, name_en, ADMIN, like=like)
    if extra:
        current = {f"{resource}:{action}" for resource, actions in role_table.current().grants[code].items()
                   for action in actions}
        roles.set_permissions(role, ADMIN, grants=current | extra)


# Seeded as data by migration 0009_approvals (the approvers the default approval rules name).
SEEDED_ROLES = ["cs_lead", "finance_director", "warehouse_manager"]


@pytest.mark.parametrize("role", [role.value for role in Role] + SEEDED_ROLES + list(RUNTIME_ROLES))
def test_role_matrix(portal, create_order, create_user, role):
    if role in RUNTIME_ROLES:
        _make_runtime_role(role)
    role = Role(role) if role in set(Role) else type("DataRole", (), {"value": role})()
    order = create_order()
    user = create_user(f"matrix_{role.value}", role.value)
    token = staff.issue_token(user, ADMIN)
    problem = exceptions.raise_exception("late_packing", f"late_packing:order:{order.id}", "not packed in 4 h",
                                         ADMIN, order_id=order.id)
    db.session.commit()
    samples = {"order_no": order.order_no, "sku_code": "SKU-1", "user_id": user.id, "sku": "SKU-1",
               "code": "OS", "item_id": 1, "report_id": 1, "subscription_id": 1, "delivery_id": 1,
               "wave_id": 1, "shipment_id": 1, "take_id": 1, "platform_status": "WAIT_BUYER_PAY", "kind": "sku",
               "device_id": 1, "bin_code": "A-01", "team_id": 1, "export_id": "EX0000000000000000",
               "exception_id": problem.id, "approval_id": 1, "rule_id": 1, "delegation_id": 1, "hold_id": 1,
               "profile_id": 1, "run_id": 1, "fmt": "csv", "notice_id": 1, "invoice_id": 1,
               "position": 1, "red_id": 1, "after_sale_id": 1, "photo_id": 1,
               "bulk_id": "BK0000000000000000", "filter_id": 1,
               "tag": "vip", "alarm_id": 1, "alert_id": 1, "customer_id": order.customer_id, "supplier_id": 1}
    client = english_client(portal)
    assert sign_in(client, user.username).status_code == 302
    if can(role.value, "dashboard", "view"):  # the step-up page is every working role's (a role without it: 403s)
        step_up(client, user.username)  # sensitive routes (step_up=True) are walked with a fresh second verification
    form_token = csrf_token(client)
    checked = 0
    # API first: the portal's "revoke API tokens" route, when allowed, ends the token for the rest.
    for rule in sorted(protected_rules(portal), key=lambda r: not r.rule.startswith("/api/")):
        view = portal.view_functions[rule.endpoint]
        resource, action = view.required_permission
        url = _url(portal, rule, samples)
        method = _method(rule)
        if rule.rule.startswith("/api/"):
            headers = {"Authorization": f"Bearer {token}"}
            response = client.open(url, method=method, headers=headers, json={} if method != "GET" else None)
        else:
            response = client.open(url, method=method, data={"csrf_token": form_token} if method == "POST" else None)
        expected_allowed = can(role.value, resource, action) and (view.also_required is None or
                                                                  view.also_required(role.value))
        if expected_allowed:
            assert response.status_code not in (401, 403) and response.status_code < 500, \
                (role.value, method, url, response.status_code, response.text[:300])
            if method == "GET" and response.status_code == 200 and response.mimetype == "text/html" \
                    and "<html" in response.text[:200]:  # a whole page: its title is text, never a page's markup
                assert re.search(r"<title>[^<]{1,200}</title>", response.text), (url, response.text[:300])
        else:
            assert response.status_code == 403, (role.value, method, url, response.status_code)
        response.close()  # a streamed export (CSV) ends its request here, as a WSGI server ends it
        checked += 1
    assert checked >= 20


@pytest.mark.parametrize("path", ["/", "/orders/", "/stock/", "/users/", "/audit/", "/exports/"])
def test_anonymous_is_sent_to_sign_in(portal, path):
    response = english_client(portal).get(path)
    assert response.status_code == 302 and "/sign-in" in response.headers["Location"]


def test_anonymous_htmx_request_gets_hx_redirect(portal):
    response = english_client(portal).get("/orders/", headers={"HX-Request": "true"})
    assert response.status_code == 401 and "/sign-in" in response.headers["HX-Redirect"]


def test_permission_table_is_sane(session):
    assert all(can("admin", r, a) for r in ("orders", "users", "audit") for a in ("view", "edit", "approve"))
    assert not can("auditor", "orders", "edit") and can("auditor", "access_log", "view")
    assert not can("customer_service", "users", "view") and not can("nobody", "orders", "view")
    assert not can("finance", "orders", "explode")
