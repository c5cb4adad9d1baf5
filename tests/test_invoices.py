"""Invoices through the provider (issue 12, items 3 and 4): requests computed from orders, the 诺诺-style simulator,
refusals that change nothing, a timeout and a double answer, the credit line, the API."""
from decimal import Decimal as D

import pytest
from sqlalchemy import func, select

from devtools.simulators.invoicing import InvoicingSimulator
from shared.extensions import db
from shared.finance.providers import ProviderResult
from shared.finance.providers.nuonuo import NuonuoProvider, order_payload
from shared.models import AuditEvent, InvoiceProfile, Sku
from shared.models.invoices import InvoicePart, InvoiceRequest
from shared.services import invoices
from shared.services.errors import Conflict, NotFound, ValidationFailed
from tests.factories import ADMIN
from tests.test_api import ApiClient, token_for  # noqa: F401  (fixture)

VALID_USCC = "91110108551385082Q"  # a published example (tests/fixtures/finance/uscc_examples.json), check character valid
PDF_FIELDS = {"number", "issued_on", "kind", "seller", "buyer", "lines", "total_amount", "total_tax", "total_gross",
              "total_in_words", "remarks", "issuer", "qr_payload", "red", "original_number"}
LINE_FIELDS = {"name", "spec", "unit", "quantity", "unit_price", "amount", "rate", "tax"}


@pytest.fixture
def sim():
    with InvoicingSimulator(issue_after_polls=1) as simulator:
        yield simulator


@pytest.fixture
def provider(sim):
    return NuonuoProvider(sim.base_url, sim.app_key, sim.app_secret, VALID_USCC, timeout=0.5)


def taxed(code="SKU-1", rate=13, short="茶叶", unit="袋", tax_code="1010115010100000000"):
    sku = db.session.scalars(select(Sku).where(Sku.code == code)).one()
    sku.tax_code, sku.tax_short_name, sku.tax_rate, sku.tax_unit = tax_code, short, rate, unit
    db.session.commit()
    return sku


def profile_for(order, kind="enterprise", tax_id=VALID_USCC, name="杭州示例科技有限公司"):
    profile = InvoiceProfile(customer_id=order.customer_id, kind=kind, name=name, tax_id=tax_id,
                             address="杭州市西湖区文三路 90 号", phone="0571-88888888", is_default=True)
    db.session.add(profile)
    db.session.commit()
    return profile


def counts():
    return (db.session.scalar(select(func.count()).select_from(InvoiceRequest)),
            db.session.scalar(select(func.count()).select_from(InvoicePart)))


def test_an_order_with_a_sku_without_tax_data_is_refused_with_the_list(create_order):
    order = create_order()
    profile = profile_for(order)
    with pytest.raises(invoices.MissingTaxData) as refused:
        invoices.request_invoice([order.order_no], profile.id, "normal", ADMIN)
    assert refused.value.code == "missing_tax_code" and refused.value.status == 422
    assert refused.value.missing == [{"sku": "SKU-1", "name": "龙井茶 250g",
                                      "missing": ["tax_code", "tax_short_name", "tax_rate", "tax_unit"]}]
    assert refused.value.as_json()["error"]["skus"][0]["sku"] == "SKU-1"
    assert counts() == (0, 0)


