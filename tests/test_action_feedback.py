"""Actions that explain themselves (issue 14 item 3): verbs on the lifecycle buttons in both languages, a reason asked
exactly where the lifecycle needs one and kept after a refusal, the confirmation that states what a cancel does (the
real reserved quantity, whether the customer is told), the disabled button that says why, and "nothing to do"."""
import re

import pytest
from flask_babel import force_locale
from sqlalchemy import select

from shared import verbs
from shared.after_sales_lifecycle import MOVES as AFTER_SALE_MOVES
from shared.exception_lifecycle import EXCEPTION
from shared.extensions import db
from shared.lifecycle import RELEASE_HOLD_NEEDS_REASON, TRANSITIONS
from shared.models import CustomerNotification, Order, Reservation
from shared.services import orders
from tests.factories import ADMIN
from tests.portal_client import csrf_token


def _button(page: str, testid: str) -> str:
    """The text of the button with this data-testid."""
    match = re.search(rf'<button[^>]*data-testid="{testid}"[^>]*>([^<]*)</button>', page)
    assert match, f"no button {testid}"
    return match.group(1).strip()


def test_every_declared_move_has_a_verb():
    """The one table covers every lifecycle shown with buttons: a new move without a verb fails here."""
    assert {t.target.value for t in TRANSITIONS} | {"release_hold"} <= set(verbs.ORDER)
    assert {target for _source, target in EXCEPTION.transitions} <= set(verbs.VERBS["exception"])
    assert {m.target for m in AFTER_SALE_MOVES} <= set(verbs.AFTER_SALE)


@pytest.mark.parametrize("locale", ["en", "zh_CN"])
def test_order_buttons_are_verbs_in_both_languages(portal, client_for, create_order, locale):
    client = client_for("admin", locale)
    confirmed = create_order(status="confirmed")
    page = client.get(f"/orders/{confirmed.order_no}").text
    with portal.test_request_context(), force_locale(locale):
        expected = {to: str(verbs.ORDER[to]) for to in ("allocated", "cancelled", "on_hold")}
    for to, text in expected.items():
        assert _button(page, f"move-{to}") == text
    assert "→" not in _button(page, "move-cancelled")
    held = create_order(status="on_hold")
    page = client.get(f"/orders/{held.order_no}").text
    with portal.test_request_context(), force_locale(locale):
        assert _button(page, "move-confirmed") == str(verbs.ORDER["release_hold"])
    if locale == "en":  # the English words themselves, as a person reads them
        assert _button(page, "move-confirmed") == "Release hold" and _button(page, "move-cancelled") == "Cancel order"


def test_reason_asked_only_where_the_lifecycle_needs_it(client_for, create_order):
    client = client_for("admin")
    held = create_order(status="on_hold")
    page = client.get(f"/orders/{held.order_no}").text
    cancel_reason = re.search(r'<input[^>]*data-testid="reason-cancelled"[^>]*>', page).group(0)
    release_reason = re.search(r'<input[^>]*data-testid="reason-release_hold"[^>]*>', page).group(0)
    assert " required" in cancel_reason and " required" not in release_reason
    assert RELEASE_HOLD_NEEDS_REASON is False
    detail = f"/orders/{held.order_no}"
    released = client.post(f"{detail}/transitions", data={"to": "confirmed", "csrf_token": csrf_token(client, detail)})
    assert released.status_code == 303  # no reason: released all the same
    db.session.expire_all()
    assert db.session.get(Order, held.id).status == "confirmed"
    confirmed_page = client.get(detail).text
    assert 'data-testid="reason-allocated"' not in confirmed_page  # allocating needs none, so none is asked


def test_a_refused_move_keeps_what_was_typed(client_for, create_order):
    client = client_for("admin")
    order = create_order(status="confirmed")
    detail = f"/orders/{order.order_no}"
    long_reason = "客户改期 " + "x" * 600  # longer than a reason may be: refused, and shown again as typed
    refused = client.post(f"{detail}/transitions", data={"to": "on_hold", "reason": long_reason,
                                                         "csrf_token": csrf_token(client, detail)})
    assert refused.status_code == 422
    assert 'data-testid="reason-error-on_hold"' in refused.text
    kept = re.search(r'<input[^>]*data-testid="reason-on_hold"[^>]*>', refused.text).group(0)
    assert "客户改期 xxx" in kept
    empty = client.post(f"{detail}/transitions", data={"to": "cancelled", "reason": "  ",
                                                       "csrf_token": csrf_token(client, detail)})
    assert empty.status_code == 422 and 'data-testid="reason-error-cancelled"' in empty.text
    db.session.expire_all()
    assert db.session.get(Order, order.id).status == "confirmed"


