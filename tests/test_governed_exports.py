"""Governed exports (issue 11 item 6): clearance for personal columns, watermark and trace, counted and expiring
downloads, the nightly purge; on both backends, with time passed in explicitly."""
import csv
import io
from datetime import timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from jobs.exports import run_export
from shared import exports as files
from shared.actors import Actor
from shared.extensions import db
from shared.models import AccessLogEntry, AuditEvent, ExportDownload, ExportRequest
from shared.services import exports, staff
from shared.services.errors import Conflict, Forbidden, Gone, ValidationFailed
from shared.timekeeping import utc_now
from tests.factories import ADMIN
from tests.portal_client import EXPORT_LINK, csrf_token, english_client, exported_file, start_export, step_up

PHONE, STREET = "13812345678", "文三路 90 号 3 幢 501"


@pytest.fixture
def person(create_user):
    """A staff member with a display name, acting as themselves."""
    def make(role: str, username: str | None = None) -> Actor:
        user = create_user(username or f"{role}_x", role)
        staff.update_user(user, ADMIN, display_name=f"{role.title()} 王")
        db.session.commit()
        return Actor.for_staff(user, ip="10.0.0.7")
    return make


def count(model) -> int:
    return db.session.execute(select(func.count()).select_from(model)).scalar_one()


def made(export: ExportRequest) -> ExportRequest:
    """Run the export's job the way a worker would (inline here) and return the fresh row."""
    db.session.commit()
    run_export(export.id)
    db.session.expire_all()
    return db.session.get(ExportRequest, export.id)


