"""Retention (issue 11 item 8): periods within legal bounds, legal holds, the nightly anonymisation and purge, and
audit/access rows archived to signed files while the chains still verify; on both backends, time passed in."""
import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from jobs.retention import apply_retention
from shared.extensions import db
from shared.models import (AuditEvent, Customer, CustomerAddress, InboxItem, InvoiceProfile, LegalHold, Order,
                           OrderLine, RetentionPolicy)
from shared.security import crypto
from shared.services import audit, exports, retention, sealing, stock
from shared.services.errors import Conflict, NotFound, ValidationFailed
from shared.timekeeping import utc_now
from tests.factories import ADMIN, open_shop
from tests.portal_client import csrf_token, step_up

YEAR = timedelta(days=365)
LATER = 3 * YEAR + timedelta(days=2)  # past the default order period
PHONE = "13812345678"


def events(action: str) -> list[AuditEvent]:
    db.session.flush()
    return list(db.session.execute(select(AuditEvent).where(AuditEvent.action == action)
                                   .order_by(AuditEvent.id)).scalars())


def fresh(model, row_id):
    db.session.expire_all()
    return db.session.get(model, row_id)


@pytest.fixture
def archive(apps, tmp_path, monkeypatch):
    monkeypatch.setitem(apps.core.config, "AUDIT_ARCHIVE_DIR", str(tmp_path / "archive"))
    monkeypatch.setitem(apps.core.config, "AUDIT_CHECKPOINT_PATH", str(tmp_path / "checkpoints.jsonl"))
    return tmp_path / "archive"


# --- periods ----------------------------------------------------------------------------------------------------

def test_a_period_below_the_legal_minimum_or_above_the_maximum_is_refused_and_changes_nothing(session):
    for code, days, refusal in (("order_personal", 365, "below_legal_minimum"), ("audit", 179, "below_legal_minimum"),
                                ("access_log", 0, "below_legal_minimum"), ("order_personal", 5 * 365 + 1,
                                                                          "above_maximum"),
                                ("export_files", 31, "above_maximum"), ("audit", "ninety", "invalid_number"),
                                ("audit", True, "invalid_number")):
        with pytest.raises(ValidationFailed) as refused:
            retention.set_period(code, days, ADMIN, "shorter")
        assert refused.value.code == refusal and refused.value.field == "days", (code, days)
    with pytest.raises(ValidationFailed) as no_reason:
        retention.set_period("audit", 400, ADMIN, "  ")
    assert no_reason.value.code == "reason_required"
    with pytest.raises(NotFound):
        retention.set_period("everything", 400, ADMIN, "why not")
    db.session.flush()
    assert db.session.execute(select(func.count()).select_from(RetentionPolicy)).scalar() == 0
    assert events("retention.period_changed") == []
    assert retention.period_days("order_personal") == 3 * 365 and retention.period_days("audit") == 3 * 365


def test_a_period_within_bounds_is_kept_and_audited_with_its_reason(session):
    retention.set_period("audit", "180", ADMIN, "the legal minimum is enough for us")
    retention.set_period("order_personal", 5 * 365, ADMIN, "tax audits reach back five years")
    db.session.commit()
    assert retention.period_days("audit") == 180 and retention.period_days("order_personal") == 5 * 365
    changed = events("retention.period_changed")
    assert [(e.entity_id, e.before, e.after, e.reason) for e in changed] == [
        ("audit", {"days": 1095}, {"days": 180}, "the legal minimum is enough for us"),
        ("order_personal", {"days": 1095}, {"days": 1825}, "tax audits reach back five years")]


# --- anonymising orders and customers ------------------------------------------------------------------------------

