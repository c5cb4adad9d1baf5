"""Purchase suggestions (issue 15 item 4): the velocity weighs the 4/8/12-week windows of shipped units; the position
(on hand - reserved - held + inbound) is subtracted; MOQ and pack size round the order up; a SKU that sold nothing is
suggested only below its safety stock; a supplier without a lead time is saved and its SKUs listed "cannot
suggest"; bad values are refused and change nothing; the portal keeps suppliers (audited) and shows the report with
its assumptions; the supplier's XLSX opens with openpyxl; and a real RQ worker computes the weekly run and sends each
supplier its mail from the outbox with the XLSX attached."""
import io
import math
from datetime import timedelta
from decimal import Decimal

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from shared.extensions import db
from shared.models import (AuditEvent, CustomerNotification, PurchaseRun, PurchaseSuggestion, Sku, StockLevel,
                           StockMovement, Supplier, SupplierSku, Warehouse)
from shared.services import catalog, orders, purchasing, stock
from shared.services.errors import Conflict, ValidationFailed
from shared.timekeeping import utc_now
from tests.factories import ADMIN, open_shop, order_payload
from tests.portal_client import csrf_token


def shipped(sku_code: str, warehouse_code: str, units: int, days_ago: float, as_of) -> None:
    """Test set-up, not product code: a shipment in the ledger `days_ago` before `as_of` (the history a weekly run
    reads; the level itself is set by the test)."""
    sku = db.session.execute(select(Sku).where(Sku.code == sku_code)).scalar_one()
    warehouse = db.session.execute(select(Warehouse).where(Warehouse.code == warehouse_code)).scalar_one()
    db.session.add(StockMovement(sku_id=sku.id, warehouse_id=warehouse.id, delta=-units, on_hand_after=0,
                                 kind="shipment", reason="test history", created_at=as_of - timedelta(days=days_ago)))
    db.session.flush()


@pytest.fixture
def shop(session):
    """Warehouse HZ1 with SKU-1 (20 on hand) and SKU-2 (0), and supplier TEAFARM (lead time 10 days, 7 safety days)
    supplying SKU-1."""
    open_shop()
    catalog.create_sku({"sku": "SKU-2", "name": "碧螺春 100g"}, ADMIN)
    supplier = purchasing.create_supplier({"code": "TEAFARM", "name": "西湖茶园", "email": "orders@teafarm.example.cn",
                                           "lead_time_days": 10, "safety_days": 7}, ADMIN)
    purchasing.save_supplier_sku(supplier, {"sku": "SKU-1", "supplier_code": "LJ-250"}, ADMIN)
    db.session.commit()
    return supplier


def line_of(run: PurchaseRun, sku_code: str) -> PurchaseSuggestion:
    (line, _supplier, _sku, _warehouse), = [row for row in purchasing.lines_of(run) if row[2].code == sku_code]
    return line


def test_the_velocity_weighs_the_three_windows():
    # 28 units in each window's most recent 4 weeks only: 1/day over 4 weeks, 0.5 over 8, 1/3 over 12.
    assert purchasing.velocity({4: 28, 8: 28, 12: 28}) == Decimal("0.717")  # 0.5*1 + 0.3*0.5 + 0.2*(1/3)
    # The same 28 units sold 5-8 weeks ago weigh less: nothing in the last 4 weeks.
    assert purchasing.velocity({4: 0, 8: 28, 12: 28}) == Decimal("0.217")  # 0.3*0.5 + 0.2*(1/3)
    assert purchasing.velocity({4: 0, 8: 0, 12: 0}) == Decimal("0.000")
    assert sum(weight for _weeks, weight in purchasing.WINDOWS) == 1


