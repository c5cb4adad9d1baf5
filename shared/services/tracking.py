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

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import defer, selectinload

from shared import cash_on_delivery, dispatch, sets
from shared.actors import SYSTEM, Actor
from shared.extensions import db
from shared.floor_lifecycle import SHIPMENT
from shared.lifecycle import OrderStatus
from shared.models import Customer, FulfilmentAlarm, Order, OrderLine, Shipment, TrackingEvent, TrackingPush
from shared.services import alarms
from shared.services import inbox as inbox_states
from shared.services import orders as order_service
from shared.services.errors import NotFound, ServiceError
from shared.services.validation import N_, say
from shared.timekeeping import as_utc, merchant_time_text, utc_now

# What a person reads when this module refuses: message codes, said in the reader's language (say).
NO_PARCEL = N_("No parcel %(waybill_no)s")
NO_PARCEL_HERE = N_("No parcel here has tracking number %(unknown)s")
TRACKING_PUSH = N_("Tracking push %(push_id)s")
TRACKING_PUSH_NOT_FOUND = N_("No tracking push %(push_id)s")

log = logging.getLogger("orderloom.tracking")

STALL_IN_TRANSIT = timedelta(hours=4)  # no new event for this long while moving
STALL_TOTAL = timedelta(days=3)  # or shipped this long ago and not delivered
TRACKED = ("shipped",)  # shipments whose parcels are on their way


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# What ingest reads of a parcel: its summary columns only (no ORM object, no warehouse, no order).
_PARCEL = (Shipment.id, Shipment.order_id, Shipment.waybill_no, Shipment.status, Shipment.tracking_step,
           Shipment.tracking_flags, Shipment.last_event_at, Shipment.stalled_at)
_EVENT_KEY = ["shipment_id", "occurred_at", "source", "description_hash"]
COMPLETED_BY_CARRIER = "delivered, as the carrier reports"


def ingest(events: list, now: datetime | None = None) -> dict:
    """Store events (duplicates ignored), recompute each touched parcel's status, deliver parcels and complete
    their orders: a fixed handful of statements for the whole batch, however many events and parcels it holds.

    Events for a tracking number nobody knows are refused (counted and returned), never guessed onto a parcel.
    Parcel events are assumed aware UTC, as the carrier readers give them (shared/carriers/tracking.py).
    """
    now = now or utc_now()
    numbers = {event.waybill_no for event in events}
    # Locked in id order as they are read: a summary continues from the stored one, so two drains sharing a
    # parcel must take turns (else one overwrites the other's step and flags), and in one order (no deadlock).
    parcels = {row.waybill_no: row for row in db.session.execute(
        select(*_PARCEL).where(sets.among(Shipment.waybill_no, numbers)).order_by(Shipment.id)
        .with_for_update(of=Shipment.__table__))} if numbers else {}
    unknown, returned = numbers - parcels.keys(), {}
    if unknown:  # a return parcel (上门取件) is tracked by the same pushes and polls: its booking takes its events
        from shared.services import return_pickups

        returned = return_pickups.ingest_events([event for event in events if event.waybill_no in unknown], now)
        unknown -= returned.keys()
    unknown = sorted(unknown)
    # The batch's events per parcel, each once (pushes repeat a parcel's whole history).
    fresh: dict[int, dict[tuple, object]] = {parcel.id: {} for parcel in parcels.values()}
    for event in events:
        parcel = parcels.get(event.waybill_no)
        if parcel is not None:
            fresh[parcel.id].setdefault((event.occurred_at, event.source, _hash(event.description)), event)
    # A parcel whose new events are all newer than its last one continues its stored summary; the others (an event
    # that may be known already, or arrived late) are summarized again from what is stored, read in one query.
    reread = [parcel.id for parcel in parcels.values() if fresh[parcel.id] and (
        parcel.last_event_at is None or min(key[0] for key in fresh[parcel.id]) <= parcel.last_event_at)]
    stored_by: dict[int, list] = {}
    if reread:
        for row in db.session.execute(select(
                TrackingEvent.shipment_id, TrackingEvent.occurred_at, TrackingEvent.source,
                TrackingEvent.description_hash, TrackingEvent.step, TrackingEvent.flag)
                .where(sets.among(TrackingEvent.shipment_id, reread))
                .order_by(TrackingEvent.occurred_at, TrackingEvent.id)):
            stored_by.setdefault(row.shipment_id, []).append(_Stored(row))
    rows, summaries, steps = [], [], []
    # Parcels in id order, so two drains that share a parcel lock its rows in the same order (no deadlock).
    for parcel in sorted(parcels.values(), key=lambda row: row.id):
        known = {(item.occurred_at, item.source, item.description) for item in stored_by.get(parcel.id, ())}
        new = [(key, event) for key, event in fresh[parcel.id].items() if key not in known]
        for (occurred_at, source, description_hash), event in new:
            rows.append({"shipment_id": parcel.id, "occurred_at": occurred_at, "source": source,
                         "raw_status": str(event.raw_status)[:40], "step": event.step, "flag": event.flag,
                         "description": event.description[:500], "description_hash": description_hash,
                         "location": (event.location or None) and event.location[:120], "received_at": now})
        if new:
            summaries.append(_refresh(parcel, [event for _key, event in new], parcel.id in stored_by
                                      or parcel.id in reread, stored_by.get(parcel.id, [])))
            steps.append((parcel, summaries[-1]["tracking_step"]))
    # ON CONFLICT still guards against a parallel push of the same event; what it returns is what was new.
    inserted = Counter(shipment_id for (shipment_id,) in sets.insert_new_rows(
        TrackingEvent, rows, conflict=_EVENT_KEY, returning=["shipment_id"]))
    sets.update_rows(Shipment, summaries, ["tracking_step", "tracking_flags", "last_event_at", "stalled_at"])
    moving_again = [summary["id"] for summary in summaries if summary["moving_again"]]
    if moving_again:
        _resolve_all(moving_again, "parcel_stalled", now)
    delivered = [{"id": summary["id"], "status": "delivered", "delivered_at": summary["last_event_at"]}
                 for summary in summaries if summary["delivered"]]
    moved = sets.update_rows(Shipment, delivered, ["status", "delivered_at"], where=_status_among(
        SHIPMENT.sources("delivered")), returning=["order_id", "delivered_at"])
    if moved:
        _complete_delivered_orders(moved, now)
    _notify_steps(steps)
    by_id = {parcel.id: number for number, parcel in parcels.items()}
    new_by_number = Counter({by_id[shipment_id]: count for shipment_id, count in inserted.items()})
    new_by_number.update({number: count for number, count in returned.items() if count})
    return {"received": len(events),
            "received_known": sum(1 for e in events if e.waybill_no in parcels or e.waybill_no in returned),
            "stored": sum(new_by_number.values()), "unknown_numbers": unknown, "new_by_number": new_by_number,
            "delivered": len(moved)}


