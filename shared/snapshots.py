"""Short-lived snapshots of figures that are costly to compute on every request (counts over many rows).

A snapshot is kept per process (each gunicorn worker has its own) and is at most `max_age` seconds old when it is
served; `max_age` 0 computes it on every call. The database stays the only source of truth: a snapshot is never
written anywhere, and losing it (a restart) only means the next request counts again.
"""
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from flask import current_app

from shared.timekeeping import utc_now

clock = time.monotonic  # the freshness clock (tests move it)
_lock = threading.Lock()


@dataclass(frozen=True)
class Snapshot:
    value: object
    taken_at: datetime  # UTC, for the page
    taken: float  # clock() when computed

    def age(self) -> float:
        """Seconds since it was computed."""
        return max(0.0, clock() - self.taken)


def fresh(key: str, max_age: float, compute) -> Snapshot:
    """The snapshot under `key` if it is at most `max_age` seconds old, else `compute()` now (and keep it).

    `compute` must return plain data (no ORM objects: they would outlive their session)."""
    store = current_app.extensions.setdefault("orderloom_snapshots", {})
    with _lock:
        kept = store.get(key)
    if kept is not None and max_age > 0 and kept.age() <= max_age:
        return kept
    made = Snapshot(compute(), utc_now(), clock())
    with _lock:
        store[key] = made
    return made
