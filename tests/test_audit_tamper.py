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


# ------------------------------------------------------------------------ the streamed walk (PostgreSQL)

AWKWARD_TEXTS = ("", "|", "~", "s3:abc", "a|b~c:d", "tab\there", "new\nline", "back\\slash", "quote ' \" ",
                 "中文客户 王伟", "emoji 😀 outside the BMP", "combining e\u0301", "nul-free \u00a0 nbsp", "x" * 500)
AWKWARD_JSON = (None, {}, [], {"total": "12.50", "tiny": "0.0000001", "big": 12345678901234567890},
                {"name": "王伟", "nested": {"list": [1, 2.5, None, True, "😀"]}}, {"s": "a|b\\c\n\"d\""}, 0.1, "text")


def _awkward_events() -> None:
    """Audit events whose fields hold what a canonical text could get wrong: NULLs, separators, escapes,
    characters beyond ASCII and beyond the BMP, JSON of every kind, big numbers, old and far times."""
    from datetime import UTC, datetime

    times = (datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC), datetime(1970, 1, 1, tzinfo=UTC),
             datetime(2026, 12, 2, 15, 4, 5, 123_456, tzinfo=UTC), datetime(2999, 1, 1, 0, 0, 0, 1, tzinfo=UTC))
    rows = []
    for n, value in enumerate(AWKWARD_TEXTS):
        values = {"occurred_at": times[n % len(times)], "actor_id": None, "actor_label": value[:120],
                  "ip": None if n % 2 else value[:64], "action": "order.edit", "entity_type": "order",
                  "entity_id": value[:64], "before": AWKWARD_JSON[n % len(AWKWARD_JSON)],
                  "after": AWKWARD_JSON[(n + 3) % len(AWKWARD_JSON)], "reason": None if n % 3 == 0 else value}
        rows.append(sealing.stamp(sealing.LOGS["audit"], values))
    db.session.execute(sealing.AuditEvent.__table__.insert(), rows)
    # JSON text as another writer may have stored it (raw unicode, odd spacing), MACed over that exact text
    for raw in ('{"名":"王伟",  "n":1.50}', '[1,\n 2]'):
        values = {"occurred_at": times[2], "actor_id": None, "actor_label": "raw", "ip": None, "action": "raw",
                  "entity_type": "order", "entity_id": "SO-raw", "before": raw, "after": None, "reason": None}
        digest = sealing.row_mac(sealing.LOGS["audit"], tuple(values[f] for f in sealing.LOGS["audit"].fields),
                                 sealing.newest_key()[1])
        db.session.execute(text("INSERT INTO audit_events (occurred_at, actor_label, action, entity_type, entity_id, "
                                "before, row_mac, key_id) VALUES (:at, 'raw', 'raw', 'order', 'SO-raw', "
                                "CAST(:raw AS JSON), :mac, :key_id)"),
                           {"at": times[2], "raw": raw, "mac": digest, "key_id": sealing.newest_key()[0]})
    db.session.commit()


def test_the_server_built_message_is_exactly_the_canonical_text(chains, backend):
    """message_sql gives, byte for byte, what content_message makes of the fields as written and as read back."""
    if backend == "sqlite":
        with pytest.raises(ValueError, match="PostgreSQL"):
            sealing.verify_log("audit", [], streamed=True)
        return
    _awkward_events()
    _seal()
    key = sealing.newest_key()[1]
    walked = {}
    for log in LOGS:
        chained = sealing.LOGS[log]
        built = dict(db.session.execute(text(f"SELECT seq, {sealing.message_sql(log)} FROM {TABLES[log]} "
                                             "WHERE seq IS NOT NULL")).all())
        rows = list(sealing.sealed_rows(chained))
        assert len(rows) == len(built) >= 5
        for row in rows:
            assert bytes(built[row.seq]) == sealing.content_message(chained, row[sealing.FIELDS:]), row
            assert sealing.mac(key, bytes(built[row.seq])) == row.row_mac, row  # the MAC made when it was written
        walked[log] = len(rows)
    assert walked["audit"] >= len(AWKWARD_TEXTS) + 2
    for log in LOGS:
        fast, slow = _both_walks(log)
        assert fast.intact and fast.checked == walked[log], fast.problem
        _same(fast, slow)


def test_no_chained_log_has_a_field_without_canonical_sql():
    for log in LOGS:
        assert sealing.message_sql(log).startswith(f"convert_to('{log}|' || ")


def _both_walks(log: str) -> tuple[sealing.Report, sealing.Report]:
    checkpoints = sealing.read_checkpoints()
    return (sealing.verify_log(log, checkpoints, streamed=True), sealing.verify_log(log, checkpoints, streamed=False))


def _both_walks_name(log: str, kind: str, seq: int | None = None) -> None:
    """The streamed walk names the problem (its kind, and its row when given) exactly as the row walk does."""
    fast, slow = _both_walks(log)
    assert fast.problem.kind == kind and (seq is None or fast.problem.seq == seq), fast.problem
    _same(fast, slow)


def _same(fast: sealing.Report, slow: sealing.Report) -> None:
    assert (fast.checked, fast.checkpoints, fast.legacy, fast.problem) == \
        (slow.checked, slow.checkpoints, slow.legacy, slow.problem)


