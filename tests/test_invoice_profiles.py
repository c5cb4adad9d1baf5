"""Invoice profiles (issue 12 item 1): the service's rules per kind, default handling, audit masking, 专票
eligibility, and the API /api/v1/invoice-profiles. Both backends."""
import pytest
from sqlalchemy import func, select

from shared.extensions import db
from shared.models import AuditEvent, InvoiceProfile
from shared.services import customers
from shared.services import invoice_profiles as profiles
from shared.services.errors import NotFound, ValidationFailed
from tests.factories import ADMIN
from tests.test_api import ApiClient, token_for  # noqa: F401  (fixture)

XIAOMI = "91110108551385082Q"
N_CODE = "N11100006000373417"
RESIDENT_ID = "11010519491231002X"
ENTERPRISE = {"kind": "enterprise", "name": "小米科技有限责任公司", "tax_id": XIAOMI,
              "address": "北京市海淀区西二旗中路33号", "phone": "010-60606666",
              "bank": "中国银行北京分行", "account": "3402 0000 1234", "email": "fapiao@example.com"}


@pytest.fixture
def customer(session):
    person = customers.create_account("李雷", "13900001111", "li.lei@example.com", "correct-horse-battery", ADMIN)
    db.session.commit()
    return person


def count_profiles() -> int:
    return db.session.execute(select(func.count()).select_from(InvoiceProfile)).scalar_one()


def refused(customer, **changes):
    before = count_profiles()
    with pytest.raises(ValidationFailed) as error:
        profiles.create_profile(customer.id, {**ENTERPRISE, **changes}, ADMIN)
    db.session.rollback()
    assert count_profiles() == before
    return error.value.field, error.value.code


def test_an_enterprise_profile_is_kept_with_its_tax_id_as_typed(customer):
    profile = profiles.create_profile(customer.id, {**ENTERPRISE, "tax_id": " 9111 0108 5513 8508 2q"}, ADMIN)
    db.session.commit()
    assert profile.tax_id == XIAOMI and profile.is_default and profile.created_by == "customer"
    assert profiles.may_request_special(profile)


def test_bad_input_is_refused_with_field_and_code_and_changes_nothing(customer):
    assert refused(customer, tax_id=XIAOMI[:17] + "R") == ("tax_id", "invalid_tax_id")
    assert refused(customer, tax_id=XIAOMI[:5] + "O" + XIAOMI[6:]) == ("tax_id", "invalid_tax_id")
    assert refused(customer, tax_id=XIAOMI[:12]) == ("tax_id", "invalid_tax_id")
    assert refused(customer, tax_id="") == ("tax_id", "required")
    assert refused(customer, tax_id="110108551385082") == ("tax_id", "invalid_tax_id")  # legacy: not for enterprises
    assert refused(customer, name="<b>小米</b>") == ("name", "forbidden_character")
    assert refused(customer, name="") == ("name", "required")
    assert refused(customer, address="北京市海淀区" * 9) == ("address", "too_long")  # 108 GBK bytes
    assert refused(customer, address="北京市海淀区" * 7 + "西二旗中路", phone="010-60606666") == ("address", "too_long")
    assert refused(customer, phone="call me") == ("phone", "invalid_phone")
    assert refused(customer, email="not-an-email") == ("email", "invalid_email")
    assert refused(customer, kind="company") == ("kind", "invalid_kind")
    assert refused(customer, name="😀公司") == ("name", "unsupported_character")
    assert refused(customer, tax_id=12) == ("tax_id", "invalid_type")


def test_valid_codes_of_the_n_a_y_authorities_are_accepted(customer):
    for code in (N_CODE, "A1110000600037341K", "Y1110000600037341Y"):
        profile = profiles.create_profile(customer.id, {**ENTERPRISE, "tax_id": code}, ADMIN)
        assert profile.tax_id == code
    db.session.commit()


def test_legacy_numbers_for_institutions_and_others_with_the_leading_zero_kept(customer):
    profile = profiles.create_profile(customer.id, {"kind": "other", "name": "某外国企业常驻代表处",
                                                    "tax_id": "012345678901234"}, ADMIN)
    db.session.commit()
    assert profile.tax_id == "012345678901234"
    assert profiles.may_request_special(profile)


