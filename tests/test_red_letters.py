"""Red-letter reversal (红字, issue 12 item 5) through the simulator: a 红字确认单 the provider confirms, then the red
invoice with its own number, linked to the blue one; partial reds exact to the cent; never more than remains; the
provider's refusal; a new blue invoice after a full reversal. Both backends."""
from decimal import Decimal as D

import pytest
from sqlalchemy import func, select

from shared.extensions import db
from shared.models import AuditEvent
from shared.models.invoices import RedLetter
from shared.services import invoices, red_letters
from shared.services.errors import Conflict, ValidationFailed
from tests.factories import ADMIN
from tests.test_api import token_for  # noqa: F401  (fixture)
from tests.test_invoices import VALID_USCC, api, profile_for, provider, sim, taxed  # noqa: F401  (fixtures)


def issued_request(create_order, provider):  # noqa: F811
    taxed()
    order = create_order()  # 59.90 at 13% + shipping 8.00 at 9% = 67.90
    request = invoices.request_invoice([order.order_no], profile_for(order).id, "normal", ADMIN)
    db.session.commit()
    invoices.submit(request, provider)
    invoices.poll(request, provider)
    db.session.commit()
    assert request.status == "issued"
    return order, request


def reds_count():
    return db.session.scalar(select(func.count()).select_from(RedLetter))


def test_a_full_red_is_confirmed_issued_and_linked_to_the_original(create_order, provider, sim):  # noqa: F811
    order, request = issued_request(create_order, provider)
    (part,) = request.parts
    red = red_letters.open_red(part.id, "return", None, ADMIN)
    db.session.commit()
    assert red.status == "requested" and red.full and red.original_number == part.number
    assert (red.total_gross, red.total_amount, red.total_tax) == (D("-67.90"), D("-60.35"), D("-7.55"))
    assert red.total_in_words == "负陆拾柒圆玖角"
    assert red_letters.advance(red, provider) == "issued"
    db.session.commit()
    assert len(red.number) == 20 and red.number.isdigit() and red.number != part.number
    assert red.confirmation_no.startswith("RED")
    bill = sim.reds[red.serial]["bill"]
    assert bill["blueInvoiceNumber"] == part.number and bill["reasonCode"] == "01" and bill["totalGross"] == "-67.90"
    # the red lines are the blue ones negated, each at its own rate
    assert [(row["gross"], row["amount"], row["tax"], row["rate"]) for row in red.lines] == [
        ("-59.90", "-53.01", "-6.89", 13), ("-8.00", "-7.34", "-0.66", 9)]
    assert red_letters.remaining(part) == D("0.00") and red_letters.fully_reversed(request)
    pdf = red_letters.to_pdf_invoice(red)
    assert pdf.red is True and pdf.original_number == part.number and pdf.number == red.number
    assert pdf.total_gross == D("-67.90") and [ln.amount for ln in pdf.lines] == [D("-53.01"), D("-7.34")]
    actions = db.session.scalars(select(AuditEvent.action).where(AuditEvent.entity_type == "red_letter")
                                 .order_by(AuditEvent.id)).all()
    assert actions == ["invoice.red_requested", "invoice.red_submitted", "invoice.red_confirmed",
                       "invoice.red_issued"]


def test_a_partial_red_reverses_each_line_in_proportion_to_the_cent(create_order, provider):  # noqa: F811
    order, request = issued_request(create_order, provider)
    (part,) = request.parts
    red = red_letters.open_red(part.id, "allowance", "10.00", ADMIN)
    db.session.commit()
    assert not red.full
    # 10.00 over 59.90 / 8.00 by the largest remainder: 8.82 + 1.18; tax round half up at 13% and 9%
    assert [(row["gross"], row["amount"], row["tax"]) for row in red.lines] == [
        ("-8.82", "-7.81", "-1.01"), ("-1.18", "-1.08", "-0.10")]
    assert (red.total_gross, red.total_amount, red.total_tax) == (D("-10.00"), D("-8.89"), D("-1.11"))
    assert red_letters.advance(red, provider) == "issued"
    db.session.commit()
    assert red_letters.remaining(part) == D("57.90") and not red_letters.fully_reversed(request)
    # the rest, reversed in full: each line to its end, the blue invoice nets to zero exactly
    rest = red_letters.open_red(part.id, "return", None, ADMIN)
    db.session.commit()
    assert not rest.full and rest.total_gross == D("-57.90")
    assert red.total_amount + rest.total_amount == -part.total_amount
    assert red.total_tax + rest.total_tax == -part.total_tax
    red_letters.advance(rest, provider)
    db.session.commit()
    assert red_letters.fully_reversed(request)