def csv_lines(content: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"), newline="")))


def audit_actions(public_id: str) -> list[str]:
    db.session.flush()
    return list(db.session.execute(select(AuditEvent.action).where(AuditEvent.entity_type == "export",
                                                                   AuditEvent.entity_id == public_id)
                                   .order_by(AuditEvent.id)).scalars())


# --- personal columns and clearance ------------------------------------------------------------------------

def test_a_cleared_personal_export_has_full_values_a_watermark_and_traces_back(create_order, person):
    create_order()
    manager = person("ops_manager")
    export = exports.request_export("orders", "xlsx", {}, manager, personal=True)
    db.session.commit()
    assert export.status == "awaiting_clearance" and export.public_id.startswith("EX")
    exports.clear_export(export, manager, by="step_up", ref="session:1")
    export = made(export)

    assert (export.status, export.row_count, export.progress_done, export.progress_total) == ("done", 1, 1, 1)
    assert export.revealed_fields == "name,phone,address" and export.clearance == "step_up"
    content, filename, mimetype = exports.download(export, manager)
    assert filename == f"orderloom-orders-{export.public_id}.xlsx" and mimetype.endswith("spreadsheetml.sheet")
    workbook = load_workbook(io.BytesIO(content))
    rows = list(workbook["orders"].iter_rows(values_only=True))
    assert export.public_id in rows[0][0] and "ops_manager_x (Ops_Manager 王)" in rows[0][0] and "+08:00" in rows[0][0]
    assert rows[1][:2] == ("order_no", "channel") and PHONE in rows[2] and any(STREET in str(v) for v in rows[2])
    # The per-file marker: document properties and a very hidden sheet, both naming the export and exporter.
    assert workbook.properties.identifier == export.public_id
    assert workbook.properties.creator.startswith("ops_manager_x")
    assert export.public_id in workbook.properties.keywords
    marker = workbook[files.MARKER_SHEET]
    assert marker.sheet_state == "veryHidden"
    assert dict(marker.iter_rows(values_only=True))["exporter"] == "ops_manager_x"
    # A leaked copy names its export and exporter; the stored SHA-256 says it is that very file.
    assert exports.trace_export(content) == export.public_id
    found = exports.identify(content)
    assert (found["export_id"], found["exporter"], found["exact_copy"]) == (export.public_id, "ops_manager_x", True)
    assert audit_actions(export.public_id) == ["export.request", "export.clear", "export.made"]


def test_a_masked_csv_starts_with_the_bom_then_the_watermark_line(create_order, person):
    create_order()
    manager = person("ops_manager")
    export = made(exports.request_export("orders", "csv", {"status": "confirmed"}, manager))
    content, _name, _type = exports.download(export, manager)

    assert content.startswith(b"\xef\xbb\xbf# orderloom export " + export.public_id.encode() + b" by ops_manager_x ")
    lines = csv_lines(content)
    assert lines[1][0] == "order_no" and len(lines) == 3
    assert "138****5678" in lines[2] and PHONE not in content.decode("utf-8-sig") and STREET not in lines[2]
    assert exports.identify(content)["exporter_name"] == "Ops_Manager 王"
    assert export.revealed_fields is None and audit_actions(export.public_id) == ["export.request", "export.made"]


def test_a_personal_export_without_clearance_makes_no_file(create_order, person):
    create_order()
    manager = person("ops_manager")
    export = exports.request_export("orders", "csv", {}, manager, personal=True)
    db.session.commit()

    assert run_export(export.id) == "skipped"
    db.session.expire_all()
    assert export.status == "awaiting_clearance" and export.content is None and export.row_count is None
    with pytest.raises(Conflict) as refused:
        exports.download(export, manager)
    assert refused.value.code == "export_not_ready"


@pytest.mark.parametrize(("role", "kind"), [("finance", "orders"), ("auditor", "orders")])
def test_a_role_without_full_visibility_may_not_ask_for_personal_columns(create_order, person, role, kind):
    create_order()
    actor = person(role)
    before = count(AuditEvent)
    with pytest.raises(Forbidden) as refused:
        exports.request_export(kind, "csv", {}, actor, personal=True)
    assert refused.value.code == "personal_not_allowed"
    db.session.rollback()
    assert count(ExportRequest) == 0 and count(AuditEvent) == before


def test_a_role_that_lost_full_visibility_gets_masked_values_even_with_clearance(create_order, person):
    create_order()
    manager = person("ops_manager")
    user_id = manager.id
    export = exports.request_export("orders", "csv", {}, manager, personal=True)
    exports.clear_export(export, manager, by="step_up")
    db.session.commit()
    staff.update_user(db.session.get(staff.StaffUser, user_id), ADMIN, role="finance")  # demoted before the job ran
    export = made(export)

    content = exports.download(export, Actor(id=user_id, label="ops_manager_x", role="finance"))[0].decode("utf-8-sig")
    assert export.status == "done" and export.revealed_fields is None
    assert PHONE not in content and "138****5678" in content and STREET not in content


def test_an_approval_clears_for_a_role_that_may_but_not_once_the_role_changed(create_order, person):
    manager = person("ops_manager")
    export = exports.request_export("customers", "csv", {}, manager, personal=True)
    db.session.commit()
    staff.update_user(db.session.get(staff.StaffUser, manager.id), ADMIN, role="finance")
    with pytest.raises(Forbidden) as refused:
        exports.clear_export(export, ADMIN, by="approval", ref="approval:17")
    assert refused.value.code == "personal_not_allowed"
    db.session.rollback()
    staff.update_user(db.session.get(staff.StaffUser, manager.id), ADMIN, role="ops_manager")
    exports.clear_export(export, ADMIN, by="approval", ref="approval:17")
    assert (export.status, export.clearance, export.clearance_ref) == ("queued", "approval", "approval:17")


def test_clearance_refusals(create_order, person):
    manager, other = person("ops_manager"), person("admin", "second_admin")
    plain = exports.request_export("orders", "csv", {}, manager)
    personal = exports.request_export("orders", "csv", {}, manager, personal=True)
    db.session.commit()
    cases = [
        (lambda: exports.clear_export(personal, other, by="step_up"), Forbidden, "step_up_by_requester"),
        (lambda: exports.clear_export(personal, manager, by="password"), ValidationFailed, "invalid_clearance"),
        (lambda: exports.clear_export(plain, manager, by="step_up"), Conflict, "no_clearance_needed"),
        (lambda: exports.clear_export(personal, manager, by="step_up",
                                      now=utc_now() + timedelta(hours=24, seconds=1)), Conflict, "clearance_too_late"),
    ]
    for action, error, code in cases:
        with pytest.raises(error) as refused:
            action()
        assert refused.value.code == code
        db.session.rollback()
        db.session.expire_all()
        assert personal.status == "awaiting_clearance"
    exports.clear_export(personal, manager, by="step_up")
    with pytest.raises(Conflict) as twice:
        exports.clear_export(personal, manager, by="step_up")
    assert twice.value.code == "not_awaiting_clearance"


@pytest.mark.parametrize(("kind", "format", "filters", "error", "code", "field"), [
    ("invoices_2027", "csv", {}, ValidationFailed, "unknown_export_kind", "kind"),
    ("orders", "pdf", {}, ValidationFailed, "unknown_export_format", "format"),
    ("orders", "csv", {"report_id": "1"}, ValidationFailed, "invalid_filter", "report_id"),
    ("orders", "csv", {"status": "teleported"}, ValidationFailed, "invalid_filter", "status"),
    ("orders", "csv", {"placed_from": "2026-13-01"}, ValidationFailed, "invalid_filter", "placed_from"),
    ("reconciliation", "csv", {"report_id": "999999"}, ValidationFailed, "invalid_filter", "report_id"),
    ("access_log", "csv", {}, Forbidden, "forbidden", None),  # ops managers do not read the access log
])
def test_bad_export_requests_are_refused_and_change_nothing(create_order, person, kind, format, filters, error, code,
                                                           field):
    manager = person("ops_manager")
    before = count(AuditEvent)
    with pytest.raises(error) as refused:
        exports.request_export(kind, format, filters, manager)
    assert (refused.value.code, refused.value.field) == (code, field)
    db.session.rollback()
    assert count(ExportRequest) == 0 and count(AuditEvent) == before


def test_a_kind_without_personal_columns_refuses_a_personal_request(person):
    with pytest.raises(ValidationFailed) as refused:
        exports.request_export("access_log", "csv", {}, person("auditor"), personal=True)
    assert refused.value.code == "no_personal_columns"


# --- downloads ---------------------------------------------------------------------------------------------

@pytest.fixture
def ready(create_order, person):
    """A made CSV export of the orders, and its requester."""
    create_order()
    manager = person("ops_manager")
    return made(exports.request_export("orders", "csv", {}, manager)), manager


def test_three_downloads_then_the_fourth_is_refused(ready):
    export, manager = ready
    for n in range(3):
        content, _name, _type = exports.download(export, manager)
        db.session.commit()
        assert files.trace(content) == export.public_id
    assert (export.download_count, export.status) == (3, "expired")
    with pytest.raises(Gone) as refused:
        exports.download(export, manager)
    assert refused.value.code == "download_limit" and refused.value.status == 410
    db.session.rollback()
    downloads = db.session.execute(select(ExportDownload).where(ExportDownload.export_id == export.id)).scalars().all()
    assert [(d.actor_label, d.ip) for d in downloads] == [("ops_manager_x", "10.0.0.7")] * 3
    logged = db.session.execute(select(AccessLogEntry.action).where(AccessLogEntry.entity_id == export.public_id)
                                .order_by(AccessLogEntry.id)).scalars().all()
    assert logged == ["export", "download", "download", "download"]


def test_the_link_expires_24_hours_after_the_file_was_made(ready):
    export, manager = ready
    finished = export.finished_at
    exports.download(export, manager, now=finished + timedelta(hours=23, minutes=59))
    db.session.commit()
    with pytest.raises(Gone) as refused:
        exports.download(export, manager, now=finished + timedelta(hours=24))
    assert refused.value.code == "export_expired"
    db.session.rollback()
    db.session.expire_all()
    assert export.download_count == 1 and count(ExportDownload) == 1
    assert exports.downloads_left(export, finished + timedelta(hours=24)) == 0


def test_nobody_but_the_requester_downloads_not_even_an_admin(ready, person):
    export, _manager = ready
    for intruder in (person("admin", "boss"), person("auditor")):
        with pytest.raises(Forbidden) as refused:
            exports.download(export, intruder)
        assert refused.value.code == "not_your_export"
        db.session.rollback()
    db.session.expire_all()
    assert export.download_count == 0 and count(ExportDownload) == 0


def test_the_nightly_job_expires_links_and_purges_files_after_7_days_and_a_rerun_changes_nothing(ready, person):
    export, manager = ready
    waiting = exports.request_export("orders", "csv", {}, manager, personal=True)
    db.session.commit()
    finished = export.finished_at

    assert exports.expire_and_purge(now=finished + timedelta(hours=25))["export.expire"] == 1
    db.session.commit()
    db.session.expire_all()
    assert (export.status, waiting.status) == ("expired", "expired")  # the uncleared request lapsed too
    tally = exports.expire_and_purge(now=finished + timedelta(days=7, seconds=1))
    db.session.commit()
    assert tally["export.purge"] == 1  # the lapsed request is kept 7 days from its lapse
    db.session.expire_all()
    assert (export.status, export.content, export.sha256 is not None) == ("purged", None, True)
    with pytest.raises(Gone) as refused:
        exports.download(export, manager, now=finished + timedelta(days=7, seconds=2))
    assert refused.value.code == "export_purged"
    db.session.rollback()
    assert set(exports.expire_and_purge(now=finished + timedelta(days=8)).values()) == {0}
    assert "export.purge" in audit_actions(export.public_id)


def test_progress_is_committed_as_the_rows_are_written(create_order, person, monkeypatch):
    for n in range(3):
        create_order(channel_order_id=f"P-{n}")
    manager = person("ops_manager")
    export = exports.request_export("orders", "csv", {}, manager)
    db.session.commit()
    monkeypatch.setattr(exports, "PROGRESS_EVERY", 1)
    assert exports.claim(export.id)
    seen = []

    def commit():
        db.session.commit()
        seen.append(db.session.execute(select(ExportRequest.progress_done, ExportRequest.progress_total)
                                       .where(ExportRequest.id == export.id)).one())

    exports.build(export.id, commit)
    assert [tuple(s) for s in seen] == [(0, 3), (1, 3), (2, 3), (3, 3)]


def test_the_sweeper_finds_queued_exports_nothing_claimed(ready, person):
    export, manager = ready
    queued = exports.request_export("orders", "xlsx", {}, manager)
    db.session.commit()
    assert exports.unclaimed_export_ids(now=queued.created_at + timedelta(seconds=30)) == []
    assert exports.unclaimed_export_ids(now=queued.created_at + timedelta(minutes=2)) == [queued.id]


def test_a_file_without_a_marker_traces_to_nothing():
    assert files.trace(files.csv_bytes(["a"], [[1]])) is None
    assert files.trace(files.xlsx_bytes(["a"], [[1]])) is None
    assert files.trace(b"PK\x03\x04 not a zip") is None


# --- the portal --------------------------------------------------------------------------------------------

def test_my_exports_page_starts_an_export_shows_progress_and_downloads(client_for, create_order):
    create_order()
    client = client_for("ops_manager")
    export_id, response = exported_file(client, "orders", "xlsx")
    assert response.status_code == 200 and response.mimetype.endswith("spreadsheetml.sheet")
    assert f"orderloom-orders-{export_id}.xlsx" in response.headers["Content-Disposition"]
    assert response.headers["Cache-Control"] == "no-store"
    assert files.trace(response.data) == export_id
    fragment = client.get(f"/exports/{export_id}/progress").text
    assert 'data-status="done"' in fragment and "every 2s" not in fragment and "2 of 3 downloads left" in fragment


def test_a_queued_export_polls_its_progress(client_for, create_order, person):
    create_order()
    client = client_for("ops_manager")
    user = db.session.execute(select(staff.StaffUser).where(staff.StaffUser.username == "ops_manager_en")).scalar_one()
    export = exports.request_export("orders", "csv", {}, Actor.for_staff(user))
    db.session.commit()
    fragment = client.get(f"/exports/{export.public_id}/progress").text
    assert 'hx-trigger="every 2s"' in fragment and "0 / ? rows" in fragment


def test_the_personal_route_clears_by_step_up_for_a_manager_and_refuses_finance(client_for, create_order):
    create_order()
    manager = client_for("ops_manager")
    assert start_export(manager, "orders", "csv", personal=True).headers["Location"].endswith("/security/step-up")
    assert count(ExportRequest) == 0  # no personal export without a fresh second factor
    step_up(manager, "ops_manager_en")
    _id, response = exported_file(manager, "orders", "csv", personal=True)
    assert PHONE in response.data.decode("utf-8-sig")
    export = db.session.execute(select(ExportRequest)).scalar_one()
    assert (export.clearance, export.clearance_ref) == ("step_up", "session:ops_manager_en")
    finance = client_for("finance")
    assert start_export(finance, "orders", "csv", personal=True).status_code == 403
    assert count(ExportRequest) == 1


def test_the_portal_refuses_an_unknown_kind_or_format_and_starts_nothing(client_for):
    client = client_for("admin")
    for kind, format in (("nonsense", "csv"), ("orders", "docx")):
        response = start_export(client, kind, format)
        assert response.status_code == 422 and "No export started" in response.text
    assert count(ExportRequest) == 0


def test_another_users_download_is_refused_and_an_auditor_sees_every_export(client_for, create_order):
    create_order()
    export_id, _response = exported_file(client_for("ops_manager"), "orders")
    for role in ("admin", "auditor"):
        assert client_for(role).get(f"/exports/{export_id}/download").status_code == 403
    auditor = client_for("auditor", "zh_CN")
    listing = auditor.get("/exports/all").text
    assert f'data-testid="all-export-{export_id}"' in listing and "ops_manager_en" in listing
    assert export_id not in auditor.get("/exports/").text  # their own list holds only their own
    assert client_for("finance").get("/exports/all").status_code == 403


def test_a_download_after_24_hours_and_a_fourth_download_answer_410(client_for, create_order, monkeypatch):
    import shared.timekeeping

    create_order()
    client = client_for("ops_manager")
    export_id, first = exported_file(client, "orders")
    assert first.status_code == 200
    for _ in range(2):
        assert client.get(f"/exports/{export_id}/download").status_code == 200
    fourth = client.get(f"/exports/{export_id}/download")
    assert fourth.status_code == 410 and "downloaded 3 times" in fourth.text

    second_id, _ = exported_file(client, "orders")
    later = utc_now() + timedelta(hours=24, minutes=1)
    monkeypatch.setattr(shared.timekeeping, "utc_now", lambda: later)
    expired = client.get(f"/exports/{second_id}/download")
    assert expired.status_code == 410 and "expired" in expired.text
    assert db.session.execute(select(ExportRequest.download_count).where(ExportRequest.public_id == second_id)) \
        .scalar_one() == 1
    assert EXPORT_LINK.search(client.get("/exports/").text) is None  # no live link is offered any more


def test_the_audit_and_access_log_pages_start_governed_exports(client_for):
    client = client_for("admin")
    for path, kind in (("/audit/", "audit"), ("/audit/access-log", "access_log")):
        page = client.get(path).text
        assert 'action="/exports/"' in page and f'name="kind" value="{kind}"' in page
    assert client.get("/audit/events.csv").status_code == 404  # the ungoverned download is gone


def test_anonymous_visitors_are_sent_to_sign_in(portal):
    client = english_client(portal)
    response = client.get("/exports/EX0000000000000000/download")
    assert response.status_code == 302 and "/sign-in" in response.headers["Location"]


def test_an_auditor_traces_a_leaked_file_to_its_export_and_exporter(client_for, create_order):
    create_order()
    export_id, leaked = exported_file(client_for("ops_manager"), "orders", "xlsx")
    auditor = client_for("auditor")
    token = csrf_token(auditor, "/exports/trace")

    def upload(name: str, content: bytes) -> str:
        return auditor.post("/exports/trace", data={"csrf_token": token, "file": (io.BytesIO(content), name)},
                            content_type="multipart/form-data").text

    page = upload("客户名单.xlsx", leaked.data)
    assert f'data-testid="trace-export-id">{export_id}<' in page
    assert 'data-testid="trace-exporter">ops_manager_en<' in page
    assert 'data-testid="trace-exact"' in page
    # Someone copied the CSV's rows and changed one: the marker still names the export, the hash says it changed.
    csv_id, csv_file = exported_file(client_for("admin"), "orders", "csv")
    edited = upload("edited.csv", csv_file.data.replace(b"59.90", b"0.01"))
    assert f">{csv_id}<" in edited and 'data-testid="trace-changed"' in edited
    assert 'data-testid="trace-none"' in upload("plain.csv", files.csv_bytes(["a"], [[1]]))
    traced = db.session.execute(select(AccessLogEntry.entity_id).where(AccessLogEntry.action == "trace")).scalars()
    assert sorted(traced) == sorted([export_id, csv_id, "unknown"])
    assert client_for("ops_manager", "zh_CN").get("/exports/trace").status_code == 403


def test_with_redis_the_request_sends_the_job_after_commit_with_its_long_timeout(apps, person, monkeypatch):
    """Not inline: the committed request puts one run_export job on the documents queue, timeout 30 minutes."""
    from flask import current_app
    from rq import Queue

    from tests.conftest import REDIS_URL
    from tests.test_worker import _redis

    redis = _redis()
    redis.flushdb()
    manager = person("ops_manager")
    monkeypatch.setitem(current_app.config, "REDIS_URL", REDIS_URL)
    monkeypatch.setitem(current_app.config, "JOBS_INLINE", False)
    export = exports.request_export("customers", "csv", {}, manager)
    assert Queue(exports.QUEUE, connection=redis).count == 0  # nothing before the commit
    db.session.commit()
    [job] = Queue(exports.QUEUE, connection=redis).jobs
    assert (job.func_name, job.args, job.timeout) == (exports.RUN_JOB, (export.id,), exports.JOB_TIMEOUT)
    redis.flushdb()


def test_a_job_that_breaks_fails_the_export_with_its_reason_and_a_stalled_one_is_failed_at_night(ready, person,
                                                                                                 monkeypatch):
    import dataclasses

    from shared.services import export_kinds

    _export, manager = ready

    def broken(filters, reader):
        raise RuntimeError("disk full")
        yield  # a generator, as every kind's rows are

    monkeypatch.setitem(export_kinds.KINDS, "orders", dataclasses.replace(export_kinds.KINDS["orders"], rows=broken))
    export = exports.request_export("orders", "csv", {}, manager)
    assert made(export).status == "failed"
    assert export.error == "RuntimeError: disk full" and export.content is None
    assert audit_actions(export.public_id)[-1] == "export.failed"
    with pytest.raises(Conflict):
        exports.download(export, manager)
    db.session.rollback()

    stuck = exports.request_export("customers", "csv", {}, manager)
    db.session.commit()
    assert exports.claim(stuck.id)  # a worker took it and died
    db.session.commit()
    db.session.expire_all()
    assert exports.expire_and_purge(now=stuck.started_at + timedelta(minutes=59))["export.stalled"] == 0
    assert exports.expire_and_purge(now=stuck.started_at + exports.STALLED_AFTER)["export.stalled"] == 1
    db.session.commit()
    db.session.expire_all()
    assert stuck.status == "failed" and "stopped" in stuck.error


def test_a_new_kind_plugs_in_with_one_registry_entry(person, monkeypatch):
    """What issue 12's invoices will do: one ExportKind, and the request, job, watermark and limits all apply."""
    from shared.services import export_kinds

    kind = export_kinds.ExportKind(
        code="invoices", label="Invoices", permission=("orders", "view"), headers=lambda reader: ["invoice_no"],
        count=lambda filters, reader: 2, rows=lambda filters, reader: iter([["INV-1"], ["INV-2"]]))
    monkeypatch.setitem(export_kinds.KINDS, "invoices", kind)
    manager = person("ops_manager")
    export = made(exports.request_export("invoices", "xlsx", {}, manager))
    content = exports.download(export, manager)[0]
    rows = list(load_workbook(io.BytesIO(content))["export"].iter_rows(values_only=True))
    assert rows[1:] == [("invoice_no",), ("INV-1",), ("INV-2",)] and files.trace(content) == export.public_id
    assert "invoices" in {k.code for k in exports.kinds_for("ops_manager")}
    assert "invoices" not in {k.code for k in exports.kinds_for("warehouse")}  # no exports permission at all


# --- an approval rule on exports ---------------------------------------------------------------------------

@pytest.fixture
def export_rule(create_user):
    """A rule holding every personal export for a finance director's approval; returns that approver."""
    from shared.services import approvals

    director = create_user("fd_x", "finance_director")
    approvals.save_rule(ADMIN, code="personal_exports", operation="export.run", name_zh="个人数据导出",
                        name_en="Personal-data exports", steps=[{"kind": "role", "target": "finance_director"}])
    db.session.commit()
    return director


def _held_export(manager_client) -> ExportRequest:
    step_up(manager_client, "ops_manager_en")
    answer = start_export(manager_client, "orders", "csv", personal=True)
    assert answer.status_code == 202, answer.text[:800]
    assert "Sent for approval (request #" in answer.text
    db.session.expire_all()
    export = db.session.execute(select(ExportRequest)).scalar_one()
    assert f'data-testid="export-{export.public_id}" data-status="awaiting_clearance"' in answer.text
    assert 'data-testid="export-approval"' in answer.text and "export-download" not in answer.text
    return export


def test_an_approval_rule_holds_a_personal_export_until_it_is_approved_then_it_runs(client_for, create_order,
                                                                                     export_rule):
    from shared.models import ApprovalRequest
    from shared.services import approvals

    create_order()
    manager = client_for("ops_manager")
    export = _held_export(manager)
    held = db.session.execute(select(ApprovalRequest)).scalar_one()
    assert (held.operation, held.entity_type, held.entity_id, held.state) == (
        "export.run", "export", export.public_id, "pending")
    assert held.steps[0].candidates == [export_rule.id]
    assert (export.status, export.clearance, export.content) == ("awaiting_clearance", None, None)
    assert not exports.claim(export.id)  # a job sent anyway (a sweeper, a replay) makes nothing before the approval
    assert audit_actions(export.public_id) == ["export.request"]

    approvals.decide(held, export_rule, "approve", None, Actor.for_staff(export_rule))
    export = made(db.session.get(ExportRequest, export.id))
    assert (export.status, export.clearance, export.clearance_ref, export.cleared_by_label) == (
        "done", "approval", f"approval:{held.id}", "fd_x")
    assert audit_actions(export.public_id) == ["export.request", "export.clear", "export.made"]
    page = manager.get("/exports/").text
    match = EXPORT_LINK.search(page)
    assert match and match.group(1) == export.public_id and 'data-testid="export-approval"' not in page
    assert PHONE in manager.get(f"/exports/{export.public_id}/download").data.decode("utf-8-sig")


def test_a_rejected_or_lapsed_personal_export_makes_no_file(client_for, create_order, export_rule, monkeypatch):
    from shared import timekeeping
    from shared.models import ApprovalRequest
    from shared.services import approvals

    create_order()
    manager = client_for("ops_manager")
    rejected = _held_export(manager)
    request = db.session.execute(select(ApprovalRequest)).scalar_one()
    with pytest.raises(ValidationFailed):  # a rejection needs a comment: nothing changes
        approvals.decide(request, export_rule, "reject", " ", Actor.for_staff(export_rule))
    approvals.decide(request, export_rule, "reject", "不需要完整手机号", Actor.for_staff(export_rule))
    db.session.commit()
    assert not exports.claim(rejected.id)
    db.session.expire_all()
    rejected = db.session.get(ExportRequest, rejected.id)
    assert (rejected.status, rejected.clearance, rejected.content) == ("awaiting_clearance", None, None)

    # Approved a day after it was asked for: the clearance window is over, the approval clears nothing.
    late = start_export(manager, "orders", "csv", personal=True)  # the step-up of the first is still fresh
    assert late.status_code == 202
    db.session.expire_all()
    lapsed = db.session.execute(select(ExportRequest).where(ExportRequest.id != rejected.id)).scalar_one()
    pending = approvals.pending_for("export", lapsed.public_id)
    later = timekeeping.utc_now() + timedelta(hours=25)
    monkeypatch.setattr(timekeeping, "utc_now", lambda: later)
    approvals.decide(pending, export_rule, "approve", None, Actor.for_staff(export_rule), now=later)
    db.session.commit()
    db.session.expire_all()
    lapsed = db.session.get(ExportRequest, lapsed.id)
    assert pending.state == "approved" and (lapsed.status, lapsed.clearance) == ("awaiting_clearance", None)
    assert exports.expire_and_purge(later)["export.clearance_lapsed"] == 2


def test_without_a_rule_on_exports_a_personal_export_is_cleared_by_the_step_up_and_raises_no_approval(
        client_for, create_order):
    from shared.models import ApprovalRequest

    create_order()
    manager = client_for("ops_manager")
    step_up(manager, "ops_manager_en")
    _id, response = exported_file(manager, "orders", "csv", personal=True)
    assert PHONE in response.data.decode("utf-8-sig")
    assert count(ApprovalRequest) == 0