def test_an_individual_may_omit_the_tax_id_but_may_not_ask_for_a_special_invoice(customer):
    person = profiles.create_profile(customer.id, {"kind": "individual", "name": "李雷"}, ADMIN)
    with_id = profiles.create_profile(customer.id, {"kind": "individual", "name": "李雷", "tax_id": RESIDENT_ID},
                                      ADMIN)
    db.session.commit()
    assert person.tax_id is None and with_id.tax_id == RESIDENT_ID
    assert not profiles.may_request_special(person)
    assert not profiles.may_request_special(with_id)  # 专票 needs a non-individual kind, whatever the id
    with pytest.raises(ValidationFailed) as error:
        profiles.create_profile(customer.id, {"kind": "individual", "name": "李雷", "tax_id": "110105194912310021"},
                                ADMIN)
    assert (error.value.field, error.value.code) == ("tax_id", "invalid_tax_id")


def test_default_moves_and_survives_deletion(customer):
    first = profiles.create_profile(customer.id, ENTERPRISE, ADMIN)
    second = profiles.create_profile(customer.id, {**ENTERPRISE, "name": "小米通讯技术有限公司"}, ADMIN)
    db.session.commit()
    assert first.is_default and not second.is_default
    profiles.set_default(second, ADMIN)
    db.session.commit()
    db.session.refresh(first)
    assert not first.is_default and second.is_default
    profiles.delete_profile(second, ADMIN)
    db.session.commit()
    db.session.refresh(first)
    assert first.is_default
    assert [p.id for p in profiles.profiles_for_customer(customer.id)] == [first.id]


def test_another_customers_profile_is_not_found(customer, session):
    other = customers.create_account("韩梅梅", "13700002222", "han@example.com", "correct-horse-battery", ADMIN)
    theirs = profiles.create_profile(other.id, ENTERPRISE, ADMIN)
    db.session.commit()
    with pytest.raises(NotFound):
        profiles.profile_for_customer(customer.id, theirs.id)
    assert profiles.profile_for_customer(other.id, theirs.id) is theirs


def test_audit_rows_keep_personal_values_masked(customer):
    person = profiles.create_profile(customer.id, {"kind": "individual", "name": "李雷", "tax_id": RESIDENT_ID,
                                                   "phone": "13900001111", "address": "北京市海淀区西二旗中路33号"}, ADMIN)
    db.session.commit()
    after = db.session.execute(select(AuditEvent.after).where(AuditEvent.entity_type == "invoice_profile",
                                                              AuditEvent.entity_id == str(person.id))).scalar_one()
    assert after["name"] == "李*" and after["tax_id"] == "110***********002X"
    assert after["phone"] == "139****1111" and after["address"] == "北京市海淀区****"
    assert RESIDENT_ID not in str(after) and "13900001111" not in str(after)


# --- the API ----------------------------------------------------------------------------------------------------

@pytest.fixture
def api(portal, token_for):  # noqa: F811
    return ApiClient(portal.test_client(), token_for("finance"))


def api_body(order, **changes) -> dict:
    body = {"order_no": order.order_no, "type": "enterprise", "name": ENTERPRISE["name"], "tax_id": XIAOMI,
            "address": ENTERPRISE["address"], "phone": ENTERPRISE["phone"], "email": ENTERPRISE["email"]}
    body.update(changes)
    return body


def test_api_creates_a_profile_for_the_orders_customer_and_lists_it(api, create_order):
    order = create_order()
    created = api.post("/invoice-profiles", api_body(order))
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["type"] == "enterprise" and body["tax_id"] == XIAOMI and body["created_by"] == "staff"
    assert body["may_request_special"] is True and body["is_default"] is True
    profile = db.session.get(InvoiceProfile, body["id"])
    assert profile.customer_id == order.customer_id
    listed = api.get(f"/invoice-profiles?order_no={order.order_no}")
    assert listed.status_code == 200
    assert [item["id"] for item in listed.get_json()["items"]] == [body["id"]]


@pytest.mark.parametrize("changes, field, code", [
    ({"tax_id": XIAOMI[:17] + "R"}, "tax_id", "invalid_tax_id"),
    ({"name": "小米<科技>"}, "name", "forbidden_character"),
    ({"address": "北" * 51}, "address", "too_long"),
    ({"type": "company"}, "type", "invalid_kind"),
    ({"type": None}, "type", "invalid_kind"),
])
def test_api_refuses_bad_fields_with_422_field_and_code(api, create_order, changes, field, code):
    order = create_order()
    answer = api.post("/invoice-profiles", api_body(order, **changes))
    assert answer.status_code == 422
    assert answer.get_json()["error"]["field"] == field and answer.get_json()["error"]["code"] == code
    assert count_profiles() == 0


