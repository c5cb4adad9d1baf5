"""The audit trail: every edit recorded with actor and IP, append-only, written without a lock, sealed into a keyed
chain, verifiable. (The tamper matrix is in test_audit_tamper.py.)"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select, text

from shared.extensions import db
from shared.models import AuditEvent, AuditSeal
from shared.services import audit, sealing, stock
from shared.services.errors import Conflict
from tests.factories import ADMIN
from tests.portal_client import exported_file


def test_events_chain_and_verify(create_order):
    create_order(status="packed")
    intact, checked, problem = audit.verify_chain()
    assert intact and problem is None and checked >= 7
    events = db.session.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars().all()
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [e.id for e in events] == sorted(e.id for e in events)  # sealed in commit (id) order
    key_id, key = sealing.newest_key()
    chained, prev = sealing.LOGS["audit"], audit.GENESIS
    for e in events:  # each chain MAC is the keyed MAC of the one before, this position and this row's MAC
        assert e.key_id == key_id and e.chain_mac == sealing.chain_mac(chained, e.seq, e.id, prev, e.row_mac, key)
        prev = e.chain_mac
    assert db.session.get(AuditSeal, "audit").last_mac == prev
    assert {e.ip for e in events if e.actor_label == "test-admin"} == {"127.0.0.1"}
    assert {e.actor_label for e in events if e.ip is None} == {"system"}  # auto-review of the paid order


def test_refused_action_writes_no_audit_event(stocked):
    before = db.session.execute(select(AuditEvent.seq)).scalars().all()
    with pytest.raises(Conflict):
        stock.adjust_stock("SKU-1", "HZ1", -100, "too much", ADMIN)
    db.session.rollback()
    assert db.session.execute(select(AuditEvent.seq)).scalars().all() == before


def test_database_refuses_update_and_delete_of_audit_events(create_order):
    audit.verify_chain()  # seal them, so that the refused update below is of sealed rows too
    for statement in ("UPDATE audit_events SET reason = 'edited'", "DELETE FROM audit_events",
                      "UPDATE audit_events SET seq = seq + 1000", "UPDATE audit_events SET chain_mac = 'x'"):
        with pytest.raises(Exception) as refused:
            with db.session.begin_nested():
                db.session.execute(text(statement))
        assert "append-only" in str(refused.value)


def _disable_guard(backend: str, table: str = "audit_events"):
    if backend == "postgresql":
        db.session.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
    else:
        db.session.execute(text(f"DROP TRIGGER {table}_no_update"))
        db.session.execute(text(f"DROP TRIGGER {table}_no_delete"))


def test_verify_detects_a_tampered_row(create_order, backend):
    create_order(status="allocated")
    audit.verify_chain()
    _disable_guard(backend)  # someone with database access bypasses the trigger
    db.session.execute(text("UPDATE audit_events SET after = :after WHERE seq = (SELECT max(seq) FROM audit_events)"),
                       {"after": '{"status": "cancelled"}'})
    intact, checked, problem = audit.verify_chain()
    assert not intact and problem.startswith("edited:") and "no longer matches its MAC" in problem


def test_verify_detects_a_deleted_row(create_order, backend):
    create_order(status="allocated")
    audit.verify_chain()
    _disable_guard(backend)
    db.session.execute(text("DELETE FROM audit_events WHERE seq = 2"))
    intact, _checked, problem = audit.verify_chain()
    assert not intact and problem.startswith("deleted:") and "#2 is missing" in problem


def test_audit_verify_command_exits_1_on_a_broken_chain(live_apps, tmp_path):
    from tests.conftest import TEST_DATA_KEY

    with live_apps.core.app_context():
        stock_actor = ADMIN
        from shared.services import catalog
        catalog.create_sku({"sku": "A-1", "name": "测试"}, stock_actor)
        catalog.create_sku({"sku": "A-2", "name": "测试二"}, stock_actor)
        db.session.commit()
    env = {"DATABASE_URL": live_apps.url, "ORDERLOOM_DATA_KEYS": TEST_DATA_KEY, "PATH": "/usr/bin:/bin",
           "ORDERLOOM_AUDIT_CHECKPOINTS": str(tmp_path / "checkpoints.jsonl"), "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    command = [str(Path(sys.executable).parent / "orderloom"), "audit", "verify"]
    ok = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "audit chain intact: 2 events" in ok.stdout, ok.stderr
    assert "stock chain intact" in ok.stdout and "access chain intact" in ok.stdout
    with live_apps.core.app_context():
        _disable_guard(live_apps.backend)
        db.session.execute(text("UPDATE audit_events SET actor_label = 'someone-else' WHERE seq = 1"))
        db.session.commit()
    broken = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert broken.returncode == 1 and "audit chain BROKEN after 0 events at #1: edited" in broken.stderr


def test_events_of_a_rolled_back_savepoint_are_not_sealed(stocked, create_sku):
    """A failed order (its savepoint rolled back) leaves no audit event for the customer it did not create."""
    from shared.services import orders
    from shared.services.errors import InsufficientStock
    from tests.factories import order_payload

    create_sku("EMPTY-1", "无货")
    db.session.commit()
    before = db.session.execute(select(AuditEvent.id)).scalars().all()
    with pytest.raises(InsufficientStock):
        orders.create_order(order_payload(phone="13600000000",
                                          lines=[{"sku": "EMPTY-1", "quantity": 1, "unit_price": "1.00"}]), ADMIN)
    stock.adjust_stock("SKU-1", "HZ1", 1, "found one", ADMIN)  # the session goes on and commits other work
    db.session.commit()
    actions = db.session.execute(select(AuditEvent.action).where(AuditEvent.id.not_in(before))).scalars().all()
    assert actions == ["stock.adjust"]


def test_releasing_a_savepoint_does_not_write_the_events(stocked):
    """Only the real commit writes a transaction's events (a savepoint release is not a commit)."""
    before = db.session.execute(select(AuditEvent.id)).scalars().all()
    with db.session.begin_nested():
        stock.adjust_stock("SKU-1", "HZ1", 1, "inside a savepoint", ADMIN)
    assert db.session.execute(select(AuditEvent.id)).scalars().all() == before  # not written yet
    db.session.commit()
    assert len(db.session.execute(select(AuditEvent.id)).scalars().all()) == len(before) + 1
    assert audit.verify_chain()[0]