def test_the_nightly_run_anonymises_finished_orders_keeps_their_money_and_history_and_a_rerun_changes_nothing(
        create_order):
    done = create_order(status="completed")
    cancelled = create_order(status="cancelled", phone="13900001111")
    open_order = create_order(status="confirmed", phone="13700002222")
    lines_before = [(line.sku_id, line.quantity, line.unit_price) for line in done.lines]
    history_before = len(db.session.execute(select(AuditEvent.id).where(AuditEvent.entity_id == done.order_no))
                         .all())
    total_before = done.total

    assert retention.run(utc_now() + 2 * YEAR)["order_personal"] == 0  # not due yet: nothing happens
    counts = retention.run(utc_now() + LATER)
    assert counts["order_personal"] == 2

    for order in (fresh(Order, done.id), fresh(Order, cancelled.id)):
        assert order.anonymised_at is not None
        assert (order.receiver_name, order.receiver_phone, order.street, order.postal_code) == ("", "", "", None)
        assert order.receiver_phone_index == "" and order.platform_buyer_key is None
        assert (order.province, order.city) == ("浙江省", "杭州市")  # the region stays, for the statistics
    kept = fresh(Order, done.id)
    assert kept.total == total_before and kept.status == "completed"
    assert [(line.sku_id, line.quantity, line.unit_price) for line in db.session.execute(
        select(OrderLine).where(OrderLine.order_id == done.id)).scalars()] == lines_before
    assert len(db.session.execute(select(AuditEvent.id).where(AuditEvent.entity_id == done.order_no)).all()) \
        == history_before
    # No search finds the anonymised orders by the phone any more; the open order is untouched and still found.
    by_phone = select(Order.id).where(Order.receiver_phone_index == crypto.blind_index("phone", PHONE))
    assert db.session.execute(by_phone).all() == []
    untouched = fresh(Order, open_order.id)
    assert untouched.anonymised_at is None and untouched.receiver_phone == "13700002222"

    run_event, = events("retention.run")
    assert run_event.actor_label == "system" and run_event.after["order_personal"] == 2
    assert run_event.after["customers"] == 2  # the two buyers had no other order

    snapshot = db.session.execute(select(Order.id, Order.version, Order.anonymised_at).order_by(Order.id)).all()
    again = retention.run(utc_now() + LATER)
    assert set(again.values()) == {0}
    assert db.session.execute(select(Order.id, Order.version, Order.anonymised_at).order_by(Order.id)).all() \
        == snapshot
    assert len(events("retention.run")) == 1  # a run that changed nothing writes nothing


def test_customers_lose_their_personal_data_and_account_only_once_every_order_is_anonymised(create_order):
    first = create_order(status="completed")
    second = create_order(status="confirmed")  # the same buyer (same phone), still open
    customer_id = first.customer_id
    assert second.customer_id == customer_id
    db.session.add(CustomerAddress(customer_id=customer_id, receiver="张伟", phone=PHONE, province="浙江省",
                                   city="杭州市", district="西湖区", street="文三路 90 号", is_default=True))
    db.session.add(InvoiceProfile(customer_id=customer_id, kind="individual", name="张伟", phone=PHONE,
                                  is_default=True))
    db.session.execute(db.update(Customer).where(Customer.id == customer_id).values(password_hash="x",
                                                                                    email="zw@example.com"))
    db.session.commit()

    counts = retention.run(utc_now() + LATER)
    assert (counts["order_personal"], counts["customers"]) == (1, 0)
    customer = fresh(Customer, customer_id)
    assert customer.anonymised_at is None and customer.phone == PHONE

    from shared.services import orders
    orders.transition_order(fresh(Order, second.id), "cancelled", ADMIN, reason="buyer asked")
    db.session.commit()
    counts = retention.run(utc_now() + 2 * YEAR)
    assert (counts["order_personal"], counts["customers"]) == (0, 0)  # cancelled just now: its period starts now
    counts = retention.run(utc_now() + LATER)
    assert (counts["order_personal"], counts["customers"]) == (1, 1)
    customer = fresh(Customer, customer_id)
    assert (customer.name, customer.phone, customer.email, customer.id_number) == ("", "", None, None)
    assert (customer.phone_index, customer.email_index, customer.password_hash) == ("", None, None)
    assert customer.session_generation == 1 and customer.anonymised_at is not None
    assert db.session.execute(select(CustomerAddress).where(CustomerAddress.customer_id == customer_id)).all() == []
    assert db.session.execute(select(InvoiceProfile).where(InvoiceProfile.customer_id == customer_id)).all() == []


