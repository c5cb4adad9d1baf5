"""Keyed chains over the append-only logs (audit events, access log, stock ledger): sealing and verifying.

One mechanism for every log. The commit path only appends rows, each with an HMAC of its content (row_mac)
when the writer can make one; no row is locked. A sealer (a job every second, and `audit verify`) then takes
the unsealed rows of a log in id order and gives each the next sequence number and a chain MAC,
HMAC(key, log | seq | id | previous chain MAC | row_mac). Only one sealer per log runs at a time: a
PostgreSQL advisory lock, then the log's head row in `audit_seals` (locked, and updated only if it still
says what the sealer read); on SQLite the single writer lock does the same.

Verifying walks a chain in sequence order and names the first problem: an edited row (content no longer
matches its row MAC), a deleted one (a gap in the sequence, or an id gap among audit events), an inserted
one (no row MAC, or a row the chain does not account for), a truncated chain (shorter than the head or a
checkpoint says), a head reset or missing, a key mismatch (MACs made without a configured key, e.g. the
whole chain recomputed), and a checkpoint mismatch (a signed checkpoint outside the database that the chain
no longer contains). Keys come from ORDERLOOM_AUDIT_KEYS (newest first); every row records the id of the
key that sealed it, so old rows still verify after rotation while their key stays in the list.
"""
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from collections import Counter, namedtuple
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from flask import current_app
from sqlalchemy import (BigInteger, Boolean, Integer, String, Table, Text, bindparam, cast, extract, func, insert,
                        select, update)

from shared.extensions import db
from shared.models import AccessLogEntry, AuditEvent, AuditSeal, AuditVerified, StockMovement
from shared.models.types import UTCDateTime
from shared.timekeeping import utc_now

log = logging.getLogger("orderloom.audit")

GENESIS = "0" * 64
LEGACY_KEY_ID = "sha256"  # audit events chained before keyed sealing (migration 0006): unkeyed hash chain
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# An id missing among audit events is a deletion once every later event is this old (a younger gap may be a
# transaction still committing: ids are drawn when a transaction writes, not when it commits).
ID_GAP_GRACE = timedelta(minutes=10)

# The kinds of problem verify names.
EDITED, DELETED, INSERTED, TRUNCATED = "edited", "deleted", "inserted", "truncated"
HEAD_RESET, HEAD_MISSING, KEY_MISMATCH = "head reset", "head missing", "key mismatch"
CHECKPOINT_MISMATCH, CHECKPOINT_MISSING = "checkpoint mismatch", "checkpoint missing"


@dataclass(frozen=True)
class ChainedLog:
    """One append-only table kept as a chain: which columns its MAC covers, in a fixed order."""

    name: str
    model: type
    fields: tuple[str, ...]
    row_mac_required: bool  # True: every row must be written with its row MAC (the application always does)
    time_field: str
    id_gaps_are_deletions: bool = False  # True when rows are written only at commit, so ids have no holes
    json_fields: tuple[str, ...] = ()

    @property
    def table(self) -> Table:
        return self.model.__table__

    @property
    def time_index(self) -> int:
        return FIELDS + self.fields.index(self.time_field)


LOGS: dict[str, ChainedLog] = {
    "audit": ChainedLog("audit", AuditEvent, ("occurred_at", "actor_id", "actor_label", "ip", "action", "entity_type",
                                              "entity_id", "before", "after", "reason"),
                        row_mac_required=True, time_field="occurred_at", id_gaps_are_deletions=True,
                        json_fields=("before", "after")),
    "access": ChainedLog("access", AccessLogEntry, ("occurred_at", "actor_id", "actor_label", "ip", "action",
                                                    "entity_type", "entity_id", "fields", "channel"),
                         row_mac_required=False, time_field="occurred_at"),
    # Stock movements are written by the stock services in their own statements; the sealer MACs those
    # written without one, so a ledger row is protected from its sealing (about a second) on.
    "stock": ChainedLog("stock", StockMovement, ("sku_id", "warehouse_id", "delta", "on_hand_after", "kind", "reason",
                                                 "order_id", "actor_id", "created_at"),
                        row_mac_required=False, time_field="created_at"),
}


class SealRefused(Exception):
    """The sealer will not extend a chain whose head does not match its last sealed row."""


# ---------------------------------------------------------------------------------------------- keys


def key_id_of(key: str) -> str:
    """A short public name for a key: who sealed a row, without revealing the key."""
    return hashlib.sha256(b"orderloom-audit-key:" + key.encode()).hexdigest()[:12]


@lru_cache(maxsize=8)
def _ring(keys: tuple[str, ...]) -> tuple[tuple[str, bytes], ...]:
    if not keys:
        raise RuntimeError("no audit key configured: set ORDERLOOM_AUDIT_KEYS")
    return tuple((key_id_of(k), k.encode()) for k in keys)


def key_ring() -> tuple[tuple[str, bytes], ...]:
    """(key id, key) pairs, newest first, from ORDERLOOM_AUDIT_KEYS."""
    return _ring(tuple(current_app.config["AUDIT_KEYS"]))


def newest_key() -> tuple[str, bytes]:
    return key_ring()[0]


def keys_by_id() -> dict[str, bytes]:
    return dict(key_ring())


def new_audit_key() -> str:
    
    return secrets.token_urlsafe(32)


# ---------------------------------------------------------------------------------------------- MACs


def _text(value) -> str:
    """The canonical text of one field value, tagged by kind; fields keep fixed positions, so no two rows collide."""
    if value is None:
        return "~"
    if isinstance(value, str):
        return f"s{len(value)}:{value}"
    if isinstance(value, datetime):  # the instant in microseconds, as PostgreSQL hands it to verify directly
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return f"i{(value - EPOCH) // timedelta(microseconds=1)}"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, (int, Decimal)):
        return f"i{value}"
    raise TypeError(f"no canonical text for {type(value).__name__}")


def stored_json(value) -> str:
    """A JSON column's text exactly as SQLAlchemy writes it (and both databases keep it): what a row MAC covers, so
    verify reads the text back instead of parsing and re-serialising every event."""
    return json.dumps(value)


def canonical_fields(chained: ChainedLog, values) -> tuple:
    """A row's MACed fields, in order, in stored form, from the Python values about to be written."""
    return tuple(stored_json(values[name]) if name in chained.json_fields else values[name]
                 for name in chained.fields)


def content_message(chained: ChainedLog, fields) -> bytes:
    """What a row MAC covers: the log's name and its fields (in stored form, see `_columns`) in order."""
    return (chained.name + "|" + "|".join(map(_text, fields))).encode()


def _field_sql(chained: ChainedLog, name: str) -> str:
    """PostgreSQL: `_text` of one stored field as SQL over the log's table (a NULL field makes the whole `||`
    NULL, which coalesce turns into ~)."""
    column = chained.table.c[name]
    quoted = f'"{column.name}"'
    if name in chained.json_fields:
        quoted = f"{quoted}::text"
    elif isinstance(column.type, UTCDateTime):  # microseconds since 1970, exactly: extract gives numeric
        return f"coalesce('i' || (extract(epoch from {quoted}) * 1000000)::bigint::text, '~')"
    elif isinstance(column.type, Boolean):
        return f"coalesce(CASE WHEN {quoted} THEN 't' ELSE 'f' END, '~')"
    elif isinstance(column.type, Integer):
        return f"coalesce('i' || {quoted}::text, '~')"
    elif not isinstance(column.type, String):  # Text is a String; a Numeric would print unlike str(Decimal)
        raise TypeError(f"no canonical SQL for {chained.name}.{name} ({column.type})")
    # s<characters>:<text>; length() counts characters, as len() does
    return f"coalesce('s' || length({quoted})::text || ':' || {quoted}, '~')"


