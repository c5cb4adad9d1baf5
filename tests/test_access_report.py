"""The access report for auditors (issue 11 item 7): each section from seeded activity, the XLSX and PDF files
through the governed exports, the portal page, 403s audited as access.forbidden, and a bad range refused."""
import io
import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader
from sqlalchemy import func, insert, select

from jobs.exports import run_export
from shared import exports as files
from shared.actors import Actor
from shared.extensions import db
from shared.models import AccessLogEntry, AuditEvent, ExportRequest
from shared.services import access_report, audit, exports, sealing, staff
from shared.services.errors import ValidationFailed
from tests.factories import ADMIN, PASSWORD, count_queries
from tests.portal_client import EXPORT_LINK, start_export

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOVEMBER = ("2026-11-01", "2026-11-30")


def at(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    """A moment given in merchant time (Asia/Shanghai), as UTC."""
    return datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


@pytest.fixture
def clock(monkeypatch):
    """Set the time every writer reads (audit rows, access-log rows, exports): clock(moment)."""
    import shared.timekeeping

    def set_to(moment: datetime) -> None:
        monkeypatch.setattr(shared.timekeeping, "utc_now", lambda: moment)
        monkeypatch.setattr(audit, "utc_now", lambda: moment)
    return set_to


@pytest.fixture
def checkpoint_file(apps, tmp_path, monkeypatch):
    path = tmp_path / "checkpoints.jsonl"
    for app in (apps.core, apps.portal):
        monkeypatch.setitem(app.config, "AUDIT_CHECKPOINT_PATH", str(path))
    return path


def made(export: ExportRequest) -> ExportRequest:
    db.session.commit()
    run_export(export.id)
    db.session.expire_all()
    return db.session.get(ExportRequest, export.id)


@pytest.fixture
def november(session, clock, create_user, create_order, checkpoint_file):
    """A month of activity: reveals, a personal export at 02:00, an export of 6,000 rows, refusals, sign-ins from
    known and new addresses, and the daily checkpoints."""
    alice = Actor.for_staff(create_user("alice", "ops_manager"), ip="10.0.0.1")
    bob = Actor.for_staff(create_user("bob", "customer_service"), ip="10.0.0.2")
    auditor = Actor.for_staff(create_user("audrey", "auditor", locale="en"), ip="10.0.0.3")
    create_order(channel_order_id="A-1")
    create_order(channel_order_id="A-2")
    db.session.commit()

    # 6,000 access-log rows on 15 October (outside the range; they show no personal field), written as the app does.
    october = at(15, 12, month=10)
    rows = [sealing.stamp(sealing.LOGS["access"], {
        "occurred_at": october, "actor_id": None, "actor_label": "importer", "ip": None, "action": "view",
        "entity_type": "order", "entity_id": f"SO-{n}", "fields": "", "channel": "api"}) for n in range(6000)]
    db.session.execute(insert(AccessLogEntry), rows)
    # Alice signed in from 10.0.0.1 in October: that address is known to her account.
    clock(at(20, 9, month=10))
    staff.authenticate("alice", PASSWORD, "10.0.0.1")
    db.session.commit()

    clock(at(3, 10))  # reveals: alice three, bob one, and one of bob's refused by the platform (not seen)
    for n in range(3):
        audit.log_access(alice, "reveal", "order", f"SO-A{n}", ["address", "name", "phone"], channel="portal")
    audit.log_access(bob, "reveal", "order", "SO-B1", ["phone"], channel="portal")
    audit.log_access(bob, "reveal:decrypt_refused", "order", "SO-B2", ["phone"], channel="portal")
    db.session.commit()

    clock(at(4, 2))  # 02:00 merchant time: alice exports two orders with personal columns
    night = exports.request_export("orders", "xlsx", {}, alice, personal=True)
    exports.clear_export(night, alice, by="approval", ref="APR-1")
    night = made(night)
    exports.download(night, alice)  # the same rows again: not counted twice
    db.session.commit()

    clock(at(5, 15))  # the auditor exports October's access log: 6,000 rows, no personal column
    large = made(exports.request_export("access_log", "csv", {"date_from": "2026-10-15", "date_to": "2026-10-15"},
                                        auditor))

    clock(at(6, 11))  # refusals of bob: a step-up refused, a self-approval refused (403s come from the portal)
    audit.record(bob, "step_up.refused", "staff_user", "bob", after={"path": "/exports/personal", "reason": "x"})
    audit.record(bob, "approval.refused", "approval", 7, after={"reason": "self_approval", "role": bob.role})
    audit.record(alice, "access.forbidden", "permission", "users:edit",
                 after={"path": "/users/", "method": "POST", "resource": "users", "action": "edit"})
    db.session.commit()

    clock(at(7, 9))  # sign-ins: alice from her known address, then from a new one; bob for the first time
    staff.authenticate("alice", PASSWORD, "10.0.0.1")
    clock(at(7, 23))
    staff.authenticate("alice", PASSWORD, "10.9.9.9")
    clock(at(8, 9))
    staff.authenticate("bob", PASSWORD, "10.0.0.2")
    clock(at(9, 9))
    staff.authenticate("alice", PASSWORD, "10.9.9.9")  # no longer new
    db.session.commit()

    clock(at(10, 1))  # the daily checkpoint (in range) and one in December (out of range)
    sealing.seal_all(commit=db.session.flush)
    sealing.write_checkpoints(now=at(10, 1))
    sealing.write_checkpoints(now=at(2, 1, month=12))
    db.session.commit()
    clock(at(12, 10))  # the auditor asks for the report in working hours
    return {"night": night, "large": large, "alice": alice, "bob": bob, "auditor": auditor}


def test_each_section_of_the_report(november):
    report = access_report.build(*NOVEMBER)

    # (a) alice: 3 reveals + 2 rows of her personal export; bob: 1 reveal (the refused one and downloads count 0);
    # the auditor's 6,000-row export has no personal column and counts nothing.
    assert report.top_accounts == [
        {"account": "alice", "records": 5, "reveals": 3, "exports": 1, "export_rows": 2},
        {"account": "bob", "records": 1, "reveals": 1, "exports": 0, "export_rows": 0}]
    # (b) the export asked for at 02:00 merchant time (18:00 UTC the day before), and only that one
    assert [(e["export_id"], e["asked_at"], e["rows"], e["personal"]) for e in report.night_exports] == [
        (november["night"].public_id, "2026-11-04 02:00:00", 2, True)]
    # (c) the export of 6,000 rows (threshold 5,000)
    assert report.large_records == 5000
    assert [(e["export_id"], e["account"], e["rows"]) for e in report.large_exports] == [
        (november["large"].public_id, "audrey", 6000)]
    # (d) refusals per account, by kind
    assert report.refusals == [
        {"account": "bob", "total": 2, "forbidden": 0, "step_up": 1, "second_factor": 0, "self_approval": 1},
        {"account": "alice", "total": 1, "forbidden": 1, "step_up": 0, "second_factor": 0, "self_approval": 0}]
    # (e) new addresses: alice's 10.9.9.9 the first time, bob's first sign-in; not alice's known 10.0.0.1
    assert report.new_addresses == [
        {"account": "alice", "ip": "10.9.9.9", "signed_in_at": "2026-11-07 23:00:00"},
        {"account": "bob", "ip": "10.0.0.2", "signed_in_at": "2026-11-08 09:00:00"}]
    # (f) the three checkpoints of 10 November (one per chain), signed and verified; December's is not listed
    assert [(c["log"], c["at"], c["signature"], c["verified"]) for c in report.checkpoints] == [
        (name, "2026-11-10 01:00:00", True, True) for name in sealing.LOGS]
    assert report.checkpoints[1]["seq"] >= 6000 + 5  # the access chain holds the seeded rows


def test_each_section_is_one_set_query(november):
    """Aggregated in SQL: one statement per section, however many rows, accounts or nights the range holds."""
    span = access_report.period(*NOVEMBER)
    db.session.expire_all()
    with count_queries() as statements:
        found = [access_report.top_accounts(span), access_report.night_exports(span),
                 access_report.large_exports(span, 5000), access_report.refusals(span),
                 access_report.new_addresses(span, 90)]
    selects = [statement for statement in statements if not statement.startswith(("SAVEPOINT", "RELEASE"))]
    assert all(found) and len(selects) == 5, selects


def test_a_lower_configured_threshold_lists_smaller_exports(november, apps, monkeypatch):
    monkeypatch.setitem(apps.core.config, "ACCESS_REPORT_LARGE_RECORDS", 2)
    report = access_report.build(*NOVEMBER)
    assert [e["rows"] for e in report.large_exports] == [6000, 2]


def test_a_shorter_lookback_makes_a_known_address_new(november, apps, monkeypatch):
    monkeypatch.setitem(apps.core.config, "ACCESS_REPORT_LOOKBACK_DAYS", 5)  # October's sign-in is too far back
    report = access_report.build(*NOVEMBER)
    assert ("alice", "10.0.0.1") in {(row["account"], row["ip"]) for row in report.new_addresses}


def test_an_edited_checkpoint_fails_its_verify(november, checkpoint_file):
    lines = [json.loads(line) for line in checkpoint_file.read_text().splitlines()]
    lines[1]["seq"] += 1  # the access chain's checkpoint of 10 November, edited
    checkpoint_file.write_text("".join(json.dumps(line, sort_keys=True) + "\n" for line in lines))
    shown = {c["log"]: c for c in access_report.build(*NOVEMBER).checkpoints}
    assert shown["access"]["signature"] is False and shown["access"]["verified"] is False
    assert shown["access"]["detail"]
    assert shown["audit"]["signature"] is True


def _report_export(auditor: Actor, format: str) -> tuple[ExportRequest, bytes]:
    export = made(exports.request_export("access_report", format, dict(zip(("date_from", "date_to"), NOVEMBER)),
                                         auditor))
    assert export.status == "done", export.error
    content, filename, mimetype = exports.download(export, auditor)
    assert filename.endswith(f".{format}") and mimetype == exports.FORMATS[format]
    return export, content


def test_the_xlsx_has_every_section_with_its_figures_and_the_watermark(november):
    export, content = _report_export(november["auditor"], "xlsx")
    workbook = load_workbook(io.BytesIO(content))
    assert files.trace(content) == export.public_id
    sheets = [name for name in workbook.sheetnames if name != files.MARKER_SHEET]
    assert len(sheets) == 6
    cells = {name: [row for row in workbook[name].iter_rows(values_only=True)] for name in sheets}
    assert all(export.public_id in str(rows[0][0]) and "audrey" in str(rows[0][0]) for rows in cells.values())

    def rows_of(number: int) -> list[tuple]:
        return [row for row in cells[sheets[number - 1]] if row and row[0] is not None]

    assert ("alice", 5, 3, 1, 2) in rows_of(1)
    assert any(november["night"].public_id in row and "2026-11-04 02:00:00" in row for row in rows_of(2))
    assert any(november["large"].public_id in row and 6000 in row for row in rows_of(3))
    assert ("bob", 2, 0, 1, 0, 1) in rows_of(4)
    assert ("alice", "10.9.9.9", "2026-11-07 23:00:00") in rows_of(5)
    assert sum(1 for row in rows_of(6) if row[0] in sealing.LOGS and row[4] == "yes") == 3
    assert "Top accounts by personal records seen" in str(rows_of(1))
    # Made as a governed export: audited, and the file is in the access log.
    assert export.row_count == 2 + 1 + 1 + 2 + 2 + 3
    logged = db.session.execute(select(AccessLogEntry.action).where(AccessLogEntry.entity_id == export.public_id)
                                .order_by(AccessLogEntry.id)).scalars().all()
    assert logged == ["export", "download"]


def _pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


def test_the_pdf_has_the_figures_and_the_watermark_in_english(november):
    export, content = _report_export(november["auditor"], "pdf")
    assert content.startswith(b"%PDF")
    text = _pdf_text(content)
    assert export.public_id in text and "audrey" in text
    for expected in ("Top accounts by personal records seen", "alice", "Exports of 5,000 records or more",
                     november["night"].public_id, "2026-11-04 02:00:00", november["large"].public_id, "6000",
                     "10.9.9.9", "2026-11-07 23:00:00", "Signed audit checkpoints"):
        assert expected in text, expected
    reader = PdfReader(io.BytesIO(content))
    assert export.public_id in (reader.metadata.title or "")
    assert reader.metadata["/Keywords"] == f"orderloom-export {export.public_id}"
    assert files.trace(content) == export.public_id  # a leaked PDF traces back like a sheet
    assert exports.identify(content)["exact_copy"] is True


def test_the_pdf_is_in_chinese_for_a_chinese_auditor(november, create_user):
    auditor_zh = Actor.for_staff(create_user("auditor_zh", "auditor", locale="zh_CN"))
    _export, content = _report_export(auditor_zh, "pdf")
    text = _pdf_text(content)
    assert "访问报告" in text and "查看个人记录最多的账户" in text and "alice" in text


def test_the_report_kind_takes_only_xlsx_and_pdf(november):
    with pytest.raises(ValidationFailed) as refused:
        exports.request_export("access_report", "csv", dict(zip(("date_from", "date_to"), NOVEMBER)),
                               november["auditor"])
    assert refused.value.code == "unknown_export_format"


@pytest.mark.parametrize("date_from, date_to, code", [
    ("2026-11-30", "2026-11-01", "invalid_range"),  # ends before it starts
    ("2025-01-01", "2026-01-02", "range_too_long"),  # over a year
    ("2026-11-01", "", "invalid_range"),
    ("2026-13-01", "2026-12-01", "invalid_range"),
])
def test_a_bad_range_is_refused_and_nothing_is_made(session, create_user, date_from, date_to, code):
    auditor = Actor.for_staff(create_user("auditor_en", "auditor"))
    before = db.session.execute(select(func.count()).select_from(ExportRequest)).scalar_one()
    with pytest.raises(ValidationFailed) as refused:
        access_report.build(date_from, date_to)
    assert refused.value.code == code and refused.value.message
    with pytest.raises(ValidationFailed):
        exports.request_export("access_report", "pdf", {"date_from": date_from, "date_to": date_to}, auditor)
    db.session.commit()
    assert db.session.execute(select(func.count()).select_from(ExportRequest)).scalar_one() == before


def test_a_year_of_366_days_is_accepted(session):
    assert access_report.period("2027-01-01", "2028-01-01").last.isoformat() == "2028-01-01"


# --- the portal page ---------------------------------------------------------------------------------------

def test_the_auditor_page_shows_the_sections_and_downloads_the_pdf(november, client_for):
    client = client_for("auditor")
    page = client.get("/audit/access-report?date_from=2026-11-01&date_to=2026-11-30")
    assert page.status_code == 200
    for expected in ("Top accounts by personal records seen", november["night"].public_id,
                     november["large"].public_id, "10.9.9.9", 'data-testid="access-report-export"', "PDF"):
        assert expected in page.text, expected
    started = start_export(client, "access_report", "pdf", date_from="2026-11-01", date_to="2026-11-30")
    assert started.status_code == 303, started.text[:500]
    link = EXPORT_LINK.search(client.get("/exports/").text)
    download = client.get(f"/exports/{link.group(1)}/download")
    assert download.status_code == 200 and download.mimetype == "application/pdf"
    assert "alice" in _pdf_text(download.data)


def test_the_page_in_chinese(november, client_for):
    page = client_for("auditor", locale="zh_CN").get("/audit/access-report?date_from=2026-11-01&date_to=2026-11-30")
    assert page.status_code == 200 and "访问报告" in page.text and "查看个人记录最多的账户" in page.text


def test_the_page_refuses_a_bad_range_with_a_clear_message(session, client_for):
    client = client_for("auditor")
    before = db.session.execute(select(func.count()).select_from(ExportRequest)).scalar_one()
    page = client.get("/audit/access-report?date_from=2026-11-30&date_to=2026-11-01")
    assert page.status_code == 422 and "ends (2026-11-01) before it starts (2026-11-30)" in page.text
    page = client.get("/audit/access-report?date_from=2025-01-01&date_to=2026-06-01")
    assert page.status_code == 422 and "longer than a year" in page.text
    assert db.session.execute(select(func.count()).select_from(ExportRequest)).scalar_one() == before


def test_a_role_without_the_access_log_gets_403_and_the_refusal_is_audited(session, client_for):
    client = client_for("customer_service")
    assert client.get("/audit/access-report").status_code == 403
    db.session.expire_all()
    events = db.session.execute(select(AuditEvent).where(AuditEvent.action == "access.forbidden")).scalars().all()
    assert [(e.actor_label, e.entity_type, e.entity_id, e.after["path"], e.after["resource"], e.after["action"])
            for e in events] == [("customer_service_en", "permission", "access_log:view", "/audit/access-report",
                                  "access_log", "view")]
    today = datetime.now(SHANGHAI).date().isoformat()
    counted = access_report.build(today, today).refusals
    assert counted == [{"account": "customer_service_en", "total": 1, "forbidden": 1, "step_up": 0,
                        "second_factor": 0, "self_approval": 0}]


def test_an_api_403_is_audited_too(session, create_user, portal):
    user = create_user("cs_api", "customer_service")
    token = staff.issue_token(user, ADMIN)
    db.session.commit()
    response = portal.test_client().post("/api/v1/warehouses", json={"code": "X"},
                                         headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403 and response.json["error"]["code"] == "forbidden"
    db.session.expire_all()
    event = db.session.execute(select(AuditEvent).where(AuditEvent.action == "access.forbidden")).scalar_one()
    assert (event.actor_label, event.after["path"], event.after["method"]) == ("cs_api", "/api/v1/warehouses", "POST")


# --- the monthly job ---------------------------------------------------------------------------------------

def test_the_monthly_job_asks_for_last_months_report_once_per_auditor(session, clock, create_user,
                                                                     checkpoint_file):
    from jobs.access_report import request_monthly_access_reports
    from jobs.schedule import SCHEDULE

    create_user("auditor_en", "auditor")
    create_user("alice", "ops_manager")
    clock(at(1, 3, month=12))
    assert request_monthly_access_reports() == 1
    assert request_monthly_access_reports() == 0  # the hourly repeat asks for nothing
    export = db.session.execute(select(ExportRequest).where(ExportRequest.kind == "access_report")).scalar_one()
    assert (export.requested_by_label, export.filters["date_from"], export.filters["date_to"],
            export.filters["monthly"]) == ("auditor_en", "2026-11-01", "2026-11-30", True)
    assert ("request_monthly_access_reports", "jobs.access_report.request_monthly_access_reports", 3600) in \
        {(name, dotted, interval) for name, dotted, interval, _queue in SCHEDULE}
    run_export(export.id)
    db.session.expire_all()
    assert db.session.get(ExportRequest, export.id).status == "done"


# --- (f) verified once: a load hashes only what was sealed since the last one ----------------------------------

def _hashed_by(action) -> dict[str, int]:
    """Rows each chain's verify hashed while `action` ran (sealing.HASHED, the service's counter)."""
    before = dict(sealing.HASHED)
    action()
    return {name: sealing.HASHED[name] - before.get(name, 0) for name in sealing.LOGS}


def _unguard_access_log(backend: str) -> None:
    """What a database superuser can do: switch access_log's append-only triggers off."""
    from sqlalchemy import text

    if backend == "postgresql":
        db.session.execute(text("ALTER TABLE access_log DISABLE TRIGGER USER"))
    else:
        db.session.execute(text("DROP TRIGGER IF EXISTS access_log_no_update"))
        db.session.execute(text("DROP TRIGGER IF EXISTS access_log_no_delete"))


def _new_access_rows(clock, count: int, day: int = 11) -> None:
    clock(at(day, 9))
    reader = Actor(id=None, label="reader", role="admin", ip="10.0.0.7")
    for n in range(count):
        audit.log_access(reader, "reveal", "order", f"SO-N{n}", ["phone"], channel="portal")
    db.session.commit()
    sealing.seal_all(commit=db.session.flush)
    db.session.commit()


def test_an_untouched_log_is_not_hashed_again_and_new_rows_only_once(november, clock):
    shown = []
    first = _hashed_by(lambda: shown.append(access_report.build(*NOVEMBER).checkpoints))
    assert first["access"] >= 6000 + 5 and first["audit"] > 0  # the first load walks each chain from its floor
    head = db.session.get(sealing.AuditSeal, "access")
    assert sealing.verified_point("access") == sealing.Verified(head.last_seq, head.last_mac)
    again = _hashed_by(lambda: shown.append(access_report.build(*NOVEMBER).checkpoints))
    assert again == {name: 0 for name in sealing.LOGS}  # nothing sealed since: nothing hashed
    assert shown[0] == shown[1] and all(c["verified"] for c in shown[1])
    _new_access_rows(clock, 3)
    later = _hashed_by(lambda: shown.append(access_report.build(*NOVEMBER).checkpoints))
    assert later["access"] == 3 and all(c["verified"] for c in shown[2])


def test_a_row_tampered_after_the_verified_point_is_still_found(november, clock, checkpoint_file, backend):
    from sqlalchemy import text

    access_report.build(*NOVEMBER)
    point = sealing.verified_point("access")
    _new_access_rows(clock, 3)
    sealing.write_checkpoints(now=at(11, 10))  # a checkpoint in range that saw the new rows
    db.session.commit()
    _unguard_access_log(backend)
    db.session.execute(text("UPDATE access_log SET ip = '6.6.6.6' WHERE seq = :seq"), {"seq": point.seq + 2})
    db.session.commit()
    shown = []
    hashed = _hashed_by(lambda: shown.append(access_report.build(*NOVEMBER).checkpoints))
    access = [c for c in shown[0] if c["log"] == "access"]
    assert [c["verified"] for c in access] == [True, False]  # 10 November's saw the chain before the edit
    assert "edited" in access[1]["detail"] and f"#{point.seq + 2}" in access[1]["detail"]
    assert hashed["access"] < 10  # from the verified point on, not from the floor
    assert sealing.verified_point("access") == point  # a verify that found a problem does not move the point
    assert "edited" in str(sealing.verify_all(logs=("access",))[0].problem)  # and `audit verify` agrees


def test_a_forged_verified_point_is_ignored_and_a_deleted_row_below_it_is_found(november, clock, backend):
    from sqlalchemy import text

    from shared.models import AuditVerified

    access_report.build(*NOVEMBER)
    _new_access_rows(clock, 2)
    head = db.session.get(sealing.AuditSeal, "access")
    # someone without the audit key moves the point to the head, to skip the new rows: its signature fails
    db.session.execute(text("UPDATE audit_verified SET seq = :seq, mac = :mac WHERE log = 'access'"),
                       {"seq": head.last_seq, "mac": head.last_mac})
    db.session.commit()
    assert sealing.verified_point("access") is None
    assert _hashed_by(lambda: access_report.build(*NOVEMBER))["access"] == head.last_seq  # walked from the floor
    assert db.session.get(AuditVerified, "access").seq == head.last_seq  # re-verified and signed
    # a row below the point deleted: not hashed again, but the count below the point no longer holds
    _unguard_access_log(backend)
    db.session.execute(text("DELETE FROM access_log WHERE seq = 3"))
    db.session.commit()
    shown = {c["log"]: c for c in access_report.build(*NOVEMBER).checkpoints}
    assert shown["access"]["verified"] is False and "deleted" in shown["access"]["detail"]