def test_a_legal_hold_on_an_order_or_its_customer_stops_anonymising_until_released(create_order, create_user):
    held_order = create_order(status="completed")
    held_buyer = create_order(status="completed", phone="13900003333")
    free = create_order(status="completed", phone="13700004444")
    officer = create_user("dpo", "admin")
    from shared.actors import Actor
    actor = Actor.for_staff(officer)
    order_hold = retention.place_hold("order", held_order.order_no.lower(), "court request 2026-17", actor)
    retention.place_hold("customer", str(held_buyer.customer_id), "tax inspection", actor)
    db.session.commit()

    counts = retention.run(utc_now() + LATER)
    assert counts["order_personal"] == 1
    assert fresh(Order, free.id).anonymised_at is not None
    assert fresh(Order, held_order.id).receiver_phone == PHONE
    assert fresh(Order, held_buyer.id).receiver_phone == "13900003333"
    assert retention.order_hold(fresh(Order, held_buyer.id)).reason == "tax inspection"

    retention.release_hold(order_hold.id, "the court closed the case", actor)
    db.session.commit()
    assert retention.run(utc_now() + LATER)["order_personal"] == 1
    assert fresh(Order, held_order.id).anonymised_at is not None
    assert fresh(Order, held_buyer.id).anonymised_at is None
    placed, released = events("retention.hold_placed"), events("retention.hold_released")
    assert [(e.entity_type, e.entity_id, e.reason) for e in placed] == [
        ("order", held_order.order_no, "court request 2026-17"), ("customer", f"C{held_buyer.customer_id}",
                                                                  "tax inspection")]
    assert [(e.entity_id, e.reason, e.actor_id) for e in released] == [(held_order.order_no,
                                                                         "the court closed the case", officer.id)]


def test_bad_holds_are_refused_and_change_nothing(create_order):
    order = create_order(status="completed")
    hold = retention.place_hold("order", order.order_no, "dispute", ADMIN)
    db.session.commit()
    refusals = ((lambda: retention.place_hold("order", order.order_no, "again", ADMIN), Conflict, "already_held"),
                (lambda: retention.place_hold("order", "SO-NOPE", "x", ADMIN), NotFound, "unknown_order"),
                (lambda: retention.place_hold("customer", "99999999", "x", ADMIN), NotFound, "unknown_customer"),
                (lambda: retention.place_hold("customer", "1; DROP", "x", ADMIN), NotFound, "unknown_customer"),
                (lambda: retention.place_hold("sku", "SKU-1", "x", ADMIN), ValidationFailed, "invalid_hold_target"),
                (lambda: retention.place_hold("order", order.order_no, "", ADMIN), ValidationFailed, "reason_required"),
                (lambda: retention.release_hold(2 ** 40, "x", ADMIN), NotFound, "unknown_hold"),
                (lambda: retention.release_hold(str(hold.id), "", ADMIN), ValidationFailed, "reason_required"))
    holds = db.session.execute(select(LegalHold.id)).scalars().all()
    for call, error, code in refusals:
        with pytest.raises(error) as refused:
            call()
        assert refused.value.code == code
        db.session.rollback()
    assert db.session.execute(select(LegalHold.id)).scalars().all() == holds
    assert len(events("retention.hold_placed")) == 1 and events("retention.hold_released") == []


# --- payloads and export files ------------------------------------------------------------------------------------

def test_processed_payloads_are_emptied_after_their_period_failed_ones_stay(create_order):
    order = create_order()
    now = utc_now()
    old_done = InboxItem(channel_id=order.channel_id, source="webhook", content_hash="old", content_type="json",
                         body='{"receiver": "张伟"}', status="done", processed_at=now - timedelta(days=1))
    old_review = InboxItem(channel_id=order.channel_id, source="webhook", content_hash="rev", content_type="json",
                           body='{"receiver": "张伟"}', status="review", processed_at=now - timedelta(days=1))
    recent = InboxItem(channel_id=order.channel_id, source="webhook", content_hash="new", content_type="json",
                       body='{"receiver": "李娜"}', status="done", processed_at=now + timedelta(days=80))
    db.session.add_all([old_done, old_review, recent])
    db.session.commit()
    assert retention.run(now + timedelta(days=91))["inbox_payloads"] == 1
    assert (fresh(InboxItem, old_done.id).body, fresh(InboxItem, old_done.id).content_hash) == ("", "old")
    assert fresh(InboxItem, old_done.id).payload_purged_at is not None
    assert fresh(InboxItem, old_review.id).body == '{"receiver": "张伟"}'  # a person may still replay it
    assert fresh(InboxItem, recent.id).body == '{"receiver": "李娜"}'


