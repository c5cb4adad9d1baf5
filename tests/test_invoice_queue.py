"""Finance's invoice queue in the portal, an order's invoice history, and the customer's own invoices on the
customer site (issue 12 item 7). Invoices are seeded issued directly with a provider PDF (the provider round trip is
tests/test_invoices.py's). Both backends."""
import pytest
from sqlalchemy import func, select

from shared.extensions import db
from shared.models import AccessLogEntry, AuditEvent
from shared.models.invoices import InvoiceRequest
from shared.services import invoice_queue, invoices
from shared.timekeeping import utc_now
from tests.factories import ADMIN
from tests.portal_client import csrf_token
from tests.test_invoices import profile_for, provider, sim, taxed  # noqa: F401  (fixtures)

PROVIDER_PDF = b"%PDF-1.4 provider's invoice"


def requested(order, kind="normal", profile=None):
    profile = profile or profile_for(order)
    made = invoices.request_invoice([order.order_no], profile.id, kind, ADMIN)
    db.session.commit()
    return made


def issue(request, number="26332000000000000001"):
    for part in request.parts:
        part.status, part.number, part.issued_at = "issued", number, utc_now()
        part.provider_pdf = PROVIDER_PDF
    request.status = "issued"
    db.session.commit()
    return request


def fail(request, reason="购方税号有误"):
    for part in request.parts:
        part.status, part.failure_reason = "failed", reason
    request.status, request.failure_reason = "failed", reason
    db.session.commit()
    return request


def access_rows(entity_id) -> list[AccessLogEntry]:
    return list(db.session.scalars(select(AccessLogEntry).where(AccessLogEntry.entity_type == "invoice_request",
                                                                AccessLogEntry.entity_id == str(entity_id))))


@pytest.fixture
def three(create_order):
    """An issued, a failed and a held request, each of its own order."""
    taxed()
    issued = issue(requested(create_order()))
    failed = fail(requested(create_order()))
    held = requested(create_order())
    held.held_reason = "超授信额度 / over the credit line: needs 60.09, remaining 0.00 of 1000.00"
    db.session.commit()
    return issued, failed, held


def ids(page_text: str, candidates) -> set[int]:
    return {r.id for r in candidates if f'data-invoice-request="{r.id}"' in page_text}


# --- the queue --------------------------------------------------------------------------------------------------

def test_the_queue_filters_by_state_and_order_number_newest_first(client_for, three):
    issued, failed, held = three
    client = client_for("finance")
    everything = client.get("/finance/invoices/")
    assert everything.status_code == 200 and ids(everything.text, three) == {issued.id, failed.id, held.id}
    text = everything.text
    assert text.index(f'data-invoice-request="{held.id}"') < text.index(f'data-invoice-request="{issued.id}"')
    assert 'data-testid="credit-line"' in text
    assert "credit-unavailable" in text  # no provider listens in the tests: said in words, nothing breaks
    assert ids(client.get("/finance/invoices/?status=issued").text, three) == {issued.id}
    failed_page = client.get("/finance/invoices/?status=failed").text
    assert ids(failed_page, three) == {failed.id} and "购方税号有误" in failed_page
    held_page = client.get("/finance/invoices/?status=held").text
    assert ids(held_page, three) == {held.id} and "超授信额度" in held_page
    assert ids(client.get("/finance/invoices/?status=requested").text, three) == {held.id}
    assert ids(client.get("/finance/invoices/?status=cancelled").text, three) == set()
    number = failed.orders[0].order.order_no
    assert ids(client.get(f"/finance/invoices/?order_no={number.lower()}").text, three) == {failed.id}


def test_the_queue_refuses_an_unknown_state_and_a_bad_cursor_in_words(client_for, three):
    client = client_for("finance")
    refused = client.get("/finance/invoices/?status=nonsense")
    assert refused.status_code == 422 and "filter-problem" in refused.text
    assert client.get("/finance/invoices/?cursor=!!!").status_code == 422
    assert client.get("/finance/invoices/?order_no=" + "X" * 65).status_code == 422


def test_the_queue_pages_without_losing_or_repeating_a_row(create_order, three):
    every = [r.id for r in three]
    seen, cursor = [], None
    while True:
        found = invoice_queue.queue(cursor=cursor, limit=2)
        seen += [r.id for r in found.rows]
        if not found.next_cursor:
            break
        cursor = found.next_cursor
    assert seen == sorted(every, reverse=True)
    second = invoice_queue.queue(cursor=invoice_queue.queue(limit=2).next_cursor, limit=2)
    back = invoice_queue.queue(back=second.prev_cursor, limit=2)
    assert [r.id for r in back.rows] == seen[:2]