@lru_cache(maxsize=8)
def message_sql(log_name: str) -> str:
    """PostgreSQL: an SQL expression over the log's table whose value (bytea) is exactly `content_message` of the
    row, so verify gets one value per row instead of building the text from ten fields in Python. A test holds
    the two equal over NULLs, unicode, JSON, large integers and timestamps. (`||` measured 15 % less server CPU
    than one concat(), which calls an output function per argument.)"""
    chained = LOGS[log_name]
    fields = " || '|' || ".join(_field_sql(chained, name) for name in chained.fields)
    return f"convert_to('{chained.name}|' || {fields}, 'UTF8')"


@lru_cache(maxsize=16)
def _pads(key: bytes):
    """HMAC-SHA256's inner and outer states for a key, computed once: each MAC then costs two hash copies
    instead of a new HMAC object (the difference is half of verify's time over a million rows)."""
    block = (hashlib.sha256(key).digest() if len(key) > 64 else key).ljust(64, b"\0")
    return (hashlib.sha256(bytes(b ^ 0x36 for b in block)), hashlib.sha256(bytes(b ^ 0x5C for b in block)))


def mac(key: bytes, message: bytes) -> str:
    """HMAC-SHA256 of message under key, as hex (the same value hmac.new(key, message, sha256) gives)."""
    inner, outer = _pads(key)
    inner, outer = inner.copy(), outer.copy()
    inner.update(message)
    outer.update(inner.digest())
    return outer.hexdigest()


def row_mac(chained: ChainedLog, fields, key: bytes) -> str:
    return mac(key, content_message(chained, fields))


def chain_mac(chained: ChainedLog, seq: int, row_id: int, prev: str, digest: str | None, key: bytes) -> str:
    return mac(key, f"{chained.name}|{seq}|{row_id}|{prev}|{digest or '~'}".encode())


def head_mac(state: AuditSeal, key: bytes) -> str:
    message = (f"head|{state.log}|{state.last_seq}|{state.last_mac}|{state.legacy_seq}|{state.checkpoints}"
               f"|{state.key_id}")
    if state.pruned_seq:  # a floor moved by retention is covered too (a head never pruned keeps its old MAC)
        message += f"|pruned|{state.pruned_seq}|{state.pruned_mac}"
    return mac(key, message.encode())


def legacy_hash(prev: str, row) -> str:
    """The unkeyed sha256 chain of audit events sealed before migration 0006 (kept verifiable, never extended)."""
    values = dict(zip(LOGS["audit"].fields, row[FIELDS:], strict=True))
    when = values["occurred_at"]
    when = EPOCH + timedelta(microseconds=when) if isinstance(when, int) else when.replace(tzinfo=when.tzinfo or UTC)
    payload = {**values, "seq": row.seq, "occurred_at": when.isoformat(),
               "before": json.loads(values["before"]) if values["before"] is not None else None,
               "after": json.loads(values["after"]) if values["after"] is not None else None}
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256((prev + canonical).encode()).hexdigest()


def stamp(chained: ChainedLog, values: dict) -> dict:
    """Give a row about to be written its row MAC and key id (values is changed and returned)."""
    key_id, key = newest_key()
    values["row_mac"], values["key_id"] = row_mac(chained, canonical_fields(chained, values), key), key_id
    return values


# ---------------------------------------------------------------------------------------------- sealing

# Tests set this to stop a sealer between its row updates and its head update, as a crash would.
_after_rows_hook = None


_BUSY = object()


def _take_log(chained: ChainedLog):
    """Become the one sealer of this log for the current transaction: its head row, None if the head is missing,
    or _BUSY when another sealer has the log (PostgreSQL; on SQLite BEGIN IMMEDIATE already holds the writer lock).
    """
    session = db.session
    if session.get_bind().dialect.name == "postgresql":
        # Advisory locks are per database, not per schema: the schema is part of the key, so two installations
        # (or test runs) in one database never take each other's sealer lock.
        key = func.hashtext(func.concat("orderloom-seal-", func.current_schema(), "-", chained.name))
        got = session.execute(select(func.pg_try_advisory_xact_lock(key)))
        if not got.scalar():
            return _BUSY
    return session.execute(select(AuditSeal).where(AuditSeal.log == chained.name).with_for_update()).scalar_one_or_none()


def _refuse_bad_head(chained: ChainedLog, state: AuditSeal | None) -> None:
    """Refuse to extend a chain whose head was reset or whose last row does not match it."""
    if state is None or state.last_mac is None:
        raise SealRefused(f"{chained.name}: the chain head (audit_seals row) is missing; run `orderloom audit verify`")
    last_seq, last_mac = _chain_end(chained, state)
    if (last_seq, last_mac) != (state.last_seq, state.last_mac):
        raise SealRefused(f"{chained.name}: the head says #{state.last_seq} but the chain ends at #{last_seq}; "
                          f"run `orderloom audit verify`")
    if state.head_mac is not None:
        key = keys_by_id().get(state.key_id or "")
        if key is None or not hmac.compare_digest(head_mac(state, key), state.head_mac):
            raise SealRefused(f"{chained.name}: the head row was changed outside the sealer")


def _chain_end(chained: ChainedLog, state) -> tuple[int, str]:
    """The last sealed row's (seq, chain MAC); with every row pruned, the floor the head keeps."""
    table = chained.table
    last = db.session.execute(select(table.c.seq, table.c.chain_mac).where(table.c.seq.is_not(None))
                              .order_by(table.c.seq.desc()).limit(1)).first()
    if last is not None:
        return last[0], last[1]
    return (state.pruned_seq, state.pruned_mac) if state.pruned_seq else (0, GENESIS)


def _write_head(state: AuditSeal, read_seq: int, **changes) -> None:
    """Move the head, only if it still says what this sealer read (a second sealer cannot fork the chain)."""
    for name, value in changes.items():
        setattr(state, name, value)
    state.key_id, key = newest_key()
    state.head_mac = head_mac(state, key)
    values = {name: getattr(state, name) for name in ("last_seq", "last_mac", "sealed_at", "checkpoints",
                                                      "checkpoint_at", "key_id", "head_mac", "pruned_seq",
                                                      "pruned_mac")}
    db.session.expire(state)
    moved = db.session.execute(update(AuditSeal).where(AuditSeal.log == state.log, AuditSeal.last_seq == read_seq)
                               .values(**values).execution_options(synchronize_session=False))
    if moved.rowcount != 1:
        raise SealRefused(f"{state.log}: another sealer moved the head meanwhile")