def test_a_request_is_issued_through_the_provider_with_a_20_digit_number(create_order, provider, sim):
    taxed()
    order = create_order()  # 59.90 + shipping 8.00
    profile = profile_for(order)
    request = invoices.request_invoice([order.order_no], profile.id, "normal", ADMIN)
    db.session.commit()
    assert request.status == "requested" and request.total_gross == D("67.90")
    (part,) = request.parts
    assert [(ln.kind, ln.name, ln.gross, ln.amount, ln.tax) for ln in part.lines] == [
        ("goods", "*茶叶*龙井茶 250g", D("59.90"), D("53.01"), D("6.89")),
        ("shipping", "*运输服务*运费", D("8.00"), D("7.34"), D("0.66"))]
    assert part.total_in_words == "陆拾柒圆玖角"
    assert invoices.submit(request, provider)["submitted"] == 1
    db.session.commit()
    assert request.status == "submitted" and part.provider_serial.startswith("SIM")
    sent = sim.invoices[part.serial]["order"]
    assert sent["buyerTaxNum"] == VALID_USCC and sent["invoiceLine"] == "pc"
    assert [d["goodsCode"] for d in sent["invoiceDetail"]] == ["1010115010100000000", "3010102020100000000"]
    invoices.poll(request, provider)
    db.session.commit()
    assert request.status == "issued" and part.status == "issued"
    assert len(part.number) == 20 and part.number.isdigit()
    assert part.pdf_url.endswith(".pdf") and part.ofd_url.endswith(".ofd") and part.xml_url.endswith(".xml")
    assert part.provider_pdf.startswith(b"%PDF")
    body = invoices.request_json(request)
    assert body["numbers"] == [part.number] and body["parts"][0]["total_gross"] == "67.90"
    actions = db.session.scalars(select(AuditEvent.action).where(AuditEvent.entity_type == "invoice_request")).all()
    assert actions == ["invoice.requested", "invoice.issued"]


def test_an_individual_may_not_ask_for_a_special_invoice(create_order):
    taxed()
    order = create_order()
    profile = profile_for(order, kind="individual", tax_id=None, name="张伟")
    with pytest.raises(ValidationFailed) as refused:
        invoices.request_invoice([order.order_no], profile.id, "special", ADMIN)
    assert refused.value.code == "special_not_allowed" and refused.value.field == "kind"
    assert counts() == (0, 0)
    assert invoices.request_invoice([order.order_no], profile.id, "normal", ADMIN).kind == "normal"


def test_over_the_limit_is_split_and_the_parts_sum_exactly(create_order, provider):
    taxed()
    order = create_order(lines=[{"sku": "SKU-1", "quantity": 7, "unit_price": "3333.33"}], shipping_fee="15.00",
                         discount="100.01")
    profile = profile_for(order)
    request = invoices.request_invoice([order.order_no], profile.id, "special", ADMIN)
    db.session.commit()
    assert len(request.parts) == 3
    assert all(part.total_gross <= D("10000.00") for part in request.parts)
    assert sum(part.total_gross for part in request.parts) == D(order.total) == request.total_gross
    invoices.submit(request, provider)
    invoices.poll(request, provider)
    db.session.commit()
    assert request.status == "issued" and len({part.number for part in request.parts}) == 3


def test_a_bad_buyer_tax_id_fails_with_the_providers_reason_and_can_be_resubmitted(create_order, provider):
    taxed()
    order = create_order()
    wrong = profile_for(order, tax_id="91310000")
    request = invoices.request_invoice([order.order_no], wrong.id, "normal", ADMIN)
    db.session.commit()
    invoices.submit(request, provider)
    db.session.commit()
    assert request.status == "failed" and request.failure_reason == "购方税号有误"
    assert request.parts[0].failure_reason == "购方税号有误"
    right = profile_for(order)
    invoices.resubmit(request, ADMIN, right.id)
    db.session.commit()
    assert request.status == "requested" and request.buyer_tax_id == VALID_USCC
    assert request.parts[0].serial.endswith("-1r1")
    invoices.submit(request, provider)
    invoices.poll(request, provider)
    db.session.commit()
    assert request.status == "issued"
    with pytest.raises(Conflict):  # only a failed request is resubmitted
        invoices.resubmit(request, ADMIN)


def test_a_provider_timeout_is_resolved_by_the_same_serial_never_issued_twice(create_order, provider, sim):
    taxed()
    order = create_order()
    request = invoices.request_invoice([order.order_no], profile_for(order).id, "normal", ADMIN)
    db.session.commit()
    sim.time_out("nuonuo.OpeMplatform.requestBillingNew", seconds=1.5)
    tally = invoices.submit(request, provider)
    db.session.commit()
    assert tally["timeouts"] == 1 and request.status == "requested" and request.parts[0].status == "pending"
    assert len(sim.invoices) == 1  # the provider did take it
    invoices.submit(request, provider)  # same serial: 订单编号重复 → resolved by querying
    db.session.commit()
    assert request.parts[0].status in ("issuing", "issued") and request.status in ("issuing", "issued")
    invoices.poll(request, provider)
    db.session.commit()
    assert request.status == "issued"
    assert len(sim.invoices) == 1 and sim.credit_used == D(request.total_amount)


