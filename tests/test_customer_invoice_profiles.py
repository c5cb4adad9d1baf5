"""The customer site's invoice profiles: add, edit, delete, make default; field errors next to their field in
English and Chinese; CSRF; another customer's profile by URL is a 404. Both backends."""
import re

from sqlalchemy import func, select

from shared.extensions import db
from shared.models import InvoiceProfile
from shared.services import invoice_profiles
from tests.factories import ADMIN
from tests.test_customer_site import (account, client, csrf_token, fresh_limits, other_account,  # noqa: F401
                                      sign_in)

XIAOMI = "91110108551385082Q"
FORM = {"kind": "enterprise", "name": "小米科技有限责任公司", "tax_id": XIAOMI, "address": "北京市海淀区西二旗中路33号",
        "phone": "010-60606666", "bank": "", "account": "", "email": "fapiao@example.com"}


def field_errors(html: str) -> dict[str, str]:
    return dict(re.findall(r'<p class="error" data-field="(\w+)">([^<]*)</p>', html))


def post_form(client, url: str, **changes):
    data = {**FORM, **changes, "csrf_token": csrf_token(client, url)}
    return client.post(url, data=data)


def profile_count() -> int:
    return db.session.execute(select(func.count()).select_from(InvoiceProfile)).scalar_one()


def test_a_customer_adds_edits_makes_default_and_deletes(client, account):
    sign_in(client)
    assert client.get("/invoice-profiles/").status_code == 200
    added = post_form(client, "/invoice-profiles/new", tax_id="9111 0108 5513 8508 2q")
    assert added.status_code == 303
    first = invoice_profiles.profiles_for_customer(account.id)[0]
    assert first.tax_id == XIAOMI and first.is_default and first.customer_id == account.id
    page = client.get("/invoice-profiles/")
    assert "小米科技有限责任公司" in page.text and XIAOMI in page.text

    assert post_form(client, "/invoice-profiles/new", kind="individual", name="李雷", tax_id="").status_code == 303
    second = [p for p in invoice_profiles.profiles_for_customer(account.id) if p.id != first.id][0]
    assert not second.is_default

    edited = post_form(client, f"/invoice-profiles/{second.id}/edit", kind="individual", name="李雷雷", tax_id="")
    assert edited.status_code == 303
    db.session.refresh(second)
    assert second.name == "李雷雷"

    token = csrf_token(client, "/invoice-profiles/")
    assert client.post(f"/invoice-profiles/{second.id}/default", data={"csrf_token": token}).status_code == 303
    db.session.refresh(first), db.session.refresh(second)
    assert second.is_default and not first.is_default

    assert client.post(f"/invoice-profiles/{first.id}/delete", data={"csrf_token": token}).status_code == 303
    assert [p.id for p in invoice_profiles.profiles_for_customer(account.id)] == [second.id]


def test_field_errors_are_shown_next_to_their_field_in_english(client, account):
    sign_in(client)
    answer = post_form(client, "/invoice-profiles/new", tax_id=XIAOMI[:17] + "R")
    assert answer.status_code == 422
    assert "does not match the others" in field_errors(answer.text)["tax_id"]
    answer = post_form(client, "/invoice-profiles/new", name="小米<科技>")
    assert "may not contain &lt;" in field_errors(answer.text)["name"]
    answer = post_form(client, "/invoice-profiles/new", address="北京市海淀区" * 9)
    assert "bytes" in field_errors(answer.text)["address"]
    assert profile_count() == 0


def test_field_errors_are_shown_in_chinese(client, account):
    sign_in(client)
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "zh-CN"
    answer = post_form(client, "/invoice-profiles/new", tax_id=XIAOMI[:10] + "I" + XIAOMI[11:])
    assert answer.status_code == 422
    message = field_errors(answer.text)["tax_id"]
    assert "统一社会信用代码" in message, message
    assert profile_count() == 0


def test_another_customers_profile_by_url_is_a_404(client, account, other_account):
    theirs = invoice_profiles.create_profile(other_account.id, FORM, ADMIN)
    db.session.commit()
    sign_in(client)
    assert client.get(f"/invoice-profiles/{theirs.id}/edit").status_code == 404
    assert post_form(client, f"/invoice-profiles/{theirs.id}/edit", name="改名").status_code == 404
    token = csrf_token(client, "/invoice-profiles/")
    assert client.post(f"/invoice-profiles/{theirs.id}/delete", data={"csrf_token": token}).status_code == 404
    assert client.post(f"/invoice-profiles/{theirs.id}/default", data={"csrf_token": token}).status_code == 404
    assert "小米" not in client.get("/invoice-profiles/").text
    db.session.refresh(theirs)
    assert theirs.name == FORM["name"] and profile_count() == 1


def test_without_csrf_or_sign_in_nothing_changes(client, account):
    assert client.get("/invoice-profiles/").status_code == 302  # to sign-in
    sign_in(client)
    answer = client.post("/invoice-profiles/new", data=FORM)
    assert answer.status_code == 400
    assert profile_count() == 0
