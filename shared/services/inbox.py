"""The inbox: every payload received is stored raw first, then processed by a job, idempotently.

States: received → processing → done | review | waiting | retry → … → dead. `review` is a payload that cannot
flow on as it stands (unknown status, unmapped SKU, amounts that do not add up, a naive timestamp): a person fixes
the mapping and replays it. `waiting` is a payload about an order that has not arrived yet (a refund webhook
before its order): it is replayed by itself when the order arrives (and can be replayed by hand). `retry` is a
failure that may pass by itself (a lock, a race, a database hiccup); it is retried with exponential backoff and
becomes `dead` after MAX_ATTEMPTS. A crash between receipt and processing loses nothing: the sweeper re-queues
rows left `received` or stuck in `processing`.

Webhooks carry their platform's topic (`topic`, shared/channels/topics.py): an order topic is a whole order, a
deletion or a refund is applied as such, and a topic that carries no order change is recorded as `ignored`
(done, never review). The state helpers here (claim, retry, review, sweep, replay) also drive the carrier
tracking-push inbox (shared/services/tracking.py), which has the same states.
"""
import hashlib
import json
import logging
from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import defer
from sqlalchemy.orm.attributes import set_committed_value

from shared import dispatch
from shared.actors import Actor
from shared.channels import adapter_for, topics
from shared.channels.canonical import CanonicalOrder, PayloadProblem
from shared import labels
from shared.extensions import db
from shared.models import Channel, InboxItem, Order
from shared.services import audit
from shared.services.channel_orders import (
    ChannelContext,
    WaitingForOrder,
    apply,
    apply_deletion,
    apply_refund,
    check_restored,
)
from shared.services.errors import Conflict, NotFound, ServiceError
from shared.services.validation import N_, say
from shared.timekeeping import utc_now

# What a person reads when this module refuses: message codes, said in the reader's language (say).
TOO_DEEP = N_("The payload is nested deeper than %(max_depth)s levels")
NOT_AN_OBJECT = N_("The payload is not a JSON object")
INBOX_ITEM = N_("Inbox item %(item_id)s")
INBOX_ITEM_NOT_FOUND = N_("No inbox item %(item_id)s")
NOT_FAILED = N_("%(what)s is %(item_status)s: only failed or waiting items can be replayed")
NOT_VALID_JSON = N_("The payload is not valid JSON (%(where)s)")
UNREADABLE_PAYLOAD = N_("The payload could not be read: %(kind)s: %(error)s")

log = logging.getLogger("orderloom.inbox")
MAX_ATTEMPTS = 5
FIRST_RETRY_SECONDS = 5
PROCESS_JOB = "jobs.sync.process_inbox"
FAILED = ("review", "dead")
REPLAYABLE = (*FAILED, "waiting")  # what a person may send through processing again
STALE_RECEIVED = timedelta(seconds=30)  # a received row no job has taken by then was not queued (Redis down)
STALE_PROCESSING = timedelta(minutes=5)  # a row processing that long belonged to a worker that died


def content_hash(body: bytes, topic: str | None = None, delivery_id: str | None = None, kind: str = "") -> str:
    """The bytes' hash: the same order body twice is one row whatever brought it (webhook, poll, re-fetch). A body
    that carries no state of its own (a deletion is only an id, an ignored topic) is hashed with its topic and the
    platform's delivery id, so a second deletion after a restore is a row of its own, a platform retry is not."""
    if topic and not topics.carries_state(topics.topic_meaning(kind, topic)):
        return hashlib.sha256(f"{topic}\n{delivery_id or ''}\n".encode() + body).hexdigest()
    return hashlib.sha256(body).hexdigest()


MAX_DEPTH = 64  # levels of nested objects and lists; platforms' orders use fewer than ten