def test_a_red_for_more_than_was_invoiced_is_422_and_changes_nothing(create_order, provider):  # noqa: F811
    order, request = issued_request(create_order, provider)
    (part,) = request.parts
    with pytest.raises(ValidationFailed) as refused:
        red_letters.open_red(part.id, "return", "67.91", ADMIN)
    assert refused.value.status == 422 and refused.value.code == "over_remaining"
    db.session.rollback()
    assert reds_count() == 0
    for bad in ("0", "-1.00", "1.234", "abc", "NaN"):
        with pytest.raises(ValidationFailed) as refused:
            red_letters.open_red(part.id, "return", bad, ADMIN)
        assert refused.value.code == "invalid_amount"
    with pytest.raises(ValidationFailed) as refused:
        red_letters.open_red(part.id, "whim", None, ADMIN)
    assert refused.value.code == "invalid_reason"
    db.session.rollback()
    assert reds_count() == 0


def test_two_partial_reds_summing_over_the_total_the_second_is_refused(create_order, provider):  # noqa: F811
    order, request = issued_request(create_order, provider)
    (part,) = request.parts
    red_letters.open_red(part.id, "allowance", "40.00", ADMIN)  # not yet confirmed: it reserves its amount
    db.session.commit()
    with pytest.raises(ValidationFailed) as refused:
        red_letters.open_red(part.id, "allowance", "30.00", ADMIN)
    assert refused.value.code == "over_remaining" and "27.90" in str(refused.value)
    db.session.rollback()
    assert reds_count() == 1


def test_the_simulator_refuses_a_red_over_the_remaining_itself(create_order, provider, sim):  # noqa: F811
    order, request = issued_request(create_order, provider)
    (part,) = request.parts
    red = red_letters.open_red(part.id, "return", "50.00", ADMIN)
    db.session.commit()
    bill = red_letters.bill_payload(red, {"INVOICE_SELLER_TAX_ID": VALID_USCC})
    first = provider.apply_red("OURS-1", {**bill, "billNo": "OURS-1"})
    assert first.status == "submitted"
    second = provider.apply_red("OURS-2", {**bill, "billNo": "OURS-2"})  # 50 + 50 > 67.90
    assert second.status == "refused" and "超过" in second.reason
    unknown = provider.apply_red("OURS-3", {**bill, "billNo": "OURS-3", "blueInvoiceNumber": "0" * 20})
    assert unknown.status == "refused" and "不存在" in unknown.reason


def test_a_red_the_provider_refuses_keeps_the_reason_and_frees_its_amount(create_order, provider, sim):  # noqa: F811
    order, request = issued_request(create_order, provider)
    (part,) = request.parts
    sim.refuse_red_next = "购方已拒绝确认"
    red = red_letters.open_red(part.id, "error", None, ADMIN)
    db.session.commit()
    assert red_letters.advance(red, provider) == "refused"
    db.session.commit()
    assert red.failure_reason == "购方已拒绝确认" and red.number is None
    assert red_letters.remaining(part) == D("67.90") and not red_letters.fully_reversed(request)
    with pytest.raises(Conflict):  # still invoiced: the refused red reversed nothing
        invoices.request_invoice([order.order_no], request.profile_id, "normal", ADMIN)
    assert red_letters.advance(red, provider) == "refused"  # a refused red stays refused


def test_a_timeout_leaves_the_red_for_the_sweeper_under_the_same_serial(create_order, provider, sim):  # noqa: F811
    order, request = issued_request(create_order, provider)
    (part,) = request.parts
    red = red_letters.open_red(part.id, "return", None, ADMIN)
    db.session.commit()
    sim.time_out("nuonuo.OpeMplatform.saveInvoiceRedConfirm", seconds=1.0)
    assert red_letters.advance(red, provider) == "requested"  # the provider got it; we do not know
    assert red_letters.advance(red, provider) == "issued"  # the repeat is answered by querying
    assert len(sim.reds) == 1