def seal_batch(log_name: str, limit: int = 5000) -> int | None:
    """Seal up to `limit` unsealed rows of one log in id order, in the caller's transaction (the caller commits).

    Returns how many rows were sealed, or None when another sealer holds the log.
    """
    chained = LOGS[log_name]
    table = chained.table
    state = _take_log(chained)
    if state is _BUSY:
        return None
    _refuse_bad_head(chained, state)
    rows = db.session.execute(select(*_columns(chained)).where(table.c.seq.is_(None)).order_by(table.c.id)
                              .limit(limit)).all()
    if not rows:
        return 0
    ring = keys_by_id()
    newest_id = newest_key()[0]
    seq, prev, read_seq = state.last_seq, state.last_mac, state.last_seq
    seals = []
    for row in rows:
        seq += 1
        key_id = row.key_id if row.key_id in ring else newest_id
        key = ring[key_id]
        digest = row.row_mac
        if digest is None and not chained.row_mac_required:
            digest = row_mac(chained, row[FIELDS:], key)  # a row its writer did not MAC: protected from now on
        prev = chain_mac(chained, seq, row.id, prev, digest, key)
        seals.append({"b_id": row.id, "b_seq": seq, "b_row_mac": digest, "b_chain_mac": prev, "b_key_id": key_id})
    statement = (update(table).where(table.c.id == bindparam("b_id"), table.c.seq.is_(None))
                 .values(seq=bindparam("b_seq"), row_mac=bindparam("b_row_mac"), chain_mac=bindparam("b_chain_mac"),
                         key_id=bindparam("b_key_id")))
    result = db.session.connection().execute(statement, seals)
    if db.session.get_bind().dialect.supports_sane_multi_rowcount and result.rowcount != len(seals):
        raise SealRefused(f"{log_name}: {len(seals) - result.rowcount} rows were sealed by someone else meanwhile")
    if _after_rows_hook is not None:
        _after_rows_hook(log_name, seals)
    _write_head(state, read_seq, last_seq=seq, last_mac=prev, sealed_at=utc_now())
    return len(seals)


def seal_all(commit, limit: int = 5000, logs=None) -> dict[str, int | None]:
    """Seal every log until nothing is left, committing (by calling `commit`) after each batch."""
    sealed: dict[str, int | None] = {}
    for name in logs or LOGS:
        total = 0
        while True:
            count = seal_batch(name, limit)
            commit()
            if count is None:
                total = None if total == 0 else total
                break
            total += count
            if count < limit:
                break
        sealed[name] = total
    return sealed


def head_to_chain_end(log_name: str) -> int:
    """For tools that wrote an already sealed chain straight into the table (benchmarks, restores): point the log's
    head at the chain's last row and MAC it, in the caller's transaction. Returns the last sequence number.
    Verify still checks every row: a head moved onto a chain that does not hold is no help to anyone."""
    chained = LOGS[log_name]
    state = _take_log(chained)
    if state is _BUSY or state is None:
        raise SealRefused(f"{log_name}: the head is missing or another sealer holds the log")
    last_seq, last_mac = _chain_end(chained, state)
    _write_head(state, state.last_seq, last_seq=last_seq, last_mac=last_mac, sealed_at=utc_now())
    return last_seq


@dataclass
class Window:
    """The rows of one log not sealed yet: how many, and how long the oldest has waited."""

    log: str
    count: int
    oldest_age_s: float | None


def unsealed_window(log_name: str) -> Window:
    chained = LOGS[log_name]
    table = chained.table
    count, oldest = db.session.execute(select(func.count(), func.min(table.c[chained.time_field]))
                                       .where(table.c.seq.is_(None))).one()
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    age = max(0.0, (utc_now() - oldest).total_seconds()) if oldest is not None else None
    return Window(log_name, count, age)


# ---------------------------------------------------------------------------------------------- verifying


@dataclass
class Problem:
    kind: str
    seq: int | None
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


@dataclass
class Report:
    log: str
    checked: int = 0
    checkpoints: int = 0
    problem: Problem | None = None
    window: Window | None = None
    legacy: int = 0
    hashed: int = 0  # rows whose MACs this verify computed (a verify from a verified point skips the rows before it)
    since: int | None = None  # the verified point the walk started from (`verify_log(since=...)`), None: the floor
    reached: "Verified | None" = None  # where the walk ended (sequence number and chain MAC)

    @property
    def intact(self) -> bool:
        return self.problem is None


@dataclass
class _Walk:
    """The state of one chain walk."""

    seq: int = 0
    prev: str = GENESIS
    macs_wanted: dict[int, str | None] = field(default_factory=dict)
    hashed: int = 0


def _verify_row(chained: ChainedLog, row, walk: _Walk, ring: dict, state: "_Head", upcoming) -> Problem | None:
    """Check one sealed row against the chain so far; None if it is sound."""
    seq = row.seq
    if row.key_id == LEGACY_KEY_ID and chained.name == "audit" and seq <= state.legacy_seq:
        if legacy_hash(walk.prev, row) != row.chain_mac:
            return Problem(EDITED, seq, f"event #{seq} (id {row.id}) does not match its legacy hash")
        return None
    key = ring.get(row.key_id or "")
    if key is None:
        return Problem(KEY_MISMATCH, seq, f"#{seq} (id {row.id}) was sealed with key {row.key_id!r}, which is "
                                          f"not in ORDERLOOM_AUDIT_KEYS")
    digest = row.row_mac
    if digest is None and chained.row_mac_required:
        return Problem(INSERTED, seq, f"#{seq} (id {row.id}) has no row MAC: it was not written by the "
                                      f"application")
    content_ok = digest is not None and hmac.compare_digest(row_mac(chained, row[FIELDS:], key), digest)
    chain_ok = row.chain_mac is not None and hmac.compare_digest(
        chain_mac(chained, seq, row.id, walk.prev, digest, key), row.chain_mac)
    if content_ok and chain_ok:
        return None
    if chain_ok:
        return Problem(EDITED, seq, f"#{seq} (id {row.id}) was changed after it was written: its content no "
                                    f"longer matches its MAC")
    following = upcoming()
    if content_ok:
        # A genuine row out of place: if the next row chains onto it as it was sealed, rows before it were removed
        # and the rest renumbered; otherwise its chain MAC itself was recomputed.
        if following is not None and _chains_on(chained, following, row.chain_mac, ring, following.seq + 1):
            return Problem(DELETED, seq, f"#{seq} (id {row.id}) does not follow #{seq - 1}: an event before it "
                                         f"was removed and the later ones renumbered")
    elif _chains_on(chained, following, walk.prev, ring, seq) or (following is None and seq == state.last_seq + 1):
        # Neither MAC holds, and the next row chains on as if this one were not there (or the head ends just
        # before it): this one was slipped in.
        return Problem(INSERTED, seq, f"#{seq} (id {row.id}) was inserted into the chain")
    return Problem(KEY_MISMATCH, seq, f"#{seq} (id {row.id}) does not match its MACs under the configured key: "
                                      f"the chain was rewritten or recomputed without the key")


def _chains_on(chained: ChainedLog, row, prev: str, ring: dict, *seqs: int) -> bool:
    """Whether a row's chain MAC holds on top of `prev`, at its own sequence number or one of `seqs`."""
    if row is None or row.chain_mac is None or ring.get(row.key_id or "") is None:
        return False
    key = ring[row.key_id]
    return any(hmac.compare_digest(chain_mac(chained, s, row.id, prev, row.row_mac, key), row.chain_mac)
               for s in {row.seq, *seqs})