def test_a_role_without_invoices_is_refused_and_the_auditor_only_reads(client_for, three):
    issued, failed, _held = three
    assert client_for("warehouse").get("/finance/invoices/").status_code == 403
    auditor = client_for("auditor")
    page = auditor.get(f"/finance/invoices/{failed.id}")
    assert page.status_code == 200 and "resubmit-form" not in page.text and "cancel-form" not in page.text
    assert auditor.post(f"/finance/invoices/{failed.id}/resubmit",
                        data={"csrf_token": csrf_token(auditor, f"/finance/invoices/{failed.id}")}).status_code == 403
    assert auditor.get(f"/finance/invoices/{issued.id}/parts/1/pdf").status_code == 200  # view may download


# --- the detail page, the download --------------------------------------------------------------------------------

def test_the_detail_shows_parts_and_the_buyer_masked_by_role(client_for, create_order):
    taxed()
    order = create_order()
    person = profile_for(order, kind="individual", tax_id=None, name="张伟")
    request = issue(requested(order, profile=person))
    page = client_for("finance").get(f"/finance/invoices/{request.id}")
    assert page.status_code == 200
    assert "26332000000000000001" in page.text and "陆拾柒圆玖角" in page.text and "67.90" in page.text
    assert "张*" in page.text and "张伟" not in page.text  # finance sees an individual's name masked
    assert "0571-88888888" not in page.text
    assert access_rows(request.id) == []
    admin = client_for("admin").get(f"/finance/invoices/{request.id}")
    assert "张伟" in admin.text and "0571-88888888" in admin.text
    (logged,) = access_rows(request.id)
    assert logged.action == "view" and "name" in logged.fields.split(",")


def test_a_company_buyer_is_shown_and_its_address_masked(client_for, create_order):
    taxed()
    request = issue(requested(create_order()))
    page = client_for("finance").get(f"/finance/invoices/{request.id}").text
    assert "杭州示例科技有限公司" in page and "91110108551385082Q" in page
    assert "杭州市西湖区文三路 90 号" not in page


def test_a_download_is_the_providers_pdf_and_is_access_logged(client_for, three):
    issued, failed, _held = three
    client = client_for("finance")
    got = client.get(f"/finance/invoices/{issued.id}/parts/1/pdf")
    assert got.status_code == 200 and got.data == PROVIDER_PDF and got.mimetype == "application/pdf"
    assert 'filename="invoice-26332000000000000001.pdf"' in got.headers["Content-Disposition"]
    (logged,) = access_rows(issued.id)
    assert logged.action == "download" and logged.channel == "portal"
    assert client.get(f"/finance/invoices/{issued.id}/parts/2/pdf").status_code == 404
    assert client.get("/finance/invoices/999999/parts/1/pdf").status_code == 404
    not_issued = client.get(f"/finance/invoices/{failed.id}/parts/1/pdf")
    assert not_issued.status_code == 303 and "This invoice is not issued yet." in client.get(
        not_issued.headers["Location"]).text
    assert len(access_rows(failed.id)) == 0


# --- resubmit and cancel -----------------------------------------------------------------------------------------

def test_resubmit_a_failed_request_is_accepted_and_of_an_issued_one_refused(client_for, three):
    issued, failed, _held = three
    client = client_for("finance")
    token = csrf_token(client, f"/finance/invoices/{failed.id}")
    assert client.post(f"/finance/invoices/{failed.id}/resubmit", data={}).status_code == 400  # CSRF
    db.session.refresh(failed)
    assert failed.status == "failed"
    done = client.post(f"/finance/invoices/{failed.id}/resubmit", data={"csrf_token": token})
    assert done.status_code == 303
    db.session.expire_all()
    again = db.session.get(InvoiceRequest, failed.id)
    assert again.status == "requested" and again.failure_reason is None
    assert again.parts[0].status == "pending" and again.parts[0].serial.endswith("r1")
    assert "is submitted again" in client.get(done.headers["Location"]).text
    refused = client.post(f"/finance/invoices/{issued.id}/resubmit", data={"csrf_token": token})
    assert "cannot do that in its present state" in client.get(refused.headers["Location"]).text
    assert db.session.get(InvoiceRequest, issued.id).status == "issued"