def read_json(body: bytes | str):
    """The JSON value of a payload, or PayloadProblem saying why it cannot be read: `invalid_json` (not JSON,
    e.g. cut off) or `too_deep` (nested deeper than MAX_DEPTH; Python's parser would raise RecursionError)."""
    try:
        raw = json.loads(body)
    except RecursionError:
        raise PayloadProblem(say(TOO_DEEP, max_depth=MAX_DEPTH), code="too_deep") from None
    except ValueError as error:
        where = f"{error.msg} at position {error.pos}" if isinstance(error, json.JSONDecodeError) else str(error)
        raise PayloadProblem(say(NOT_VALID_JSON, where=where[:200]), code="invalid_json") from None
    if _deeper_than(raw, MAX_DEPTH):
        raise PayloadProblem(say(TOO_DEEP, max_depth=MAX_DEPTH), code="too_deep")
    return raw


def _deeper_than(value, limit: int) -> bool:
    """Whether objects and lists nest more than `limit` levels (walked without recursion)."""
    level = [value]  # the values `depth` levels down; a container among them at level `limit` is one too many
    for _depth in range(limit):
        level = [child for item in level if isinstance(item, dict | list)
                 for child in (item.values() if isinstance(item, dict) else item)]
        if not level:
            return False
    return any(isinstance(item, dict | list) for item in level)


def _external_id(channel: Channel, body: bytes, topic: str | None = None) -> str | None:
    """The platform order the payload is about (for search, and to find a refund waiting for its order)."""
    try:
        raw = read_json(body)
    except PayloadProblem:
        return None
    if not isinstance(raw, dict):
        return None
    meaning = topics.topic_meaning(channel.kind, topic)
    if meaning in (topics.REFUND, topics.IGNORED, topics.UNKNOWN):
        value = raw.get("order_id")  # a refund's or a fulfilment's own id is not an order id
    else:
        value = adapter_for(channel.kind).external_id(raw)
    return str(value)[:64] if value is not None else None


def store(channel: Channel, source: str, bodies: list[bytes], content_type: str = "application/json",
          received_at: datetime | None = None, topic: str | None = None, delivery_id: str | None = None) -> list[int]:
    """Store payloads in one upsert; the same bytes twice are one row, counted twice.

    `topic` is the webhook's topic header as received (None for polls and imports: those are whole orders).
    Returns the ids of every row touched, new or seen before: processing skips rows already finished.
    """
    if not bodies:
        return []
    now = received_at or utc_now()
    topic = topic[:64] if topic else None
    rows, seen = [], set()
    for body in bodies:
        digest = content_hash(body, topic, delivery_id, channel.kind)
        if digest in seen:
            continue
        seen.add(digest)
        rows.append({"channel_id": channel.id, "source": source, "received_at": now, "content_hash": digest,
                     "content_type": content_type[:100], "body": body.decode("utf-8", errors="replace"),
                     "times_received": 1, "external_id": _external_id(channel, body, topic), "status": "received",
                     "attempts": 0, "topic": topic})
    table = InboxItem.__table__
    if db.engine.dialect.name == "postgresql":
        # One statement per page whose text does not change with the page's size: each column as one array,
        # unnested into rows (a multi-row VALUES was compiled anew for every page: 80 % of the poller's CPU).
        columns = list(rows[0])
        statement = pg_insert(table).from_select(columns, select(*[
            func.unnest(bindparam(f"column_{key}", [row[key] for row in rows], type_=ARRAY(table.c[key].type)))
            for key in columns]))
    else:
        statement = sqlite_insert(table).values(rows)
    statement = statement.on_conflict_do_update(
        index_elements=["channel_id", "content_hash"],
        set_={"times_received": table.c.times_received + 1},
    ).returning(table.c.id)
    return list(db.session.execute(statement).scalars())


BATCH = 500  # rows per processing job


def queue(ids: list[int], batch: int = BATCH) -> None:
    """Start processing now (the caller has committed): through RQ, or right here when jobs run inline."""
    for start in range(0, len(ids), batch):
        dispatch.send(PROCESS_JOB, ids[start:start + batch], queue="sync")


