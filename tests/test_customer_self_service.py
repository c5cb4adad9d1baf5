"""Customer self-service (issue 13 items 3 and 6): cancel before allocation at once, a cancel request the warehouse
answers after (approve/decline from the exception center, the answer on the order page), refused once shipped; an
address change before packing through the staff rule, re-routed to a nearer warehouse, refused after packing; the
order thread with customer service (escaped, bounded, owner-scoped); the account (profile, password, address book);
and guests' one-time codes (wrong, expired, reused, brute force, rate limit)."""
import json
import re
from datetime import timedelta
from html import unescape

import pytest
from sqlalchemy import select, text, update

from shared.extensions import db
from shared.models import (AuditEvent, Customer, CustomerAddress, CustomerNotification, CustomerRequest,
                           ExceptionCase, GuestCode, Order, OrderMessage, Reservation)
from shared.services import catalog, customers, stock
from shared.timekeeping import utc_now
from tests.factories import ADMIN
from tests.portal_client import csrf_token as portal_csrf
from tests.test_customer_site import (OTHER_PHONE, OWN_PHONE, PASSWORD, account, client, csrf_token,  # noqa: F401
                                      fresh_limits, look_up, other_account, sign_in)

TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def token_from(client, url: str) -> str:
    page = client.get(url)
    assert page.status_code == 200, page.text[:500]
    return TOKEN.search(page.text).group(1)


def post_on_order(client, order, action: str, data: dict, page: str | None = None):
    page = page or f"/orders/{order.order_no}"
    return client.post(f"/orders/{order.order_no}/{action}", data={**data, "csrf_token": token_from(client, page)})


def fresh(order) -> Order:
    db.session.expire_all()
    return db.session.get(Order, order.id)


def active_reservations(order) -> int:
    return len(db.session.execute(select(Reservation).where(Reservation.order_id == order.id,
                                                            Reservation.status == "active")).scalars().all())


def flashes(client, url: str) -> str:
    return unescape(client.get(url).text)


# --- cancel -----------------------------------------------------------------------------------------------------

def test_an_unallocated_order_is_cancelled_at_once_its_stock_released_and_audited_as_the_customer(
        client, account, create_order):
    order = create_order(phone=OWN_PHONE)
    assert order.status == "confirmed" and active_reservations(order) == 1
    sign_in(client)
    answer = post_on_order(client, order, "cancel", {"reason": "ordered twice"})
    assert answer.status_code == 303
    order = fresh(order)
    assert order.status == "cancelled" and order.cancel_reason == "ordered twice"
    assert active_reservations(order) == 0
    event = db.session.execute(select(AuditEvent).where(AuditEvent.action == "order.transition",
                                                        AuditEvent.entity_id == order.order_no)
                               .order_by(AuditEvent.id.desc())).scalars().first()
    assert event.actor_label == f"customer:{account.id}" and event.after["status"] == "cancelled"
    assert "Your order is cancelled." in flashes(client, f"/orders/{order.order_no}")


def test_an_allocated_order_becomes_a_cancel_request_with_an_sla_that_staff_approve(
        client, account, create_order, client_for):
    order = create_order(phone=OWN_PHONE, status="allocated")
    sign_in(client)
    post_on_order(client, order, "cancel", {"reason": "changed my mind"})
    assert fresh(order).status == "allocated"  # nothing cancelled yet: the warehouse decides
    request = db.session.execute(select(CustomerRequest).where(CustomerRequest.order_id == order.id)).scalar_one()
    row = db.session.get(ExceptionCase, request.exception_id)
    assert (row.kind, row.category, row.order_id, row.status) == ("cancel_request", "customer_service", order.id,
                                                                   "open")
    assert row.first_response_minutes == 30 and row.resolve_minutes == 240  # the category's SLA (migration 0011)
    page = client.get(f"/orders/{order.order_no}").text
    assert 'data-testid="request-pending"' in page
    again = post_on_order(client, order, "cancel", {})
    assert again.status_code == 303 and "already asked to cancel" in flashes(client, f"/orders/{order.order_no}")
    assert db.session.execute(select(CustomerRequest).where(CustomerRequest.order_id == order.id)).all().__len__() == 1

    staff = client_for("customer_service")
    detail = staff.get(f"/exceptions/{row.id}")
    assert 'data-testid="cancel-request"' in detail.text
    token = portal_csrf(staff, f"/exceptions/{row.id}")
    decided = staff.post(f"/exceptions/{row.id}/cancel-decision",
                         data={"approve-decision": "approve", "approve-csrf_token": token})
    assert decided.status_code == 303
    order = fresh(order)
    assert order.status == "cancelled" and active_reservations(order) == 0
    assert db.session.get(CustomerRequest, request.id).status == "approved"
    assert db.session.get(ExceptionCase, row.id).status == "resolved"
    assert 'data-testid="request-approved"' in client.get(f"/orders/{order.order_no}").text
    mail = db.session.execute(select(CustomerNotification).where(CustomerNotification.order_id == order.id)
                              ).scalar_one()
    assert mail.event == "cancel_approved" and mail.recipient == "li.lei@example.com"