FIELDS = 5  # a fetched row: id, seq, row_mac, chain_mac, key_id, then the log's fields in stored form


def _columns(chained: ChainedLog) -> list:
    """The columns a sealer or verifier reads, the MACed fields in stored form: JSON as its text, and on
    PostgreSQL time as microseconds since 1970 (no datetime objects to build for a million rows)."""
    table = chained.table
    postgres = db.session.get_bind().dialect.name == "postgresql"
    fields = []
    for name in chained.fields:
        column = table.c[name]
        if name in chained.json_fields:
            column = cast(column, Text)
        elif isinstance(column.type, UTCDateTime) and postgres:
            column = cast(extract("epoch", column) * 1_000_000, BigInteger)
        fields.append(column.label(name))
    return [table.c.id, table.c.seq, table.c.row_mac, table.c.chain_mac, table.c.key_id, *fields]


def _rows(chained: ChainedLog, batch: int, after: int = 0):
    """The sealed rows after #`after` in sequence order, streamed in keyset batches."""
    if db.session.get_bind().dialect.name == "postgresql":
        yield from _rows_by_cursor(chained, batch, after)
        return
    table = chained.table
    columns = _columns(chained)
    last = after
    while True:
        chunk = db.session.execute(select(*columns).where(table.c.seq > last).order_by(table.c.seq)
                                   .limit(batch)).all()
        if not chunk:
            return
        yield from chunk
        last = chunk[-1].seq


@lru_cache(maxsize=8)
def _row_type(name: str):
    return namedtuple(f"{name.title()}Row", ["id", "seq", "row_mac", "chain_mac", "key_id", *LOGS[name].fields])


def _rows_by_cursor(chained: ChainedLog, batch: int, after: int = 0):
    """PostgreSQL: the same rows as plain tuples from one server-side cursor, `batch` rows per round trip,
    without SQLAlchemy's per-row objects (a third of verify's time over a million rows)."""
    table = chained.table
    query = select(*_columns(chained)).where(table.c.seq > int(after)).order_by(table.c.seq)
    connection = db.session.connection()
    sql = str(query.compile(connection.engine, compile_kwargs={"literal_binds": True}))
    with connection.connection.driver_connection.cursor(name=f"verify_{chained.name}_{secrets.token_hex(4)}") \
            as cursor:
        cursor.itersize = batch
        cursor.execute(sql)
        yield from cursor


def sealed_rows(chained: ChainedLog, batch: int = 5000):
    """The sealed rows in sequence order, each with named fields (id, seq, row_mac, chain_mac, key_id, ...)."""
    make = _row_type(chained.name)
    for row in _rows(chained, batch):
        yield make(*row)


def _sound(chained: ChainedLog, row, prev: str, ring: dict) -> bool:
    """The common case, checked fast on a plain tuple: a keyed row whose two MACs hold on top of `prev`."""
    key = ring.get(row[4])
    digest = row[2]
    if key is None or digest is None:
        return False
    return (mac(key, content_message(chained, row[FIELDS:])) == digest
            and mac(key, f"{chained.name}|{row[1]}|{row[0]}|{prev}|{digest}".encode()) == row[3])


# PostgreSQL verify reads this many rows per query (keyset on seq): memory stays flat (~30 MB a batch of audit
# events).
STREAM_BATCH = 50_000


def verify_log(log_name: str, checkpoints: list[dict] | None, batch: int = 20000,
               streamed: bool | None = None, since: "Verified | None" = None) -> Report:
    """Walk one chain, then hold it against its head and its checkpoints; the report names the first problem.

    `since` (a point an earlier full verify reached, `verified_point`) starts the walk there instead of on the
    pruned floor: only rows sealed after it are hashed. What is still checked below it, without hashing: the row at
    that point still carries the MAC the verify saw, as many rows lie between the floor and it as their sequence
    numbers say (none deleted or slipped in), and each checkpoint below it matches its row's chain MAC. What is not:
    a row below it edited without touching its MACs; `audit verify` (no `since`) walks everything.

    `streamed` chooses the walk: True (the default on PostgreSQL) reads each row's MAC message as built by the
    server (`message_sql`) through COPY and checks the MACs in a tight loop; a row that loop refuses is read
    again in full and checked by `_verify_row`, so the report is the same. False reads every field (SQLite's
    only way; kept on PostgreSQL to compare the two).
    """
    chained = LOGS[log_name]
    report = Report(log_name, window=unsealed_window(log_name))
    state = _read_head(log_name)
    if state is None or state.last_mac is None:
        report.problem = Problem(HEAD_MISSING, None, f"the {log_name} chain head (audit_seals row) is missing")
        return report
    postgres = db.session.get_bind().dialect.name == "postgresql"
    streamed = postgres if streamed is None else streamed
    if streamed and not postgres:
        raise ValueError("a streamed verify reads through PostgreSQL COPY")
    ring = keys_by_id()
    mine = [c for c in (checkpoints or []) if c.get("log") == log_name]
    problem = _check_checkpoint_signatures(mine, ring)
    # Rows below the head's pruned floor were archived by retention (`prune`, `verify_archive`): the walk starts on
    # the floor, and checkpoints older than it are the archive's to answer for.
    walk = _Walk(seq=state.pruned_seq, prev=state.pruned_mac or GENESIS,
                 macs_wanted={c["seq"]: None for c in mine if c.get("seq", 0) > state.pruned_seq})
    if state.pruned_seq:
        walk.macs_wanted[state.pruned_seq] = state.pruned_mac
    ids_seen = [] if chained.id_gaps_are_deletions and not streamed else None
    if problem is None and since is not None and state.pruned_seq <= since.seq <= state.last_seq and since.seq:
        problem = _start_from(chained, since, walk, state, ids_seen)
        report.since = since.seq
    if problem is None:
        if streamed:
            problem = _walk_streamed(chained, walk, ring, state, report)
        else:
            problem = _walk_rows(chained, _rows(chained, batch, walk.seq), walk, ring, state, report, ids_seen)
    report.checked, report.hashed = walk.seq, walk.hashed
    HASHED[log_name] += walk.hashed
    if problem is None:
        problem = _check_head(state, walk, ring)
    if problem is None:
        problem = _check_checkpoints(log_name, mine, walk, state)
    if problem is None and chained.id_gaps_are_deletions:
        problem = _check_id_gaps_sql(chained) if streamed else _check_id_gaps(chained, ids_seen)
    report.checkpoints = len(mine)
    report.problem = problem
    report.reached = Verified(walk.seq, walk.prev)
    return report


# Rows hashed by verify_log, per log, since the process started: what a verify from a verified point saves shows here.
HASHED: Counter = Counter()


@dataclass(frozen=True)
class Verified:
    """A point a full verify of a log reached: its sequence number and chain MAC there."""

    seq: int
    mac: str


def verified_signature(log_name: str, point: Verified, key: bytes) -> str:
    return mac(key, f"verified|{log_name}|{point.seq}|{point.mac}".encode())