def test_constructed_sales_give_the_weighted_suggestion(shop):
    as_of = utc_now()
    for days in (1, 8, 15, 22):  # 56 units in the last 4 weeks: 2 a day
        shipped("SKU-1", "HZ1", 14, days, as_of)
    for days in (30, 37, 44, 51):  # 56 more 5-8 weeks ago
        shipped("SKU-1", "HZ1", 14, days, as_of)
    shipped("SKU-1", "HZ1", 500, 90, as_of)  # before the 12 weeks: not counted
    shipped("SKU-1", "HZ1", 500, -1, as_of)  # after the run's moment: not counted
    stock.adjust_stock("SKU-1", "HZ1", 1, "found one", ADMIN)  # an adjustment is not a sale
    run = purchasing.compute(ADMIN, as_of)
    line = line_of(run, "SKU-1")
    assert (line.sold_4w, line.sold_8w, line.sold_12w) == (56, 112, 112)
    expected_velocity = (Decimal("0.5") * 2 + Decimal("0.3") * 2 + Decimal("0.2") * Decimal(112) / 84) \
        .quantize(Decimal("0.001"))
    assert line.velocity == expected_velocity == Decimal("1.867")
    safety = math.ceil(expected_velocity * 7)  # 7 safety days of sales: 14
    target = math.ceil(expected_velocity * (10 + purchasing.REVIEW_DAYS)) + safety  # 32 + 14
    assert (line.lead_time_days, line.safety_days, line.safety_units, line.target) == (10, 7, safety, target)
    assert (line.on_hand, line.position) == (21, 21)
    assert line.suggested == target - 21 == 25
    assert run.weights == "4:0.5,8:0.3,12:0.2" and run.review_days == 7
    db.session.commit()
    event = db.session.execute(select(AuditEvent).where(AuditEvent.action == "purchasing.suggest")).scalar_one()
    assert event.after["to_order"] == 1 and event.after["units"] == 25


def test_the_position_subtracts_reserved_and_held_stock(shop):
    # SKU-1 is bought in units of safety: 30 units, no sales, so only the position decides.
    purchasing.save_supplier_sku(shop, {"sku": "SKU-1", "safety_units": 30}, ADMIN)
    db.session.commit()
    line = line_of(purchasing.compute(ADMIN), "SKU-1")
    assert (line.on_hand, line.reserved, line.held, line.position, line.suggested) == (20, 0, 0, 20, 10)
    orders.create_order(order_payload(lines=[{"sku": "SKU-1", "quantity": 5, "unit_price": "59.90"}]),
                        ADMIN)  # reserves 5
    stock.set_held("SKU-1", "HZ1", 3, "promotion", ADMIN)
    db.session.commit()
    line = line_of(purchasing.compute(ADMIN), "SKU-1")
    assert (line.on_hand, line.reserved, line.held, line.inbound) == (20, 5, 3, 0)
    assert line.position == 12 and line.suggested == 30 - 12


def test_moq_and_pack_size_round_the_order_up(shop):
    assert purchasing.order_quantity(0, 40, 12) == 0 and purchasing.order_quantity(-5, 1, 1) == 0
    assert purchasing.order_quantity(26, 1, 1) == 26
    assert purchasing.order_quantity(26, 40, 1) == 40  # at least the MOQ
    assert purchasing.order_quantity(26, 1, 12) == 36  # whole packs
    assert purchasing.order_quantity(26, 40, 12) == 48  # the MOQ, then whole packs
    purchasing.save_supplier_sku(shop, {"sku": "SKU-1", "safety_units": 30, "moq": 40, "pack_size": 12}, ADMIN)
    db.session.commit()
    line = line_of(purchasing.compute(ADMIN), "SKU-1")
    assert (line.target, line.position, line.moq, line.pack_size, line.suggested) == (30, 20, 40, 12, 48)


def test_a_sku_that_sold_nothing_is_suggested_only_below_its_safety_stock(shop):
    purchasing.save_supplier_sku(shop, {"sku": "SKU-1", "safety_units": 15}, ADMIN)
    db.session.commit()
    line = line_of(purchasing.compute(ADMIN), "SKU-1")
    assert (line.velocity, line.position, line.safety_units, line.suggested) == (Decimal("0.000"), 20, 15, 0)
    stock.adjust_stock("SKU-1", "HZ1", -16, "breakage", ADMIN)  # 4 left: below the 15 of safety stock
    db.session.commit()
    line = line_of(purchasing.compute(ADMIN), "SKU-1")
    assert (line.position, line.suggested) == (4, 11)
    # Safety stock in days of sales: no sales, no safety stock, nothing suggested even at 4 units.
    purchasing.save_supplier_sku(shop, {"sku": "SKU-1"}, ADMIN)
    db.session.commit()
    line = line_of(purchasing.compute(ADMIN), "SKU-1")
    assert (line.safety_days, line.safety_units, line.suggested) == (7, 0, 0)