def test_the_cancel_confirmation_states_the_real_consequence(client_for, create_order):
    client = client_for("customer_service")
    order = create_order(status="confirmed", paid=False,
                         lines=[{"sku": "SKU-1", "quantity": 3, "unit_price": "10.00"}],
                         customer={"name": "张伟", "phone": "13812345678", "email": "zw@example.com"})
    reserved = db.session.execute(select(Reservation.quantity).where(Reservation.order_id == order.id,
                                                                     Reservation.status == "active")).scalars().all()
    assert sum(reserved) == 3
    page = client.get(f"/orders/{order.order_no}").text
    form = re.search(r'<form[^>]*data-testid="move-form-cancelled"[^>]*>', page).group(0)
    assert "Cancelling releases 3 units of reserved stock. The customer is told by mail." in form
    assert 'data-confirm=' not in re.search(r'<form[^>]*data-testid="move-form-on_hold"[^>]*>', page).group(0)
    detail = f"/orders/{order.order_no}"
    done = client.post(f"{detail}/transitions", data={"to": "cancelled", "reason": "客户不要了",
                                                      "csrf_token": csrf_token(client, detail)}, follow_redirects=True)
    assert "Cancel order: done." in done.text
    told = db.session.execute(select(CustomerNotification.event).where(
        CustomerNotification.order_id == order.id)).scalars().all()
    assert told == ["cancelled_by_shop"]  # what the confirmation promised


def test_no_mail_address_the_confirmation_says_so(portal, create_order):
    order = create_order(status="confirmed", paid=False)
    consequence = orders.cancel_consequence(order, ADMIN)
    assert consequence == (1, False, False)
    with portal.test_request_context():
        from portal.orders import cancel_question
        from flask_login import login_user
        from shared.services import staff
        login_user(staff.create_user("cs_q", "correct-horse-battery", "customer_service", ADMIN))
        text = cancel_question(order)  # in the default language, Chinese
    assert "释放 1 件已预占库存" in text and "不会收到邮件通知" in text
    from flask_babel import force_locale

    with portal.test_request_context(), force_locale("en"):
        login_user(staff.create_user("cs_en", "correct-horse-battery", "customer_service", ADMIN, locale="en"))
        text = cancel_question(order)  # a reader of English
    assert "1 unit of reserved stock" in text and "not told by mail" in text


def test_a_shipped_order_shows_cancel_disabled_with_why(client_for, create_order):
    client = client_for("admin")
    order = create_order(status="shipped")
    page = client.get(f"/orders/{order.order_no}").text
    button = re.search(r'<button[^>]*data-testid="blocked-cancelled"[^>]*>', page).group(0)
    assert " disabled" in button and 'aria-describedby="why-cancelled"' in button
    why = re.search(r'title="([^"]+)"', button).group(1)
    assert "can no longer be cancelled" in why
    assert re.search(r'id="why-cancelled"[^>]*>([^<]+)<', page).group(1) == why
    assert 'data-testid="move-cancelled"' not in page


def test_only_a_manager_cancels_after_picking_and_the_button_says_so(client_for, create_order):
    order = create_order(status="picking")
    page = client_for("customer_service").get(f"/orders/{order.order_no}").text
    assert "only a manager may cancel" in page and 'data-testid="blocked-cancelled"' in page


def test_after_sales_buttons_are_verbs_and_ask_a_reason_only_to_decline(client_for, create_order):
    from shared.actors import Actor
    from shared.services import after_sales
    from tests.test_after_sales import deliver

    order = create_order(status="shipped")
    deliver(order, 1)
    case = after_sales.request_after_sale(order, "return_refund", [{"sku": "SKU-1", "quantity": 1,
                                                                   "reason": "damaged"}],
                                          Actor(None, f"customer:{order.customer_id}", "customer"))
    db.session.commit()
    page = client_for("customer_service").get(f"/after-sales/{case.id}").text
    approve = re.search(r'data-testid="move-approved".*?</form>', page, re.S).group(0)
    decline = re.search(r'data-testid="move-declined".*?</form>', page, re.S).group(0)
    assert "Approve the request</button>" in approve and "Decline the request</button>" in decline
    assert re.search(r"<textarea[^>]*required", decline) and not re.search(r"<textarea[^>]*required", approve)