def test_api_unknown_or_missing_order(api, create_order):
    order = create_order()
    assert api.get("/invoice-profiles").status_code == 422
    wrong = order.order_no[:-1] + ("A" if order.order_no[-1] != "A" else "B")
    assert api.get(f"/invoice-profiles?order_no={wrong}").status_code == 422  # the check character fails
    answer = api.post("/invoice-profiles", api_body(order, order_no=None))
    assert answer.status_code == 422 and answer.get_json()["error"]["field"] == "order_no"


def test_api_messages_follow_accept_language(api, create_order):
    order = create_order()
    answer = api.post("/invoice-profiles", api_body(order, tax_id=XIAOMI[:17] + "R"),
                      headers={"Accept-Language": "zh-CN"})
    assert answer.status_code == 422
    message = answer.get_json()["error"]["message"]
    assert any("\u4e00" <= c <= "\u9fff" for c in message), message


def test_api_roles_without_invoices_edit_are_refused(portal, token_for, create_order):  # noqa: F811
    order = create_order()
    auditor = ApiClient(portal.test_client(), token_for("auditor"))
    assert auditor.post("/invoice-profiles", api_body(order)).status_code == 403
    assert auditor.get(f"/invoice-profiles?order_no={order.order_no}").status_code == 200
    assert count_profiles() == 0


# --- the staff page for B2B profiles --------------------------------------------------------------------------

def test_finance_keeps_a_b2b_profile_for_the_customer_of_an_order(client_for, create_order):
    from tests.portal_client import csrf_token

    order = create_order()
    client = client_for("finance")
    found = client.get(f"/finance/profiles/?order_no={order.order_no}")
    assert found.status_code == 302 and found.headers["Location"].endswith(f"/finance/profiles/{order.order_no}")
    token = csrf_token(client, f"/finance/profiles/{order.order_no}")
    form = {"csrf_token": token, "kind": "enterprise", "name": "某某贸易有限公司", "tax_id": XIAOMI[:17] + "R"}
    refused = client.post(f"/finance/profiles/{order.order_no}", data=form)
    assert refused.status_code == 422 and 'data-field="tax_id"' in refused.text
    assert count_profiles() == 0
    saved = client.post(f"/finance/profiles/{order.order_no}", data={**form, "tax_id": XIAOMI})
    assert saved.status_code == 303
    profile = profiles.profiles_for_customer(order.customer_id)[0]
    assert profile.created_by == "staff" and profile.tax_id == XIAOMI
    assert "某某贸易有限公司" in client.get(f"/finance/profiles/{order.order_no}").text
    assert f"/finance/profiles/{order.order_no}" in client.get(f"/orders/{order.order_no}").text  # linked


def test_a_role_without_invoices_cannot_see_the_staff_page(client_for, create_order):
    order = create_order()
    assert client_for("warehouse").get(f"/finance/profiles/{order.order_no}").status_code == 403


def test_api_masks_personal_parts_by_role_and_logs_full_views(portal, token_for, create_order):  # noqa: F811
    from shared.models import AccessLogEntry

    order = create_order()
    profiles.create_profile(order.customer_id, {"kind": "individual", "name": "张伟", "tax_id": RESIDENT_ID,
                                                "phone": "13812345678"}, ADMIN)
    db.session.commit()
    finance = ApiClient(portal.test_client(), token_for("finance"))  # every personal field masked for finance
    item = finance.get(f"/invoice-profiles?order_no={order.order_no}").get_json()["items"][0]
    assert (item["name"], item["tax_id"], item["phone"]) == ("张*", "110***********002X", "138****5678")
    assert db.session.execute(select(func.count()).select_from(AccessLogEntry)
                              .where(AccessLogEntry.entity_type == "invoice_profile")).scalar_one() == 0
    admin = ApiClient(portal.test_client(), token_for("admin"))
    item = admin.get(f"/invoice-profiles?order_no={order.order_no}").get_json()["items"][0]
    assert (item["name"], item["tax_id"], item["phone"]) == ("张伟", RESIDENT_ID, "13812345678")
    logged = db.session.execute(select(AccessLogEntry.fields).where(
        AccessLogEntry.entity_type == "invoice_profile")).scalar_one()
    assert set(logged.split(",")) == {"name", "tax_id", "phone"}