def verified_point(log_name: str) -> Verified | None:
    """The last verified point of a log, when its row is signed by a configured audit key (a row written or changed
    without the key is not trusted: the verify then starts from the floor)."""
    row = db.session.execute(select(AuditVerified.seq, AuditVerified.mac, AuditVerified.key_id, AuditVerified.sig)
                             .where(AuditVerified.log == log_name)).first()
    if row is None:
        return None
    key = keys_by_id().get(row.key_id or "")
    point = Verified(row.seq, row.mac)
    if key is None or not hmac.compare_digest(verified_signature(log_name, point, key), row.sig or ""):
        log.warning("audit_verified log=%s: signature fails, ignored", log_name)
        return None
    return point


def record_verified(log_name: str, report: Report, point: Verified) -> bool:
    """Keep how far an intact verify reached (only forward: a slower verify never moves it back); the caller
    commits. False when nothing was kept (a problem, or a point no further than the kept one)."""
    if report.problem is not None or point.seq <= 0:
        return False
    key_id, key = newest_key()
    values = {"seq": point.seq, "mac": point.mac, "key_id": key_id,
              "sig": verified_signature(log_name, point, key), "verified_at": utc_now()}
    table = AuditVerified.__table__
    moved = db.session.execute(update(table).where(table.c.log == log_name, table.c.seq < point.seq)
                               .values(**values)).rowcount
    if moved:
        return True
    if db.session.scalar(select(func.count()).select_from(table).where(table.c.log == log_name)):
        return False
    from sqlalchemy.exc import IntegrityError

    try:
        with db.session.begin_nested():  # another verify may insert the first row at the same moment
            db.session.execute(insert(table).values(log=log_name, **values))
    except IntegrityError:
        return False
    return True


def _start_from(chained: ChainedLog, since: Verified, walk: _Walk, state: "_Head", ids_seen: list | None
                ) -> Problem | None:
    """Move the walk's start to a verified point, after the checks that need no hashing (see `verify_log`)."""
    table = chained.table
    row = db.session.execute(select(*_columns(chained)).where(table.c.seq == since.seq)).first()
    if row is None:
        return Problem(DELETED, since.seq, f"#{since.seq} of the {chained.name} chain, verified before, is missing")
    if row.chain_mac != since.mac:
        return Problem(KEY_MISMATCH, since.seq, f"#{since.seq} (id {row.id}) of the {chained.name} chain is not what "
                                                f"an earlier verify saw: the chain was rewritten")
    count = db.session.scalar(select(func.count()).select_from(table)
                              .where(table.c.seq > state.pruned_seq, table.c.seq <= since.seq))
    if count != since.seq - state.pruned_seq:
        kind = DELETED if count < since.seq - state.pruned_seq else INSERTED
        return Problem(kind, None, f"{count} {chained.name} rows lie between #{state.pruned_seq} and #{since.seq}, "
                                   f"verified before, where {since.seq - state.pruned_seq} were")
    below = [seq for seq in walk.macs_wanted if seq <= since.seq and seq != state.pruned_seq]
    if below:
        walk.macs_wanted.update(dict(db.session.execute(select(table.c.seq, table.c.chain_mac)
                                                        .where(table.c.seq.in_(below))).all()))
    walk.seq, walk.prev = since.seq, since.mac
    if walk.seq in walk.macs_wanted:
        walk.macs_wanted[walk.seq] = walk.prev
    if ids_seen is not None:
        ids_seen.append((row.id, row[chained.time_index]))
    return None


def _walk_rows(chained: ChainedLog, rows, walk: _Walk, ring: dict, state: "_Head", report: Report,
               ids_seen: list | None, count: int | None = None) -> Problem | None:
    """Walk full rows (id, seq, MACs, key id, fields) from `walk` on; the first problem, or None. With `count`,
    stop after that many rows (the rows may go one further, for the look-ahead)."""
    rows = iter(rows)
    make = _row_type(chained.name)
    ahead = []

    def upcoming():
        if not ahead:
            ahead.append(next(rows, None))
        return None if ahead[0] is None else make(*ahead[0])

    time_index = chained.time_index
    done = 0
    while count is None or done < count:
        row = ahead.pop() if ahead else next(rows, None)
        if row is None:
            break
        done += 1
        walk.hashed += 1
        if row[1] == walk.seq + 1 and _sound(chained, row, walk.prev, ring):
            walk.seq, walk.prev = row[1], row[3]
            if walk.seq in walk.macs_wanted:
                walk.macs_wanted[walk.seq] = walk.prev
            if ids_seen is not None:
                ids_seen.append((row[0], row[time_index]))
            continue
        row = make(*row)  # something is off, or a legacy row: the full check names it
        if row.seq != walk.seq + 1:
            missing = walk.seq + 1
            return Problem(DELETED, missing, f"#{missing}" + (f" to #{row.seq - 1}" if row.seq > missing + 1
                                                              else "") + " is missing from the chain")
        problem = _verify_row(chained, row, walk, ring, state, upcoming)
        if problem is not None:
            return problem
        walk.seq, walk.prev = row.seq, row.chain_mac
        if walk.seq in walk.macs_wanted:
            walk.macs_wanted[walk.seq] = walk.prev
        if row.key_id == LEGACY_KEY_ID:
            report.legacy += 1
        if ids_seen is not None:
            ids_seen.append((row.id, row[time_index]))
    return None


def _walk_streamed(chained: ChainedLog, walk: _Walk, ring: dict, state: "_Head", report: Report,
                   batch: int | None = None) -> Problem | None:
    """PostgreSQL: walk the chain in keyset batches of (id, seq, row MAC, chain MAC, key id, message) rows. Where the
    tight loop refuses a row, that row and the rest of its batch are read again in full and walked by `_walk_rows`
    (which names the problem, or accepts a row only it can check, such as a legacy one); then streaming goes on.

    The next batch is read (by one helper thread, on this transaction's connection, which nothing else uses
    meanwhile) while this one is hashed, so the server builds messages on one core while Python hashes on the other.
    """
    batch = batch or STREAM_BATCH
    pads = {key_id: _pads(key) for key_id, key in ring.items()}
    connection = db.session.connection().connection.driver_connection
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify-read") as reader:
        rows = _stream_batch(connection, chained, walk.seq, batch)
        while rows:
            ahead = reader.submit(_stream_batch, connection, chained, rows[-1][1], batch) \
                if len(rows) == batch else None
            read, refused = _walk_sound(chained.name, rows, walk, pads)
            rest, last_seq = len(rows) - read, rows[-1][1]
            rows = ahead.result() if ahead is not None else []  # the connection is free again from here
            if refused:
                problem = _walk_rows(chained, _rows_after(chained, walk.seq, rest + 2), walk, ring, state, report,
                                     None, count=rest + 1)  # one row more than is walked: the look-ahead
                if problem is not None:
                    return problem
                if walk.seq != last_seq and ahead is not None:  # the chain moved under the walk: read on from here
                    rows = _stream_batch(connection, chained, walk.seq, batch)
    return None