def test_a_double_answer_is_kept_but_not_applied(create_order, provider, sim):
    taxed()
    order = create_order()
    request = invoices.request_invoice([order.order_no], profile_for(order).id, "normal", ADMIN)
    db.session.commit()
    invoices.submit(request, provider)
    part = request.parts[0]
    first_serial = part.provider_serial
    sim.answer_twice_next = 1  # the provider accepts the same serial again, under another serial of its own
    again = provider.submit(part.serial, sim.invoices[part.serial]["order"])
    assert again.status == "accepted" and again.provider_serial != first_serial
    assert invoices.apply_result(part, again) is False and part.provider_serial == first_serial
    invoices.poll(request, provider)
    number = part.number
    late = ProviderResult(serial=part.serial, status="issued", number="9" * 20)
    assert invoices.apply_result(part, late) is False
    invoices.poll(request, provider)  # asked again after issued: nothing changes
    db.session.commit()
    assert part.number == number and request.status == "issued"
    assert [answer["status"] for answer in part.provider_answers] == ["accepted", "accepted", "issued", "issued"]


def test_a_request_over_the_credit_line_is_held_with_the_reason(create_order):
    taxed()
    order = create_order()
    request = invoices.request_invoice([order.order_no], profile_for(order).id, "normal", ADMIN)
    db.session.commit()
    with InvoicingSimulator(credit_total=D("50.00")) as small:
        provider = NuonuoProvider(small.base_url, small.app_key, small.app_secret, VALID_USCC, timeout=0.5)
        assert provider.credit_line().remaining == D("50.00")
        assert invoices.submit(request, provider)["held"] is True
        assert request.status == "requested" and "超授信额度" in request.held_reason
        assert "remaining 50.00" in request.held_reason
        assert not any(method.endswith("requestBillingNew") for method, _ in small.requests)


def test_the_simulator_refuses_over_credit_itself():
    with InvoicingSimulator(credit_total=D("10.00")) as small:
        provider = NuonuoProvider(small.base_url, small.app_key, small.app_secret, VALID_USCC, timeout=0.5)
        order = {"orderNo": "X1", "buyerTaxNum": VALID_USCC, "invoiceLine": "pc",
                 "invoiceDetail": [{"taxExcludedAmount": "10.01"}]}
        result = provider.submit("X1", order)
        assert result.status == "failed" and result.reason.startswith("超授信额度")
        wrong_secret = NuonuoProvider(small.base_url, small.app_key, "nope", VALID_USCC, timeout=0.5)
        assert wrong_secret.submit("X2", order).reason == "签名错误"


def test_already_invoiced_and_unknown_are_refused(create_order):
    taxed()
    order = create_order()
    profile = profile_for(order)
    invoices.request_invoice([order.order_no], profile.id, "normal", ADMIN)
    db.session.commit()
    with pytest.raises(Conflict) as refused:
        invoices.request_invoice([order.order_no], profile.id, "normal", ADMIN)
    assert refused.value.code == "already_invoiced"
    with pytest.raises(NotFound):
        invoices.request_invoice([create_order().order_no], 999999, "normal", ADMIN)
    with pytest.raises(NotFound):
        invoices.get_request(999999)


def test_to_pdf_invoice_has_exactly_the_agreed_fields(create_order, provider):
    from dataclasses import asdict

    from shared.finance.invoice_pdf import PdfInvoice

    taxed()
    order = create_order(discount="5.90")
    request = invoices.request_invoice([order.order_no], profile_for(order).id, "special", ADMIN)
    db.session.commit()
    preview = invoices.to_pdf_invoice(request.parts[0])
    assert isinstance(preview, PdfInvoice)
    fields = asdict(preview)
    assert set(fields) == PDF_FIELDS and preview.number is None and preview.kind == "special"
    assert all(set(line) == LINE_FIELDS for line in fields["lines"])
    assert [line.rate for line in preview.lines] == ["13%", "13%", "9%"]
    assert preview.lines[1].amount < 0 and preview.lines[1].quantity is None
    assert preview.total_gross == D("62.00") and preview.total_in_words == "陆拾贰圆整"
    assert set(fields["buyer"]) == {"name", "tax_id", "address_phone", "bank_account"}
    invoices.submit(request, provider)
    invoices.poll(request, provider)
    assert invoices.to_pdf_invoice(request.parts[0]).number == request.parts[0].number


