"""Carrier tracking: events from Kuaidi100 and 17TRACK (pushed or polled) kept per parcel, the parcel's one
five-step status and exception flags recomputed from all of them, delivery completing the order, and
stalled parcels flagged for staff and the customer.

Pushes go through an inbox like channel webhooks (`tracking_pushes`): the hook verifies the signature and stores
the raw body (`receive_push`), answers, and a job drains the waiting pushes in batches (`process_pushes`): one
`ingest` for the whole batch, one push at a time only when the batch fails. A push for a parcel nobody here knows
goes to review (`unknown_tracking_number`), an unreadable one to review with the reason, a failure of processing to
retry and then dead; review and dead pushes are replayed from the portal's inbox page (`replay_push`).
"""
import hashlib
import logging
from collections import Counter
from datetime import datetime, timedelta
from urllib.parse import parse_qsl

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import defer, lazyload

from shared import cash_on_delivery, dispatch
from shared.actors import SYSTEM, Actor
from shared.extensions import db
from shared.floor_lifecycle import SHIPMENT
from shared.lifecycle import OrderStatus
from shared.models import FulfilmentAlarm, Shipment, TrackingEvent, TrackingPush
from shared.services import inbox as inbox_states
from shared.services import orders as order_service
from shared.services.errors import NotFound, ServiceError
from shared.timekeeping import as_utc, utc_now

log = logging.getLogger("orderloom.tracking")

STALL_IN_TRANSIT = timedelta(hours=4)  # no new event for this long while moving
STALL_TOTAL = timedelta(days=3)  # or shipped this long ago and not delivered
TRACKED = ("shipped",)  # shipments whose parcels are on their way


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def ingest(events: list, now: datetime | None = None) -> dict:
    """Store events (duplicates ignored by the database), then recompute each touched parcel's status.

    Events for a tracking number nobody knows are refused (counted and returned), never guessed onto a parcel.
    """
    from shared.carriers.tracking import summarize

    now = now or utc_now()
    numbers = {event.waybill_no for event in events}
    # The order (with its encrypted contact) is loaded only for a parcel that turns out delivered.
    shipments = {s.waybill_no: s for s in db.session.execute(
        select(Shipment).options(lazyload(Shipment.order), lazyload(Shipment.warehouse))
        .where(Shipment.waybill_no.in_(list(numbers)))).scalars()}
    unknown = sorted(numbers - shipments.keys())
    # What each touched parcel already has, in one query: pushes repeat a parcel's whole history, so most
    # events of a push are known, and only the new ones are written.
    by_shipment: dict[int, list] = {shipment.id: [] for shipment in shipments.values()}
    known = set()
    if by_shipment:
        for row in db.session.execute(select(TrackingEvent).where(TrackingEvent.shipment_id.in_(list(by_shipment)))
                                      .order_by(TrackingEvent.occurred_at, TrackingEvent.id)).scalars():
            by_shipment[row.shipment_id].append(_Stored(row))
            known.add((row.shipment_id, as_utc(row.occurred_at), row.source, row.description_hash))
    rows, new_by_number = [], Counter()
    for event in events:
        shipment = shipments.get(event.waybill_no)
        if shipment is None:
            continue
        key = (shipment.id, event.occurred_at, event.source, _hash(event.description))
        if key in known:
            continue
        known.add(key)
        rows.append({"shipment_id": shipment.id, "occurred_at": event.occurred_at, "source": event.source,
                     "raw_status": str(event.raw_status)[:40], "step": event.step, "flag": event.flag,
                     "description": event.description[:500], "description_hash": key[3],
                     "location": (event.location or None) and event.location[:120], "received_at": now})
        by_shipment[shipment.id].append(event)
        new_by_number[event.waybill_no] += 1
    stored = 0
    if rows:
        insert = postgresql.insert if db.engine.dialect.name == "postgresql" else sqlite.insert
        # Parameter sets, not one VALUES clause built per call: compiling a 5,000-row VALUES costs more than
        # sending it. ON CONFLICT still guards against a parallel push of the same event; RETURNING counts.
        statement = insert(TrackingEvent.__table__).on_conflict_do_nothing(
            index_elements=["shipment_id", "occurred_at", "source", "description_hash"]
        ).returning(TrackingEvent.__table__.c.id)
        stored = len(db.session.execute(statement, rows).all())
    for shipment in shipments.values():
        _refresh(shipment, by_shipment[shipment.id], summarize, now)
    return {"received": len(events), "received_known": sum(1 for e in events if e.waybill_no in shipments),
            "stored": stored, "unknown_numbers": unknown, "new_by_number": new_by_number}