def claim(ids: list[int], model=InboxItem) -> list[int]:
    """Mark rows as being processed; only rows that are waiting are taken, so a row is never done twice."""
    if not ids:
        return []
    now = utc_now()
    claimed = db.session.execute(
        update(model).where(model.id.in_(ids), model.status.in_(("received", "retry")))
        .values(status="processing", claimed_at=now, attempts=model.attempts + 1)
        .returning(model.id)
    ).scalars().all()
    return sorted(claimed)


def claim_received(channel_id: int, limit: int = BATCH) -> list[int]:
    """Claim the oldest rows of a channel that wait for processing (webhooks drained in batches)."""
    waiting = select(InboxItem.id).where(InboxItem.channel_id == channel_id, InboxItem.status == "received") \
        .order_by(InboxItem.id).limit(limit)
    if db.engine.dialect.name == "postgresql":
        waiting = waiting.with_for_update(skip_locked=True)  # two drains split the rows, never share one
    return claim(db.session.execute(waiting).scalars().all())


DRAIN_JOB = "jobs.sync.drain_channel"


def drain_key(channel_id: int) -> str:
    return f"drain-channel-{channel_id}"


def kick(channel_id: int) -> None:
    """After a webhook is committed: make sure a drain job for its channel will pick it up."""
    dispatch.send_once(DRAIN_JOB, channel_id, key=drain_key(channel_id), queue="sync")


def _parse(item: InboxItem):
    """What the payload says, by its topic: a CanonicalOrder (marked when restored from the trash), a deletion, a
    refund, an ignored topic, or None for a payload that carries nothing (a webhook ping)."""
    kind = item.channel.kind
    meaning = topics.topic_meaning(kind, item.topic)
    if meaning in (topics.IGNORED, topics.UNKNOWN):  # acknowledged and recorded; the body is not read at all
        return topics.IgnoredTopic(item.topic or "", meaning)
    raw = read_json(item.body)
    if not isinstance(raw, dict):
        raise PayloadProblem(say(NOT_AN_OBJECT), code="invalid_json")
    adapter = adapter_for(kind)
    if adapter.is_ping(raw):
        return None
    if meaning == topics.DELETED:
        return topics.read_deletion(raw, item.topic or "")
    if meaning == topics.REFUND:
        return topics.read_refund(kind, raw)
    canonical = adapter.parse(raw, item.channel.timezone)
    if meaning == topics.RESTORED:
        canonical.extra["restored"] = True
    return canonical


def _when(pair) -> tuple:
    """Apply a batch oldest platform change first: an order's modified time, a refund's time, else receipt."""
    item, parsed = pair
    moment = getattr(parsed, "modified_at", None) or getattr(parsed, "refunded_at", None) or item.received_at
    return (moment, item.id)


def prepare(ids: list[int]) -> list[tuple[InboxItem, CanonicalOrder | None]]:
    """Read claimed rows into canonical orders, oldest platform modification first.

    Orders of one platform order are then applied in the order they happened, so a batch holding a create and
    its updates ends in the newest state, and an older update is skipped as stale. Rows that cannot be read
    go to review here; a None order is a payload that carries none (a webhook ping).
    """
    items = db.session.execute(select(InboxItem).where(InboxItem.id.in_(ids), InboxItem.status == "processing")
                               .order_by(InboxItem.id)).scalars().all()
    parsed = []
    for item in items:
        try:
            parsed.append((item, _parse(item)))
        except ServiceError as problem:
            _to_review(item, problem)
        except (TypeError, AttributeError, ValueError, KeyError) as error:  # a shape no adapter rule foresaw
            _to_review(item, PayloadProblem(say(UNREADABLE_PAYLOAD, kind=type(error).__name__, error=error),
                                            code="unreadable_payload"))
    parsed.sort(key=_when)
    return parsed


