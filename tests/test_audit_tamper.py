"""The tamper matrix: what someone with write access to the database may do to the chained logs, each case named,
and `audit verify` catching every one, on SQLite and PostgreSQL, for audit events, the access log and the stock
ledger. Plus tampering before sealing, checkpoints edited or missing, and key rotation.
"""
import hashlib
import hmac
import json

import pytest
from sqlalchemy import text

from shared.extensions import db
from shared.services import audit, sealing, stock
from tests.factories import ADMIN

LOGS = ("audit", "access", "stock")
TABLES = {"audit": "audit_events", "access": "access_log", "stock": "stock_movements"}
CONTENT = {"audit": "reason", "access": "fields", "stock": "reason"}  # a text column each MAC covers
ATTACKER_KEY = b"the attacker's own key, not the audit key"


def _unguard(backend: str, table: str) -> None:
    """What a database superuser can do: switch the append-only triggers off."""
    if backend == "postgresql":
        db.session.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
    else:
        db.session.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_update"))
        db.session.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_delete"))


def _seal() -> None:
    sealing.seal_all(commit=db.session.commit)


def _verify(log: str) -> sealing.Report:
    return sealing.verify_all(logs=(log,))[0]


def _write_rows(count: int = 5) -> None:
    for n in range(count):
        stock.adjust_stock("SKU-1", "HZ1", 1, f"counted {n}", ADMIN)  # a ledger row and an audit event
        audit.log_access(ADMIN, "reveal", "order", f"SO-{n}", ["phone"], channel="portal")
    db.session.commit()


@pytest.fixture
def checkpoint_file(apps, tmp_path, monkeypatch):
    path = tmp_path / "audit-checkpoints.jsonl"
    monkeypatch.setitem(apps.core.config, "AUDIT_CHECKPOINT_PATH", str(path))
    return path


@pytest.fixture
def chains(stocked, checkpoint_file):
    """Every log with at least 5 sealed rows and one checkpoint."""
    _write_rows()
    _seal()
    sealing.write_checkpoints()
    db.session.commit()
    for log in LOGS:
        report = _verify(log)
        assert report.intact and report.checked >= 5 and report.checkpoints == 1, report
    return checkpoint_file


def _insert_forged_copy(table: str, seq: int) -> None:
    """Copy row #1's content as a new row at #seq with made-up MACs (no key)."""
    columns = [c.name for c in db.Model.metadata.tables[table].columns if c.name not in ("id", "seq", "chain_mac",
                                                                                        "row_mac")]
    names = ", ".join(f'"{c}"' for c in columns)
    db.session.execute(text(f"INSERT INTO {table} ({names}, seq, row_mac, chain_mac) SELECT {names}, :seq, :row_mac, "
                            f":chain_mac FROM {table} WHERE seq = 1"),
                       {"seq": seq, "row_mac": "e" * 64, "chain_mac": "f" * 64})


def _renumber_from(table: str, seq: int, by: int) -> None:
    """Shift every row from #seq on by `by` (in two steps, so the unique index never sees two rows at once)."""
    db.session.execute(text(f"UPDATE {table} SET seq = seq + 100000 WHERE seq >= :seq"), {"seq": seq})
    db.session.execute(text(f"UPDATE {table} SET seq = seq - 100000 + :by WHERE seq >= 100000"), {"by": by})


def _last_seq(table: str) -> int:
    return db.session.execute(text(f"SELECT max(seq) FROM {table}")).scalar()


# ------------------------------------------------------------------------------------------- the matrix


@pytest.mark.parametrize("log", LOGS)
def test_tamper_edit_a_sealed_row(chains, backend, log):
    _unguard(backend, TABLES[log])
    db.session.execute(text(f"UPDATE {TABLES[log]} SET {CONTENT[log]} = 'edited' WHERE seq = 3"))
    report = _verify(log)
    assert (report.problem.kind, report.problem.seq) == (sealing.EDITED, 3), report.problem