def test_an_issued_invoice_gets_our_pdf_from_the_documents_job_and_the_api_serves_the_providers_first(
        api, create_order, provider):
    import io

    from pypdf import PdfReader

    taxed()
    order = create_order()
    request = invoices.request_invoice([order.order_no], profile_for(order).id, "normal", ADMIN)
    db.session.commit()
    client = api("finance")
    not_yet = client.get(f"/invoices/{request.id}/pdf")
    assert not_yet.status_code == 409 and not_yet.json["error"]["code"] == "not_issued"
    invoices.submit(request, provider)
    db.session.commit()
    invoices.poll(request, provider)
    db.session.commit()  # with Redis the render job is sent after this commit; inline, the sweeper sends it
    part = request.parts[0]
    assert invoices.unrendered_part_ids() == [part.id]
    from jobs.invoices import sweep_invoice_requests
    assert sweep_invoice_requests()["pdfs"] == 1
    db.session.refresh(part)
    assert invoices.unrendered_part_ids() == []
    ours = PdfReader(io.BytesIO(part.rendered_pdf))
    text = "".join(page.extract_text() for page in ours.pages)
    assert part.number in text and "陆拾柒圆玖角" in text and "杭州示例科技有限公司" in text
    served = client.get(f"/invoices/{request.id}/pdf")
    assert served.status_code == 200 and served.data == bytes(part.provider_pdf)  # the provider's, when it sent one
    part.provider_pdf = None
    db.session.commit()
    assert client.get(f"/invoices/{request.id}/pdf").data == bytes(part.rendered_pdf)
    assert client.get(f"/invoices/{request.id}/pdf?part=2").json["error"]["code"] == "unknown_part"
    assert client.get(f"/invoices/{request.id}/pdf?part=x").status_code == 422
    assert api("warehouse").get(f"/invoices/{request.id}/pdf").status_code == 403


def test_discount_lines_reach_the_provider_marked(create_order, sim):
    taxed()
    order = create_order(discount="5.90")
    request = invoices.request_invoice([order.order_no], profile_for(order).id, "normal", ADMIN)
    payload = order_payload(request.parts[0].serial, invoices._math_part(request.parts[0]), "normal",
                            invoices._buyer(request), VALID_USCC, "开票员", "2026-12-03 10:00:00")
    assert [d["invoiceLineProperty"] for d in payload["invoiceDetail"]] == ["2", "1", "0"]
    assert payload["invoiceDetail"][1]["taxIncludedAmount"] == "-5.90"


def test_several_orders_of_one_buyer_on_one_request_and_never_two_buyers(create_order, provider):
    taxed()
    first = create_order(discount="0.10")
    second = create_order(discount="1.00", lines=[{"sku": "SKU-1", "quantity": 2, "unit_price": "10.00"}])
    other = create_order(phone="13900000000")
    assert other.customer_id != first.customer_id and second.customer_id == first.customer_id
    profile = profile_for(first)
    with pytest.raises(ValidationFailed) as refused:
        invoices.request_invoice([first.order_no, other.order_no], profile.id, "normal", ADMIN)
    assert refused.value.code == "several_buyers"
    request = invoices.request_invoice([first.order_no, second.order_no], profile.id, "normal", ADMIN)
    db.session.commit()
    assert request.total_gross == D(first.total) + D(second.total)
    discounts = [ln.gross for ln in request.parts[0].lines if ln.kind == "discount"]
    assert discounts == [D("-0.10"), D("-1.00")]  # each order's discount on its own line
    assert [ln.kind for ln in request.parts[0].lines][-1] == "shipping"
    assert invoices.request_json(request)["orders"] == [first.order_no, second.order_no]


