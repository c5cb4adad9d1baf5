"""Polling a channel by modified-time window: overlap, paging until done, a watermark, retries with backoff.

Each page is stored in the inbox and committed as it arrives (the next page is fetched meanwhile, on a thread of
its own), so a crash mid-poll keeps what arrived; the watermark only moves past a window once every page of it is
stored. Windows longer than the platform allows are cut into pieces. A page that fails is retried with exponential backoff (RETRIES times);
then the run is recorded as failed, the watermark stays, and the next poll asks for the same window again.
"""
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import httpx
from sqlalchemy import select

from shared.channels import adapter_for, polls
from shared.channels.base import Credentials, PlatformError
from shared.extensions import db
from shared.models import Channel, ChannelConnection, SyncRun
from shared.services import inbox
from shared.services.errors import NotFound, ValidationFailed
from shared.services.validation import N_, say
from shared.timekeeping import as_utc, utc_now

# What a person reads when this module refuses: message codes, said in the reader's language (say).
NO_API_ADDRESS = N_("%(channel_name)s has no API address")
NO_CONNECTION = N_("The channel has no connection")

log = logging.getLogger("orderloom.polling")
RETRIES = 3
FIRST_BACKOFF_SECONDS = 0.5
INITIAL_LOOKBACK = timedelta(hours=24)  # a new connection starts a day back; reconciliation covers 72 hours
SETTLE = timedelta(seconds=2)  # platforms index a change a moment after it happens
MAX_PAGES = 10_000
HTTP_TIMEOUT = 15.0


def credentials(connection: ChannelConnection) -> Credentials:
    if not connection.base_url:
        raise ValidationFailed(say(NO_API_ADDRESS, channel_name=connection.channel.name), field="base_url",
                               code="not_connected")
    return Credentials(connection.base_url, connection.app_key, connection.app_secret, connection.access_token)


def due_channel_ids(now: datetime | None = None) -> list[int]:
    """Channels whose polling period has passed since their last poll."""
    now = now or utc_now()
    rows = db.session.execute(
        select(ChannelConnection, Channel.kind).join(Channel, Channel.id == ChannelConnection.channel_id)
        .where(ChannelConnection.polling_enabled, Channel.active, ChannelConnection.base_url.is_not(None))
    ).all()
    due = []
    for connection, kind in rows:
        last = as_utc(connection.last_poll_at)
        if polls(kind) and (last is None or last + timedelta(minutes=connection.poll_minutes) <= now):
            due.append(connection.channel_id)
    return due


def windows(start: datetime, end: datetime, longest: timedelta) -> list[tuple[datetime, datetime]]:
    pieces = []
    while start < end:
        pieces.append((start, min(start + longest, end)))
        start = pieces[-1][1]
    return pieces


def _fetch_with_retries(fetch: Callable, sleep: Callable[[float], None]):
    delay = FIRST_BACKOFF_SECONDS
    for attempt in range(RETRIES + 1):
        try:
            return fetch()
        except (PlatformError, httpx.HTTPError, ValueError) as error:
            if attempt == RETRIES:
                raise PlatformError(f"{type(error).__name__}: {error} (after {RETRIES} retries)") from error
            log.warning("poll page failed attempt=%s error=%s retry_in=%.1fs", attempt + 1, error, delay)
            sleep(delay)
            delay *= 2