def test_a_supplier_without_a_lead_time_is_listed_as_cannot_suggest_and_not_mailed(shop, client_for):
    later = purchasing.create_supplier({"code": "NEWCO", "name": "新供应商", "email": "sales@newco.example.cn"}, ADMIN)
    purchasing.save_supplier_sku(later, {"sku": "SKU-2", "safety_units": 50}, ADMIN)  # 0 on hand: would be ordered
    stock.adjust_stock("SKU-2", "HZ1", 1, "sample", ADMIN)
    db.session.commit()
    assert later.lead_time_days is None  # saved: the lead time is often learnt after the supplier is set up
    run = purchasing.compute(ADMIN)
    line = line_of(run, "SKU-2")
    assert (line.problem, line.suggested, line.lead_time_days) == ("no_lead_time", 0, None)
    assert purchasing.queue_supplier_mails(run, ADMIN) == 0  # nothing to order: no mail to NEWCO (nor TEAFARM)
    db.session.commit()
    page = client_for("ops_manager").get(f"/purchasing/?run={run.id}")
    assert page.status_code == 200
    assert "cannot suggest: supplier NEWCO has no lead time" in page.text
    assert "Supplier NEWCO has no lead time" in page.text
    # Its own lead time on the SKU lets it be suggested while the supplier's is still unknown.
    purchasing.save_supplier_sku(later, {"sku": "SKU-2", "safety_units": 50, "lead_time_days": 5}, ADMIN)
    db.session.commit()
    line = line_of(purchasing.compute(ADMIN), "SKU-2")
    assert (line.problem, line.lead_time_days, line.suggested) == (None, 5, 49)


@pytest.mark.parametrize("bad, code", [(0, "invalid_lead_time_days"), (-3, "invalid_lead_time_days"),
                                       (366, "invalid_lead_time_days"), ("ten", "invalid_lead_time_days"),
                                       (True, "invalid_lead_time_days")])
def test_a_lead_time_that_is_not_a_number_of_days_is_refused_and_changes_nothing(shop, bad, code):
    db.session.commit()
    audits = db.session.execute(select(func.count(AuditEvent.id))).scalar_one()
    with pytest.raises(ValidationFailed) as refused:
        purchasing.create_supplier({"code": "BAD", "name": "x", "lead_time_days": bad}, ADMIN)
    assert refused.value.code == code and refused.value.field == "lead_time_days"
    assert "Lead" in refused.value.message or "lead_time_days" in refused.value.message
    with pytest.raises(ValidationFailed):
        purchasing.update_supplier(shop, {"name": "西湖茶园", "lead_time_days": bad}, ADMIN)
    db.session.rollback()
    assert db.session.execute(select(Supplier.code).order_by(Supplier.code)).scalars().all() == ["TEAFARM"]
    assert db.session.get(Supplier, shop.id).lead_time_days == 10
    db.session.commit()
    assert db.session.execute(select(func.count(AuditEvent.id))).scalar_one() == audits


def test_bad_terms_and_a_sku_of_another_supplier_are_refused(shop):
    other = purchasing.create_supplier({"code": "OTHER", "name": "别家", "lead_time_days": 3}, ADMIN)
    db.session.commit()
    with pytest.raises(Conflict) as refused:
        purchasing.save_supplier_sku(other, {"sku": "SKU-1"}, ADMIN)
    assert refused.value.code == "sku_of_another_supplier" and "TEAFARM" in refused.value.message
    for field, bad in (("moq", 0), ("pack_size", -2), ("safety_units", -1)):
        with pytest.raises(ValidationFailed) as refused:
            purchasing.save_supplier_sku(shop, {"sku": "SKU-1", field: bad}, ADMIN)
        assert refused.value.field == field
    with pytest.raises(Conflict):
        purchasing.create_supplier({"code": "TEAFARM", "name": "again", "lead_time_days": 3}, ADMIN)
    db.session.rollback()
    item = db.session.execute(select(SupplierSku)).scalar_one()
    assert (item.supplier_id, item.moq, item.pack_size, item.safety_units) == (shop.id, 1, 1, None)