def test_the_simulator_issues_after_a_delay(create_order):
    taxed()
    order = create_order()
    request = invoices.request_invoice([order.order_no], profile_for(order).id, "normal", ADMIN)
    with InvoicingSimulator(issue_after_seconds=3600) as slow:
        provider = NuonuoProvider(slow.base_url, slow.app_key, slow.app_secret, VALID_USCC, timeout=0.5)
        invoices.submit(request, provider)
        invoices.poll(request, provider)
        assert request.status == "issuing" and request.parts[0].status == "issuing"
        slow.invoices[request.parts[0].serial]["accepted_at"] -= 3600  # the hour has passed
        invoices.poll(request, provider)
        assert request.status == "issued"


def test_a_signed_callback_is_applied_once_and_a_bad_signature_changes_nothing(create_order, provider, portal):
    import json

    from shared.finance.providers.nuonuo import sign

    taxed()
    order = create_order()
    request = invoices.request_invoice([order.order_no], profile_for(order).id, "normal", ADMIN)
    invoices.submit(request, provider)
    part = request.parts[0]
    row = {"orderNo": part.serial, "serialNo": part.provider_serial, "status": "2",
           "allElectronicInvoiceNumber": "26312000000000099999", "pdfUrl": "https://example.invalid/a.pdf"}
    body = json.dumps(row).encode()
    secret = portal.config["INVOICE_PROVIDER_APP_SECRET"]
    with pytest.raises(ValidationFailed) as refused:
        invoices.apply_callback(body, sign("wrong", body))
    assert refused.value.code == "bad_signature" and part.status == "submitted"
    assert invoices.apply_callback(body, sign(secret, body)) is True
    assert part.number == "26312000000000099999" and request.status == "issued"
    again = json.dumps({**row, "allElectronicInvoiceNumber": "26312000000000011111"}).encode()
    assert invoices.apply_callback(again, sign(secret, again)) is False  # a second push: kept, not applied
    assert part.number == "26312000000000099999"
    unknown = json.dumps({**row, "orderNo": "NOPE"}).encode()
    with pytest.raises(NotFound):
        invoices.apply_callback(unknown, sign(secret, unknown))


# -- the API


@pytest.fixture
def api(portal, token_for):  # noqa: F811
    def make(role="admin"):
        return ApiClient(portal.test_client(), token_for(role))
    return make


def test_api_request_and_read_an_invoice(api, create_order):
    taxed()
    order = create_order()
    profile = profile_for(order)
    client = api("finance")
    response = client.post(f"/orders/{order.order_no}/invoices", {"profile_id": profile.id, "kind": "normal"})
    assert response.status_code == 202, response.json
    body = response.json
    assert body["status"] == "requested" and body["total_gross"] == "67.90"
    shown = client.get(f"/invoices/{body['invoice_request_id']}")
    assert shown.status_code == 200 and shown.json["parts"][0]["total_in_words"] == "陆拾柒圆玖角"
    assert api("auditor").get(f"/invoices/{body['invoice_request_id']}").status_code == 200
    assert client.get("/invoices/999999").json["error"]["code"] == "unknown_invoice"


def test_api_over_the_limit_is_split_and_the_parts_sum_exactly(api, create_order):
    taxed()
    order = create_order(lines=[{"sku": "SKU-1", "quantity": 4, "unit_price": "6000.00"}], discount="0.03")
    response = api("finance").post(f"/orders/{order.order_no}/invoices",
                                   {"profile_id": profile_for(order).id, "kind": "special"})
    assert response.status_code == 202
    parts = response.json["parts"]
    assert len(parts) == 4 and all(D(p["total_gross"]) <= D("10000.00") for p in parts)  # one 6,000.00 unit each
    assert sum(D(p["total_gross"]) for p in parts) == D(order.total) == D(response.json["total_gross"])