class _Stored:
    """A stored event in the shape summarize() reads."""

    def __init__(self, row: TrackingEvent):
        self.occurred_at, self.description, self.source = as_utc(row.occurred_at), row.description, row.source
        self.step, self.flag, self.raw_status = row.step, row.flag, row.raw_status


def _refresh(shipment: Shipment, rows: list, summarize, now: datetime) -> None:
    step, flags = summarize(rows)
    shipment.tracking_step = step or shipment.tracking_step
    shipment.tracking_flags = ",".join(sorted(flags)) or None
    shipment.last_event_at = max((as_utc(row.occurred_at) for row in rows), default=shipment.last_event_at)
    if shipment.stalled_at and shipment.last_event_at and as_utc(shipment.last_event_at) > as_utc(shipment.stalled_at):
        shipment.stalled_at = None  # moving again
        _resolve(shipment, "parcel_stalled", now)
    if step == "delivered" and shipment.status == "shipped":
        SHIPMENT.move(shipment, "delivered")
        shipment.delivered_at = shipment.last_event_at
        order = shipment.order
        parcels = db.session.execute(select(Shipment.status).where(Shipment.order_id == order.id,
                                                                   Shipment.status != "cancelled")).scalars().all()
        if all(status == "delivered" for status in parcels) and cash_on_delivery.collected_on_delivery(order):
            # The carrier hands over a COD parcel only against the cash: its delivery is the payment.
            order_service.record_payment(order, as_utc(shipment.delivered_at) or now, SYSTEM)
        if order.status == OrderStatus.SHIPPED and all(status == "delivered" for status in parcels):
            order_service.transition_order(order, OrderStatus.COMPLETED, SYSTEM, "delivered, as the carrier reports")


def timeline(order_id: int) -> tuple[Shipment | None, list[TrackingEvent]]:
    shipment = db.session.execute(select(Shipment).where(Shipment.order_id == order_id)
                                  .order_by(Shipment.id.desc())).scalars().first()
    if shipment is None:
        return None, []
    events = db.session.execute(select(TrackingEvent).where(TrackingEvent.shipment_id == shipment.id)
                                .order_by(TrackingEvent.occurred_at.desc(), TrackingEvent.id.desc())).scalars().all()
    return shipment, events


def find_stalled(now: datetime | None = None, in_transit: timedelta = STALL_IN_TRANSIT,
                 total: timedelta = STALL_TOTAL) -> list[Shipment]:
    """Parcels on their way with no new event for `in_transit`, or shipped more than `total` ago; each is flagged
    once, with an alarm for customer service and a notice on the customer's order page."""
    now = now or utc_now()
    flagged = []
    for shipment in db.session.execute(select(Shipment).where(Shipment.status.in_(TRACKED),
                                                              Shipment.stalled_at.is_(None))).scalars():
        last = as_utc(shipment.last_event_at or shipment.shipped_at)
        shipped = as_utc(shipment.shipped_at)
        if (last and now - last > in_transit) or (shipped and now - shipped > total):
            shipment.stalled_at = now
            db.session.add(FulfilmentAlarm(
                kind="parcel_stalled", order_id=shipment.order_id, shipment_id=shipment.id, role="customer_service",
                message=f"parcel {shipment.waybill_no} ({shipment.carrier_code}) of {shipment.order.order_no}: no "
                        f"carrier event since {last:%Y-%m-%d %H:%M} UTC", raised_at=now))
            flagged.append(shipment)
    return flagged