@pytest.mark.parametrize("log", LOGS)
def test_tamper_delete_a_sealed_row(chains, backend, log):
    _unguard(backend, TABLES[log])
    db.session.execute(text(f"DELETE FROM {TABLES[log]} WHERE seq = 3"))
    report = _verify(log)
    assert (report.problem.kind, report.problem.seq) == (sealing.DELETED, 3), report.problem
    assert "#3 is missing" in report.problem.detail


@pytest.mark.parametrize("log", LOGS)
def test_tamper_delete_a_row_and_renumber_the_rest(chains, backend, log):
    _unguard(backend, TABLES[log])
    db.session.execute(text(f"DELETE FROM {TABLES[log]} WHERE seq = 3"))
    _renumber_from(TABLES[log], 4, -1)
    db.session.execute(text("UPDATE audit_seals SET last_seq = last_seq - 1 WHERE log = :log"), {"log": log})
    report = _verify(log)
    assert (report.problem.kind, report.problem.seq) == (sealing.DELETED, 3), report.problem


@pytest.mark.parametrize("log", LOGS)
def test_tamper_insert_a_row_into_the_chain(chains, backend, log):
    _unguard(backend, TABLES[log])
    _renumber_from(TABLES[log], 3, 1)
    _insert_forged_copy(TABLES[log], 3)
    report = _verify(log)
    assert (report.problem.kind, report.problem.seq) == (sealing.INSERTED, 3), report.problem


@pytest.mark.parametrize("log", LOGS)
def test_tamper_insert_a_row_after_the_last(chains, backend, log):
    _insert_forged_copy(TABLES[log], _last_seq(TABLES[log]) + 1)  # an INSERT: the triggers allow it
    report = _verify(log)
    assert (report.problem.kind, report.problem.seq) == (sealing.INSERTED, _last_seq(TABLES[log])), report.problem


@pytest.mark.parametrize("log", LOGS)
def test_tamper_truncate(chains, backend, log):
    _unguard(backend, TABLES[log])
    db.session.execute(text(f"TRUNCATE TABLE {TABLES[log]}" if backend == "postgresql" else
                            f"DELETE FROM {TABLES[log]}"))
    report = _verify(log)
    assert report.problem.kind == sealing.TRUNCATED and "ends at #0" in report.problem.detail, report.problem


@pytest.mark.parametrize("log", LOGS)
def test_tamper_truncate_and_reset_the_head_to_new(chains, backend, log):
    """Wipe the log and make its head look freshly installed: the checkpoint outside the database still tells."""
    _unguard(backend, TABLES[log])
    db.session.execute(text(f"DELETE FROM {TABLES[log]}"))
    db.session.execute(text("UPDATE audit_seals SET last_seq = 0, last_mac = :genesis, legacy_seq = 0, checkpoints = 0,"
                            " head_mac = NULL, key_id = NULL WHERE log = :log"),
                       {"genesis": sealing.GENESIS, "log": log})
    report = _verify(log)
    assert report.problem.kind == sealing.TRUNCATED and "checkpoint" in report.problem.detail, report.problem


@pytest.mark.parametrize("log", LOGS)
def test_tamper_reset_the_head(chains, log):
    db.session.execute(text("UPDATE audit_seals SET last_seq = 2, last_mac = (SELECT chain_mac FROM "
                            f"{TABLES[log]} WHERE seq = 2) WHERE log = :log"), {"log": log})
    report = _verify(log)
    assert report.problem.kind == sealing.HEAD_RESET, report.problem
    with pytest.raises(sealing.SealRefused):  # and the sealer will not fork the chain from there
        sealing.seal_batch(log)


@pytest.mark.parametrize("log", LOGS)
def test_tamper_delete_the_head(chains, log):
    db.session.execute(text("DELETE FROM audit_seals WHERE log = :log"), {"log": log})
    report = _verify(log)
    assert report.problem.kind == sealing.HEAD_MISSING and not report.intact, report.problem
    with pytest.raises(sealing.SealRefused):
        sealing.seal_batch(log)


