"""Finance's invoice ledger: the governed export kind `invoice_ledger` (CSV and XLSX) of the invoice queue with its
filters, one row per invoice part with its reds and failure reason, the buyer masked as the requester's role sees
it; the export rules of every kind (permission, watermark, clearance held by an approval rule, retention); the
button on /finance/invoices carrying the queue's filters."""
import io
from decimal import Decimal

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from shared import exports as files
from shared.extensions import db
from shared.models import ExportRequest
from shared.models.invoices import RedLetter
from shared.services import exports
from shared.services.errors import Forbidden, ValidationFailed
from tests.portal_client import csrf_token
from tests.test_governed_exports import csv_lines, export_rule, made, person  # noqa: F401  (fixtures)
from tests.test_invoice_queue import fail, issue, requested
from tests.test_invoices import profile_for, taxed


@pytest.fixture
def ledger(create_order):
    """A company's issued invoice with an issued red reversal, an individual's issued one, a failed request."""
    taxed()
    company = issue(requested(create_order()), number="26332000000000000011")
    part = company.parts[0]
    db.session.add(RedLetter(part_id=part.id, serial="RED-1", reason="return", full=False, status="issued",
                             number="26332000000000000099", original_number=part.number,
                             total_gross=Decimal("-10.00"), total_amount=Decimal("-8.85"),
                             total_tax=Decimal("-1.15"), total_in_words="负壹拾元整", lines=[], requested_by="fin"))
    person_order = create_order()
    individual = issue(requested(person_order, profile=profile_for(
        person_order, kind="individual", tax_id="110101199003071234", name="张三丰")), number="26332000000000000012")
    failed = fail(requested(create_order()))
    db.session.commit()
    return company, individual, failed


def rows_by_request(content: bytes) -> tuple[list[str], dict]:
    lines = csv_lines(content)
    header = lines[1]
    return header, {int(row[0]): dict(zip(header, row)) for row in lines[2:]}


def test_the_ledger_has_a_row_per_part_with_reds_failure_and_the_buyer_masked(ledger, person):
    company, individual, failed = ledger
    finance = person("finance")
    export = made(exports.request_export("invoice_ledger", "csv", {}, finance))
    assert (export.status, export.row_count) == ("done", 3)
    content, filename, _type = exports.download(export, finance)
    assert filename == f"orderloom-invoice-ledger-{export.public_id}.csv" and files.trace(content) == export.public_id
    header, rows = rows_by_request(content)
    assert header[:5] == ["request_id", "request_serial", "order_numbers", "buyer_name", "buyer_tax_id"]
    blue = rows[company.id]
    assert blue["order_numbers"] == company.orders[0].order.order_no
    assert (blue["buyer_name"], blue["number"], blue["status"], blue["kind"]) == (
        company.buyer_name, "26332000000000000011", "issued", company.kind)  # a company's name is not personal
    assert (blue["red_numbers"], Decimal(blue["red_gross"])) == ("26332000000000000099", Decimal("-10.00"))
    assert Decimal(blue["gross"]) == company.parts[0].total_gross and blue["issued_on"]
    person_row = rows[individual.id]
    assert person_row["buyer_name"] != "张三丰" and "张三丰" not in content.decode("utf-8-sig")
    assert "110101199003071234" not in content.decode("utf-8-sig")
    assert rows[failed.id]["failure_reason"] == "购方税号有误" and rows[failed.id]["number"] == ""
    assert export.purge_after - export.finished_at == exports.keep_file()  # retention's period, as every export


def test_the_queue_filters_narrow_the_ledger_and_bad_ones_are_refused(ledger, person):
    company, _individual, failed = ledger
    finance = person("finance")
    only_failed = made(exports.request_export("invoice_ledger", "xlsx", {"status": "failed"}, finance))
    sheet = load_workbook(io.BytesIO(exports.download(only_failed, finance)[0]))["invoice ledger"]
    values = [row for row in sheet.iter_rows(min_row=3, values_only=True)]
    assert [row[0] for row in values] == [failed.id]
    order_no = company.orders[0].order.order_no
    by_order = made(exports.request_export("invoice_ledger", "csv", {"order_no": order_no.lower()}, finance))
    assert set(rows_by_request(exports.download(by_order, finance)[0])[1]) == {company.id}
    red = made(exports.request_export("invoice_ledger", "csv", {"status": "red"}, finance))
    assert set(rows_by_request(exports.download(red, finance)[0])[1]) == {company.id}
    before = db.session.execute(select(ExportRequest.id)).scalars().all()
    for filters in ({"status": "lost"}, {"order_no": "X" * 65}, {"channel": "OS"}):
        with pytest.raises(ValidationFailed):
            exports.request_export("invoice_ledger", "csv", filters, finance)
    with pytest.raises(ValidationFailed):
        exports.request_export("invoice_ledger", "zip", {}, finance)
    assert db.session.execute(select(ExportRequest.id)).scalars().all() == before


def test_a_role_without_invoices_view_may_not_export_the_ledger(ledger, person, client_for):
    with pytest.raises(Forbidden):
        exports.request_export("invoice_ledger", "csv", {}, person("warehouse"))
    warehouse = client_for("warehouse")
    started = warehouse.post("/exports/", data={"csrf_token": csrf_token(warehouse, "/"), "kind": "invoice_ledger",
                                                "format": "csv"})
    assert started.status_code == 403
    assert db.session.execute(select(ExportRequest)).first() is None


def test_a_personal_ledger_is_held_by_an_approval_rule_on_export_run(ledger, person, export_rule):
    admin = person("admin")
    export = exports.request_export("invoice_ledger", "csv", {}, admin, personal=True)
    exports.clear_or_hold(export, admin, ref="session:admin_x")
    db.session.commit()
    assert export.status == "awaiting_clearance" and export.approval_request is not None
    assert not exports.claim(export.id)


def test_the_queue_page_starts_the_ledger_with_its_filters(ledger, client_for):
    finance = client_for("finance")
    page = finance.get("/finance/invoices/?status=issued")
    assert 'data-testid="invoice-ledger-form"' in page.text
    assert '<input type="hidden" name="status" value="issued">' in page.text
    started = finance.post("/exports/", data={"csrf_token": csrf_token(finance, "/finance/invoices/"),
                                              "kind": "invoice_ledger", "format": "csv", "status": "issued"})
    assert started.status_code == 303, started.text[:600]
    export = db.session.execute(select(ExportRequest)).scalar_one()
    assert (export.kind, export.filters) == ("invoice_ledger", {"status": "issued"})


def test_a_cleared_personal_ledger_shows_an_individuals_name_in_full_and_logs_it(ledger, person):
    from shared.models import AccessLogEntry

    _company, individual, _failed = ledger
    admin = person("admin")
    export = exports.request_export("invoice_ledger", "csv", {}, admin, personal=True)
    exports.clear_export(export, admin, by="step_up", ref="session:admin_x")
    export = made(export)
    content = exports.download(export, admin)[0]
    assert rows_by_request(content)[1][individual.id]["buyer_name"] == "张三丰"
    logged = db.session.scalars(select(AccessLogEntry.fields).where(
        AccessLogEntry.entity_type == "export:invoice_ledger", AccessLogEntry.action == "export")).all()
    assert logged and "name" in logged[0]