def _resolve(shipment: Shipment, kind: str, now: datetime) -> None:
    for alarm in db.session.execute(select(FulfilmentAlarm).where(
            FulfilmentAlarm.shipment_id == shipment.id, FulfilmentAlarm.kind == kind,
            FulfilmentAlarm.resolved_at.is_(None))).scalars():
        alarm.resolved_at = now


def shipment_by_waybill(waybill_no: str) -> Shipment:
    shipment = db.session.execute(select(Shipment).where(Shipment.waybill_no == waybill_no)).scalar_one_or_none()
    if shipment is None:
        raise NotFound(f"no parcel {waybill_no}", field="waybill_no", code="unknown_tracking_number")
    return shipment


POLL_AFTER = timedelta(hours=2)  # a parcel no push has mentioned for this long is asked about


def poll_quiet(client, now: datetime | None = None, limit: int = 200) -> dict:
    """Ask Kuaidi100 about shipped parcels nobody has pushed news of lately (a missed push loses nothing)."""
    from shared.carriers.tracking import TrackingQueryError

    now = now or utc_now()
    quiet = db.session.execute(
        select(Shipment).where(
            Shipment.status.in_(TRACKED), Shipment.waybill_no.is_not(None),
            (Shipment.last_event_at.is_(None)) | (Shipment.last_event_at < now - POLL_AFTER))
        .order_by(Shipment.last_event_at).limit(limit)).scalars().all()
    events, failed = [], []
    for shipment in quiet:
        waybill_no = shipment.waybill_no
        try:  # SF and ZTO answer only with the receiver's phone
            events += client.query(shipment.carrier_code or "SF", waybill_no, phone=shipment.order.receiver_phone)
        except TrackingQueryError as error:
            failed.append(f"{waybill_no}: {error}")
    outcome = ingest(events, now) if events else {"stored": 0}
    return {"asked": len(quiet), "stored": outcome["stored"], "failed": failed}


# --- the tracking-push inbox --------------------------------------------------------------------------------------

PUSH_SOURCES = ("kuaidi100", "17track")
DRAIN_JOB = "jobs.sync.drain_tracking"
DRAIN_KEY = "drain-tracking"
BATCH = 500  # pushes per round of a drain job


def receive_push(source: str, body: bytes, content_type: str) -> int:
    """Store one verified push raw (the same bytes twice are one row, counted twice); returns its row id."""
    from shared.carriers.tracking import push_waybill_no

    text = body.decode("utf-8", errors="replace")
    row = {"source": source, "received_at": utc_now(), "content_hash": hashlib.sha256(body).hexdigest(),
           "content_type": (content_type or "")[:100], "body": text, "times_received": 1,
           "waybill_no": push_waybill_no(source, text), "status": "received", "attempts": 0, "events_stored": 0}
    table = TrackingPush.__table__
    insert = postgresql.insert if db.engine.dialect.name == "postgresql" else sqlite.insert
    statement = insert(table).values([row]).on_conflict_do_update(
        index_elements=["source", "content_hash"], set_={"times_received": table.c.times_received + 1}
    ).returning(table.c.id)
    return db.session.execute(statement).scalar_one()


def kick() -> None:
    """After a push is committed: make sure a drain job will pick it up (one job for a burst)."""
    dispatch.send_once(DRAIN_JOB, key=DRAIN_KEY, queue="sync")


def claim_received(limit: int = BATCH) -> list[int]:
    waiting = select(TrackingPush.id).where(TrackingPush.status == "received").order_by(TrackingPush.id).limit(limit)
    if db.engine.dialect.name == "postgresql":
        waiting = waiting.with_for_update(skip_locked=True)
    return inbox_states.claim(db.session.execute(waiting).scalars().all(), TrackingPush)


def claim(ids: list[int]) -> list[int]:
    return inbox_states.claim(ids, TrackingPush)


def read_push(push: TrackingPush) -> list:
    """The events of a stored push, read as its source's shape (the signature was checked at receipt)."""
    from shared.carriers.tracking import read_17track_push, read_kuaidi100_push

    if push.source == "kuaidi100":
        return read_kuaidi100_push(dict(parse_qsl(push.body, keep_blank_values=True)))
    return read_17track_push(push.body)