def _walk_sound(name: str, rows, walk: _Walk, pads: dict) -> tuple[int, bool]:
    """The tight loop over streamed rows: both MACs of each row, with the key's precomputed HMAC pads and no
    object per row. Moves `walk` over every sound row; returns how many rows it read and whether it stopped at
    one it refused (the walk then stands just before that row)."""
    seq, prev, wanted, read = walk.seq, walk.prev, walk.macs_wanted, 0
    try:
        for row_id, row_seq, digest, sealed, key_id, message in rows:
            read += 1
            key = pads.get(key_id)
            if key is None or digest is None or row_seq != seq + 1:
                return read, True
            inner, outer = key[0].copy(), key[1].copy()
            inner.update(message)
            outer.update(inner.digest())
            if outer.hexdigest() != digest:
                return read, True
            inner, outer = key[0].copy(), key[1].copy()
            inner.update(f"{name}|{row_seq}|{row_id}|{prev}|{digest}".encode())
            outer.update(inner.digest())
            if outer.hexdigest() != sealed:
                return read, True
            seq, prev = row_seq, sealed
            if seq in wanted:
                wanted[seq] = prev
        return read, False
    finally:
        walk.seq, walk.prev = seq, prev
        walk.hashed += read


def _stream_batch(connection, chained: ChainedLog, after: int, limit: int) -> list[tuple]:
    """PostgreSQL: up to `limit` sealed rows after #`after`, in sequence order, as (id, seq, row_mac, chain_mac,
    key_id, message) tuples; the server builds each message (`message_sql`). One binary-format query per batch:
    libpq receives the whole batch at once and psycopg's C loaders make the tuples (a COPY is read one row per
    call through Python, which measured twice the client CPU for the same rows)."""
    sql = (f"SELECT id, seq, row_mac, chain_mac, key_id, {message_sql(chained.name)} FROM {chained.table.name} "
           f"WHERE seq > %s ORDER BY seq LIMIT %s")
    with connection.cursor() as cursor:
        cursor.execute(sql, (after, limit), binary=True)
        return cursor.fetchall()


def _rows_after(chained: ChainedLog, after: int, limit: int) -> list:
    """Up to `limit` sealed rows after #`after` with every field (see `_columns`), for the full check."""
    table = chained.table
    return db.session.execute(select(*_columns(chained)).where(table.c.seq > after).order_by(table.c.seq)
                              .limit(limit)).all()


@dataclass(frozen=True)
class _Head:
    """What a head row said when it was read (a copy, so a later read cannot change it)."""

    log: str
    last_seq: int
    last_mac: str | None
    legacy_seq: int
    checkpoints: int
    key_id: str | None
    head_mac: str | None
    pruned_seq: int = 0
    pruned_mac: str | None = None


def _read_head(log_name: str) -> _Head | None:
    row = db.session.execute(select(AuditSeal.log, AuditSeal.last_seq, AuditSeal.last_mac, AuditSeal.legacy_seq,
                                    AuditSeal.checkpoints, AuditSeal.key_id, AuditSeal.head_mac,
                                    AuditSeal.pruned_seq, AuditSeal.pruned_mac)
                             .where(AuditSeal.log == log_name)).first()
    return None if row is None else _Head(*row)


def _check_head(state: _Head, walk: _Walk, ring: dict) -> Problem | None:
    """Hold the walked chain against its head. A sealer may have moved the head while the chain was read
    (PostgreSQL reads each statement at its own moment), so the head is read again after the walk: the chain
    must reach the head as it was before the walk and may not go beyond the head as it is after it."""
    after = _read_head(state.log) or state
    for head in (state, after):
        problem = _check_head_mac(head, ring)
        if problem is not None:
            return problem
    if walk.seq < state.last_seq:
        return Problem(TRUNCATED, walk.seq + 1, f"the {state.log} chain ends at #{walk.seq} but its head says "
                                                f"#{state.last_seq}")
    if walk.seq > after.last_seq:
        return Problem(HEAD_RESET, after.last_seq, f"the {state.log} head says #{after.last_seq} but the chain "
                                                   f"goes on to #{walk.seq}")
    for head in (state, after):
        if walk.seq == head.last_seq and walk.prev != head.last_mac:
            return Problem(HEAD_RESET, head.last_seq, f"the {state.log} head's MAC for #{head.last_seq} is not "
                                                      f"the chain's")
    return None


def _check_head_mac(head: _Head, ring: dict) -> Problem | None:
    if head.head_mac is not None:
        key = ring.get(head.key_id or "")
        if key is None:
            return Problem(KEY_MISMATCH, head.last_seq, f"the {head.log} head was sealed with key "
                                                        f"{head.key_id!r}, which is not configured")
        if not hmac.compare_digest(head_mac(head, key), head.head_mac):
            return Problem(HEAD_RESET, head.last_seq, f"the {head.log} head row was changed outside the sealer "
                                                      f"(it says #{head.last_seq})")
    elif head.last_seq != head.legacy_seq or head.checkpoints:
        return Problem(HEAD_RESET, head.last_seq, f"the {head.log} head has lost its MAC (it says "
                                                  f"#{head.last_seq})")
    return None


def _check_id_gaps(chained: ChainedLog, ids_seen: list) -> Problem | None:
    """Audit events are written at commit only, so an id missing between old events was deleted before sealing."""
    table = chained.table
    ids_seen.extend((row.id, row[chained.time_index]) for row in db.session.execute(
        select(*_columns(chained)).where(table.c.seq.is_(None))))
    if not ids_seen:
        return None
    ids_seen.sort()
    settled = utc_now() - ID_GAP_GRACE
    for (earlier, _), (later, later_time) in zip(ids_seen, ids_seen[1:]):
        if later != earlier + 1:
            when = EPOCH + timedelta(microseconds=later_time) if isinstance(later_time, int) else \
                later_time.replace(tzinfo=later_time.tzinfo or UTC)
            if when <= settled:
                return Problem(DELETED, None, f"{chained.name} rows with ids {earlier + 1}..{later - 1} are missing: "
                                              f"deleted before they were sealed")
    return None


def _check_id_gaps_sql(chained: ChainedLog) -> Problem | None:
    """`_check_id_gaps` done by PostgreSQL over the whole table (sealed and unsealed rows alike): a count first,
    and only when the ids have a hole, the first hole whose later row is settled."""
    table = chained.table
    count, low, high = db.session.execute(select(func.count(), func.min(table.c.id), func.max(table.c.id))).one()
    if not count or high - low + 1 == count:
        return None
    pairs = select(table.c.id.label("later"), func.lag(table.c.id).over(order_by=table.c.id).label("earlier"),
                   table.c[chained.time_field].label("at")).subquery()
    hole = db.session.execute(select(pairs.c.earlier, pairs.c.later)
                              .where(pairs.c.later != pairs.c.earlier + 1, pairs.c.at <= utc_now() - ID_GAP_GRACE)
                              .order_by(pairs.c.later).limit(1)).first()
    if hole is None:
        return None
    earlier, later = hole
    return Problem(DELETED, None, f"{chained.name} rows with ids {earlier + 1}..{later - 1} are missing: "
                                  f"deleted before they were sealed")


# ---------------------------------------------------------------------------------------------- checkpoints


def checkpoint_signature(line: dict, key: bytes) -> str:
    body = {k: v for k, v in line.items() if k != "sig"}
    return mac(key, json.dumps(body, sort_keys=True, separators=(",", ":")).encode())