def test_a_declined_cancel_request_shows_the_reason_and_a_decline_needs_one(client, account, create_order,
                                                                           client_for):
    order = create_order(phone=OWN_PHONE, status="picking")
    sign_in(client)
    post_on_order(client, order, "cancel", {})
    request = db.session.execute(select(CustomerRequest).where(CustomerRequest.order_id == order.id)).scalar_one()
    staff = client_for("ops_manager")
    url = f"/exceptions/{request.exception_id}"
    token = portal_csrf(staff, url)
    staff.post(f"{url}/cancel-decision", data={"decline-decision": "decline", "decline-csrf_token": token})
    assert db.session.get(CustomerRequest, request.id).status == "pending"  # no reason: refused, nothing changed
    token = portal_csrf(staff, url)
    staff.post(f"{url}/cancel-decision", data={"decline-decision": "decline", "decline-csrf_token": token,
                                               "decline-reason": "<b>already</b> on the truck"})
    db.session.expire_all()
    assert db.session.get(CustomerRequest, request.id).status == "declined"
    assert fresh(order).status == "picking"
    page = client.get(f"/orders/{order.order_no}").text
    assert "&lt;b&gt;already&lt;/b&gt; on the truck" in page and "<b>already</b>" not in page


@pytest.mark.parametrize("status", ["packed", "shipped"])
def test_a_packed_or_shipped_order_cannot_be_cancelled_and_says_why(client, account, create_order, status):
    order = create_order(phone=OWN_PHONE, status=status)
    sign_in(client)
    page = client.get(f"/orders/{order.order_no}").text
    assert 'data-testid="cancel-refused"' in page and 'data-testid="cancel-form"' not in page
    answer = post_on_order(client, order, "cancel", {"reason": "too slow"})
    assert answer.status_code == 303
    assert fresh(order).status == status
    assert db.session.execute(select(CustomerRequest)).first() is None
    assert db.session.execute(select(ExceptionCase)).first() is None
    assert "it can no longer be cancelled" in flashes(client, f"/orders/{order.order_no}")


def test_another_customers_order_is_404_for_every_action(client, account, other_account, create_order):
    foreign = create_order(phone=OTHER_PHONE)
    sign_in(client)
    token = token_from(client, "/orders/")
    for action, data in (("cancel", {}), ("address", {"receiver": "x"}), ("messages", {"body": "hello"})):
        answer = client.post(f"/orders/{foreign.order_no}/{action}", data={**data, "csrf_token": token})
        assert answer.status_code == 404, action
    assert fresh(foreign).status == "confirmed"
    assert db.session.execute(select(OrderMessage)).first() is None


def test_actions_need_the_csrf_token(client, account, create_order):
    order = create_order(phone=OWN_PHONE)
    sign_in(client)
    assert client.post(f"/orders/{order.order_no}/cancel", data={}).status_code == 400
    assert fresh(order).status == "confirmed"


# --- address ----------------------------------------------------------------------------------------------------

NEW_ADDRESS = {"receiver": "李雷", "phone": "13900009999", "province": "浙江省", "city": "杭州市",
               "district": "滨江区", "street": "江南大道 1 号", "postal_code": "310051"}