ON_POSTGRESQL = pytest.mark.parametrize("apps", ["postgresql"], indirect=True)


@pytest.fixture
def batches(chains, backend, monkeypatch):
    """PostgreSQL, a longer chain (12+ rows per log) walked 4 rows per batch, so #6 and #7 sit in the second."""
    assert backend == "postgresql"  # the streamed walk is PostgreSQL's; SQLite walks rows (the matrix above)
    _write_rows(8)
    _seal()
    monkeypatch.setattr(sealing, "STREAM_BATCH", 4)
    for log in LOGS:
        fast, slow = _both_walks(log)
        assert fast.intact and fast.checked >= 12, fast
        _same(fast, slow)
    return backend


@ON_POSTGRESQL
@pytest.mark.parametrize("log", LOGS)
def test_streamed_walk_names_a_row_edited_in_the_second_batch(batches, log):
    _unguard(batches, TABLES[log])
    db.session.execute(text(f"UPDATE {TABLES[log]} SET {CONTENT[log]} = 'edited' WHERE seq = 6"))
    fast, slow = _both_walks(log)
    assert (fast.problem.kind, fast.problem.seq, fast.checked) == (sealing.EDITED, 6, 5), fast.problem
    _same(fast, slow)


@ON_POSTGRESQL
@pytest.mark.parametrize("log", LOGS)
def test_streamed_walk_names_a_row_deleted_in_the_second_batch(batches, log):
    _unguard(batches, TABLES[log])
    db.session.execute(text(f"DELETE FROM {TABLES[log]} WHERE seq = 7"))
    fast, slow = _both_walks(log)
    assert (fast.problem.kind, fast.problem.seq) == (sealing.DELETED, 7), fast.problem
    assert "#7 is missing" in fast.problem.detail
    _same(fast, slow)


@ON_POSTGRESQL
@pytest.mark.parametrize("log", LOGS)
def test_streamed_walk_names_a_row_deleted_at_a_batch_edge_and_the_rest_renumbered(batches, log):
    _unguard(batches, TABLES[log])
    db.session.execute(text(f"DELETE FROM {TABLES[log]} WHERE seq = 8"))  # the last row of the second batch
    _renumber_from(TABLES[log], 9, -1)
    db.session.execute(text("UPDATE audit_seals SET last_seq = last_seq - 1 WHERE log = :log"), {"log": log})
    _both_walks_name(log, sealing.DELETED, 8)


@ON_POSTGRESQL
@pytest.mark.parametrize("log", LOGS)
def test_streamed_walk_names_a_row_inserted_in_the_second_batch(batches, log):
    _unguard(batches, TABLES[log])
    _renumber_from(TABLES[log], 6, 1)
    _insert_forged_copy(TABLES[log], 6)
    _both_walks_name(log, sealing.INSERTED, 6)


@ON_POSTGRESQL
@pytest.mark.parametrize("log", LOGS)
def test_streamed_walk_names_a_row_appended_after_the_last_batch(batches, log):
    _insert_forged_copy(TABLES[log], _last_seq(TABLES[log]) + 1)
    _both_walks_name(log, sealing.INSERTED)


@ON_POSTGRESQL
def test_streamed_walk_agrees_on_recomputed_chains_and_id_gaps(batches, monkeypatch):
    _unguard(batches, "stock_movements")
    _recompute("stock", ATTACKER_KEY, "attacker", edit_seq=6)
    fast, slow = _both_walks("stock")
    assert fast.problem.kind == sealing.KEY_MISMATCH, fast.problem
    _same(fast, slow)
    _unguard(batches, "audit_events")
    _write_rows(3)
    victim = db.session.execute(text("SELECT min(id) FROM audit_events WHERE seq IS NULL")).scalar()
    db.session.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": victim})
    sealing.seal_all(commit=db.session.commit, logs=("audit",))
    _same(*_both_walks("audit"))
    monkeypatch.setattr(sealing, "ID_GAP_GRACE", sealing.timedelta(seconds=-1))
    fast, slow = _both_walks("audit")
    assert fast.problem.kind == sealing.DELETED and f"ids {victim}..{victim}" in fast.problem.detail, fast.problem
    _same(fast, slow)


@ON_POSTGRESQL
def test_streamed_walk_hands_a_refused_row_to_the_full_check_and_streams_on(batches, monkeypatch):
    """A row the tight loop cannot judge (here: every row, as for legacy rows) is checked in full, batch by
    batch, and the walk still reaches the head intact."""
    handed = []
    full_walk = sealing._walk_rows

    def counting(chained, rows, walk, *args, **kwargs):
        handed.append(walk.seq)
        return full_walk(chained, rows, walk, *args, **kwargs)

    monkeypatch.setattr(sealing, "_walk_rows", counting)
    monkeypatch.setattr(sealing, "_walk_sound", lambda name, rows, walk, pads: (1, True) if rows else (0, False))
    fast, slow = _both_walks("audit")
    assert fast.intact, fast.problem
    _same(fast, slow)
    assert handed[:3] == [0, 4, 8]  # one hand-over per batch of 4 (the last is the slow walk's own call)