def test_export_files_are_kept_for_retentions_period(create_order, create_user):
    from shared.actors import Actor

    create_order()
    retention.set_period("export_files", 2, ADMIN, "no file lives longer than needed")
    db.session.commit()
    export = exports.request_export("orders", "csv", {}, Actor.for_staff(create_user("ops", "ops_manager")))
    db.session.commit()
    from jobs.exports import run_export
    run_export(export.id)
    export = fresh(type(export), export.id)
    assert export.purge_after - export.finished_at == timedelta(days=2)
    counts = retention.run(export.finished_at + timedelta(days=2, minutes=1))
    assert counts["export_files"] == 1
    assert fresh(type(export), export.id).status == "purged" and fresh(type(export), export.id).content is None


# --- audit and access rows: archived, chain intact ------------------------------------------------------------------

def _old_rows(monkeypatch, when, count: int) -> None:
    """Audit events and access-log rows written as if at `when`."""
    with monkeypatch.context() as patched:  # undone on leaving, leaving the test's other patches in place
        patched.setattr(audit, "utc_now", lambda: when)
        for n in range(count):
            stock.adjust_stock("SKU-1", "HZ1", 1, f"counted {n}", ADMIN)
            audit.log_access(ADMIN, "reveal", "order", f"SO-{n}", ["phone"], channel="portal")
        db.session.commit()


def test_old_audit_and_access_rows_are_archived_signed_and_both_chains_still_verify(session, archive, monkeypatch):
    now = utc_now()
    with monkeypatch.context() as patched:
        patched.setattr(audit, "utc_now", lambda: now - 4 * YEAR)
        open_shop()  # the shop's own audit events are old too, so the oldest rows of the chain are due
        db.session.commit()
    _old_rows(monkeypatch, now - 4 * YEAR, 6)
    sealing.seal_all(commit=db.session.commit)
    sealing.write_checkpoints()  # a checkpoint that saw the rows about to be archived
    db.session.commit()
    _old_rows(monkeypatch, now - timedelta(days=10), 3)
    sealing.seal_all(commit=db.session.commit)
    before = {log: sealing.verify_all(logs=(log,))[0].checked for log in ("audit", "access")}

    counts = retention.run(now)
    assert counts["access_log"] == 6 and counts["audit"] >= 6
    for log in ("audit", "access"):
        report = sealing.verify_all(logs=(log,))[0]
        assert report.intact, report.problem
        assert report.checked == before[log]  # the walk counts from the floor: every row is still accounted for
        archived = sealing.verify_archives(log)
        assert [a.intact for a in archived] == [True] and archived[0].first == 1
    young = db.session.execute(select(func.min(AuditEvent.occurred_at))).scalar()
    assert young.replace(tzinfo=None) >= (now - timedelta(days=11)).replace(tzinfo=None)
    # The run is itself in the chain, with its counts; a second run has nothing to archive.
    assert events("retention.run")[-1].after["access_log"] == 6
    assert retention.run(now)["access_log"] == 0


def test_a_row_above_the_floor_still_cannot_be_deleted_and_a_tampered_archive_is_named(stocked, archive, monkeypatch):
    now = utc_now()
    _old_rows(monkeypatch, now - 4 * YEAR, 4)
    _old_rows(monkeypatch, now - timedelta(days=1), 2)
    sealing.seal_all(commit=db.session.commit)
    pruned = sealing.prune("access", now - YEAR)
    db.session.commit()
    assert (pruned.count, pruned.first, pruned.last) == (4, 1, 4)
    with pytest.raises(Exception, match="append-only"):
        with db.session.begin_nested():
            db.session.execute(text("DELETE FROM access_log WHERE seq = 5"))
    assert sealing.verify_all(logs=("access",))[0].intact

    lines = pruned.archive.read_text(encoding="utf-8").splitlines()
    row = json.loads(lines[2])
    row[-3] = "SO-forged"  # entity_id of the second archived row
    pruned.archive.write_text("\n".join([lines[0], lines[1], json.dumps(row, ensure_ascii=False), *lines[3:]]) + "\n",
                              encoding="utf-8")
    tampered = sealing.verify_archive(pruned.archive)
    assert not tampered.intact and "not those the header signed" in tampered.problem.detail