def test_the_portal_keeps_suppliers_audited_and_refuses_bad_input(session, client_for):
    open_shop()
    db.session.commit()
    client = client_for("ops_manager")
    token = csrf_token(client, "/purchasing/suppliers")
    refused = client.post("/purchasing/suppliers", data={"csrf_token": token, "code": "BAD", "name": "坏",
                                                         "locale": "zh_CN", "lead_time_days": "0",
                                                         "safety_days": "7"})
    assert refused.status_code == 422 and "from 1 to 365" in refused.text
    assert db.session.execute(select(func.count(Supplier.id))).scalar_one() == 0
    made = client.post("/purchasing/suppliers", data={"csrf_token": token, "code": "TEAFARM", "name": "西湖茶园",
                                                      "email": "orders@teafarm.example.cn", "locale": "en",
                                                      "lead_time_days": "", "safety_days": "7", "active": "y"})
    assert made.status_code == 303
    supplier = db.session.execute(select(Supplier)).scalar_one()
    assert supplier.lead_time_days is None and supplier.locale == "en"
    page = client.get(f"/purchasing/suppliers/{supplier.id}")
    assert "No lead time set" in page.text
    saved = client.post(f"/purchasing/suppliers/{supplier.id}/skus",
                        data={"csrf_token": token, "sku": "SKU-1", "moq": "24", "pack_size": "12"})
    assert saved.status_code == 303
    unknown = client.post(f"/purchasing/suppliers/{supplier.id}/skus", data={"csrf_token": token, "sku": "NOPE"})
    assert unknown.status_code == 422 and "Unknown SKU" in unknown.text
    changed = client.post(f"/purchasing/suppliers/{supplier.id}",
                          data={"csrf_token": token, "name": "西湖茶园", "email": "orders@teafarm.example.cn",
                                "locale": "en", "lead_time_days": "12", "safety_days": "5", "active": "y"})
    assert changed.status_code == 303
    db.session.expire_all()
    assert (supplier.lead_time_days, supplier.safety_days) == (12, 5)
    actions = db.session.execute(select(AuditEvent.action).where(AuditEvent.entity_type == "supplier")
                                 .order_by(AuditEvent.id)).scalars().all()
    assert actions == ["supplier.create", "supplier.sku_save", "supplier.update"]
    # Computing from the portal, the report with its assumptions, and the warehouse may read but not change.
    computed = client.post("/purchasing/run", data={"csrf_token": token})
    assert computed.status_code == 303
    report = client.get(computed.headers["Location"])
    assert "4 weeks × 0.5" in report.text and "12 weeks × 0.2" in report.text and "Review period: 7 days" in report.text
    assert 'data-line="SKU-1@HZ1"' in report.text
    floor = client_for("warehouse")
    assert floor.get("/purchasing/").status_code == 200
    assert floor.post("/purchasing/suppliers", data={"csrf_token": csrf_token(floor, "/purchasing/suppliers"),
                                                     "code": "X", "name": "x", "safety_days": "7"}).status_code == 403
    assert client_for("customer_service").get("/purchasing/").status_code == 403


def _sheet(content: bytes):
    workbook = load_workbook(io.BytesIO(content), read_only=True)
    rows = [list(row) for row in workbook.active.iter_rows(values_only=True)]
    return rows[0], [dict(zip(rows[0], row)) for row in rows[1:]]


def test_the_supplier_xlsx_opens_with_every_assumption(shop, client_for):
    purchasing.save_supplier_sku(shop, {"sku": "SKU-1", "supplier_code": "LJ-250", "safety_units": 30, "moq": 40,
                                        "pack_size": 12}, ADMIN)
    shop.locale = "en"
    db.session.commit()
    run = purchasing.compute(ADMIN)
    db.session.commit()
    response = client_for("ops_manager").get(f"/purchasing/runs/{run.id}/suppliers/{shop.id}.xlsx")
    assert response.status_code == 200 and response.mimetype.endswith("spreadsheetml.sheet")
    headers, rows = _sheet(response.data)
    assert "Weights (weeks: weight)" in headers and "Lead time (days)" in headers
    (row,) = rows
    assert row["SKU"] == "SKU-1" and row["Supplier's article"] == "LJ-250" and row["Warehouse"] == "HZ1"
    assert row["Weights (weeks: weight)"] == "4:0.5,8:0.3,12:0.2" and row["Lead time (days)"] == 10
    assert row["Review period (days)"] == 7 and row["Safety stock (units)"] == 30 and row["On hand"] == 20
    assert (row["MOQ"], row["Pack size"], row["Suggested quantity"]) == (40, 12, 48)