def test_commit_writes_events_unsealed_in_one_insert_without_touching_the_chain_head(stocked, apps):
    """The commit path appends rows with their row MAC and no chain position; it never reads or locks the head."""
    statements = []

    rows_sent = []

    def remember(_conn, _cursor, statement, parameters, _context, executemany):
        statements.append(" ".join(statement.split()).lower())
        rows_sent.append(len(parameters) if executemany else statement.count("(") - 1)

    sa_event.listen(db.engine, "before_cursor_execute", remember)
    try:
        stock.adjust_stock("SKU-1", "HZ1", 1, "one", ADMIN)
        stock.adjust_stock("SKU-1", "HZ1", 1, "two", ADMIN)
        db.session.commit()
    finally:
        sa_event.remove(db.engine, "before_cursor_execute", remember)
    assert not [s for s in statements if "audit_seals" in s or "for update" in s or "advisory" in s]
    inserts = [(s, n) for s, n in zip(statements, rows_sent) if s.startswith("insert into audit_events")]
    # Both events in one statement: a multi-row INSERT (PostgreSQL) or one executemany of it (SQLite's driver).
    assert len(inserts) == 1 and inserts[0][1] >= 2, inserts
    rows = db.session.execute(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(2)).scalars().all()
    assert all(r.seq is None and r.chain_mac is None and r.row_mac and r.key_id for r in rows)
    window = sealing.unsealed_window("audit")
    assert window.count >= 2 and window.oldest_age_s is not None
    assert audit.verify_chain()[0]
    db.session.expire_all()
    assert all(r.seq is not None for r in db.session.execute(select(AuditEvent)).scalars())
    assert sealing.unsealed_window("audit").count == 0