def poll(channel_id: int, commit: Callable[[], None], now: datetime | None = None,
         sleep: Callable[[float], None] = time.sleep, kind: str = "poll", start: datetime | None = None,
         end: datetime | None = None, transport: httpx.BaseTransport | None = None) -> SyncRun:
    """Fetch every order modified since the watermark (minus the overlap); store and queue each page.

    Long work with its own checkpoints: the caller (a job) passes `commit`, called after each page, so the
    transaction boundaries stay at the edge while a crash keeps what arrived.
    """
    connection = db.session.execute(select(ChannelConnection).where(ChannelConnection.channel_id == channel_id)
                                    ).scalar_one_or_none()
    if connection is None:
        raise NotFound(say(NO_CONNECTION), code="not_connected")
    channel, adapter = connection.channel, adapter_for(connection.channel.kind)
    creds = credentials(connection)
    now = now or utc_now()
    watermark = as_utc(connection.watermark)
    if start is None:
        start = (watermark or now - INITIAL_LOOKBACK) - timedelta(seconds=connection.overlap_seconds)
    end = end or now - SETTLE
    run = SyncRun(channel_id=channel.id, kind=kind, started_at=utc_now(), window_start=start, window_end=end,
                  status="running", pages=0, fetched=0, stored=0, attempt=1)
    db.session.add(run)
    connection.last_poll_at = now
    commit()
    waiting: list[int] = []  # stored and committed, not yet handed to a processing job
    try:
        with httpx.Client(timeout=HTTP_TIMEOUT, transport=transport) as client, \
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="poll-fetch") as fetcher:
            for window_start, window_end in windows(start, end, adapter.max_window):
                def fetch(cursor, window_start=window_start, window_end=window_end):
                    return _fetch_with_retries(
                        lambda: adapter.fetch_page(client, creds, window_start, window_end, cursor), sleep)

                pages, upcoming = 0, fetcher.submit(fetch, None)
                while True:
                    page = upcoming.result()
                    # The next page is asked for while this one is stored: the platform's time and ours overlap.
                    upcoming = fetcher.submit(fetch, page.next_cursor) \
                        if page.next_cursor is not None and pages + 1 < MAX_PAGES else None
                    ids = inbox.store(channel, kind, [_raw_bytes(order) for order in page.orders]) \
                        if page.orders else []
                    run.pages, run.fetched, run.stored = run.pages + 1, run.fetched + len(page.orders), \
                        run.stored + len(ids)
                    commit()
                    waiting += ids
                    if len(waiting) >= inbox.BATCH:  # bigger jobs share their fixed costs (measured: 100 → 500)
                        inbox.queue(waiting)
                        waiting = []
                    pages += 1
                    if upcoming is None:
                        break
                if kind == "poll" and (watermark is None or window_end > watermark):
                    connection.watermark = watermark = window_end
                commit()
    except PlatformError as error:
        inbox.queue(waiting)  # what was stored before the failure is processed all the same
        db.session.rollback()
        run = db.session.merge(run)
        connection = db.session.merge(connection)
        run.status, run.error, run.finished_at = "failed", str(error)[:1000], utc_now()
        connection.consecutive_failures += 1
        connection.last_error = str(error)[:1000]
        commit()
        log.error("poll channel=%s failed: %s", channel.code, error)
        return run
    inbox.queue(waiting)
    run.status, run.finished_at = "ok", utc_now()
    connection.last_success_at, connection.consecutive_failures, connection.last_error = run.finished_at, 0, None
    commit()
    log.info("poll channel=%s pages=%s fetched=%s", channel.code, run.pages, run.fetched)
    return run


def _raw_bytes(order: dict) -> bytes:
    """A polled order is stored as the platform's JSON for that order, keys as sent."""
    return json.dumps(order, ensure_ascii=False, separators=(",", ":")).encode()


def fetch_window(channel_id: int, start: datetime, end: datetime, read: Callable[[dict], tuple],
                 transport: httpx.BaseTransport | None = None, sleep: Callable[[float], None] = time.sleep) -> list:
    """Read every order of a window through `read` (e.g. id and status only) without storing: reconciliation."""
    connection = db.session.execute(select(ChannelConnection).where(ChannelConnection.channel_id == channel_id)
                                    ).scalar_one()
    adapter, creds = adapter_for(connection.channel.kind), credentials(connection)
    rows = []
    with httpx.Client(timeout=HTTP_TIMEOUT, transport=transport) as client:
        for window_start, window_end in windows(start, end, adapter.max_window):
            cursor = None
            for _ in range(MAX_PAGES):
                page = _fetch_with_retries(
                    lambda: adapter.fetch_page(client, creds, window_start, window_end, cursor), sleep)
                rows.extend(read(order) for order in page.orders)
                cursor = page.next_cursor
                if cursor is None:
                    break
    return rows