def test_api_refusals(api, create_order):
    order = create_order()
    profile = profile_for(order, kind="individual", tax_id=None, name="张伟")
    client = api("admin")
    path = f"/orders/{order.order_no}/invoices"
    missing = client.post(path, {"profile_id": profile.id, "kind": "normal"})
    assert missing.status_code == 422 and missing.json["error"]["code"] == "missing_tax_code"
    assert [item["sku"] for item in missing.json["error"]["skus"]] == ["SKU-1"]
    taxed()
    special = client.post(path, {"profile_id": profile.id, "kind": "special"})
    assert special.status_code == 422 and special.json["error"]["code"] == "special_not_allowed"
    assert client.post(path, {"kind": "normal"}).json["error"]["field"] == "profile_id"
    assert client.post(path, {"profile_id": profile.id, "kind": "gold"}).json["error"]["code"] == "invalid_kind"
    # the refusals are message codes: a Chinese reader gets them in Chinese, an English one in English
    zh = client.post(path, {"profile_id": profile.id, "kind": "special"}, headers={"Accept-Language": "zh-CN"})
    assert zh.json["error"]["message"].startswith("专用发票（专票）须为"), zh.json
    en = client.post(path, {"profile_id": profile.id, "kind": "special"}, headers={"Accept-Language": "en"})
    assert en.json["error"]["message"].startswith("A special invoice (专票) needs"), en.json
    assert api("auditor").post(path, {"profile_id": profile.id, "kind": "normal"}).status_code == 403
    assert counts() == (0, 0)


# -- the provider's shapes (tests/fixtures/invoicing/, sources in its README)

FIXTURES = __import__("pathlib").Path(__file__).parent / "fixtures" / "invoicing"


def _fixture(name):
    import json

    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def test_our_request_speaks_the_fixtures_fields(create_order):
    taxed()
    order = create_order(discount="5.90", shipping_fee="0.00")
    request = invoices.request_invoice([order.order_no], profile_for(order).id, "normal", ADMIN)
    ours = order_payload(request.parts[0].serial, invoices._math_part(request.parts[0]), "normal",
                         invoices._buyer(request), VALID_USCC, "开票员", "2026-12-03 10:00:00")
    theirs = _fixture("request_billing.json")["content"]["order"]
    assert set(ours) == set(theirs)
    assert [set(d) for d in ours["invoiceDetail"]] == [set(d) for d in theirs["invoiceDetail"]]
    assert [{k: d[k] for k in ("taxExcludedAmount", "tax", "taxIncludedAmount", "invoiceLineProperty")}
            for d in ours["invoiceDetail"]] == [
        {k: d[k] for k in ("taxExcludedAmount", "tax", "taxIncludedAmount", "invoiceLineProperty")}
        for d in theirs["invoiceDetail"]]


def test_the_fixtures_answers_read_as_our_results():
    answers = _fixture("query_result.json")["answers"]
    issuing, issued, failed = (NuonuoProvider.read_result(answers[k]["result"][0])
                               for k in ("issuing", "issued", "failed"))
    assert issuing.status == "issuing" and issuing.number is None
    assert issued.status == "issued" and issued.number == "26312000000000012345"
    assert issued.ofd_url.endswith(".ofd") and issued.xml_url.endswith(".xml")
    assert failed.status == "failed" and failed.reason == "购方税号有误"


def test_simulate_invoicing_is_a_command():
    from click.testing import CliRunner

    from cli import main

    result = CliRunner().invoke(main, ["simulate-invoicing", "--help"])
    assert result.exit_code == 0 and "--credit" in result.output


def test_api_shows_the_credit_line_or_says_the_provider_is_down(api, portal, sim, monkeypatch):
    client = api("auditor")
    monkeypatch.setitem(portal.config, "INVOICE_PROVIDER_URL", sim.base_url)
    sim.credit_used = D("250.50")
    shown = client.get("/invoices/credit-line")
    assert shown.status_code == 200
    assert shown.json == {"available": True, "reason": None, "total": "1000000.00", "used": "250.50",
                          "remaining": "999749.50"}
    with InvoicingSimulator() as gone:
        closed = gone.base_url
    monkeypatch.setitem(portal.config, "INVOICE_PROVIDER_URL", closed)
    down = client.get("/invoices/credit-line", headers={"Accept-Language": "en"})
    assert down.status_code == 200 and down.json["available"] is False and down.json["remaining"] is None
    assert "did not answer" in down.json["reason"]
    assert client.get("/invoices/credit-line").json["reason"].startswith("开票服务商未响应")  # zh is the default
