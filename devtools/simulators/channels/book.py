"""One platform's orders as the platform stores them: generated orders and raw JSON, indexed by modified time.

A window query is a bisect on a sorted index, and its (filtered, ordered) result is cached until the book
changes, so a client paging through 100,000 orders costs one scan, not one per page.
"""
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import datetime

from devtools.simulators.channels.formats import (SimOrder, build, created_of, is_listed, modified_of, order_id_of,
                                      shopify_open_state, shopify_open_state_of, status_key_for_state, status_key_of)

HIGHEST = chr(0x10FFFF)  # sorts after every order id, to close a bisect range
CACHE_SIZE = 16


@dataclass(slots=True)
class Listing:
    """What the platform's list endpoint filters and sorts on, plus the order itself (generated or raw)."""

    order_id: str
    modified_ts: int
    created_ts: int
    status_key: str
    open_state: str  # what Shopify's `status` filter sees: open, closed or cancelled
    listed: bool  # False for orders the platform does not show (JD and Pinduoduo before payment)
    order: SimOrder | None = None
    raw: dict | None = None


class OrderBook:
    def __init__(self, platform: str, encrypted: bool = True):
        self.platform = platform
        self.encrypted = encrypted  # buyer fields as platform ciphertext (the default), or plain text
        self._listings: dict[str, Listing] = {}
        self._index: list[tuple[int, str]] = []  # (modified_ts, order_id) of listed orders, sorted
        self._cache: dict[Hashable, list[Listing]] = {}
        self._cache_version = -1
        self.version = 0

    def __len__(self) -> int:
        return len(self._listings)

    def get(self, order_id: str) -> Listing | None:
        return self._listings.get(order_id)

    def render(self, listing: Listing) -> dict:
        """The platform's JSON for a listing: raw orders exactly as stored."""
        return listing.raw if listing.raw is not None else build(self.platform, listing.order, self.encrypted)

    # -- writes
    def put_order(self, order: SimOrder) -> Listing:
        """Store or re-index a generated order (call again after every change to it)."""
        listing = self._listing_for(order)
        self._place(listing)
        return listing

    def put_raw(self, raw: dict, fallback_time: datetime) -> Listing:
        """Store a raw platform order verbatim; id and times are read from it where it has them."""
        order_id = order_id_of(self.platform, raw) or f"raw-{len(self._listings) + 1}"
        modified = modified_of(self.platform, raw) or fallback_time
        created = created_of(self.platform, raw) or modified
        open_state = shopify_open_state_of(raw) if self.platform == "shopify" else "open"
        listing = Listing(order_id, int(modified.timestamp()), int(created.timestamp()),
                          status_key_of(self.platform, raw), open_state, True, raw=raw)
        self._place(listing)
        return listing

    def put_many(self, orders: Iterable[SimOrder]) -> int:
        """Store many new orders at once: one sort of the index instead of one insert each."""
        count = 0
        for order in orders:
            listing = self._listing_for(order)
            if listing.order_id in self._listings:
                self._place(listing)
                continue
            self._listings[listing.order_id] = listing
            if listing.listed:
                self._index.append((listing.modified_ts, listing.order_id))
            count += 1
        self._index.sort()
        self.version += 1
        return count

    def _listing_for(self, order: SimOrder) -> Listing:
        listed = is_listed(self.platform, order.state)
        return Listing(order.id, int(order.modified.timestamp()), int(order.created.timestamp()),
                       status_key_for_state(self.platform, order.state, order.cash_on_delivery) if listed else "",
                       shopify_open_state(order.state) if self.platform == "shopify" else "open", listed,
                       order=order)

    def _place(self, listing: Listing) -> None:
        old = self._listings.get(listing.order_id)
        if old is not None and old.listed:
            position = bisect_left(self._index, (old.modified_ts, old.order_id))
            del self._index[position]
        self._listings[listing.order_id] = listing
        if listing.listed:
            insort(self._index, (listing.modified_ts, listing.order_id))
        self.version += 1

    # -- reads
    def select(self, modified: tuple[int, int] | None = None, created: tuple[int, int] | None = None,
               accept: Callable[[Listing], bool] | None = None, accept_key: Hashable = None,
               order_by: str = "modified", descending: bool = False) -> list[Listing]:
        """Listed orders with modified (and created) time inside the inclusive windows, passing `accept`,
        ordered by modified time (then id), created time or id. `accept_key` names the filter for the cache."""
        cacheable = accept is None or accept_key is not None
        key = (modified, created, accept_key, order_by, descending)
        if self._cache_version != self.version:
            self._cache.clear()
            self._cache_version = self.version
        if cacheable and key in self._cache:
            return self._cache[key]
        entries = self._index
        if modified is not None:
            low = bisect_left(entries, (modified[0], ""))
            high = bisect_right(entries, (modified[1], HIGHEST))
            entries = entries[low:high]
        listings = [self._listings[order_id] for _ts, order_id in entries]
        if created is not None:
            listings = [item for item in listings if created[0] <= item.created_ts <= created[1]]
        if accept is not None:
            listings = [item for item in listings if accept(item)]
        if order_by == "created":
            listings.sort(key=lambda item: (item.created_ts, item.order_id))
        elif order_by == "id":
            listings.sort(key=lambda item: (len(item.order_id), item.order_id))  # numeric ids as numbers
        if descending:
            listings.reverse()
        if cacheable:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = listings
        return listings