def test_planning_waves_with_nothing_waiting_says_so(client_for, stocked):
    client = client_for("warehouse")
    page = client.get("/fulfilment/waves").text
    button = re.search(r'<button[^>]*data-testid="plan-HZ1"[^>]*>', page).group(0)
    assert " disabled" in button and 'aria-describedby="why-plan-HZ1"' in button
    assert 'title="Nothing to plan: no allocated orders are waiting in HZ1."' in button
    answer = client.post("/fulfilment/waves/plan", data={"warehouse": "HZ1",
                                                         "csrf_token": csrf_token(client, "/fulfilment/waves")},
                         follow_redirects=True)
    assert "Nothing to plan: no allocated orders are waiting in HZ1." in answer.text


def test_revoking_tokens_asks_with_the_count_and_none_to_revoke_says_so(client_for, create_user):
    from shared.services import staff

    holder, idle = create_user("tok_holder", "customer_service"), create_user("tok_idle", "customer_service")
    staff.issue_token(holder, ADMIN)
    staff.issue_token(holder, ADMIN)
    db.session.commit()
    page = client_for("admin").get("/users/").text
    form = re.search(r'<form[^>]*data-testid="revoke-tokens-form-tok_holder"[^>]*>', page).group(0)
    assert "Revoke 2 API tokens of tok_holder?" in form
    idle_button = re.search(r'<button[^>]*data-testid="revoke-tokens-tok_idle"[^>]*>', page).group(0)
    assert " disabled" in idle_button and "tok_idle has no API token to revoke." in idle_button
    assert f'aria-describedby="why-tokens-{idle.id}"' in idle_button
    reset = re.search(r'<form[^>]*data-testid="reset-factor-form-[^"]*"[^>]*>', page)
    assert reset is None or "stop working" in reset.group(0)


def test_a_role_in_use_cannot_be_deleted_and_the_button_says_why(client_for, create_user):
    from shared.services import roles

    roles.create_role("packer", "打包员", "Packer", ADMIN)
    roles.create_role("spare", "备用", "Spare", ADMIN)
    db.session.commit()
    create_user("pk1", "packer")
    page = client_for("admin").get("/roles/").text
    used = re.search(r'<button[^>]*data-testid="delete-role-packer"[^>]*>', page).group(0)
    assert " disabled" in used and "1 user still has this role" in used
    free = re.search(r'<form[^>]*data-testid="delete-role-form-spare"[^>]*>', page).group(0)
    assert "Delete the role Spare?" in free and "cannot be undone" in free


def test_the_refund_asks_with_what_is_left_to_refund(client_for, create_order):
    order = create_order(status="shipped")
    page = client_for("finance").get(f"/orders/{order.order_no}").text
    form = re.search(r'<form[^>]*data-testid="refund-form"[^>]*>', page, re.S).group(0)
    assert "At most CNY 67.90 may still be refunded" in form


def test_a_refused_exception_move_keeps_its_comment(client_for):
    from shared.models import ExceptionCase
    from tests.test_exception_pages import _raise

    row = _raise()
    db.session.commit()
    client = client_for("customer_service")
    url = f"/exceptions/{row.id}"
    typed = "已联系承运商 " + "y" * 1200  # longer than a comment may be
    refused = client.post(f"{url}/transition", data={"csrf_token": csrf_token(client, url), "target": "resolved",
                                                     "m-resolved-to": "resolved", "m-resolved-comment": typed})
    assert refused.status_code == 422 and 'data-testid="comment-error-resolved"' in refused.text
    assert typed in refused.text  # in its box, as typed
    db.session.expire_all()
    assert db.session.get(ExceptionCase, row.id).status == "open"


def test_a_refused_after_sales_move_keeps_its_reason(client_for, create_order):
    from shared.actors import Actor
    from shared.models import AfterSale
    from shared.services import after_sales
    from tests.test_after_sales import deliver

    order = create_order(status="shipped")
    deliver(order, 1)
    case = after_sales.request_after_sale(order, "return_refund", [{"sku": "SKU-1", "quantity": 1,
                                                                   "reason": "damaged"}],
                                          Actor(None, f"customer:{order.customer_id}", "customer"))
    db.session.commit()
    client = client_for("customer_service")
    url = f"/after-sales/{case.id}"
    typed = "不符合退货条件 " + "z" * 600
    refused = client.post(f"{url}/transitions", data={"csrf_token": csrf_token(client, url), "to": "declined",
                                                      "reason": typed})
    assert refused.status_code == 422
    kept = re.search(r'<textarea[^>]*data-testid="reason-declined"[^>]*>([^<]*)</textarea>', refused.text).group(1)
    assert kept == typed
    other = re.search(r'<textarea[^>]*data-testid="reason-approved"[^>]*>([^<]*)</textarea>', refused.text).group(1)
    assert other == ""
    db.session.expire_all()
    assert db.session.get(AfterSale, case.id).status == "requested"