def test_a_new_blue_invoice_follows_a_full_red_for_an_invoicing_error(create_order, provider):  # noqa: F811
    order, request = issued_request(create_order, provider)
    (part,) = request.parts
    with pytest.raises(Conflict) as refused:
        invoices.request_invoice([order.order_no], request.profile_id, "normal", ADMIN)
    assert refused.value.code == "already_invoiced"
    db.session.rollback()
    partial = red_letters.open_red(part.id, "error", "1.00", ADMIN)
    red_letters.advance(partial, provider)
    db.session.commit()
    with pytest.raises(Conflict):  # reversed in part: the blue invoice still stands
        invoices.request_invoice([order.order_no], request.profile_id, "normal", ADMIN)
    db.session.rollback()
    rest = red_letters.open_red(part.id, "error", None, ADMIN)
    red_letters.advance(rest, provider)
    db.session.commit()
    again = invoices.request_invoice([order.order_no], request.profile_id, "normal", ADMIN)
    db.session.commit()
    assert again.id != request.id and again.total_gross == D("67.90")
    invoices.submit(again, provider)
    invoices.poll(again, provider)
    db.session.commit()
    assert again.status == "issued" and again.parts[0].number != part.number


def test_only_an_issued_part_is_reversed(create_order):
    taxed()
    order = create_order()
    request = invoices.request_invoice([order.order_no], profile_for(order).id, "normal", ADMIN)
    db.session.commit()
    with pytest.raises(Conflict) as refused:
        red_letters.open_red(request.parts[0].id, "return", None, ADMIN)
    assert refused.value.code == "not_issued"


def test_the_sweeper_moves_a_red_along_and_renders_its_pdf(create_order, provider, sim, monkeypatch):  # noqa: F811
    from flask import current_app

    from jobs.invoices import sweep_invoice_requests

    order, request = issued_request(create_order, provider)
    red = red_letters.open_red(request.parts[0].id, "stopped", "20.00", ADMIN)
    db.session.commit()
    monkeypatch.setitem(current_app.config, "INVOICE_PROVIDER_URL", sim.base_url)
    tally = sweep_invoice_requests()
    assert tally["reds"] == 1
    db.session.expire_all()
    red = db.session.get(RedLetter, red.id)
    assert red.status == "issued" and red.rendered_pdf.startswith(b"%PDF")
    content, name = red_letters.red_pdf(red)
    assert content.startswith(b"%PDF") and name == f"invoice-{red.number}.pdf"