def process_pushes(ids: list[int], now: datetime | None = None) -> dict:
    """Process claimed pushes: read each, store all their events with one ingest, record each push's outcome.
    The caller commits. If the batch as a whole fails, each push is tried alone, so one bad push costs itself."""
    from shared.carriers.tracking import TrackingPayloadError

    tally = Counter()
    pushes = db.session.execute(select(TrackingPush).where(TrackingPush.id.in_(ids),
                                                           TrackingPush.status == "processing")
                                .order_by(TrackingPush.id)).scalars().all()
    readable = []
    for push in pushes:
        try:
            readable.append((push, read_push(push)))
        except TrackingPayloadError as problem:
            inbox_states._to_review(push, ServiceError(str(problem), code=problem.code))
            tally["review"] += 1
    try:
        with db.session.begin_nested():
            outcome = ingest([event for _push, events in readable for event in events], now)
            db.session.flush()
    except Exception as error:  # noqa: BLE001 — the batch gave way; each push gets its own outcome below
        log.info("tracking batch of %s gave way: %s: %s", len(readable), type(error).__name__, error)
        for push, events in readable:
            tally[_process_alone(push, events, now)] += 1
        return dict(tally)
    for push, events in readable:
        tally[_finish_push(push, events, outcome)] += 1
    return dict(tally)


def _process_alone(push: TrackingPush, events: list, now: datetime | None) -> str:
    try:
        with db.session.begin_nested():
            outcome = ingest(events, now)
            db.session.flush()
    except (IntegrityError, DBAPIError) as error:
        return inbox_states._to_retry(push, f"{type(error).__name__}: {getattr(error, 'orig', error)}")
    except ServiceError as problem:
        inbox_states._to_review(push, problem)
        return "review"
    except Exception as error:  # a bug must not lose the push: kept, retried, then dead-lettered (replayable)
        log.exception("tracking push %s failed", push.id)
        return inbox_states._to_retry(push, f"{type(error).__name__}: {error}")
    return _finish_push(push, events, outcome)


def _finish_push(push: TrackingPush, events: list, outcome: dict) -> str:
    numbers = {event.waybill_no for event in events}
    unknown = sorted(numbers & set(outcome["unknown_numbers"]))
    if numbers and len(unknown) == len(numbers):
        inbox_states._to_review(push, NotFound(f"no parcel here has tracking number {', '.join(unknown)}",
                                               field="waybill_no", code="unknown_tracking_number"))
        return "review"
    stored = sum(outcome["new_by_number"].get(number, 0) for number in numbers)
    push.status, push.processed_at, push.events_stored = "done", utc_now(), stored
    push.outcome = "no_events" if not events else ("stored" if stored else "nothing_new")
    push.error_code, push.last_error, push.next_attempt_at = None, None, None
    return "done"


def sweep_pushes(now: datetime | None = None) -> list[int]:
    return inbox_states.sweep(now, model=TrackingPush)


def replay_push(push_id: int, actor: Actor) -> TrackingPush:
    """Send a failed push through processing again (after the parcel was registered, or a bug fixed), audited."""
    push = get_push(push_id)
    inbox_states.check_replayable(push, f"tracking push {push_id}")
    inbox_states._reset(push, actor, "tracking_push")
    return push


def get_push(push_id: int) -> TrackingPush:
    push = db.session.get(TrackingPush, push_id)
    if push is None:
        raise NotFound(f"no tracking push {push_id}", code="tracking_push_not_found")
    return push


def push_counts() -> dict[str, int]:
    return dict(db.session.execute(select(TrackingPush.status, func.count()).group_by(TrackingPush.status)).all())


def recent_pushes(status: str | None = None, limit: int = 50) -> list[TrackingPush]:
    """Pushes for the inbox page, newest first; the encrypted body is not loaded for a list."""
    query = select(TrackingPush).options(defer(TrackingPush.body)).order_by(TrackingPush.id.desc()).limit(limit)
    if status == "failed":
        query = query.where(TrackingPush.status.in_(inbox_states.FAILED))
    elif status:
        query = query.where(TrackingPush.status == status)
    return db.session.execute(query).scalars().all()
