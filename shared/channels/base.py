"""What every platform adapter provides: reading its order format, its status table, and its polling call."""
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import httpx

from shared.channels.canonical import CanonicalOrder


@dataclass(frozen=True)
class Credentials:
    """What a polling client needs; read from the channel's connection (secrets decrypted in memory only)."""

    base_url: str
    app_key: str | None
    app_secret: str | None
    access_token: str | None


@dataclass(frozen=True)
class Page:
    orders: list[dict]
    next_cursor: object | None  # None: no more pages


class PlatformError(Exception):
    """The platform answered with an error (bad signature, throttled, server error): the poll is retried."""


class DecryptRefused(Exception):
    """The platform's decrypt API answered and refused (quota used up, order closed, no permission, bad cipher)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class DecryptRequest:
    """One order's ciphertext for the platform's batch decrypt API (field name → value, as received)."""

    order_id: str
    ciphertext: dict


# What a decrypt answers per order: {"receiver", "phone", "street"} in plain text.
Plain = dict


# (lifecycle target, payment status or None to derive from paid_at, refund status or None for "none")
StatusRow = tuple[str, str | None, str | None]


class Adapter(ABC):
    kind: str = ""
    rounding_tolerance = Decimal("0.00")  # how far the platform's own rounding may leave the sum from "paid"
    page_size = 100
    max_window = timedelta(days=1)  # the longest modified-time window one query may ask for
    webhook_signature_header: str | None = None  # platforms that push signed webhooks
    default_status_map: dict[str, StatusRow] = {}

    @abstractmethod
    def external_id(self, raw: dict) -> str | None:
        """The platform's order id, read cheaply at receipt (before full parsing) for search and grouping."""

    @abstractmethod
    def parse(self, raw: dict, zone: str) -> CanonicalOrder:
        """The platform's order as one canonical order; PayloadProblem when it cannot be read faithfully."""

    @abstractmethod
    def status_of(self, raw: dict) -> str | None:
        """The status key alone, read cheaply (reconciliation compares millions of them)."""

    def is_ping(self, raw: dict) -> bool:
        """A webhook that carries no order (e.g. WooCommerce's test delivery)."""
        return False

    def fetch_page(self, client: httpx.Client, creds: Credentials, start: datetime, end: datetime,
                   cursor) -> Page:
        """One page of orders modified in [start, end]; cursor None asks for the first page."""
        raise PlatformError(f"{self.kind} orders are imported, not polled")

    def decrypt(self, client: httpx.Client, creds: Credentials, requests: list[DecryptRequest]) -> dict[str, Plain]:
        """Plain receiver fields per order id, through the platform's own (signed, batch) decrypt API.

        DecryptRefused when the platform says no; PlatformError or an httpx error when there is no usable answer.
        """
        raise DecryptRefused(f"{self.kind} sends no encrypted buyer fields")

    @staticmethod
    def _json(response: httpx.Response) -> object:
        if response.status_code >= 400:
            raise PlatformError(f"HTTP {response.status_code}: {response.text[:200]}")
        try:
            return response.json()
        except ValueError:
            raise PlatformError(f"answer is not JSON: {response.text[:200]!r}") from None