def _check_checkpoint_signatures(mine: list[dict], ring: dict) -> Problem | None:
    for number, line in enumerate(mine, start=1):
        key = ring.get(line.get("key_id") or "")
        if key is None:
            return Problem(KEY_MISMATCH, line.get("seq"), f"{line.get('log')} checkpoint {number} is signed with key "
                                                          f"{line.get('key_id')!r}, which is not configured")
        if not isinstance(line.get("seq"), int) or not hmac.compare_digest(checkpoint_signature(line, key),
                                                                           str(line.get("sig", ""))):
            return Problem(CHECKPOINT_MISMATCH, line.get("seq"), f"{line.get('log')} checkpoint {number} "
                                                                 f"({line.get('at')}) was edited: its signature fails")
    return None


def _check_checkpoints(log_name: str, mine: list[dict], walk: _Walk, state: "_Head") -> Problem | None:
    for line in mine:
        if line["seq"] > walk.seq:
            return Problem(TRUNCATED, walk.seq + 1, f"the {log_name} chain ends at #{walk.seq} but the checkpoint of "
                                                    f"{line['at']} saw #{line['seq']}")
        if line["seq"] == 0 or line["seq"] < state.pruned_seq:
            continue
        if walk.macs_wanted.get(line["seq"]) != line["mac"]:
            return Problem(CHECKPOINT_MISMATCH, line["seq"], f"#{line['seq']} of the {log_name} chain is not what the "
                                                             f"checkpoint of {line['at']} saw: the chain was rewritten")
    if len(mine) < state.checkpoints:
        return Problem(CHECKPOINT_MISSING, None, f"{state.checkpoints} {log_name} checkpoints were written but "
                                                 f"{len(mine)} are in {checkpoint_path()}")
    return None


def checkpoint_path() -> Path:
    """The checkpoint file: ORDERLOOM_AUDIT_CHECKPOINTS, or one per database in the instance folder."""
    configured = current_app.config.get("AUDIT_CHECKPOINT_PATH")
    if configured:
        return Path(configured)
    url = db.engine.url.render_as_string(hide_password=True)
    return Path(current_app.instance_path) / f"audit-checkpoints-{hashlib.sha256(url.encode()).hexdigest()[:10]}.jsonl"


class CheckpointFileError(Exception):
    """The checkpoint file cannot be read as checkpoints."""


def read_checkpoints() -> list[dict]:
    path = checkpoint_path()
    if not path.exists():
        return []
    lines = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            line = None
        if not isinstance(line, dict):
            raise CheckpointFileError(f"line {number} of {path} is not a checkpoint")
        lines.append(line)
    return lines


def write_checkpoints(now: datetime | None = None) -> list[dict]:
    """Sign (sequence, head MAC, time) of every log and append them to the checkpoint file; the caller commits.

    The file is written before the heads count it, so a failed commit leaves one checkpoint too many (harmless,
    it is still checked), never one missing.
    """
    now = now or utc_now()
    key_id, key = newest_key()
    database = db.engine.url.render_as_string(hide_password=True)
    lines, states = [], []
    for name in LOGS:
        state = _BUSY
        for _attempt in range(50):
            state = _take_log(LOGS[name])
            if state is not _BUSY:
                break
            time.sleep(0.1)
        if state is _BUSY:
            raise SealRefused(f"{name}: a sealer held the log for 5 s; try again")
        _refuse_bad_head(LOGS[name], state)
        line = {"log": name, "seq": state.last_seq, "mac": state.last_mac, "at": now.isoformat(),
                "database": database, "key_id": key_id}
        line["sig"] = checkpoint_signature(line, key)
        lines.append(line)
        states.append(state)
    path = checkpoint_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as out:
        for line in lines:
            out.write(json.dumps(line, sort_keys=True, ensure_ascii=False) + "\n")
        out.flush()
        os.fsync(out.fileno())
    for state in states:
        _write_head(state, state.last_seq, checkpoints=state.checkpoints + 1, checkpoint_at=now)
    return lines


def verify_all(logs=None, streamed: bool | None = None, incremental: bool = False) -> list[Report]:
    """Verify the chosen logs (default all) against the checkpoint file (`streamed`: see `verify_log`).

    `incremental` (the access report): each log from its last verified point (`verified_point`), and an intact
    one's new point is kept (`record_verified`, the caller commits). Without it (`audit verify`) every row."""
    try:
        checkpoints = read_checkpoints()
    except CheckpointFileError as unreadable:
        return [Report(name, problem=Problem(CHECKPOINT_MISMATCH, None, str(unreadable))) for name in logs or LOGS]
    if not incremental:
        return [verify_log(name, checkpoints, streamed=streamed) for name in logs or LOGS]
    reports = []
    for name in logs or LOGS:
        report = verify_log(name, checkpoints, streamed=streamed, since=verified_point(name))
        if report.reached is not None:
            record_verified(name, report, report.reached)
        reports.append(report)
    return reports


def publish_checkpoints(lines: list[dict]) -> dict[str, bool]:
    """Send checkpoints where the database cannot reach them: the alert robot and/or an external URL.

    Best effort and after the commit: the file is the record; a failed send is logged, not raised.
    """
    import httpx

    from shared.notify import robots

    config, sent = current_app.config, {}
    summary = [f"{line['log']}: #{line['seq']} {line['mac'][:16]}… sig {line['sig'][:16]}…" for line in lines]
    if config.get("AUDIT_CHECKPOINT_TO_ROBOT") and config.get("ALERT_ROBOT_KIND") and config.get("ALERT_ROBOT_URL"):
        alert = robots.Alert(title=f"Orderloom audit checkpoint {lines[0]['at'] if lines else ''}", lines=summary,
                             severity="info")
        sent["robot"] = robots.deliver(config["ALERT_ROBOT_KIND"], config["ALERT_ROBOT_URL"], alert,
                                       secret=config.get("ALERT_ROBOT_SECRET") or None).ok
    if config.get("AUDIT_CHECKPOINT_URL"):
        try:
            response = httpx.post(config["AUDIT_CHECKPOINT_URL"], json={"checkpoints": lines}, timeout=5.0)
            sent["url"] = response.is_success
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            log.warning("audit_checkpoint=send_failed error=%r", exc)
            sent["url"] = False
    return sent


# ---------------------------------------------------------------------------------------------- pruning (retention)


@dataclass
class Pruned:
    """What one prune of a log did: rows #first..#last archived to `archive` and deleted (count 0: nothing due)."""

    log: str
    count: int
    first: int
    last: int
    archive: Path | None = None


def archive_dir() -> Path:
    """Where pruned rows go: ORDERLOOM_AUDIT_ARCHIVE_DIR, or one folder per database in the instance folder. Move
    its files to offline (write-once) storage; `orderloom audit verify-archive` checks them."""
    configured = current_app.config.get("AUDIT_ARCHIVE_DIR")
    if configured:
        return Path(configured)
    url = db.engine.url.render_as_string(hide_password=True)
    return Path(current_app.instance_path) / f"audit-archive-{hashlib.sha256(url.encode()).hexdigest()[:10]}"