# The customer hears of these steps by mail (shared/services/notifications.py): leaving for the carrier, out for
# delivery, delivered; each once per order.
BEFORE_CARRIER = (None, "awaiting_pickup")


def step_notifications(before: str | None, after: str | None) -> list[str]:
    """The customer notifications a parcel's move from step `before` to `after` calls for."""
    if after == before or after in BEFORE_CARRIER:
        return []
    if after == "delivered":
        return ["delivered"]
    events = ["shipped"] if before in BEFORE_CARRIER else []
    return events + (["out_for_delivery"] if after == "out_for_delivery" else [])


def _notify_steps(steps: list) -> None:
    """Queue the mails the batch's step changes call for: the orders and customers read in one query."""
    from shared.services import notifications

    wanted = [(parcel, events) for parcel, after in steps
              if (events := step_notifications(parcel.tracking_step, after))]
    if not wanted:
        return
    orders = {order.id: order for order in db.session.execute(
        select(Order).options(defer(Order.street), selectinload(Order.customer).defer(Customer.id_number))
        .where(sets.among(Order.id, {parcel.order_id for parcel, _events in wanted}))).scalars()}
    notifications.notify_many([(orders[parcel.order_id], event, {"waybill_no": parcel.waybill_no})
                               for parcel, events in wanted if parcel.order_id in orders for event in events])


def _status_among(states: tuple[str, ...]) -> str:
    return "status IN (" + ", ".join(f"'{state}'" for state in states) + ")"  # declared names, never input


class _Stored:
    """A stored event in the shape summarize() reads (its description stands for itself by its hash)."""

    __slots__ = ("occurred_at", "description", "source", "step", "flag")

    def __init__(self, row):
        self.occurred_at, self.description, self.source = row.occurred_at, row.description_hash, row.source
        self.step, self.flag = row.step, row.flag


def _refresh(parcel, new: list, reread: bool, stored: list) -> dict:
    """A parcel's new summary (step, flags, last event, stall cleared, delivered) from its new events: continued
    from its stored summary, or, when `reread`, summarized again from its stored events and these."""
    from shared.carriers.tracking import summarize

    if reread:
        step, flags = summarize([*stored, *new])
        last = max((item.occurred_at for item in (*stored, *new)), default=parcel.last_event_at)
    else:
        start = (parcel.tracking_step or "awaiting_pickup",
                 set(parcel.tracking_flags.split(",")) if parcel.tracking_flags else set())
        step, flags = summarize(new, start)
        last = max(event.occurred_at for event in new)
    moving_again = bool(parcel.stalled_at and last and last > parcel.stalled_at)
    return {"id": parcel.id, "tracking_step": step or parcel.tracking_step,
            "tracking_flags": ",".join(sorted(flags)) or None, "last_event_at": last,
            "stalled_at": None if moving_again else parcel.stalled_at, "moving_again": moving_again,
            "delivered": step == "delivered" and SHIPMENT.allowed(parcel.status, "delivered")}