class Contexts(dict):
    """Channel contexts (status and SKU mappings) loaded once per batch, not once per order; `woken` collects the
    waiting rows an order created in the batch set free (the job processes them next)."""

    def __init__(self):
        super().__init__()
        self.woken: list[int] = []

    def for_item(self, item: InboxItem) -> ChannelContext:
        if item.channel_id not in self:
            self[item.channel_id] = ChannelContext.load(item.channel, adapter_for(item.channel.kind))
        return self[item.channel_id]


def reload(ids: list[int]) -> None:
    """Refresh the batch's rows in one query after a commit expired them (not one query per row)."""
    if ids:
        # Without the body: it was read (and decrypted) by `prepare`, and nothing reads it again.
        db.session.execute(select(InboxItem).where(InboxItem.id.in_(ids)).options(defer(InboxItem.body))
                           ).scalars().all()


def create_in_bulk(contexts: Contexts, parsed: list[tuple[InboxItem, CanonicalOrder | None]]) -> tuple[int, list]:
    """Create the batch's new orders together (shared/services/bulk_orders.py); returns (created, the rest).

    A platform order that appears more than once in the batch goes the one-at-a-time way, in modification order.
    """
    from shared.services import bulk_orders

    def whole(canonical) -> bool:
        return isinstance(canonical, CanonicalOrder) and not canonical.extra.get("restored")

    seen = Counter((item.channel_id, canonical.channel_order_id) for item, canonical in parsed if whole(canonical))
    groups: dict[int, list] = {}
    left = []
    for item, canonical in parsed:
        if whole(canonical) and seen[(item.channel_id, canonical.channel_order_id)] == 1:
            groups.setdefault(item.channel_id, []).append((item, canonical))
        else:
            left.append((item, canonical))
    created = 0
    for entries in groups.values():
        made, rest = bulk_orders.create_new(contexts.for_item(entries[0][0]), entries)
        canonical_of = {id(item): canonical for item, canonical in entries}
        finished = []
        for item, order in made:
            canonical = canonical_of[id(item)]
            delay = visible_delay_ms(canonical.paid_at) if canonical.paid_at and order.payment_status == "paid" \
                else None
            finished.append((item, canonical, order.id, delay))
        finish_created(finished)  # one statement for the batch's rows, one for the refunds that waited for them
        if made:
            contexts.woken += wake_waiting_many(entries[0][0].channel_id,
                                                [canonical.channel_order_id for _i, canonical, _o, _d in finished])
        created += len(made)
        left += rest
    left.sort(key=_when)
    return created, left


def process_one(contexts: Contexts, item: InboxItem, canonical) -> str:
    """Apply one row in a savepoint; returns its new status (done, review, waiting, retry or dead). The caller
    commits: one transaction per order keeps a hot SKU's stock row locked only for that order."""
    if canonical is None:
        _finish(item, "ping", None, None)
        return "done"
    if isinstance(canonical, topics.IgnoredTopic):
        if canonical.meaning == topics.UNKNOWN:
            log.warning("inbox item %s: unknown topic %r of channel %s, recorded, nothing changed", item.id,
                        canonical.topic, item.channel_id)
        _finish(item, "ignored" if canonical.meaning == topics.IGNORED else "unknown_topic", None, None)
        return "done"
    context = contexts.for_item(item)
    if isinstance(canonical, topics.PlatformDeletion):
        item.external_id = canonical.channel_order_id[:64]
        return _guarded(item, lambda: apply_deletion(context, canonical))
    if isinstance(canonical, topics.PlatformRefundNotice):
        item.external_id = canonical.channel_order_id[:64]
        return _guarded(item, lambda: apply_refund(context, canonical, item.id))
    status = _process_one(context, item, canonical)
    if status == "done" and item.outcome == "created":
        contexts.woken += wake_waiting(item.channel_id, canonical.channel_order_id)
    return status