def test_cancel_needs_a_reason_is_refused_once_issued_and_accepted_before(client_for, three):
    issued, failed, held = three
    client = client_for("finance")
    token = csrf_token(client, f"/finance/invoices/{held.id}")
    client.post(f"/finance/invoices/{held.id}/cancel", data={"csrf_token": token, "reason": ""})
    db.session.expire_all()
    assert db.session.get(InvoiceRequest, held.id).status == "requested"
    refused = client.post(f"/finance/invoices/{issued.id}/cancel", data={"csrf_token": token, "reason": "wrong"})
    assert "cannot do that in its present state" in client.get(refused.headers["Location"]).text
    assert db.session.get(InvoiceRequest, issued.id).status == "issued"
    done = client.post(f"/finance/invoices/{held.id}/cancel", data={"csrf_token": token, "reason": "buyer withdrew"})
    assert "is cancelled" in client.get(done.headers["Location"]).text
    db.session.expire_all()
    assert db.session.get(InvoiceRequest, held.id).status == "cancelled"
    assert db.session.scalar(select(AuditEvent.reason).where(AuditEvent.action == "invoice.cancelled",
                                                             AuditEvent.entity_id == str(held.id))) == "buyer withdrew"


def test_messages_are_in_chinese_for_a_chinese_viewer(client_for, three):
    issued, _failed, _held = three
    client = client_for("finance", locale="zh_CN")
    page = client.get("/finance/invoices/")
    assert "已开具" in page.text and "授信额度" in page.text
    token = csrf_token(client, f"/finance/invoices/{issued.id}")
    refused = client.post(f"/finance/invoices/{issued.id}/resubmit", data={"csrf_token": token})
    assert "当前状态" in client.get(refused.headers["Location"]).text


# --- the order page: history and the request form ------------------------------------------------------------------

def test_the_order_page_shows_its_invoice_history_with_links(client_for, three):
    issued, _failed, _held = three
    order_no = issued.orders[0].order.order_no
    page = client_for("finance").get(f"/orders/{order_no}").text
    assert 'data-testid="order-invoice-history"' in page and f'data-invoice-request="{issued.id}"' in page
    assert f"/finance/invoices/{issued.id}" in page and "26332000000000000001" in page
    assert f"/finance/invoices/{issued.id}/parts/1/pdf" in page
    assert "request-invoice-form" in page  # finance may ask (the order is already invoiced: the service refuses)
    cs = client_for("customer_service").get(f"/orders/{order_no}").text
    assert "order-invoice-history" not in cs  # no invoices permission, no history


def test_finance_requests_an_invoice_from_the_order_page(client_for, create_order):
    order = create_order()
    profile = profile_for(order)
    client = client_for("finance")
    token = csrf_token(client, f"/orders/{order.order_no}")
    form = {"csrf_token": token, "profile_id": profile.id, "kind": "normal"}
    missing = client.post(f"/finance/invoices/orders/{order.order_no}", data=form)
    assert missing.status_code == 303
    shown = client.get(missing.headers["Location"]).text
    assert "lack their tax data" in shown and "SKU-1" in shown
    assert db.session.scalar(select(func.count()).select_from(InvoiceRequest)) == 0
    taxed()
    made = client.post(f"/finance/invoices/orders/{order.order_no}", data=form)
    assert made.status_code == 303 and "/finance/invoices/" in made.headers["Location"]
    request = db.session.scalars(select(InvoiceRequest)).one()
    assert request.profile_id == profile.id and request.requested_by == "finance_en"
    again = client.post(f"/finance/invoices/orders/{order.order_no}", data=form)
    assert "already invoiced" in client.get(again.headers["Location"]).text
    assert db.session.scalar(select(func.count()).select_from(InvoiceRequest)) == 1


def test_the_order_page_request_refuses_another_customers_profile_and_a_bad_kind(client_for, create_order):
    taxed()
    order = create_order()
    stranger = profile_for(create_order(phone="13700002222"), name="别家公司")
    client = client_for("finance")
    token = csrf_token(client, f"/orders/{order.order_no}")
    foreign = client.post(f"/finance/invoices/orders/{order.order_no}",
                          data={"csrf_token": token, "profile_id": stranger.id, "kind": "normal"})
    assert "Choose one of this buyer" in client.get(foreign.headers["Location"]).text
    profile_for(order)
    client.post(f"/finance/invoices/orders/{order.order_no}", data={"csrf_token": token, "profile_id": 1,
                                                                    "kind": "gold"})
    assert db.session.scalar(select(func.count()).select_from(InvoiceRequest)) == 0
    assert client.post("/finance/invoices/orders/OS20260101000001X", data={"csrf_token": token}).status_code == 404