def _complete_delivered_orders(moved: list, now: datetime) -> None:
    """Orders whose every parcel is now delivered: a cash-on-delivery one is paid by its delivery, and a shipped
    one completes, the whole set with one move (an order changed meanwhile is read again and moved alone)."""
    delivered_at = {}
    for order_id, at in moved:
        delivered_at[order_id] = max(at or now, delivered_at.get(order_id, at or now))
    open_parcels = Counter()
    for order_id, status in db.session.execute(select(Shipment.order_id, Shipment.status).where(
            sets.among(Shipment.order_id, delivered_at), Shipment.status != "cancelled")):
        if status != "delivered":
            open_parcels[order_id] += 1
    done_ids = [order_id for order_id in delivered_at if not open_parcels[order_id]]
    if not done_ids:
        return
    # What the audit snapshot and the subscribers' payload read, loaded for the set; the street (encrypted, and
    # shown to nobody in these) and the customer's ID number are not loaded, so not decrypted.
    orders = db.session.execute(
        select(Order).options(defer(Order.street), selectinload(Order.customer).defer(Customer.id_number),
                              selectinload(Order.warehouse),
                              selectinload(Order.lines).selectinload(OrderLine.sku))
        .where(sets.among(Order.id, done_ids)).order_by(Order.id)).scalars().all()
    for order in orders:
        if cash_on_delivery.collected_on_delivery(order):
            # The carrier hands over a COD parcel only against the cash: its delivery is the payment.
            order_service.record_payment(order, delivered_at[order.id], SYSTEM)
    shipped = [order for order in orders if order.status == OrderStatus.SHIPPED]
    completed = order_service.transition_many(shipped, OrderStatus.COMPLETED, SYSTEM, COMPLETED_BY_CARRIER,
                                              skip_stale=True)
    for order in set(shipped) - set(completed):  # changed since it was read: decide again on its fresh state
        db.session.refresh(order)
        if order.status == OrderStatus.SHIPPED:
            order_service.transition_order(order, OrderStatus.COMPLETED, SYSTEM, COMPLETED_BY_CARRIER)


def _resolve_all(shipment_ids: list[int], kind: str, now: datetime) -> None:
    db.session.execute(update(FulfilmentAlarm).where(
        sets.among(FulfilmentAlarm.shipment_id, shipment_ids), FulfilmentAlarm.kind == kind,
        FulfilmentAlarm.resolved_at.is_(None)).values(resolved_at=now).execution_options(synchronize_session="fetch"))


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
            flagged.append(shipment)
            if alarms.is_muted("parcel_stalled", f"order:{shipment.order.order_no}", now):
                continue  # the customer is still told; staff muted the board's alarm for a while
            db.session.add(FulfilmentAlarm(
                kind="parcel_stalled", order_id=shipment.order_id, shipment_id=shipment.id, role="customer_service",
                message=f"parcel {shipment.waybill_no} ({shipment.carrier_code}) of {shipment.order.order_no}: no "
                        f"carrier event since {merchant_time_text(last)}", raised_at=now))
    if flagged:
        from shared.services import notifications

        notifications.notify_many([(shipment.order, "stalled", {"waybill_no": shipment.waybill_no})
                                   for shipment in flagged])
    return flagged


def shipment_by_waybill(waybill_no: str) -> Shipment:
    shipment = db.session.execute(select(Shipment).where(Shipment.waybill_no == waybill_no)).scalar_one_or_none()
    if shipment is None:
        raise NotFound(say(NO_PARCEL, waybill_no=waybill_no), field="waybill_no",
                       code="unknown_tracking_number")
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
    events, failed, couriers = [], [], []
    with_courier = getattr(client, "query_courier", None)  # Kuaidi100Client asks for courierInfo as well
    for shipment in quiet:
        waybill_no = shipment.waybill_no
        try:  # SF and ZTO answer only with the receiver's phone
            if with_courier is not None:
                found, courier = with_courier(shipment.carrier_code or "SF", waybill_no,
                                              phone=shipment.order.receiver_phone)
                events += found
                if courier is not None:
                    couriers.append((shipment.id, courier))
            else:
                events += client.query(shipment.carrier_code or "SF", waybill_no, phone=shipment.order.receiver_phone)
        except TrackingQueryError as error:
            failed.append(f"{waybill_no}: {error}")
    outcome = ingest(events, now) if events else {"stored": 0}
    record_couriers(couriers, "kuaidi100", now)
    return {"asked": len(quiet), "stored": outcome["stored"], "failed": failed, "couriers": len(couriers)}


