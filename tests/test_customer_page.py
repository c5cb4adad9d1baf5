"""The staff portal's customer page (issue 14 item 5): one person's orders across channels merged by the blind index
(and the platform buyer key's), masked as the viewer's role sees them, with after-sales, invoices and notes; a search
that goes through blind indexes and only as the role may search; roles without `customers` are refused."""
import pytest
from sqlalchemy import select

from shared.extensions import db
from shared.models import AccessLogEntry, AuditEvent, CustomerNote
from tests.portal_client import csrf_token, english_client, sign_in

PHONE, OTHER = "13812345678", "13900009999"


@pytest.fixture
def person(create_order, create_channel):
    """One person: an order on the own shop, and one on the mini program placed by a friend and sent to them."""
    create_channel("WX", "微信小程序", "wechat")
    own = create_order(channel_order_id="OS-1", phone=PHONE)
    gift = create_order(channel="WX", channel_order_id="WX-1", phone=PHONE,
                        customer={"name": "李雷", "phone": OTHER, "email": None})
    stranger = create_order(channel_order_id="OS-2", phone="13700001111",
                            customer={"name": "王五", "phone": "13700001111", "email": None})
    return own, gift, stranger


@pytest.fixture
def browser(portal, create_user):
    def make(role: str):
        user = create_user(f"c_{role}", role)
        client = english_client(portal)
        assert sign_in(client, user.username).status_code == 302
        return client
    return make


def search(client, **form):
    return client.post("/customers/", data={**form, "csrf_token": csrf_token(client, "/customers/")})


def test_the_page_merges_the_persons_orders_of_two_channels_masked_for_customer_service(browser, person):
    own, gift, stranger = person
    assert gift.customer_id != own.customer_id  # placed by someone else, sent to this person's phone
    page = browser("customer_service").get(f"/customers/{own.customer_id}")
    assert page.status_code == 200
    text = page.text
    assert own.order_no in text and gift.order_no in text and stranger.order_no not in text
    assert "官网商城" in text and "微信小程序" in text
    assert PHONE not in text and "138****5678" in text and "张*" in text and "张伟" not in text


def test_a_role_without_the_customers_resource_is_refused(browser, person):
    own, _gift, _stranger = person
    for role in ("warehouse", "finance", "auditor"):
        client = browser(role)
        assert client.get(f"/customers/{own.customer_id}").status_code == 403
        assert client.get("/customers/").status_code == 403


def test_customer_service_searches_by_order_number_and_the_masked_form_never_by_a_full_phone(browser, person):
    own, _gift, _stranger = person
    client = browser("customer_service")
    link = f'href="/customers/{own.customer_id}"'
    assert link in search(client, q=own.order_no).text
    assert link in search(client, q="138****5678").text
    refused = search(client, q=PHONE)
    assert refused.status_code == 403 and link not in refused.text
    refused_name = search(client, name="张伟")
    assert refused_name.status_code == 403 and link not in refused_name.text
    entries = db.session.execute(select(AccessLogEntry.action, AccessLogEntry.entity_id).where(
        AccessLogEntry.entity_type == "customers").order_by(AccessLogEntry.id)).all()
    assert [tuple(e) for e in entries] == [("search", "by:phone_masked; found:1"), ("search_refused", "by:phone"),
                                           ("search_refused", "by:name")]
    for entry in db.session.scalars(select(AccessLogEntry)).all():
        assert PHONE not in str(entry.entity_id) and "5678" not in str(entry.entity_id)


def test_a_role_that_sees_values_in_full_searches_by_phone_and_name(browser, person):
    own, gift, _stranger = person
    client = browser("ops_manager")
    assert f'href="/customers/{own.customer_id}"' in search(client, q=PHONE).text
    by_name = search(client, name="张 伟").text  # the receiver name index, white space ignored
    assert f'href="/customers/{own.customer_id}"' in by_name and f'href="/customers/{gift.customer_id}"' in by_name
    assert "No customer found." in search(client, q="13000000000").text


def test_a_customer_note_is_escaped_and_audited(browser, person):
    own, _gift, _stranger = person
    admin = browser("admin")
    page = f"/customers/{own.customer_id}"
    assert admin.post(f"{page}/notes", data={"body": "<b>VIP</b> 常客", "csrf_token": csrf_token(admin, page)}
                      ).status_code == 303
    assert "&lt;b&gt;VIP&lt;/b&gt; 常客" in admin.get(page).text
    assert db.session.scalars(select(AuditEvent.action).where(AuditEvent.action == "customer.note_added")).all() \
        == ["customer.note_added"]
    cs = browser("customer_service")  # customers: view only
    assert cs.post(f"{page}/notes", data={"body": "x", "csrf_token": csrf_token(cs, page)}).status_code == 403
    assert len(db.session.scalars(select(CustomerNote)).all()) == 1


def test_an_order_links_to_its_customers_page(browser, person):
    own, _gift, _stranger = person
    assert f'href="/customers/{own.customer_id}"' in browser("customer_service").get(f"/orders/{own.order_no}").text