def _recompute(log: str, key: bytes, key_id: str, edit_seq: int | None = None) -> None:
    """Rewrite a whole chain consistently with `key`: every row MAC, every chain MAC, and the head."""
    table, chained = TABLES[log], sealing.LOGS[log]
    if edit_seq is not None:
        db.session.execute(text(f"UPDATE {table} SET {CONTENT[log]} = 'rewritten' WHERE seq = :seq"), {"seq": edit_seq})
    prev = sealing.GENESIS
    for row in list(sealing.sealed_rows(chained, 1000)):
        digest = sealing.row_mac(chained, row[sealing.FIELDS:], key)
        prev = sealing.chain_mac(chained, row.seq, row.id, prev, digest, key)
        db.session.execute(text(f"UPDATE {table} SET row_mac = :r, chain_mac = :c, key_id = :k WHERE id = :id"),
                           {"r": digest, "c": prev, "k": key_id, "id": row.id})
    state = db.session.get(sealing.AuditSeal, log)
    state.last_mac, state.key_id = prev, key_id
    state.head_mac = sealing.head_mac(state, key)
    db.session.flush()


@pytest.mark.parametrize("log", LOGS)
def test_tamper_recompute_the_whole_chain_without_the_key(chains, backend, log):
    _unguard(backend, TABLES[log])
    _recompute(log, ATTACKER_KEY, sealing.newest_key()[0], edit_seq=2)
    report = _verify(log)
    assert (report.problem.kind, report.problem.seq) == (sealing.KEY_MISMATCH, 1), report.problem


@pytest.mark.parametrize("log", LOGS)
def test_tamper_recompute_with_the_key_is_caught_by_the_checkpoint(chains, backend, log):
    """Even someone holding the audit key cannot rewrite history behind a checkpoint kept outside the database."""
    _unguard(backend, TABLES[log])
    _recompute(log, *reversed(sealing.newest_key()), edit_seq=2)
    report = _verify(log)
    assert (report.problem.kind, report.problem.seq) == (sealing.CHECKPOINT_MISMATCH, _last_checkpointed(chains, log))


def _last_checkpointed(path, log: str) -> int:
    return [json.loads(line) for line in path.read_text().splitlines() if json.loads(line)["log"] == log][-1]["seq"]


# ------------------------------------------------------------------------------------- before sealing


def test_an_event_edited_before_sealing_is_named(stocked, backend, checkpoint_file):
    _seal()
    _write_rows(3)
    _unguard(backend, "audit_events")
    victim = db.session.execute(text("SELECT max(id) FROM audit_events WHERE seq IS NULL")).scalar()
    db.session.execute(text("UPDATE audit_events SET reason = 'edited before sealing' WHERE id = :id"), {"id": victim})
    _seal()
    report = _verify("audit")
    assert report.problem.kind == sealing.EDITED and f"id {victim}" in report.problem.detail, report.problem


def test_an_event_inserted_before_sealing_is_named(stocked, checkpoint_file):
    _seal()
    db.session.execute(text("INSERT INTO audit_events (occurred_at, actor_label, action, entity_type, entity_id) "
                            "VALUES (CURRENT_TIMESTAMP, 'someone', 'order.transition', 'order', 'SO-1')"))
    _write_rows(1)
    _seal()
    report = _verify("audit")
    assert report.problem.kind == sealing.INSERTED and "no row MAC" in report.problem.detail, report.problem


def test_an_event_deleted_before_sealing_is_named(stocked, backend, checkpoint_file, monkeypatch):
    _seal()
    _write_rows(3)
    _unguard(backend, "audit_events")
    victim = db.session.execute(text("SELECT min(id) FROM audit_events WHERE seq IS NULL")).scalar()
    db.session.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": victim})
    _seal()
    assert _verify("audit").intact  # a gap this young may be a transaction still committing: not judged yet
    monkeypatch.setattr(sealing, "ID_GAP_GRACE", sealing.timedelta(seconds=-1))  # ... and once it is old enough
    report = _verify("audit")
    assert report.problem.kind == sealing.DELETED and f"ids {victim}..{victim}" in report.problem.detail