def test_moving_the_floor_without_the_key_is_named_by_verify(stocked, archive, monkeypatch, backend):
    _old_rows(monkeypatch, utc_now() - 4 * YEAR, 3)
    sealing.seal_all(commit=db.session.commit)
    if backend == "postgresql":
        db.session.execute(text("ALTER TABLE access_log DISABLE TRIGGER USER"))
    else:
        db.session.execute(text("DROP TRIGGER IF EXISTS access_log_no_delete"))
    db.session.execute(text("UPDATE audit_seals SET pruned_seq = 2, pruned_mac = 'f' WHERE log = 'access'"))
    db.session.execute(text("DELETE FROM access_log WHERE seq <= 2"))
    report = sealing.verify_all(logs=("access",))[0]
    # Without the key the moved floor cannot be made to fit: the walk from it (or the head's MAC) refuses.
    assert not report.intact and report.problem.kind in (sealing.KEY_MISMATCH, sealing.HEAD_RESET)


def test_the_retention_job_seals_then_runs(create_order, archive):
    create_order(status="completed")
    counts = apply_retention()
    assert set(counts) == {"order_personal", "customers", "inbox_payloads", "audit", "access_log", "export_files"}


# --- the portal -------------------------------------------------------------------------------------------------

def test_admins_change_periods_with_a_step_up_auditors_only_look(client_for, portal, create_order):
    auditor = client_for("auditor")
    page = auditor.get("/retention/")
    assert page.status_code == 200 and "E-commerce Law art. 31" in page.text and "Set period" not in page.text
    refused = auditor.post("/retention/periods/audit", data={"audit-days": "200", "audit-reason": "x",
                                                             "audit-csrf_token": csrf_token(auditor, "/retention/")})
    assert refused.status_code == 403

    admin = client_for("admin")
    step_up(admin, "admin_en")
    token = csrf_token(admin, "/retention/")
    low = admin.post("/retention/periods/audit", data={"audit-days": "30", "audit-reason": "save space",
                                                       "audit-csrf_token": token}, follow_redirects=True)
    assert "must be kept at least 180 days" in low.text and retention.period_days("audit") == 1095
    ok = admin.post("/retention/periods/audit", data={"audit-days": "400", "audit-reason": "policy 2027",
                                                      "audit-csrf_token": token}, follow_redirects=True)
    assert "set to 400 days" in ok.text and retention.period_days("audit") == 400

    order = create_order(status="completed")
    held = admin.post("/retention/holds", data={"entity_type": "order", "ref": order.order_no, "reason": "dispute",
                                                "csrf_token": token}, follow_redirects=True)
    assert "Legal hold placed" in held.text and order.order_no in held.text
    detail = admin.get(f"/orders/{order.order_no}")
    assert 'data-testid="legal-hold"' in detail.text and "dispute" in detail.text


def test_the_retention_page_speaks_chinese(client_for):
    page = client_for("admin", locale="zh_CN").get("/retention/")
    assert page.status_code == 200
    assert "保存期限" in page.text and "法律保全" in page.text and "网络安全法" in page.text


def test_an_emptied_payload_says_so_and_reveals_nothing(client_for, create_order):
    order = create_order()
    item = InboxItem(channel_id=order.channel_id, source="webhook", content_hash="gone", content_type="json",
                     body='{"receiver": "张伟"}', status="done", processed_at=utc_now() - timedelta(days=100))
    db.session.add(item)
    db.session.commit()
    retention.run()
    admin = client_for("admin")
    from shared.models import AccessLogEntry
    logged = db.session.execute(select(func.count()).select_from(AccessLogEntry)).scalar()
    shown = admin.post(f"/channels/inbox/{item.id}/payload",
                       data={"csrf_token": csrf_token(admin, f"/channels/inbox/{item.id}")})
    assert shown.status_code == 200 and "emptied by retention" in shown.text and "张伟" not in shown.text
    assert db.session.execute(select(func.count()).select_from(AccessLogEntry)).scalar() == logged