def test_finance_opens_a_red_from_the_request_page_and_an_over_limit_one_is_refused(
        client_for, create_order, provider):  # noqa: F811
    from tests.portal_client import csrf_token

    order, request = issued_request(create_order, provider)
    (part,) = request.parts
    client = client_for("finance")
    page = client.get(f"/finance/invoices/{request.id}")
    assert page.status_code == 200 and 'data-testid="red-form"' in page.text and "Red-letter reversal" in page.text
    token = csrf_token(client, f"/finance/invoices/{request.id}")
    over = client.post(f"/finance/invoices/{request.id}/reds",
                       data={"csrf_token": token, "part_id": part.id, "reason": "return", "scope": "partial",
                             "amount": "67.91"})
    assert over.status_code == 303
    assert "No red-letter reversal was opened" in client.get(over.headers["Location"]).text
    assert reds_count() == 0
    done = client.post(f"/finance/invoices/{request.id}/reds",
                       data={"csrf_token": token, "part_id": part.id, "reason": "allowance", "scope": "partial",
                             "amount": "10.00"})
    assert done.status_code == 303
    shown = client.get(done.headers["Location"]).text
    assert "Red-letter confirmation" in shown and 'data-testid="red-list"' in shown and "-10.00" in shown
    red = db.session.scalars(select(RedLetter)).one()
    assert red.total_gross == D("-10.00") and red.reason == "allowance"
    red_letters.advance(red, provider)
    red_letters.render_red_pdf(red.id)
    db.session.commit()
    shown = client.get(f"/finance/invoices/{request.id}").text
    assert red.number in shown and 'data-testid="download-red"' in shown
    pdf = client.get(f"/finance/invoices/{request.id}/reds/{red.id}/pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    assert client.get(f"/finance/invoices/{request.id + 1}/reds/{red.id}/pdf").status_code == 404


def test_an_auditor_sees_the_reds_but_may_not_open_one(client_for, create_order, provider):  # noqa: F811
    from tests.portal_client import csrf_token

    order, request = issued_request(create_order, provider)
    client = client_for("auditor")
    page = client.get(f"/finance/invoices/{request.id}")
    assert page.status_code == 200 and 'data-testid="red-form"' not in page.text
    token = csrf_token(client, f"/finance/invoices/{request.id}")
    refused = client.post(f"/finance/invoices/{request.id}/reds",
                          data={"csrf_token": token, "part_id": request.parts[0].id, "reason": "return",
                                "scope": "full"})
    assert refused.status_code == 403 and reds_count() == 0


def test_the_red_page_is_in_chinese_for_a_chinese_viewer(client_for, create_order, provider):  # noqa: F811
    order, request = issued_request(create_order, provider)
    page = client_for("finance", locale="zh_CN").get(f"/finance/invoices/{request.id}")
    assert "开具红字确认单" in page.text and "销售折让" in page.text


def test_api_opens_a_red_and_refuses_one_over_what_remains(api, create_order, provider):  # noqa: F811
    order, request = issued_request(create_order, provider)
    client = api("finance")
    over = client.post(f"/invoices/{request.id}/reds", {"part": 1, "reason": "return", "amount": "67.91"})
    assert over.status_code == 422 and over.json["error"]["code"] == "over_remaining"
    assert over.json["error"]["field"] == "amount" and reds_count() == 0
    assert client.post(f"/invoices/{request.id}/reds", {"part": 2, "reason": "return"}).status_code == 404
    assert client.post(f"/invoices/{request.id}/reds", {"part": 1, "reason": "x"}).json["error"]["code"] == \
        "invalid_reason"
    assert api("auditor").post(f"/invoices/{request.id}/reds", {"part": 1, "reason": "return"}).status_code == 403
    made = client.post(f"/invoices/{request.id}/reds", {"part": 1, "reason": "allowance", "amount": "10.00"})
    assert made.status_code == 202 and made.json["total_gross"] == "-10.00" and made.json["status"] == "requested"
    again = client.post(f"/invoices/{request.id}/reds", {"part": 1, "reason": "return", "amount": "57.91"})
    assert again.status_code == 422 and again.json["error"]["code"] == "over_remaining"
    shown = client.get(f"/invoices/{request.id}").json
    assert [red["id"] for red in shown["parts"][0]["reds"]] == [made.json["id"]]


def test_the_queue_filters_requests_with_a_red(client_for, create_order, provider):  # noqa: F811
    from shared.services import invoice_queue

    order, request = issued_request(create_order, provider)
    second = create_order()
    other = invoices.request_invoice([second.order_no], profile_for(second).id, "normal", ADMIN)
    db.session.commit()
    assert [r.id for r in invoice_queue.queue("red").rows] == []
    red_letters.open_red(request.parts[0].id, "return", None, ADMIN)
    db.session.commit()
    assert [r.id for r in invoice_queue.queue("red").rows] == [request.id]
    page = client_for("finance").get("/finance/invoices/?status=red")
    assert page.status_code == 200 and "With a red-letter reversal" in page.text
    assert f'/finance/invoices/{other.id}"' not in page.text


def test_a_red_waits_submitted_until_confirmed_and_a_refused_issue_keeps_the_reason(
        create_order, provider, sim):  # noqa: F811
    order, request = issued_request(create_order, provider)
    (part,) = request.parts
    sim.confirm_after_polls = 3
    red = red_letters.open_red(part.id, "return", "5.00", ADMIN)
    db.session.commit()
    assert red_letters.advance(red, provider) == "submitted"  # the buyer's side has not confirmed yet
    assert red_letters.advance(red, provider) == "submitted"
    assert red_letters.advance(red, provider) == "issued"
    db.session.commit()
    # a 确认单 the provider will not issue (here: not confirmed on its side) is refused with its words
    other = red_letters.open_red(part.id, "return", "5.00", ADMIN)
    db.session.commit()
    sim.confirm_after_polls = 99
    red_letters.advance(other, provider)
    other.status = "confirmed"  # as if our side had seen a confirmation the provider then withdrew
    assert red_letters.advance(other, provider) == "refused"
    assert "未确认" in other.failure_reason and other.number is None
    assert red_letters.remaining(part) == D("62.90")