def test_an_address_change_before_packing_uses_the_staff_rule_and_is_audited(client, account, create_order):
    order = create_order(phone=OWN_PHONE, status="allocated")
    sign_in(client)
    bad = post_on_order(client, order, "address", {**NEW_ADDRESS, "phone": "not a phone"})
    assert bad.status_code == 303
    assert "is not a phone number" in flashes(client, f"/orders/{order.order_no}")
    assert fresh(order).district == "西湖区"  # nothing changed
    post_on_order(client, order, "address", NEW_ADDRESS)
    order = fresh(order)
    assert (order.district, order.street, order.receiver_phone) == ("滨江区", "江南大道 1 号", "13900009999")
    stored = db.session.execute(text("SELECT street FROM orders WHERE id = :id"), {"id": order.id}).scalar_one()
    assert "江南大道" not in stored  # encrypted at rest, like every order address
    event = db.session.execute(select(AuditEvent).where(AuditEvent.action == "order.address_change",
                                                        AuditEvent.entity_id == order.order_no)).scalar_one()
    assert event.actor_label == f"customer:{account.id}" and "江南大道" not in json.dumps(event.after,
                                                                                       ensure_ascii=False)


def test_an_address_change_after_packing_is_refused_with_the_reason(client, account, create_order):
    order = create_order(phone=OWN_PHONE, status="packed")
    sign_in(client)
    page = client.get(f"/orders/{order.order_no}").text
    assert 'data-testid="address-refused"' in page and 'data-testid="address-change-form"' not in page
    post_on_order(client, order, "address", NEW_ADDRESS)
    assert fresh(order).district == "西湖区"
    assert "already packed" in flashes(client, f"/orders/{order.order_no}")


def test_an_unallocated_order_is_rerouted_to_a_nearer_warehouse(client, account, create_order):
    catalog.create_warehouse({"code": "BJ1", "name": "北京仓", "province": "北京市", "city": "北京市"}, ADMIN)
    stock.adjust_stock("SKU-1", "BJ1", 5, "opening stock", ADMIN, kind="receipt")
    db.session.commit()
    order = create_order(phone=OWN_PHONE)
    hangzhou = order.warehouse_id
    sign_in(client)
    post_on_order(client, order, "address", {**NEW_ADDRESS, "province": "北京市", "city": "北京市",
                                             "district": "朝阳区"})
    order = fresh(order)
    beijing = stock.get_warehouse("BJ1").id
    assert hangzhou != beijing and order.warehouse_id == beijing
    held = db.session.execute(select(Reservation).where(Reservation.order_id == order.id,
                                                        Reservation.status == "active")).scalar_one()
    assert held.warehouse_id == beijing
    assert db.session.execute(select(AuditEvent).where(AuditEvent.action == "order.reroute")).scalar_one()


def test_a_saved_address_can_be_used_but_not_another_customers(client, account, other_account, create_order):
    from shared.services import address_book

    mine = address_book.create_address(account.id, NEW_ADDRESS, ADMIN)
    theirs = address_book.create_address(other_account.id, {**NEW_ADDRESS, "district": "上城区"}, ADMIN)
    db.session.commit()
    order = create_order(phone=OWN_PHONE)
    sign_in(client)
    assert post_on_order(client, order, "address", {"saved": str(theirs.id)}).status_code == 404
    post_on_order(client, order, "address", {"saved": str(mine.id)})
    assert fresh(order).district == "滨江区"


# --- thread -----------------------------------------------------------------------------------------------------