@pytest.mark.live
@pytest.mark.parametrize("live_apps", ["postgresql", "sqlite"], indirect=True)
def test_a_real_worker_runs_the_weekly_job_and_mails_each_supplier_its_xlsx(live_apps):
    from rq import Queue
    from rq.job import Job

    import tests.test_worker as worker_tests
    from jobs import queues
    from tests.smtp_sink import SmtpSink
    from tests.test_worker import _redis, _run_worker

    _redis().flushdb()  # only this test's Redis database (TEST_REDIS_URL), never FLUSHALL
    with live_apps.core.app_context():
        open_shop(units=4)
        supplier = purchasing.create_supplier({"code": "TEAFARM", "name": "West Lake Tea Farm", "locale": "en",
                                               "email": "orders@teafarm.example.cn", "lead_time_days": 10}, ADMIN)
        purchasing.save_supplier_sku(supplier, {"sku": "SKU-1", "safety_units": 20, "pack_size": 10}, ADMIN)
        silent = purchasing.create_supplier({"code": "NOLEAD", "name": "No lead time yet",
                                             "email": "x@nolead.example.cn"}, ADMIN)
        catalog.create_sku({"sku": "SKU-2", "name": "碧螺春"}, ADMIN)
        stock.adjust_stock("SKU-2", "HZ1", 1, "sample", ADMIN)
        purchasing.save_supplier_sku(silent, {"sku": "SKU-2", "safety_units": 20}, ADMIN)
        db.session.commit()
        supplier_id = supplier.id
    with SmtpSink() as server:
        original = worker_tests._worker_env
        worker_tests._worker_env = lambda url: {**original(url), "ORDERLOOM_SMTP_HOST": "127.0.0.1",
                                                "ORDERLOOM_SMTP_PORT": str(server.port)}
        try:
            queue = Queue(queues.DEFAULT, connection=_redis())
            first = queue.enqueue("jobs.purchasing.suggest_purchases")
            again = queue.enqueue("jobs.purchasing.suggest_purchases")
            sweep = queue.enqueue("jobs.notifications.send_due_notifications")
            finished = _run_worker(live_apps.url, "--simple")
        finally:
            worker_tests._worker_env = original
        assert finished.returncode == 0, f"{finished.stdout}\n{finished.stderr}"
        result = Job.fetch(first.id, connection=_redis()).return_value()
        assert result["run"] and result["week"] == purchasing.iso_week(utc_now()) and result["lines"] == 2
        assert Job.fetch(again.id, connection=_redis()).return_value() == {"run": None}  # once a week
        assert Job.fetch(sweep.id, connection=_redis()).return_value()["failed"] == 0
        (_sender, recipients, message), = server.messages  # NOLEAD has nothing to order: no mail
    assert recipients == ["orders@teafarm.example.cn"]
    assert message["Subject"] == f"Purchase suggestions for {result['week']}"
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_filename() == f"purchase-suggestions-TEAFARM-{result['week']}.xlsx"
    _headers, rows = _sheet(attachment.get_content())
    assert [(row["SKU"], row["Position"], row["Suggested quantity"]) for row in rows] == [("SKU-1", 4, 20)]
    with live_apps.core.app_context():
        row = db.session.execute(select(CustomerNotification)).scalar_one()
        assert (row.event, row.status, row.attempts, row.order_id) == ("purchase_suggestions", "sent", 1, None)
        assert row.dedupe_key == f"purchase:{result['run']}:{supplier_id}"
        run = db.session.get(PurchaseRun, result["run"])
        assert run.actor_label == "system" and run.line_count == 2
        assert db.session.execute(select(func.count(StockLevel.id))).scalar_one() == 2  # nothing else touched


def test_the_weekly_run_is_computed_once_per_week_and_scheduled(shop):
    from jobs.schedule import SCHEDULE, TIMEOUTS

    now = utc_now()
    first = purchasing.weekly(now)
    assert first is not None and first.week == purchasing.iso_week(now) and first.actor_label == "system"
    assert purchasing.weekly(now + timedelta(minutes=1)) is None
    following = purchasing.weekly(now + timedelta(days=7))
    assert following is not None and following.week != first.week
    assert ("suggest_purchases", "jobs.purchasing.suggest_purchases", 3600) in {
        (name, dotted, interval) for name, dotted, interval, _queue in SCHEDULE}
    assert TIMEOUTS["suggest_purchases"] == 600


def test_a_sku_is_removed_from_its_supplier_audited_and_an_unknown_one_is_refused(shop, client_for):
    client = client_for("warehouse_manager")
    token = csrf_token(client, f"/purchasing/suppliers/{shop.id}")
    refused = client.post(f"/purchasing/suppliers/{shop.id}/skus/SKU-2/remove", data={"csrf_token": token},
                          follow_redirects=True)
    assert "does not supply SKU SKU-2" in refused.text
    assert db.session.execute(select(func.count(SupplierSku.id))).scalar_one() == 1
    removed = client.post(f"/purchasing/suppliers/{shop.id}/skus/SKU-1/remove", data={"csrf_token": token})
    assert removed.status_code == 303
    assert db.session.execute(select(func.count(SupplierSku.id))).scalar_one() == 0
    assert db.session.execute(select(AuditEvent.action).order_by(AuditEvent.id.desc()).limit(1)).scalar_one() == \
        "supplier.sku_remove"
    assert client.get("/purchasing/suppliers/999").status_code == 404