# --- the customer site ---------------------------------------------------------------------------------------------

from tests.test_customer_site import (OTHER_PHONE, OWN_PHONE, account, client, other_account,  # noqa: E402,F401
                                      sign_in)
from tests.test_customer_site import csrf_token as customer_csrf  # noqa: E402


def test_a_customer_downloads_their_invoice_and_another_customers_is_404(client, account, other_account,
                                                                         create_order):
    taxed()
    own = create_order(phone=OWN_PHONE, status="completed")
    foreign = create_order(phone=OTHER_PHONE, status="completed")
    mine = issue(requested(own))
    theirs = issue(requested(foreign), number="26332000000000000002")
    sign_in(client)
    page = client.get(f"/orders/{own.order_no}")
    assert 'data-testid="my-invoices"' in page.text and "26332000000000000001" in page.text
    got = client.get(f"/orders/{own.order_no}/invoices/{mine.id}/1.pdf")
    assert got.status_code == 200 and got.data == PROVIDER_PDF
    assert [row.channel for row in access_rows(mine.id)] == ["customer"]
    # the attack: the other customer's invoice by URL, through their order or through one's own
    assert client.get(f"/orders/{foreign.order_no}/invoices/{theirs.id}/1.pdf").status_code == 404
    assert client.get(f"/orders/{own.order_no}/invoices/{theirs.id}/1.pdf").status_code == 404
    assert client.get(f"/orders/{own.order_no}/invoices/{mine.id}/2.pdf").status_code == 404
    assert access_rows(theirs.id) == []
    client.post("/sign-out", data={"csrf_token": customer_csrf(client, "/orders/")})
    signed_out = client.get(f"/orders/{own.order_no}/invoices/{mine.id}/1.pdf")
    assert signed_out.status_code == 302 and "/sign-in" in signed_out.headers["Location"]


def test_a_customer_requests_an_invoice_for_a_completed_order_only(client, account, other_account, create_order):
    taxed()
    early = create_order(phone=OWN_PHONE)
    done = create_order(phone=OWN_PHONE, status="completed")
    mine = profile_for(done, name="李雷的公司")
    stranger = profile_for(create_order(phone=OTHER_PHONE), name="韩梅梅的公司")
    sign_in(client)
    assert "request-invoice-form" not in client.get(f"/orders/{early.order_no}").text
    assert "request-invoice-form" in client.get(f"/orders/{done.order_no}").text
    token = customer_csrf(client, f"/orders/{done.order_no}")
    too_early = client.post(f"/orders/{early.order_no}/invoices",
                            data={"csrf_token": token, "profile_id": mine.id, "kind": "normal"})
    assert "once the order is delivered" in client.get(too_early.headers["Location"]).text
    assert client.post(f"/orders/{done.order_no}/invoices", data={"csrf_token": token, "profile_id": stranger.id,
                                                                  "kind": "normal"}).status_code == 404
    assert client.post(f"/orders/{done.order_no}/invoices",
                       data={"profile_id": mine.id, "kind": "normal"}).status_code == 400  # no CSRF token
    bad_kind = client.post(f"/orders/{done.order_no}/invoices",
                           data={"csrf_token": token, "profile_id": mine.id, "kind": "gold"})
    assert "Choose a normal" in client.get(bad_kind.headers["Location"]).text
    assert db.session.scalar(select(func.count()).select_from(InvoiceRequest)) == 0
    asked = client.post(f"/orders/{done.order_no}/invoices",
                        data={"csrf_token": token, "profile_id": mine.id, "kind": "normal"})
    assert asked.status_code == 303
    request = db.session.scalars(select(InvoiceRequest)).one()
    assert request.customer_id == account.id and request.requested_by == f"customer:{account.id}"
    follow = client.get(f"/orders/{done.order_no}").text
    assert "invoice-in-progress" in follow and "request-invoice-form" not in follow
    theirs = create_order(phone=OTHER_PHONE, status="completed")
    assert client.post(f"/orders/{theirs.order_no}/invoices",
                       data={"csrf_token": token, "profile_id": mine.id, "kind": "normal"}).status_code == 404