def _guarded(item: InboxItem, action) -> str:
    """Run an order-changing action in a savepoint and record its outcome on the row, as for whole orders."""
    try:
        with db.session.begin_nested():
            outcome, order = action()
            db.session.flush()
    except WaitingForOrder as problem:
        _to_waiting(item, problem)
        return "waiting"
    except (IntegrityError, DBAPIError) as error:  # a race with another worker (the same refund twice): again
        return _to_retry(item, f"{type(error).__name__}: {str(error.orig if hasattr(error, 'orig') else error)}")
    except ServiceError as problem:
        _to_review(item, problem)
        return "review"
    except Exception as error:  # a bug must not lose the payload
        log.exception("inbox item %s failed", item.id)
        return _to_retry(item, f"{type(error).__name__}: {error}")
    _finish(item, outcome, order.id if order is not None else None, None)
    return "done"


def _to_waiting(item: InboxItem, problem: ServiceError) -> None:
    item.status, item.error_code, item.processed_at = "waiting", problem.code[:40], utc_now()
    item.last_error, item.next_attempt_at = problem.message[:1000], None


def wake_waiting(channel_id: int, channel_order_id: str) -> list[int]:
    """The order a waiting row was about has arrived: hand the row back to processing (audited by the order's
    arrival, not by a person). Returns the rows set free."""
    return wake_waiting_many(channel_id, [channel_order_id])


def wake_waiting_many(channel_id: int, channel_order_ids: list[str]) -> list[int]:
    """`wake_waiting` for every order of a batch in one statement.

    The session's objects are not searched for matches (that cost a scan of the whole identity map per order, 78 %
    of an ingest batch's CPU): the rows set free are claimed and read again by the job, after the commit.
    """
    if not channel_order_ids:
        return []
    return list(db.session.execute(
        update(InboxItem).where(InboxItem.channel_id == channel_id,
                                InboxItem.external_id.in_({value[:64] for value in channel_order_ids}),
                                InboxItem.status == "waiting")
        .values(status="received", attempts=0, error_code=None, last_error=None)
        .returning(InboxItem.id).execution_options(synchronize_session=False)).scalars())


def _process_one(context: ChannelContext, item: InboxItem, canonical: CanonicalOrder) -> str:
    item.external_id = canonical.channel_order_id[:64]
    item.platform_modified_at = canonical.modified_at
    try:
        with db.session.begin_nested():
            if canonical.extra.get("restored"):
                check_restored(context, canonical)
            was_paid = _was_paid(context, canonical)
            outcome, order = apply(context, canonical)
            db.session.flush()
    except (IntegrityError, DBAPIError) as error:  # a race with another worker, a lock timeout: try again
        return _to_retry(item, f"{type(error).__name__}: {str(error.orig if hasattr(error, 'orig') else error)}")
    except Conflict as problem:
        if problem.code == "duplicate_order":  # created meanwhile by a parallel delivery: retry as an update
            return _to_retry(item, problem.message)
        _to_review(item, problem)
        return "review"
    except ServiceError as problem:
        _to_review(item, problem)
        return "review"
    except Exception as error:  # a bug must not lose the payload: it is kept, retried and then dead-lettered
        log.exception("inbox item %s failed", item.id)
        return _to_retry(item, f"{type(error).__name__}: {error}")
    delay = None
    if canonical.paid_at and not was_paid and order is not None and order.payment_status == "paid":
        delay = visible_delay_ms(canonical.paid_at)
    _finish(item, outcome, order.id if order is not None else None, delay)
    return "done"


MAX_DELAY_MS = 2**31 - 1  # the column is a 32-bit integer: an order paid weeks before it reached us is capped


def visible_delay_ms(paid_at: datetime) -> int:
    """Milliseconds from the platform's payment to the order being visible here (capped to what the column holds)."""
    return max(-MAX_DELAY_MS, min(int((utc_now() - paid_at).total_seconds() * 1000), MAX_DELAY_MS))


def _was_paid(context: ChannelContext, canonical: CanonicalOrder) -> bool:
    """Whether the order center already knew the order as paid (to time only the first sight of payment)."""
    from shared.models import Order

    status = db.session.execute(select(Order.payment_status).where(
        Order.channel_id == context.channel.id, Order.channel_order_id == canonical.channel_order_id)
    ).scalar_one_or_none()
    return status == "paid"