ADDRESS_BEFORE = {"receiver": "张*", "phone": "173****5372", "address": "浙江省 杭州市 西湖区"}
ADDRESS_AFTER = {"receiver": "李*", "phone": "139****0001", "address": "浙江省 杭州市 滨江区"}


def _address_change_event(create_sku):
    from shared.actors import SYSTEM

    create_sku("TEA-9", "西湖龙井")
    audit.record(SYSTEM, "order.address_change", "order", "SO-AUDIT-1", before=ADDRESS_BEFORE, after=ADDRESS_AFTER,
                 reason="changed on the platform")
    db.session.commit()


def test_auditor_sees_hidden_fields_as_hidden_on_the_audit_page_and_export(client_for, create_sku):
    """The auditor's visibility is hidden for names, phones and addresses: not even the masked copies show."""
    _address_change_event(create_sku)
    auditor = client_for("auditor")
    _export_id, exported = exported_file(auditor, "audit", entity="SO-AUDIT-1")
    for page in (auditor.get("/audit/"), exported):
        body = page.get_data(as_text=True)
        assert page.status_code == 200
        for value in (*ADDRESS_BEFORE.values(), *ADDRESS_AFTER.values()):
            assert value not in body and json.dumps(value)[1:-1] not in body
        assert "[hidden]" in body and "SO-AUDIT-1" in body
    assert "西湖龙井" in auditor.get("/audit/").get_data(as_text=True)  # a SKU's name is no person's name


def test_roles_that_may_see_masked_values_still_see_them_in_the_audit_trail(client_for, create_sku):
    _address_change_event(create_sku)
    export_id, exported = exported_file(client_for("admin"), "audit", entity="SO-AUDIT-1")
    body = exported.data.decode("utf-8-sig")
    assert "173****5372" in body and "[hidden]" not in body
    lines = body.strip().splitlines()
    # The governed export's watermark line, the header, the one event.
    assert len(lines) == 3 and lines[0].startswith(f"# orderloom export {export_id} by admin_en")
    assert lines[1].startswith("seq,id,occurred_at_utc")


def test_audit_export_is_itself_access_logged(client_for, create_sku):
    from shared.models import AccessLogEntry

    _address_change_event(create_sku)
    export_id, _response = exported_file(client_for("auditor"), "audit")
    entries = db.session.execute(select(AccessLogEntry).where(AccessLogEntry.entity_id == export_id)
                                 .order_by(AccessLogEntry.id)).scalars().all()
    assert [(e.action, e.entity_type, e.channel) for e in entries] == [
        ("export", "export:audit", "export"), ("download", "export:audit", "export")]


def test_audit_page_shows_the_unsealed_window_and_verify_seals_it(client_for, create_sku):
    _address_change_event(create_sku)
    admin = client_for("admin")
    page = admin.get("/audit/").get_data(as_text=True)
    assert "Waiting to be sealed:" in page and "unsealed" in page
    html = admin.get("/audit/").get_data(as_text=True)
    token = html.split('name="csrf_token" value="')[1].split('"')[0]
    verified = admin.post("/audit/verify", data={"csrf_token": token}).get_data(as_text=True)
    assert verified.count('data-testid="chain-ok"') == 3 and "chain-broken" not in verified
    assert sealing.unsealed_window("audit").count == 0


def test_events_discarded_drops_events_only_inside_the_switch(stocked):
    """The benchmarks' diagnostic switch: commits inside it write no audit event; after it, events are written."""
    before = db.session.execute(select(func.count()).select_from(AuditEvent)).scalar()
    with audit.events_discarded():
        audit.record(ADMIN, "order.note", "order", "SO-1", reason="dropped")
        db.session.commit()
    assert db.session.execute(select(func.count()).select_from(AuditEvent)).scalar() == before
    audit.record(ADMIN, "order.note", "order", "SO-1", reason="kept")
    db.session.commit()
    assert db.session.execute(select(AuditEvent.reason).order_by(AuditEvent.id.desc()).limit(1)).scalar() == "kept"
