"""A governed export made by a real RQ worker (the `orderloom worker --burst` console script) from Redis."""
import io

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from jobs import queues
from shared.actors import Actor
from shared.extensions import db
from shared.models import AccessLogEntry, ExportRequest
from shared.services import exports, orders, staff
from tests.factories import ADMIN, PASSWORD, open_shop, order_payload
from tests.test_worker import _redis, _run_worker


def _seed(live_apps) -> dict:
    """Three orders, an ops manager, a masked CSV export and a cleared personal XLSX export, both queued."""
    with live_apps.core.app_context():
        open_shop()
        for n in range(3):
            orders.create_order(order_payload(channel_order_id=f"EXP-{n}", phone=f"1391234567{n}"), ADMIN)
        user = staff.create_user("lin", PASSWORD, "ops_manager", ADMIN, display_name="林经理")
        db.session.commit()
        manager = Actor.for_staff(user, ip="10.1.1.1")
        masked = exports.request_export("orders", "csv", {}, manager)
        personal = exports.request_export("orders", "xlsx", {}, manager, personal=True)
        exports.clear_export(personal, manager, by="step_up", ref="session:lin")
        db.session.commit()
        return {"masked": masked.id, "personal": personal.id, "user_id": user.id}


@pytest.mark.live
@pytest.mark.parametrize("live_apps", ["postgresql", "sqlite"], indirect=True)
def test_a_worker_makes_each_export_once_with_progress_and_a_traceable_file(live_apps):
    from rq import Queue
    from rq.job import Job, JobStatus

    redis = _redis()
    redis.flushdb()  # only the test database (TEST_REDIS_URL), never FLUSHALL
    made = _seed(live_apps)
    documents = Queue(queues.DOCUMENTS, connection=redis)
    jobs = [documents.enqueue(exports.RUN_JOB, made["masked"], job_timeout=exports.JOB_TIMEOUT),
            documents.enqueue(exports.RUN_JOB, made["masked"]),  # sent twice (a sweeper and a retry): made once
            documents.enqueue(exports.RUN_JOB, made["personal"])]

    finished = _run_worker(live_apps.url)

    output = f"stdout:\n{finished.stdout}\nstderr:\n{finished.stderr}"
    assert finished.returncode == 0, output
    jobs = [Job.fetch(j.id, connection=redis) for j in jobs]
    assert [j.get_status() for j in jobs] == [JobStatus.FINISHED] * 3, output
    assert [j.return_value() for j in jobs] == ["done", "skipped", "done"], output
    with live_apps.core.app_context():
        masked = db.session.get(ExportRequest, made["masked"])
        personal = db.session.get(ExportRequest, made["personal"])
        for export in (masked, personal):
            assert (export.status, export.row_count, export.progress_done, export.progress_total) == ("done", 3, 3, 3)
        manager = Actor(id=made["user_id"], label="lin", role="ops_manager")
        csv_file = exports.download(masked, manager)[0]
        xlsx_file = exports.download(personal, manager)[0]
        db.session.commit()
        text = csv_file.decode("utf-8-sig")
        assert text.startswith(f"# orderloom export {masked.public_id} by lin (林经理) at ")
        assert "139****5670" in text and "13912345670" not in text
        sheet = load_workbook(io.BytesIO(xlsx_file))["orders"]
        phones = [row[15] for row in sheet.iter_rows(min_row=3, values_only=True)]
        assert sorted(phones) == ["13912345670", "13912345671", "13912345672"]
        for content, export in ((csv_file, masked), (xlsx_file, personal)):
            found = exports.identify(content)
            assert (found["export_id"], found["exporter"], found["exact_copy"]) == (export.public_id, "lin", True)
        made_by_worker = db.session.execute(select(AccessLogEntry.entity_id, AccessLogEntry.fields)
                                            .where(AccessLogEntry.action == "export")).all()
        assert sorted(made_by_worker) == sorted([(masked.public_id, ""), (personal.public_id, "address,name,phone")])
    assert redis.llen(f"rq:queue:{queues.DOCUMENTS}") == 0
