"""Receiver-name and last-four search (issue 14 item 5) within the masking rules: the blind indexes find the orders,
a role that sees names masked cannot search by a name, and no search reads back a digit the mask hides."""
import importlib

import pytest
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import select, update

from shared.extensions import db
from shared.models import AccessLogEntry, Order
from shared.services import customers, staff
from tests.factories import ADMIN
from tests.portal_client import csrf_token, english_client, sign_in

PHONE, LAST4 = "17355555372", "5372"


@pytest.fixture
def target(create_order):
    return create_order(channel_order_id="TM-900", phone=PHONE, shipping_address={
        "receiver": "林 小雨", "phone": PHONE, "province": "浙江省", "city": "杭州市", "district": "西湖区",
        "street": "文三路 1 号", "postal_code": "310012"})


@pytest.fixture
def others(create_order):
    return [create_order(channel_order_id="TM-901", phone="13900001111"),  # 张伟, other digits
            create_order(channel_order_id="TM-902", phone="13612345372")]  # 张伟, the same last four


@pytest.fixture
def api(portal, create_user):
    def make(role: str):
        token = staff.issue_token(create_user(f"f_{role}", role), ADMIN)
        db.session.commit()
        headers = {"Authorization": f"Bearer {token}"}
        client = portal.test_client()

        def search(**body):
            return client.post("/api/v1/orders/search", json=body, headers=headers)
        return search
    return make


@pytest.fixture
def browser(portal, create_user):
    def make(role: str):
        user = create_user(f"b_{role}", role)
        client = english_client(portal)
        assert sign_in(client, user.username).status_code == 302
        return client
    return make


def post_search(client, **form):
    return client.post("/orders/", data={**form, "csrf_token": csrf_token(client, "/orders/")})


def found(answer) -> list[str]:
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return sorted(item["channel_order_id"] for item in answer.get_json()["items"])


def log_rows():
    return db.session.execute(select(AccessLogEntry.action, AccessLogEntry.entity_id, AccessLogEntry.fields)
                              .where(AccessLogEntry.entity_type == "orders").order_by(AccessLogEntry.id)).all()


def test_a_role_that_sees_names_finds_orders_by_the_receiver_name(api, target, others):
    search = api("ops_manager")
    assert found(search(receiver="林小雨")) == ["TM-900"]
    assert found(search(receiver="  林 小雨 ")) == ["TM-900"]  # white space is not part of a name
    assert found(search(receiver="张伟")) == ["TM-901", "TM-902"]
    assert found(search(receiver="林")) == []  # exact names only: no prefix search
    assert [tuple(r) for r in log_rows()] == [("search", "by:receiver_name; found:1", "name")] * 2 + [
        ("search", "by:receiver_name; found:2", "name"), ("search", "by:receiver_name; found:0", "name")]
    for row in log_rows():
        assert "林" not in " ".join(map(str, row)) and "张" not in " ".join(map(str, row))


@pytest.mark.parametrize("role", ["customer_service", "finance", "auditor"])
def test_a_role_that_sees_names_masked_or_not_at_all_cannot_search_by_one(api, target, role):
    answer = api(role)(receiver="林小雨")
    assert answer.status_code == 403 and answer.get_json()["error"]["code"] == "search_not_allowed"
    assert answer.get_json()["error"]["field"] in ("receiver", "q")
    assert [r.action for r in log_rows()] == ["search_refused"]


def test_the_portal_refuses_a_name_search_to_customer_service_and_lists_nothing(browser, target):
    page = post_search(browser("customer_service"), receiver="林小雨")
    assert page.status_code == 403 and f'href="/orders/{target.order_no}"' not in page.text


def test_a_masked_role_searches_by_the_last_four_it_sees(api, browser, target, others):
    assert found(api("customer_service")(phone_last4=LAST4)) == ["TM-900", "TM-902"]
    page = post_search(browser("customer_service"), phone_last4=LAST4)
    assert page.status_code == 200 and f'href="/orders/{target.order_no}"' in page.text
    assert "173****5372" in page.text and PHONE not in page.text  # the list still shows the masked form
    assert found(api("warehouse")(phone_last4="1111")) == ["TM-901"]


def test_the_last_four_search_cannot_probe_the_masked_digits(api, target, others):
    """The mask 173****5372 hides the middle: no search may answer differently for the right middle digits.
    Five or more trailing digits are refused, a full number is refused, and digit strings that are not a
    channel order id find nothing, whatever digits are tried."""
    search = api("customer_service")
    for suffix in ("55372", "555372", "5555372"):
        assert search(phone_last4=suffix).status_code == 422
    assert search(phone_last4="372").status_code == 422
    answers = {middle: (r.status_code, r.get_json().get("items")) for middle in ("5554", "5555", "5556")
               for r in [search(q=f"173{middle}5372")]}
    assert {status for status, _items in answers.values()} == {403}
    for tail in ("55555372", "3555555372"):  # digits: matched only against channel order ids for this role
        assert found(search(q=tail)) == []
    # Together with the masked form, the last four add nothing beyond what the mask shows.
    assert found(search(q="173****5372", phone_last4=LAST4)) == ["TM-900"]


def test_a_receiver_name_never_travels_in_an_address(browser, api, target):
    page = browser("ops_manager").get("/orders/?receiver=%E6%9E%97%E5%B0%8F%E9%9B%A8")
    assert page.status_code == 422 and f'href="/orders/{target.order_no}"' not in page.text


def test_a_platform_masked_receiver_has_no_search_index(create_order):
    """A platform's masks (张*, 136*******5) are shared by many buyers: they must match nobody."""
    order = create_order(channel_order_id="TM-903")
    assert order.receiver_name_index and order.receiver_last4_index
    assert order.receiver_name_index != order.receiver_last4_index
    assert customers.receiver_search_indexes("张*", "136*******5", {"kind": "taobao", "buyer_key": "AAF1"}) == {
        "receiver_name_index": None, "receiver_last4_index": None}


def test_the_migration_backfills_the_indexes_in_sets(target, others, monkeypatch):
    expected = dict(db.session.execute(select(Order.id, Order.receiver_name_index)).all())
    db.session.execute(update(Order).values(receiver_name_index=None, receiver_last4_index=None))
    migration = importlib.import_module("migrations.versions.0012_ui_find")
    monkeypatch.setattr(migration, "BATCH", 2)  # three orders: two sets
    with Operations.context(MigrationContext.configure(db.session.connection())):
        migration._backfill()
    db.session.expire_all()
    assert dict(db.session.execute(select(Order.id, Order.receiver_name_index)).all()) == expected
    assert db.session.scalars(select(Order.channel_order_id).where(
        Order.receiver_last4_index == target.receiver_last4_index).order_by(Order.id)).all() == ["TM-900", "TM-902"]


def test_a_role_that_sees_no_phone_cannot_search_by_the_last_four(api, target):
    answer = api("auditor")(phone_last4=LAST4)
    assert answer.status_code == 403 and answer.get_json()["error"]["code"] == "search_not_allowed"
    assert [tuple(r) for r in log_rows()] == [("search_refused", "by:phone_last4", "phone")]
