"""Finance's bulk download of issued invoices as one ZIP (issue 12 item 7): the governed export kind `invoices_zip`
(PDF per issued part named by number, a manifest CSV with the watermark line, the buyer masked by the requester's
role), its trace back to the export, counted downloads and the access log; refused for roles without invoices."""
import csv
import io
import zipfile

import pytest
from sqlalchemy import select

from shared import exports as files
from shared.extensions import db
from shared.models import AccessLogEntry
from shared.services import exports
from shared.services.errors import Forbidden, ValidationFailed
from tests.portal_client import EXPORT_LINK, csrf_token
from tests.test_governed_exports import made, person  # noqa: F401  (fixture)
from tests.test_invoice_queue import PROVIDER_PDF, fail, issue, requested
from tests.test_invoices import profile_for, taxed


def manifest(content: bytes) -> list[list[str]]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        text = archive.read("manifest.csv").decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text, newline="")))


@pytest.fixture
def issued_two(create_order):
    """Two issued requests (a company's with the provider's PDF, an individual's with only ours) and a failed one."""
    taxed()
    company = issue(requested(create_order()), number="26332000000000000001")
    person_order = create_order()
    individual = requested(person_order, profile=profile_for(person_order, kind="individual", tax_id=None,
                                                             name="张三丰"))
    issue(individual, number="26332000000000000002")
    for part in individual.parts:
        part.provider_pdf, part.rendered_pdf = None, b"%PDF-1.7 our own rendering"
    db.session.commit()
    failed = fail(requested(create_order()))
    return company, individual, failed


def test_the_zip_holds_each_issued_pdf_and_a_watermarked_manifest_that_traces_back(issued_two, person):
    company, individual, _failed = issued_two
    finance = person("finance")
    export = made(exports.request_export("invoices_zip", "zip", {}, finance))
    assert (export.status, export.row_count, export.progress_total) == ("done", 2, 2)
    content, filename, mimetype = exports.download(export, finance)
    assert filename == f"orderloom-invoices-zip-{export.public_id}.zip" and mimetype == "application/zip"

    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        assert sorted(archive.namelist()) == ["invoice-26332000000000000001.pdf",
                                              "invoice-26332000000000000002.pdf", "manifest.csv"]
        assert archive.read("invoice-26332000000000000001.pdf") == PROVIDER_PDF  # the provider's first
        assert archive.read("invoice-26332000000000000002.pdf") == b"%PDF-1.7 our own rendering"  # else ours
        assert export.public_id.encode() in archive.comment
    lines = manifest(content)
    assert lines[0][0].startswith(f"# orderloom export {export.public_id} by finance_x")
    assert lines[1][:3] == ["number", "issued_on", "buyer_name"]
    rows = {row[0]: row for row in lines[2:]}
    assert set(rows) == {"26332000000000000001", "26332000000000000002"}  # the failed one is not in it
    assert rows["26332000000000000001"][2] == "杭州示例科技有限公司"  # a company's name is not personal
    assert rows["26332000000000000002"][2] != "张三丰" and "张三丰" not in content.decode("latin-1")
    assert rows["26332000000000000001"][9] == "invoice-26332000000000000001.pdf"
    assert files.trace(content) == export.public_id and exports.trace_export(content) == export.public_id
    assert exports.identify(content)["exact_copy"] is True
    logged = db.session.scalars(select(AccessLogEntry).where(AccessLogEntry.entity_type == "export:invoices_zip",
                                                             AccessLogEntry.entity_id == export.public_id)).all()
    assert {entry.action for entry in logged} >= {"export", "download"}


def test_the_filters_narrow_by_order_number_and_issue_date_and_bad_ones_are_refused(issued_two, person):
    company, _individual, _failed = issued_two
    finance = person("finance")
    order_no = company.orders[0].order.order_no
    export = made(exports.request_export("invoices_zip", "zip", {"order_no": order_no.lower()}, finance))
    content, _name, _type = exports.download(export, finance)
    assert [row[0] for row in manifest(content)[2:]] == ["26332000000000000001"]
    empty = made(exports.request_export("invoices_zip", "zip", {"date_to": "2000-01-01"}, finance))
    assert empty.row_count == 0 and manifest(exports.download(empty, finance)[0])[2:] == []
    with pytest.raises(ValidationFailed) as refused:
        exports.request_export("invoices_zip", "zip", {"date_from": "2026-13-01"}, finance)
    assert refused.value.code == "invalid_filter"
    with pytest.raises(ValidationFailed) as refused:
        exports.request_export("invoices_zip", "csv", {}, finance)
    assert refused.value.code == "unknown_export_format"
    with pytest.raises(ValidationFailed):
        exports.request_export("invoices_zip", "zip", {"order_no": "X" * 65}, finance)


def test_a_role_without_invoices_view_may_not_ask_for_the_zip(issued_two, person, client_for):
    with pytest.raises(Forbidden):
        exports.request_export("invoices_zip", "zip", {}, person("warehouse"))
    warehouse = client_for("warehouse")
    started = warehouse.post("/exports/", data={"csrf_token": csrf_token(warehouse, "/"),
                                                "kind": "invoices_zip", "format": "zip"})
    assert started.status_code == 403
    assert warehouse.get("/finance/invoices/").status_code == 403


def test_finance_starts_the_zip_from_the_queue_and_downloads_it(issued_two, client_for):
    finance = client_for("finance")
    page = finance.get("/finance/invoices/?status=issued")
    assert 'data-testid="invoices-zip-form"' in page.text
    started = finance.post("/exports/", data={"csrf_token": csrf_token(finance, "/finance/invoices/"),
                                              "kind": "invoices_zip", "format": "zip", "date_from": "2000-01-01"})
    assert started.status_code == 303, started.text[:600]
    public_id = EXPORT_LINK.search(finance.get("/exports/").text).group(1)
    got = finance.get(f"/exports/{public_id}/download")
    assert got.status_code == 200 and got.mimetype == "application/zip"
    assert files.trace(got.data) == public_id
    assert len(zipfile.ZipFile(io.BytesIO(got.data)).namelist()) == 3


def test_the_job_reports_its_progress_as_it_adds_pdfs(issued_two, person, monkeypatch):
    from shared.services import invoice_zip

    monkeypatch.setattr(invoice_zip, "PROGRESS_EVERY", 1)
    seen = []
    monkeypatch.setattr(exports, "update", _spy_update(exports.update, seen))
    export = made(exports.request_export("invoices_zip", "zip", {}, person("finance")))
    assert export.progress_done == 2 and export.progress_total == 2
    assert [1, 2] == [value for value in seen if value in (1, 2)][:2]


def _spy_update(real, seen):
    """exports.update(...) wrapped so the progress values the job commits are recorded."""
    class Spy:
        def __init__(self, statement):
            self.statement = statement

        def where(self, *args):
            return Spy(self.statement.where(*args))

        def values(self, **values):
            if "progress_done" in values and isinstance(values["progress_done"], int):
                seen.append(values["progress_done"])
            return self.statement.values(**values)

    return lambda table: Spy(real(table))