MAX_VISIBLE_DELAY_MS = 7 * 24 * 3600 * 1000


def _done_values(outcome: str, order_id: int | None, delay_ms: int | None, now: datetime) -> dict:
    """The columns of a row done with `outcome` (the one definition for a single row and a batch)."""
    # A delay is "how long a paid order took to become visible": an order first seen days later (a re-fetch of
    # old history) is no such figure, and would overflow the INTEGER column past 24.8 days.
    return {"status": "done", "outcome": outcome, "order_id": order_id, "processed_at": now, "error_code": None,
            "last_error": None, "next_attempt_at": None,
            "visible_delay_ms": delay_ms if delay_ms is None or delay_ms <= MAX_VISIBLE_DELAY_MS else None}


def _finish(item: InboxItem, outcome: str, order_id: int | None, delay_ms: int | None) -> None:
    for key, value in _done_values(outcome, order_id, delay_ms, utc_now()).items():
        setattr(item, key, value)


def finish_created(rows: list[tuple[InboxItem, CanonicalOrder, int, int | None]]) -> None:
    """Mark a batch's rows done as `created` (item, canonical, order id, delay) in one executemany UPDATE.

    One ORM flush would send one UPDATE per row (their order ids differ); the loaded objects are given the same
    values as committed state, so they read as done without a flush or a reload.
    """
    if not rows:
        return
    now = utc_now()
    table = InboxItem.__table__
    values = [{"row_id": item.id, "external_id": canonical.channel_order_id[:64],
               "platform_modified_at": canonical.modified_at, **_done_values("created", order_id, delay, now)}
              for item, canonical, order_id, delay in rows]
    columns = [key for key in values[0] if key != "row_id"]
    db.session.execute(update(table).where(table.c.id == bindparam("row_id"))
                       .values({key: bindparam(key) for key in columns}), values)
    for (item, _canonical, _order_id, _delay), row in zip(rows, values):
        for key in columns:
            set_committed_value(item, key, row[key])


def _to_review(item: InboxItem, problem: ServiceError) -> None:
    item.status, item.error_code, item.processed_at = "review", problem.code[:40], utc_now()
    where = f" [{problem.field}]" if problem.field else ""
    item.last_error = f"{problem.message}{where}"[:1000]
    item.next_attempt_at = None


def _to_retry(item: InboxItem, message: str) -> str:
    item.last_error, item.error_code = message[:1000], "processing_failed"
    if item.attempts >= MAX_ATTEMPTS:
        item.status, item.next_attempt_at, item.processed_at = "dead", None, utc_now()
        return "dead"
    item.status = "retry"
    item.next_attempt_at = utc_now() + backoff(item.attempts)
    return "retry"


def backoff(attempts: int) -> timedelta:
    """5 s, 10 s, 20 s, 40 s: doubling after each failed attempt."""
    return timedelta(seconds=FIRST_RETRY_SECONDS * 2 ** max(attempts - 1, 0))


def sweep(now: datetime | None = None, limit: int = 2000, model=InboxItem) -> list[int]:
    """Rows that need a job: received but never taken, due for retry, or abandoned by a dead worker. For the channel
    inbox also the waiting rows whose order has arrived by another way (an API call, an import)."""
    now = now or utc_now()
    db.session.execute(update(model).where(model.status == "processing", model.claimed_at < now - STALE_PROCESSING)
                       .values(status="retry", next_attempt_at=now, last_error="abandoned by a worker"))
    if model is InboxItem:
        arrived = select(Order.id).where(Order.channel_id == InboxItem.channel_id,
                                         Order.channel_order_id == InboxItem.external_id).exists()
        db.session.execute(update(InboxItem).where(InboxItem.status == "waiting", arrived)
                           .values(status="retry", next_attempt_at=now, attempts=0)
                           .execution_options(synchronize_session=False))
    return db.session.execute(
        select(model.id).where(
            ((model.status == "received") & (model.received_at < now - STALE_RECEIVED))
            | ((model.status == "retry") & (model.next_attempt_at <= now)))
        .order_by(model.id).limit(limit)
    ).scalars().all()