def record_couriers(couriers: list, source: str, now: datetime | None = None) -> int:
    """Keep the couriers a carrier named per parcel ((shipment id, CourierInfo) pairs; the newest answer wins, a
    courier it no longer names is kept). One read and one write per parcel named; few parcels are asked at once."""
    from shared.models import ParcelCourier

    now = now or utc_now()
    for shipment_id, courier in couriers:
        row = db.session.get(ParcelCourier, shipment_id)
        if row is None:
            row = ParcelCourier(shipment_id=shipment_id, source=source)
            db.session.add(row)
        for name in ("pickup_name", "pickup_phone", "delivery_name", "delivery_phone"):
            value = getattr(courier, name)
            if value:
                setattr(row, name, value)
        row.source, row.seen_at = source, now
    db.session.flush()
    return len(couriers)


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
    """Process claimed pushes: read each, store all their events with one ingest, record each push's outcome
    (one UPDATE for every push done). The caller commits. If the batch as a whole fails, each push is tried
    alone, so one bad push costs itself."""
    from shared.carriers.tracking import TrackingPayloadError

    tally = Counter()
    # Id, source and body only: no ORM object per push on the way that succeeds.
    pushes = db.session.execute(select(TrackingPush.id, TrackingPush.source, TrackingPush.body).where(
        sets.among(TrackingPush.id, ids), TrackingPush.status == "processing").order_by(TrackingPush.id)).all()
    readable = []
    for push in pushes:
        try:
            readable.append((push.id, read_push(push)))
        except TrackingPayloadError as problem:
            inbox_states._to_review(db.session.get(TrackingPush, push.id), ServiceError(str(problem),
                                                                                     code=problem.code))
            tally["review"] += 1
    try:
        with db.session.begin_nested():
            outcome = ingest([event for _push_id, events in readable for event in events], now)
            db.session.flush()
    except Exception as error:  # noqa: BLE001 — the batch gave way; each push gets its own outcome below
        log.info("tracking batch of %s gave way: %s: %s", len(readable), type(error).__name__, error)
        for push_id, events in readable:
            tally[_process_alone(db.session.get(TrackingPush, push_id), events, now)] += 1
        return dict(tally)
    done = []
    for push_id, events in readable:
        result = _outcome(events, outcome)
        if isinstance(result, ServiceError):
            inbox_states._to_review(db.session.get(TrackingPush, push_id), result)
            tally["review"] += 1
        else:
            done.append({"id": push_id, **result})
    sets.update_rows(TrackingPush, done, list(_DONE_COLUMNS), where="status = 'processing'")
    tally["done"] += len(done)
    return dict(tally)


_DONE_COLUMNS = ("status", "processed_at", "events_stored", "outcome", "error_code", "last_error", "next_attempt_at")


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
    result = _outcome(events, outcome)
    if isinstance(result, ServiceError):
        inbox_states._to_review(push, result)
        return "review"
    for key, value in result.items():
        setattr(push, key, value)
    return "done"


def _outcome(events: list, outcome: dict) -> dict | ServiceError:
    """A push's outcome from its batch's ingest: the columns of a push done, or why it goes to review (every
    number it names is unknown here)."""
    numbers = {event.waybill_no for event in events}
    unknown = sorted(numbers & set(outcome["unknown_numbers"]))
    if numbers and len(unknown) == len(numbers):
        return NotFound(say(NO_PARCEL_HERE, unknown=', '.join(unknown)), field="waybill_no",
                        code="unknown_tracking_number")
    stored = sum(outcome["new_by_number"].get(number, 0) for number in numbers)
    return {"status": "done", "processed_at": utc_now(), "events_stored": stored,
            "outcome": "no_events" if not events else ("stored" if stored else "nothing_new"),
            "error_code": None, "last_error": None, "next_attempt_at": None}


def sweep_pushes(now: datetime | None = None) -> list[int]:
    return inbox_states.sweep(now, model=TrackingPush)


def replay_push(push_id: int, actor: Actor) -> TrackingPush:
    """Send a failed push through processing again (after the parcel was registered, or a bug fixed), audited."""
    push = get_push(push_id)
    inbox_states.check_replayable(push, say(TRACKING_PUSH, push_id=push_id))
    inbox_states._reset(push, actor, "tracking_push")
    return push


def get_push(push_id: int) -> TrackingPush:
    push = db.session.get(TrackingPush, push_id)
    if push is None:
        raise NotFound(say(TRACKING_PUSH_NOT_FOUND, push_id=push_id), code="tracking_push_not_found")
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