def _prunable_through(chained: ChainedLog, state: AuditSeal, before: datetime, limit: int) -> int:
    """The highest seq such that every row from the floor up to it is sealed and older than `before` (at most
    `limit` rows). For audit events, whose id holes mean deletions, the pruned rows must also be every row below
    their highest id (a row committed late has a lower id than its seq suggests): the remaining ids then have no
    new hole."""
    table, floor = chained.table, state.pruned_seq
    first_young = db.session.execute(select(func.min(table.c.seq)).where(
        table.c.seq > floor, table.c[chained.time_field] >= before)).scalar()
    upper = min(state.last_seq, floor + limit, first_young - 1 if first_young is not None else state.last_seq)
    while chained.id_gaps_are_deletions and upper > floor:
        rest_low_id = db.session.execute(select(func.min(table.c.id)).where(
            (table.c.seq > upper) | table.c.seq.is_(None))).scalar()
        if rest_low_id is None:
            break
        offender = db.session.execute(select(func.min(table.c.seq)).where(
            table.c.seq > floor, table.c.seq <= upper, table.c.id > rest_low_id)).scalar()
        if offender is None:
            break
        upper = offender - 1
    return max(upper, floor)


def _archived(value):
    if isinstance(value, datetime):  # SQLite's rows: the microseconds PostgreSQL's `_columns` give, so MACs match
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        return (value - EPOCH) // timedelta(microseconds=1)
    return value


def prune(log_name: str, before: datetime, limit: int = 50_000, directory: Path | None = None) -> Pruned | None:
    """Archive the sealed rows of a log older than `before` (from the floor up, at most `limit`) to a signed file,
    move the head's pruned floor over them (MACed), and delete them; the caller commits. None when another sealer
    holds the log. The chain still verifies from the floor on; the file verifies on its own (`verify_archive`),
    and chains onto the archive before it."""
    chained = LOGS[log_name]
    state = _take_log(chained)
    if state is _BUSY:
        return None
    _refuse_bad_head(chained, state)
    floor = state.pruned_seq
    upper = _prunable_through(chained, state, before, limit)
    if upper <= floor:
        return Pruned(log_name, 0, floor, floor)
    table = chained.table
    rows = db.session.execute(select(*_columns(chained)).where(table.c.seq > floor, table.c.seq <= upper)
                              .order_by(table.c.seq)).all()
    body = [json.dumps([_archived(v) for v in row], ensure_ascii=False) for row in rows]
    key_id, key = newest_key()
    header = {"log": log_name, "from_seq": floor + 1, "to_seq": upper, "count": len(rows),
              "prev_mac": state.pruned_mac or GENESIS, "last_mac": rows[-1].chain_mac,
              "archived_at": utc_now().isoformat(), "before": before.isoformat(), "key_id": key_id,
              "database": db.engine.url.render_as_string(hide_password=True),
              "content_sha256": hashlib.sha256("\n".join(body).encode()).hexdigest()}
    header["sig"] = checkpoint_signature(header, key)
    folder = directory or archive_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{log_name}-{floor + 1:010d}-{upper:010d}.jsonl"
    with open(path, "w", encoding="utf-8") as out:  # on disk before the rows go
        out.write(json.dumps(header, sort_keys=True, ensure_ascii=False) + "\n")
        out.write("\n".join(body) + "\n")
        out.flush()
        os.fsync(out.fileno())
    _write_head(state, state.last_seq, pruned_seq=upper, pruned_mac=rows[-1].chain_mac)
    db.session.execute(table.delete().where(table.c.seq > floor, table.c.seq <= upper)
                       .execution_options(synchronize_session=False))
    return Pruned(log_name, len(rows), floor + 1, upper, path)


@dataclass
class ArchiveReport:
    path: Path
    log: str | None = None
    checked: int = 0
    first: int = 0
    last: int = 0
    prev_mac: str | None = None
    last_mac: str | None = None
    problem: Problem | None = None

    @property
    def intact(self) -> bool:
        return self.problem is None


def verify_archive(path: Path) -> ArchiveReport:
    """Check one archive file: its signed header, its content hash, and every row's MACs chained from the header's
    previous MAC to its last."""
    report = ArchiveReport(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        header = json.loads(lines[0])
        rows = [json.loads(line) for line in lines[1:] if line]
    except (OSError, ValueError, IndexError) as unreadable:
        report.problem = Problem(CHECKPOINT_MISMATCH, None, f"{path.name} cannot be read as an archive: {unreadable}")
        return report
    report.log, report.first, report.last = header.get("log"), header.get("from_seq", 0), header.get("to_seq", 0)
    report.prev_mac, report.last_mac = header.get("prev_mac"), header.get("last_mac")
    ring = keys_by_id()
    key = ring.get(header.get("key_id") or "")
    if key is None or not hmac.compare_digest(checkpoint_signature(header, key), str(header.get("sig", ""))):
        report.problem = Problem(CHECKPOINT_MISMATCH, None, f"{path.name}: the header's signature fails (or its key "
                                                            f"{header.get('key_id')!r} is not configured)")
        return report
    content = "\n".join(lines[1:len(rows) + 1])
    if hashlib.sha256(content.encode()).hexdigest() != header.get("content_sha256") or len(rows) != header["count"]:
        report.problem = Problem(EDITED, None, f"{path.name}: the rows are not those the header signed")
        return report
    chained = LOGS.get(report.log)
    if chained is None:
        report.problem = Problem(CHECKPOINT_MISMATCH, None, f"{path.name}: unknown log {report.log!r}")
        return report
    make, prev, seq = _row_type(chained.name), header["prev_mac"], report.first - 1
    for raw in rows:
        row = make(*raw)
        sound = (legacy_hash(prev, row) == row.chain_mac if row.key_id == LEGACY_KEY_ID
                 else _sound(chained, tuple(raw), prev, ring))
        if row.seq != seq + 1 or not sound:
            report.problem = Problem(EDITED, row.seq, f"{path.name}: #{row.seq} (id {row.id}) does not chain on")
            return report
        seq, prev = row.seq, row.chain_mac
        report.checked += 1
    if seq != report.last or prev != report.last_mac:
        report.problem = Problem(TRUNCATED, seq, f"{path.name}: the rows end at #{seq}, the header says "
                                                 f"#{report.last}")
    return report


def verify_archives(log_name: str, directory: Path | None = None) -> list[ArchiveReport]:
    """Every archive of a log in order, each checked and chained onto the one before; the last must end where the
    head's pruned floor is."""
    folder = directory or archive_dir()
    reports = [verify_archive(path) for path in sorted(folder.glob(f"{log_name}-*.jsonl"))] if folder.exists() else []
    prev, upto = GENESIS, 0
    for report in reports:
        if report.intact and (report.first != upto + 1 or report.prev_mac != prev):
            report.problem = Problem(DELETED, upto + 1, f"{report.path.name} does not follow the archive before it "
                                                        f"(which ends at #{upto})")
        if not report.intact:
            return reports
        prev, upto = report.last_mac, report.last
    head = _read_head(log_name)
    if head is not None and head.pruned_seq != upto:
        missing = ArchiveReport(folder, log_name, problem=Problem(
            CHECKPOINT_MISSING, upto, f"the {log_name} head says rows up to #{head.pruned_seq} were archived, the "
                                      f"archives reach #{upto}"))
        reports.append(missing)
    return reports