def replay(item_id: int, actor: Actor) -> InboxItem:
    """Send a failed (or waiting) row through processing again (after the mapping was fixed), audited."""
    item = db.session.get(InboxItem, item_id)
    if item is None:
        raise NotFound(say(INBOX_ITEM_NOT_FOUND, item_id=item_id), code="inbox_item_not_found")
    check_replayable(item, say(INBOX_ITEM, item_id=item_id))
    _reset(item, actor)
    return item


def check_replayable(item, what: str) -> None:
    if item.status not in REPLAYABLE:
        raise Conflict(say(NOT_FAILED, what=what, item_status=labels.label(labels.INBOX_STATUS, item.status)),
                       code="not_failed")


def replay_failed(actor: Actor, channel_id: int | None = None, limit: int = 10_000) -> list[int]:
    query = select(InboxItem).where(InboxItem.status.in_(FAILED)).order_by(InboxItem.id).limit(limit)
    if channel_id is not None:
        query = query.where(InboxItem.channel_id == channel_id)
    items = db.session.execute(query).scalars().all()
    for item in items:
        _reset(item, actor)
    return [item.id for item in items]


def _reset(item, actor: Actor, entity: str = "inbox_item") -> None:
    audit.record(actor, "inbox.replay", entity, item.id,
                 before={"status": item.status, "error_code": item.error_code, "attempts": item.attempts},
                 after={"status": "received"})
    item.status, item.attempts, item.next_attempt_at = "received", 0, None
    item.error_code, item.last_error = None, None


def get_item(item_id: int) -> InboxItem:
    item = db.session.get(InboxItem, item_id)
    if item is None:
        raise NotFound(say(INBOX_ITEM_NOT_FOUND, item_id=item_id), code="inbox_item_not_found")
    return item


def counts_by_status(channel_id: int | None = None) -> dict[str, int]:
    query = select(InboxItem.status, func.count()).group_by(InboxItem.status)
    if channel_id is not None:
        query = query.where(InboxItem.channel_id == channel_id)
    return dict(db.session.execute(query).all())


def receive_one(channel: Channel, source: str, body: bytes, content_type: str, topic: str | None = None,
                delivery_id: str | None = None) -> int:
    """Store one payload (a webhook, with its topic header) and return its row id."""
    return store(channel, source, [body], content_type, topic=topic, delivery_id=delivery_id)[0]


def visible_delays(channel_id: int, since: datetime) -> list[int]:
    return db.session.execute(
        select(InboxItem.visible_delay_ms).where(InboxItem.channel_id == channel_id,
                                                 InboxItem.processed_at >= since,
                                                 InboxItem.visible_delay_ms.is_not(None))
    ).scalars().all()



def import_spreadsheet(channel: Channel, filename: str, data: bytes, actor: Actor) -> list[int]:
    """Store every order of a CSV/XLSX file in the inbox (source "import"); processing validates each one.

    A file that cannot be read as a whole is refused with the reason and stores nothing.
    """
    from shared.channels.spreadsheet import SpreadsheetError, group_orders, read_rows
    from shared.services.channel_settings import seed_status_mappings
    from shared.services.errors import ValidationFailed

    try:
        orders = group_orders(read_rows(filename, data))
    except SpreadsheetError as problem:
        raise ValidationFailed(str(problem), field="file", code="unreadable_file") from None
    bodies = [json.dumps(order, ensure_ascii=False, separators=(",", ":")).encode() for order in orders]
    seed_status_mappings(channel)  # "paid" and "unpaid", so a never-connected store's import is not all review
    ids = store(channel, "import", bodies)
    audit.record(actor, "channel.import", "channel", channel.code,
                 after={"file": (filename or "")[:120], "orders": len(orders), "stored": len(ids)})
    return ids