def test_a_message_opens_an_exception_and_staff_answer_into_the_thread(client, account, create_order, client_for):
    order = create_order(phone=OWN_PHONE)
    sign_in(client)
    post_on_order(client, order, "messages", {"body": "<script>alert(1)</script> where is it?"})
    message = db.session.execute(select(OrderMessage)).scalar_one()
    row = db.session.get(ExceptionCase, message.exception_id)
    assert (row.kind, row.category, row.order_id) == ("customer_message", "customer_service", order.id)
    stored = db.session.execute(text("SELECT body FROM order_messages")).scalar_one()
    assert "where is it" not in stored  # encrypted at rest
    page = client.get(f"/orders/{order.order_no}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; where is it?" in page and "<script>alert(1)" not in page

    post_on_order(client, order, "messages", {"body": "any news?"})
    assert db.session.execute(select(ExceptionCase).where(ExceptionCase.kind == "customer_message")).all().__len__() \
        == 1  # appended to the open exception

    staff = client_for("customer_service")
    detail = staff.get(f"/exceptions/{row.id}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in detail and "<script>alert(1)" not in detail
    token = portal_csrf(staff, f"/exceptions/{row.id}")
    staff.post(f"/exceptions/{row.id}/reply", data={"body": "It ships <i>today</i>.", "csrf_token": token})
    db.session.expire_all()
    assert db.session.get(ExceptionCase, row.id).status == "in_progress"  # the first response
    page = client.get(f"/orders/{order.order_no}").text
    assert 'data-author="staff"' in page and "It ships &lt;i&gt;today&lt;/i&gt;." in page
    mail = db.session.execute(select(CustomerNotification).where(CustomerNotification.event == "message_answered")
                              ).scalar_one()
    assert mail.order_id == order.id


def test_a_message_too_long_or_empty_is_refused_and_nothing_is_kept(client, account, create_order):
    order = create_order(phone=OWN_PHONE)
    sign_in(client)
    post_on_order(client, order, "messages", {"body": "字" * 2001})
    assert "at most 2000 characters" in flashes(client, f"/orders/{order.order_no}")
    post_on_order(client, order, "messages", {"body": "   "})
    assert db.session.execute(select(OrderMessage)).first() is None
    assert db.session.execute(select(ExceptionCase)).first() is None


def test_the_service_refuses_a_long_message_too(account, create_order):
    from shared.actors import Actor
    from shared.services import order_threads
    from shared.services.errors import ValidationFailed

    order = create_order(phone=OWN_PHONE)
    with pytest.raises(ValidationFailed) as refused:
        order_threads.post_customer_message(order, "x" * 2001, Actor.for_customer(account))
    assert refused.value.code == "too_long"


# --- account ----------------------------------------------------------------------------------------------------

def test_profile_changes_keep_email_and_phone_encrypted_and_indexed(client, account, other_account):
    sign_in(client)
    token = token_from(client, "/account/")
    taken = client.post("/account/", data={"name": "李雷", "email": "han@example.com", "phone": OWN_PHONE,
                                           "csrf_token": token})
    assert taken.status_code == 422 and "another account uses this email" in unescape(taken.text)
    answer = client.post("/account/", data={"name": "李雷雷", "email": "lei@example.org", "phone": "13911112222",
                                            "csrf_token": token})
    assert answer.status_code == 303
    db.session.expire_all()
    customer = db.session.get(Customer, account.id)
    assert (customer.name, customer.email, customer.phone) == ("李雷雷", "lei@example.org", "13911112222")
    assert customers.find_by_phone("13911112222").id == account.id
    raw = db.session.execute(text("SELECT email, phone FROM customers WHERE id = :id"), {"id": account.id}).one()
    assert "lei@example.org" not in raw.email and "13911112222" not in raw.phone
    bad = client.post("/account/", data={"name": "李雷", "email": "not-an-email", "phone": OWN_PHONE,
                                         "csrf_token": token})
    assert bad.status_code == 422


def test_a_password_change_needs_the_current_one_and_ends_other_sessions(customer_app, account):
    this, other = customer_app.test_client(), customer_app.test_client()
    for browser in (this, other):
        browser.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
        sign_in(browser)
        assert browser.get("/orders/").status_code == 200
    token = token_from(this, "/account/")
    wrong = this.post("/account/password", data={"current_password": "nope", "password": "a-much-better-secret",
                                                 "csrf_token": token})
    assert wrong.status_code == 422 and "current password is not right" in unescape(wrong.text)
    weak = this.post("/account/password", data={"current_password": PASSWORD, "password": "short",
                                                "csrf_token": token})
    assert weak.status_code == 422 and "at least 12 characters" in unescape(weak.text)
    done = this.post("/account/password", data={"current_password": PASSWORD, "password": "a-much-better-secret",
                                                "csrf_token": token})
    assert done.status_code == 303
    assert this.get("/orders/").status_code == 200  # this browser goes on
    assert other.get("/orders/").status_code == 302  # the other session ended
    assert sign_in(other, password="a-much-better-secret").status_code == 302


def test_the_address_book_is_encrypted_owner_scoped_and_keeps_one_default(client, account, other_account):
    from shared.services import address_book

    theirs = address_book.create_address(other_account.id, NEW_ADDRESS, ADMIN)
    db.session.commit()
    sign_in(client)
    token = token_from(client, "/account/addresses/new")
    bad = client.post("/account/addresses/new", data={**NEW_ADDRESS, "city": "", "csrf_token": token})
    assert bad.status_code == 422
    for district in ("滨江区", "上城区"):
        assert client.post("/account/addresses/new", data={**NEW_ADDRESS, "district": district,
                                                           "csrf_token": token}).status_code == 303
    rows = address_book.addresses_for_customer(account.id)
    assert [r.district for r in rows if r.is_default] == ["滨江区"]  # the first one is the default
    second = next(r for r in rows if r.district == "上城区")
    client.post(f"/account/addresses/{second.id}/default", data={"csrf_token": token})
    db.session.expire_all()
    assert [r.district for r in address_book.addresses_for_customer(account.id) if r.is_default] == ["上城区"]
    client.post(f"/account/addresses/{second.id}/edit", data={**NEW_ADDRESS, "street": "新街 2 号",
                                                              "csrf_token": token})
    raw = db.session.execute(text("SELECT street, receiver, phone FROM customer_addresses WHERE id = :id"),
                             {"id": second.id}).one()
    assert "新街" not in raw.street and "李雷" not in raw.receiver and "13900009999" not in raw.phone
    client.post(f"/account/addresses/{second.id}/delete", data={"csrf_token": token})
    db.session.expire_all()
    assert [r.is_default for r in address_book.addresses_for_customer(account.id)] == [True]
    for path in (f"/account/addresses/{theirs.id}/edit",):
        assert client.get(path).status_code == 404
    for path in (f"/account/addresses/{theirs.id}/delete", f"/account/addresses/{theirs.id}/default"):
        assert client.post(path, data={"csrf_token": token}).status_code == 404
    assert db.session.get(CustomerAddress, theirs.id) is not None
    assert "13900009999" in client.get("/account/addresses").text


# --- guests -----------------------------------------------------------------------------------------------------

def latest_code(order) -> str:
    db.session.expire_all()
    row = db.session.execute(select(CustomerNotification).where(CustomerNotification.order_id == order.id,
                                                                CustomerNotification.event == "guest_code")
                             .order_by(CustomerNotification.id.desc())).scalars().first()
    return json.loads(row.params)["code"]


def guest_with_code(client, order):
    assert look_up(client, order.order_no, OWN_PHONE[-4:]).status_code == 302
    page = f"/track/{order.order_no}"
    answer = client.post(f"/track/{order.order_no}/code", data={"channel": "sms",
                                                                "csrf_token": token_from(client, page)})
    assert answer.status_code == 303
    return page


def enter(client, order, code: str, page: str):
    return client.post(f"/track/{order.order_no}/verify", data={"code": code, "csrf_token": token_from(client, page)})


def test_the_guest_page_shows_the_waybill_and_the_way_to_act(client, create_order):
    from shared.models import Shipment

    order = create_order(phone=OWN_PHONE, status="shipped")
    db.session.add(Shipment(order_id=order.id, warehouse_id=order.warehouse_id, status="shipped", priority=0,
                            carrier_code="SF", waybill_no="SF1234567890", shipped_at=order.placed_at))
    db.session.commit()
    look_up(client, order.order_no, OWN_PHONE[-4:])
    page = client.get(f"/track/{order.order_no}").text
    assert 'data-testid="tracking-number">SF1234567890' in page
    assert 'data-testid="guest-actions"' in page and 'data-testid="code-request-form"' in page
    assert 'data-testid="cancel-form"' not in page and 'data-testid="message-form"' not in page


def test_a_guest_acts_only_after_a_one_time_code(client, create_order):
    order = create_order(phone=OWN_PHONE)
    page = guest_with_code(client, order)
    refused = client.post(f"/orders/{order.order_no}/cancel", data={"csrf_token": token_from(client, page)})
    assert refused.status_code == 303 and fresh(order).status == "confirmed"  # not verified yet
    code = latest_code(order)
    stored = db.session.execute(select(GuestCode.code_hash)).scalar_one()
    assert code not in stored and len(stored) == 64  # only a keyed hash
    raw = db.session.execute(text("SELECT params, recipient FROM customer_notifications")).one()
    assert code not in raw.params and OWN_PHONE not in raw.recipient  # the outbox keeps it encrypted
    sms = db.session.execute(select(CustomerNotification)).scalar_one()
    assert (sms.channel, sms.recipient) == ("sms", OWN_PHONE)
    assert enter(client, order, code, page).status_code == 303
    assert 'data-testid="guest-verified"' in client.get(page).text
    client.post(f"/orders/{order.order_no}/messages", data={"body": "please call me",
                                                            "csrf_token": token_from(client, page)})
    assert db.session.execute(select(OrderMessage.author_label)).scalar_one() == f"guest:{order.order_no}"
    client.post(f"/orders/{order.order_no}/cancel", data={"csrf_token": token_from(client, page)})
    assert fresh(order).status == "cancelled"


def test_a_wrong_code_is_refused_and_a_used_code_does_not_work_twice(client, create_order, customer_app):
    order = create_order(phone=OWN_PHONE)
    page = guest_with_code(client, order)
    code = latest_code(order)
    wrong = "000000" if code != "000000" else "111111"
    enter(client, order, wrong, page)
    assert "the code is not right" in flashes(client, page)
    assert db.session.execute(select(GuestCode.attempts)).scalar_one() == 1
    enter(client, order, code, page)
    assert 'data-testid="guest-verified"' in client.get(page).text
    stranger = customer_app.test_client()
    stranger.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    look_up(stranger, order.order_no, OWN_PHONE[-4:])
    enter(stranger, order, code, page)  # the same code from another browser: used already
    assert "has expired or was used" in flashes(stranger, page)
    assert 'data-testid="guest-verified"' not in stranger.get(page).text


def test_an_expired_code_is_refused(client, create_order):
    order = create_order(phone=OWN_PHONE)
    page = guest_with_code(client, order)
    code = latest_code(order)
    db.session.execute(update(GuestCode).values(expires_at=utc_now() - timedelta(seconds=1)))
    db.session.commit()
    enter(client, order, code, page)
    assert "has expired or was used" in flashes(client, page)
    assert 'data-testid="guest-verified"' not in client.get(page).text


def test_five_wrong_codes_spend_the_code_even_the_right_one_after(client, create_order, customer_app):
    customer_app.config["GUEST_VERIFY_LIMIT"] = "100 per minute"
    try:
        order = create_order(phone=OWN_PHONE)
        page = guest_with_code(client, order)
        code = latest_code(order)
        wrong = [f"{n:06d}" for n in range(1, 8) if f"{n:06d}" != code][:5]
        for attempt in wrong:
            enter(client, order, attempt, page)
        assert "too many wrong codes" in flashes(client, page)
        enter(client, order, code, page)
        assert "has expired or was used" in flashes(client, page)
        assert 'data-testid="guest-verified"' not in client.get(page).text
        assert enter(client, order, "12ab56", page).status_code == 303
        assert "six digits" in flashes(client, page)
    finally:
        customer_app.config.pop("GUEST_VERIFY_LIMIT", None)


def test_codes_are_limited_per_order_and_per_address(client, create_order):
    order = create_order(phone=OWN_PHONE)
    page = guest_with_code(client, order)
    for _ in range(2):
        client.post(f"/track/{order.order_no}/code", data={"channel": "sms", "csrf_token": token_from(client, page)})
    assert db.session.execute(select(GuestCode)).all().__len__() == 3
    client.post(f"/track/{order.order_no}/code", data={"channel": "sms", "csrf_token": token_from(client, page)})
    assert "too many codes were sent" in flashes(client, page)
    assert db.session.execute(select(GuestCode)).all().__len__() == 3
    assert len(db.session.execute(select(GuestCode).where(GuestCode.used_at.is_(None))).all()) == 1  # the newest
    client.post(f"/track/{order.order_no}/code", data={"channel": "sms", "csrf_token": token_from(client, page)})
    limited = client.post(f"/track/{order.order_no}/code", data={"channel": "sms",
                                                                 "csrf_token": token_from(client, page)})
    assert limited.status_code == 429  # the sixth request from this address in 10 minutes


def test_a_code_for_an_order_not_looked_up_is_404(client, create_order):
    order = create_order(phone=OWN_PHONE)
    token = token_from(client, "/track/")
    assert client.post(f"/track/{order.order_no}/code", data={"channel": "sms", "csrf_token": token}
                       ).status_code == 404
    assert client.post(f"/track/{order.order_no}/verify", data={"code": "123456", "csrf_token": token}
                       ).status_code == 404


def test_a_request_pending_on_an_order_cancelled_meanwhile_reads_approved(client, account, create_order):
    from shared.services import orders

    order = create_order(phone=OWN_PHONE, status="allocated")
    sign_in(client)
    post_on_order(client, order, "cancel", {})
    orders.transition_order(fresh(order), "cancelled", ADMIN, reason="cancelled by phone")
    db.session.commit()
    page = client.get(f"/orders/{order.order_no}").text
    assert 'data-testid="request-approved"' in page and 'data-testid="request-pending"' not in page
