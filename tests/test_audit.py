"""The audit trail: every edit recorded with actor and IP, append-only, hash-chained, verifiable."""
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select, text

from shared.extensions import db
from shared.models import AuditEvent
from shared.services import audit, stock
from shared.services.errors import Conflict
from tests.factories import ADMIN


def test_events_chain_and_verify(create_order):
    create_order(status="packed")
    intact, checked, problem = audit.verify_chain()
    assert intact and problem is None and checked >= 7
    events = db.session.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars().all()
    assert events[0].prev_hash == audit.GENESIS
    assert all(later.prev_hash == earlier.hash for earlier, later in zip(events, events[1:]))
    assert {e.ip for e in events if e.actor_label == "test-admin"} == {"127.0.0.1"}
    assert {e.actor_label for e in events if e.ip is None} == {"system"}  # auto-review of the paid order


def test_refused_action_writes_no_audit_event(stocked):
    before = db.session.execute(select(AuditEvent.seq)).scalars().all()
    with pytest.raises(Conflict):
        stock.adjust_stock("SKU-1", "HZ1", -100, "too much", ADMIN)
    db.session.rollback()
    assert db.session.execute(select(AuditEvent.seq)).scalars().all() == before


def test_database_refuses_update_and_delete_of_audit_events(create_order):
    for statement in ("UPDATE audit_events SET reason = 'edited'", "DELETE FROM audit_events"):
        with pytest.raises(Exception) as refused:
            with db.session.begin_nested():
                db.session.execute(text(statement))
        assert "append-only" in str(refused.value)


def _disable_guard(backend: str):
    if backend == "postgresql":
        db.session.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
    else:
        db.session.execute(text("DROP TRIGGER audit_events_no_update"))
        db.session.execute(text("DROP TRIGGER audit_events_no_delete"))


def test_verify_detects_a_tampered_row(create_order, backend):
    create_order(status="allocated")
    _disable_guard(backend)  # someone with database access bypasses the trigger
    db.session.execute(text("UPDATE audit_events SET after = :after WHERE seq = (SELECT max(seq) FROM audit_events)"),
                       {"after": '{"status": "cancelled"}'})
    intact, checked, problem = audit.verify_chain()
    assert not intact and "does not match its hash" in problem


def test_verify_detects_a_deleted_row(create_order, backend):
    create_order(status="allocated")
    _disable_guard(backend)
    db.session.execute(text("DELETE FROM audit_events WHERE seq = 2"))
    intact, _checked, problem = audit.verify_chain()
    assert not intact and "#2 is missing" in problem


def test_audit_verify_command_exits_1_on_a_broken_chain(live_apps, monkeypatch):
    from tests.conftest import TEST_DATA_KEY

    with live_apps.core.app_context():
        stock_actor = ADMIN
        from shared.services import catalog
        catalog.create_sku({"sku": "A-1", "name": "测试"}, stock_actor)
        catalog.create_sku({"sku": "A-2", "name": "测试二"}, stock_actor)
        db.session.commit()
    env = {"DATABASE_URL": live_apps.url, "ORDERLOOM_DATA_KEYS": TEST_DATA_KEY, "PATH": "/usr/bin:/bin"}
    command = [str(Path(sys.executable).parent / "orderloom"), "audit", "verify"]
    ok = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "intact: 2 events" in ok.stdout
    with live_apps.core.app_context():
        _disable_guard(live_apps.backend)
        db.session.execute(text("UPDATE audit_events SET actor_label = 'someone-else' WHERE seq = 1"))
        db.session.commit()
    broken = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert broken.returncode == 1 and "BROKEN" in broken.stderr


def test_events_of_a_rolled_back_savepoint_are_not_sealed(stocked, create_sku):
    """A failed order (its savepoint rolled back) leaves no audit event for the customer it did not create."""
    from shared.services import orders
    from shared.services.errors import InsufficientStock
    from tests.factories import order_payload

    create_sku("EMPTY-1", "无货")
    db.session.commit()
    before = db.session.execute(select(AuditEvent.seq)).scalars().all()
    with pytest.raises(InsufficientStock):
        orders.create_order(order_payload(phone="13600000000",
                                          lines=[{"sku": "EMPTY-1", "quantity": 1, "unit_price": "1.00"}]), ADMIN)
    stock.adjust_stock("SKU-1", "HZ1", 1, "found one", ADMIN)  # the session goes on and commits other work
    db.session.commit()
    actions = db.session.execute(select(AuditEvent.action).where(AuditEvent.seq.not_in(before))).scalars().all()
    assert actions == ["stock.adjust"]


def test_releasing_a_savepoint_does_not_seal_the_chain(stocked):
    """Only the real commit seals: a savepoint release must not take the chain head's lock early."""
    before = db.session.execute(select(AuditEvent.seq)).scalars().all()
    with db.session.begin_nested():
        stock.adjust_stock("SKU-1", "HZ1", 1, "inside a savepoint", ADMIN)
    assert db.session.execute(select(AuditEvent.seq)).scalars().all() == before  # not sealed yet
    db.session.commit()
    assert len(db.session.execute(select(AuditEvent.seq)).scalars().all()) == len(before) + 1
    assert audit.verify_chain()[0]