def test_a_customer_sees_a_refusal_in_words(client, account, create_order):
    done = create_order(phone=OWN_PHONE, status="completed")  # SKU-1 has no tax data
    mine = profile_for(done, kind="individual", tax_id=None, name="李雷")
    sign_in(client)
    token = customer_csrf(client, f"/orders/{done.order_no}")
    special = client.post(f"/orders/{done.order_no}/invoices",
                          data={"csrf_token": token, "profile_id": mine.id, "kind": "special"})
    assert "lack their tax data" in client.get(special.headers["Location"]).text
    taxed()
    special = client.post(f"/orders/{done.order_no}/invoices",
                          data={"csrf_token": token, "profile_id": mine.id, "kind": "special"})
    assert "an individual may ask for a normal invoice" in client.get(special.headers["Location"]).text
    assert db.session.scalar(select(func.count()).select_from(InvoiceRequest)) == 0


def test_a_guest_sees_no_invoices(customer_app, account, create_order):
    from tests.test_customer_site import look_up

    taxed()
    order = create_order(phone=OWN_PHONE, status="completed")
    issue(requested(order))
    guest = customer_app.test_client()
    guest.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    found = look_up(guest, order.order_no, OWN_PHONE[-4:])
    page = guest.get(found.headers["Location"]).text if found.status_code in (302, 303) else found.text
    assert order.order_no in page and "my-invoices" not in page and "26332000000000000001" not in page



def test_resubmit_with_another_of_the_buyers_profiles_and_never_a_strangers(client_for, create_order):
    taxed()
    order = create_order()
    failed = fail(requested(order))
    better = profile_for(order, name="杭州示例科技有限公司（更正）")
    stranger = profile_for(create_order(phone="13700002222"), name="别家公司")
    client = client_for("finance")
    page = client.get(f"/finance/invoices/{failed.id}").text
    assert f'value="{better.id}"' in page and f'value="{stranger.id}"' not in page
    token = csrf_token(client, f"/finance/invoices/{failed.id}")
    refused = client.post(f"/finance/invoices/{failed.id}/resubmit",
                          data={"csrf_token": token, "profile_id": stranger.id})
    assert "Choose one of this buyer" in client.get(refused.headers["Location"]).text
    db.session.expire_all()
    assert db.session.get(InvoiceRequest, failed.id).status == "failed"
    client.post(f"/finance/invoices/{failed.id}/resubmit", data={"csrf_token": token, "profile_id": better.id})
    db.session.expire_all()
    again = db.session.get(InvoiceRequest, failed.id)
    assert again.status == "requested" and again.profile_id == better.id
    assert again.buyer_name == "杭州示例科技有限公司（更正）"


def test_the_queue_page_costs_the_same_queries_for_more_rows(client_for, create_order, three):
    from tests.factories import count_queries

    client = client_for("finance")
    client.get("/finance/invoices/")  # warm: the session's user and role are loaded
    with count_queries() as few:
        assert client.get("/finance/invoices/").status_code == 200
    for _ in range(3):
        fail(requested(create_order()))
    with count_queries() as more:
        page = client.get("/finance/invoices/")
    assert page.text.count("data-invoice-request=") == 6
    assert len(more) == len(few)


def test_an_invoice_issued_through_the_simulator_is_downloaded_by_finance_and_its_customer(
        client_for, client, account, create_order, provider):
    taxed()
    order = create_order(phone=OWN_PHONE, status="completed")
    request = requested(order)
    invoices.submit(request, provider)
    db.session.commit()
    invoices.poll(request, provider)
    db.session.commit()
    (part,) = request.parts
    assert request.status == "issued" and len(part.number) == 20 and part.provider_pdf
    staff = client_for("finance")
    queue_page = staff.get("/finance/invoices/?status=issued").text
    assert f'data-invoice-request="{request.id}"' in queue_page and part.number in queue_page
    assert staff.get(f"/finance/invoices/{request.id}/parts/1/pdf").data == bytes(part.provider_pdf)
    sign_in(client)
    assert part.number in client.get(f"/orders/{order.order_no}").text
    assert client.get(f"/orders/{order.order_no}/invoices/{request.id}/1.pdf").data == bytes(part.provider_pdf)
    assert sorted(row.channel for row in access_rows(request.id)) == ["customer", "portal"]