def test_rows_written_without_a_mac_are_macked_by_the_sealer_where_the_log_allows(stocked, checkpoint_file):
    """Stock movements written by any statement (no row MAC) are protected from their sealing on."""
    db.session.execute(text("INSERT INTO stock_movements (sku_id, warehouse_id, delta, on_hand_after, kind, reason, "
                            "created_at) SELECT sku_id, warehouse_id, 1, 21, 'adjustment', 'raw insert', "
                            "CURRENT_TIMESTAMP FROM stock_levels"))
    _seal()
    assert _verify("stock").intact
    assert db.session.execute(text("SELECT count(*) FROM stock_movements WHERE row_mac IS NULL")).scalar() == 0


# ------------------------------------------------------------------------------------------- checkpoints


def test_checkpoint_file_edited(chains):
    lines = [json.loads(line) for line in chains.read_text().splitlines()]
    lines[0]["seq"] -= 1  # pretend the checkpoint saw less
    chains.write_text("".join(json.dumps(line) + "\n" for line in lines))
    report = _verify(lines[0]["log"])
    assert report.problem.kind == sealing.CHECKPOINT_MISMATCH and "signature" in report.problem.detail


def test_checkpoint_file_missing(chains):
    chains.unlink()
    for log in LOGS:
        report = _verify(log)
        assert report.problem.kind == sealing.CHECKPOINT_MISSING, report.problem


def test_checkpoint_line_removed(chains):
    sealing.write_checkpoints()
    db.session.commit()
    lines = chains.read_text().splitlines()
    chains.write_text("\n".join(line for line in lines[:-3]) + "\n")  # the second checkpoint of every log is gone
    report = _verify("audit")
    assert report.problem.kind == sealing.CHECKPOINT_MISSING and "2 audit checkpoints" in report.problem.detail


def test_checkpoint_file_not_json(chains):
    chains.write_text("this is not a checkpoint\n")
    assert all(r.problem.kind == sealing.CHECKPOINT_MISMATCH for r in sealing.verify_all())


def test_checkpoint_lines_are_signed_with_the_audit_key(chains):
    key_id, key = sealing.newest_key()
    for line in (json.loads(raw) for raw in chains.read_text().splitlines()):
        body = json.dumps({k: v for k, v in line.items() if k != "sig"}, sort_keys=True, separators=(",", ":"))
        assert line["key_id"] == key_id and line["sig"] == hmac.new(key, body.encode(), hashlib.sha256).hexdigest()
        assert line["seq"] >= 5 and len(line["mac"]) == 64


# ------------------------------------------------------------------------------------------- keys


def test_key_rotation_old_events_still_verify(chains, apps, monkeypatch):
    old_id = sealing.newest_key()[0]
    monkeypatch.setitem(apps.core.config, "AUDIT_KEYS", ["a-brand-new-audit-key-0123456789", *apps.core.config[
        "AUDIT_KEYS"]])
    new_id = sealing.newest_key()[0]
    _write_rows(2)
    _seal()
    for log in LOGS:
        assert _verify(log).intact
    used = set(db.session.execute(text("SELECT DISTINCT key_id FROM audit_events")).scalars())
    assert {old_id, new_id} <= used
    monkeypatch.setitem(apps.core.config, "AUDIT_KEYS", ["a-brand-new-audit-key-0123456789"])  # the old key dropped
    report = _verify("audit")
    assert report.problem.kind == sealing.KEY_MISMATCH and old_id in report.problem.detail


