"""Internal order numbers: channel code + merchant-local date + daily sequence + ISO 7064 check character.

Example: DY20261121000872 followed by its MOD 37,36 check character. A mistyped number fails the
check before any database look-up.
"""
import os
import re
import threading
from datetime import date

from sqlalchemy import create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from stdnum.iso7064 import mod_37_36

from shared.extensions import db
from shared.models import OrderNumberSequence
from shared.services.errors import ValidationFailed
from shared.services.validation import N_, say

# What a person reads when this module refuses: message codes, said in the reader's language (say).
MALFORMED_ORDER_NO = N_("Not an order number (two letters, 8-digit date, 6-digit sequence, check character)")
ORDER_NO_CHECK_FAILED = N_("Order number check character does not match: probably mistyped")
SEQUENCE_EXHAUSTED = N_("The channel's daily order number range is exhausted")

PATTERN = re.compile(r"^[A-Z]{2}\d{8}\d{6}[0-9A-Z]$")


def compose(channel_code: str, local_date: date, sequence: int) -> str:
    body = f"{channel_code}{local_date:%Y%m%d}{sequence:06d}"
    return body + mod_37_36.calc_check_digit(body)


def validate(value: str) -> str:
    """Normalize and check an order number typed by a person or sent by a client."""
    candidate = (value or "").strip().upper()
    if not PATTERN.match(candidate):
        raise ValidationFailed(say(MALFORMED_ORDER_NO),
                               field="order_no", code="malformed_order_no")
    if not mod_37_36.is_valid(candidate):
        raise ValidationFailed(say(ORDER_NO_CHECK_FAILED),
                               field="order_no", code="order_no_check_failed")
    return candidate


_counter_engines: dict[str, Engine] = {}


def _counter_engine(engine: Engine) -> Engine:
    """A pool of its own for the counter: taking it from the sessions' pool could wait for a connection
    that only a session waiting on this very counter would give back."""
    url = engine.url.render_as_string(hide_password=False)
    if url not in _counter_engines:
        _counter_engines[url] = create_engine(url, pool_size=2, max_overflow=30, pool_pre_ping=True,
                                              isolation_level="AUTOCOMMIT")

        @event.listens_for(engine, "engine_disposed")
        def _dispose_counter(_engine, url=url):
            """When the app's engine is disposed, its counter pool goes too (no idle connections left)."""
            counter = _counter_engines.pop(url, None)
            if counter is not None:
                counter.dispose()
            with _blocks_lock:  # a database made again under the same URL starts its counters afresh
                for key in [key for key in _blocks if key[0] == url]:
                    del _blocks[key]
    return _counter_engines[url]


# For the API on PostgreSQL a process takes its numbers from the counter NUMBER_BLOCK at a time and hands them
# out from memory: one short autocommit statement on the counter's own pool per block instead of per order.
NUMBER_BLOCK = 20
_MAX_BLOCKS = 512  # (database, channel, day) keys kept; beyond it the oldest leftovers are dropped (gaps only)
_blocks: dict[tuple, list[int]] = {}
_owner = [os.getpid()]  # the process the blocks belong to
_blocks_lock = threading.Lock()


def _counter_upsert(dialect: str, channel_code: str, local_date: date, count: int):
    """The atomic counter upsert that takes `count` numbers and returns the last of them."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = OrderNumberSequence.__table__
    return insert(table).values(channel_code=channel_code, local_date=local_date, last_value=count) \
        .on_conflict_do_update(index_elements=[table.c.channel_code, table.c.local_date],
                               set_={"last_value": table.c.last_value + count}).returning(table.c.last_value)


def take_range(channel_code: str, local_date: date, count: int) -> int:
    """Advance the channel's daily counter by `count` with one atomic upsert; the last number taken.

    On PostgreSQL the counter moves in its own short transaction (autocommit, a pool of its own): inside the
    order's transaction its row would stay locked until the order commits, and every order of that channel and
    day would queue behind it. Numbers are therefore unique but not gapless (a refused order leaves a gap).
    SQLite serialises all writers anyway, so there it stays in the caller's transaction."""
    bind = db.session.get_bind()
    dialect = bind.dialect.name
    statement = _counter_upsert(dialect, channel_code, local_date, count)
    if dialect == "postgresql":
        with _counter_engine(getattr(bind, "engine", bind)).connect() as connection:
            return connection.execute(statement).scalar_one()  # autocommit: one round trip
    return db.session.execute(statement).scalar_one()


def next_number(channel_code: str, local_date: date, block: bool = False) -> str:
    """The next order number of the channel and day: one counter upsert (`take_range`).

    `block=True` (the API, in long-lived web processes), on PostgreSQL: from this process's block of
    NUMBER_BLOCK numbers taken from the counter at once, so most orders take no counter statement and no second
    connection. Block numbers are unique across processes, increasing within one, not in creation order across
    processes and not gapless (what is left of a block when a process ends is never used: a short-lived
    process, such as a forked job, would waste most of a block, so only the API asks for it). On SQLite always
    one number per call, in the order's transaction (a block there would be rolled back with it and handed out
    twice)."""
    bind = db.session.get_bind()
    if not block or bind.dialect.name != "postgresql":
        return _composed(channel_code, local_date, take_range(channel_code, local_date, 1))
    key = (getattr(bind, "engine", bind).url.render_as_string(hide_password=False), channel_code, local_date)
    with _blocks_lock:
        if _owner[0] != os.getpid():  # a forked child never uses its parent's numbers: the parent may still
            _blocks.clear()
            _owner[0] = os.getpid()
        block_left = _blocks.get(key)
        if block_left:
            return _composed(channel_code, local_date, block_left.pop())
    last = take_range(channel_code, local_date, NUMBER_BLOCK)
    numbers = [n for n in range(last, last - NUMBER_BLOCK, -1) if n <= 999_999]  # popped from the end: ascending
    sequence = numbers.pop() if numbers else last
    with _blocks_lock:
        if len(_blocks) >= _MAX_BLOCKS:
            _blocks.pop(next(iter(_blocks)))
        _blocks.setdefault(key, []).extend(numbers)
        _blocks[key].sort(reverse=True)
    return _composed(channel_code, local_date, sequence)


def _composed(channel_code: str, local_date: date, sequence: int) -> str:
    if sequence > 999_999:
        raise ValidationFailed(say(SEQUENCE_EXHAUSTED), code="sequence_exhausted")
    return compose(channel_code, local_date, sequence)