def test_production_refuses_the_demo_audit_key(monkeypatch):
    from shared.config import load_config

    monkeypatch.setenv("ORDERLOOM_ENV", "production")
    monkeypatch.setenv("ORDERLOOM_SECRET_KEY", "s" * 40)
    monkeypatch.setenv("ORDERLOOM_DATA_KEYS", "dGVzdC1kYXRhLWtleS1mb3Itb3JkZXJsb29tLXRlc3Q=")
    monkeypatch.setenv("ORDERLOOM_INDEX_KEY", "i" * 40)  # every other production key set: only the audit key is missing
    monkeypatch.delenv("ORDERLOOM_AUDIT_KEYS", raising=False)
    with pytest.raises(RuntimeError, match="ORDERLOOM_AUDIT_KEYS"):
        load_config()
    monkeypatch.setenv("ORDERLOOM_AUDIT_KEYS", "k" * 40)
    assert load_config()["AUDIT_KEYS"] == ["k" * 40]


# ------------------------------------------------------------------------------------------- guards


@pytest.mark.parametrize("log", LOGS)
def test_database_guards_allow_only_the_one_time_seal(chains, backend, log):
    table = TABLES[log]
    refused = [f"UPDATE {table} SET {CONTENT[log]} = 'x' WHERE seq = 1", f"DELETE FROM {table} WHERE seq = 1",
               f"UPDATE {table} SET chain_mac = NULL, seq = NULL WHERE seq = 1",
               f"UPDATE {table} SET row_mac = 'x' WHERE seq = 1"]
    if backend == "postgresql":
        refused.append(f"TRUNCATE TABLE {table}")
    for statement in refused:
        with pytest.raises(Exception) as caught:
            with db.session.begin_nested():
                db.session.execute(text(statement))
        assert "append-only" in str(caught.value), statement
    _write_rows(1)
    with pytest.raises(Exception, match="append-only"):  # an unsealed row cannot be edited either
        with db.session.begin_nested():
            db.session.execute(text(f"UPDATE {table} SET {CONTENT[log]} = 'x' WHERE seq IS NULL"))
    _seal()  # while the sealer's one fill goes through
    assert _verify(log).intact


def test_the_fast_mac_is_hmac_sha256():
    for key in (b"k", b"x" * 64, b"y" * 100):
        assert sealing.mac(key, "中文 message".encode()) == hmac.new(key, "中文 message".encode(),
                                                                      hashlib.sha256).hexdigest()


def test_rows_read_for_verify_give_the_macs_they_were_written_with(chains):
    """On PostgreSQL verify reads rows through COPY as text: the same canonical fields as the values written."""
    for log in LOGS:
        chained = sealing.LOGS[log]
        key = sealing.newest_key()[1]
        rows = list(sealing.sealed_rows(chained, 2))  # small batches: the keyset paging is walked too
        assert [row.seq for row in rows] == list(range(1, len(rows) + 1))
        assert all(sealing.row_mac(chained, row[sealing.FIELDS:], key) == row.row_mac for row in rows)


def test_checkpoints_are_sent_to_the_alert_robot_and_the_checkpoint_url(chains, apps, monkeypatch):
    from tests.robot_receiver import RobotReceiver

    with RobotReceiver(answer={"errcode": 0, "errmsg": "ok"}) as robot, RobotReceiver(answer={"ok": True}) as sink:
        monkeypatch.setitem(apps.core.config, "ALERT_ROBOT_KIND", "wecom")
        monkeypatch.setitem(apps.core.config, "ALERT_ROBOT_URL", robot.url + "/cgi-bin/webhook/send?key=k")
        monkeypatch.setitem(apps.core.config, "AUDIT_CHECKPOINT_URL", sink.url + "/checkpoints")
        lines = sealing.write_checkpoints()
        db.session.commit()
        assert sealing.publish_checkpoints(lines) == {"robot": True, "url": True}
        assert sink.requests[0].json == {"checkpoints": lines}
        sent_text = json.dumps(robot.requests[0].json, ensure_ascii=False)
        assert all(f"#{line['seq']}" in sent_text and line["mac"][:16] in sent_text for line in lines)
    assert all(r.intact and r.checkpoints == 2 for r in sealing.verify_all())
