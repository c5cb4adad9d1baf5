"""Refunds sent to the platforms that publish a refund-creation API: the request, the answer, and asking again.

Written from the platforms' published references (fixtures and their sources: tests/fixtures/channels/refunds/):

- Shopify Admin REST (2024-10), `POST /admin/api/2024-10/orders/{order_id}/refunds.json` with
  `{"refund": {"currency", "notify": true, "note", "transactions": [{"parent_id", "amount", "kind": "refund",
  "gateway"}]}}` (Shopify mails the buyer, as for a refund made in its admin; Orderloom sends no refund mail of its
  own yet); the parent is the order's successful `sale` or `capture` from `GET .../orders/{id}/transactions.json`.
  The answer is the Refund (`id`, `processed_at`, `transactions[]` with `status`). A refusal is 4xx
  `{"errors": ...}` (422 for an amount over what can be refunded).
- WooCommerce REST v3, `POST /wp-json/wc/v3/orders/{id}/refunds` with `{"amount", "reason", "api_refund": true,
  "meta_data"}` (HTTP basic auth, as polling); the answer is the refund (`id`, `amount`, `date_created_gmt`). An
  amount over what is left is refused by `wc_create_refund` ("Invalid refund amount."), which the REST controller
  answers `500 {"code": "woocommerce_rest_cannot_create_order_refund", "message", "data": {"status": 500}}`.

Neither platform takes an idempotency key for a refund, so our out_refund_no travels in the refund itself (Shopify
`note`, WooCommerce `reason` and `meta_data`), and a refund whose answer was lost is looked for by it before it is
sent again (`find`). Like the adapters, this module never touches the database.
"""
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

import httpx

from shared.channels.base import Credentials
from shared.channels.canonical import PayloadProblem, gmt_time, offset_time
from shared.channels.shopify import API_VERSION
from shared.money import CENT

SUCCEEDED, PROCESSING, REFUSED, NOT_FOUND = "succeeded", "processing", "refused", "not_found"
META_KEY = "orderloom_out_refund_no"  # WooCommerce: keys starting with "_" are hidden from the REST answers


class PlatformUnreachable(Exception):
    """No answer to trust (timeout, connection refused, 5xx, 401/403, not JSON): the refund may or may not be made."""


@dataclass(frozen=True)
class PushRequest:
    channel_order_id: str
    out_refund_no: str
    amount: Decimal
    currency: str
    reason: str


@dataclass(frozen=True)
class PushAnswer:
    status: str  # succeeded, processing (the platform's payment is still going back), refused, not_found
    refund_id: str | None = None  # the platform's refund id: what its later report of the refund carries
    amount: Decimal | None = None  # what the platform says went back
    refunded_at: datetime | None = None
    code: str | None = None
    message: str | None = None


def marker(out_refund_no: str) -> str:
    """How our refund number is written into the platform's refund (note / reason), and found again."""
    return f"[Orderloom {out_refund_no}]"


def money_text(amount: Decimal) -> str:
    return str(Decimal(amount).quantize(CENT))


def _decimal(value) -> Decimal | None:
    try:
        return Decimal(str(value)).quantize(CENT)
    except (InvalidOperation, ValueError, TypeError):
        return None


def _json(response: httpx.Response):
    try:
        return response.json()
    except ValueError:
        raise PlatformUnreachable(f"HTTP {response.status_code}, not JSON: {response.text[:200]!r}") from None


def _unreachable_status(response: httpx.Response) -> None:
    """5xx, throttling and our own credentials refused say nothing about the refund: ask again later."""
    if response.status_code >= 500 or response.status_code in (401, 403, 408, 429):
        raise PlatformUnreachable(f"HTTP {response.status_code}: {response.text[:200]}")


def _call(send, *args, **kwargs) -> httpx.Response:
    try:
        return send(*args, **kwargs)
    except httpx.HTTPError as error:
        raise PlatformUnreachable(f"{type(error).__name__}: {error}") from None


class RefundPush(ABC):
    kind = ""

    @abstractmethod
    def create(self, client: httpx.Client, creds: Credentials, request: PushRequest) -> PushAnswer:
        """Send the refund; raises PlatformUnreachable when there is no answer to trust."""

    @abstractmethod
    def find(self, client: httpx.Client, creds: Credentials, request: PushRequest) -> PushAnswer:
        """The platform's refund carrying our out_refund_no, or NOT_FOUND (then it never got the request)."""


# ---------------------------------------------------------------- Shopify

def _shopify_errors(body) -> str:
    errors = body.get("errors") if isinstance(body, dict) else body
    if isinstance(errors, dict):
        parts = []
        for name, messages in errors.items():
            listed = messages if isinstance(messages, list) else [messages]
            parts.append(f"{name}: {'; '.join(str(message) for message in listed)}")
        return " | ".join(parts)[:500]
    return str(errors)[:500]


class ShopifyRefunds(RefundPush):
    kind = "shopify"

    @staticmethod
    def _headers(creds: Credentials) -> dict:
        return {"X-Shopify-Access-Token": creds.access_token or "", "Content-Type": "application/json"}

    @staticmethod
    def _order_url(creds: Credentials, channel_order_id: str, tail: str) -> str:
        return f"{creds.base_url}/admin/api/{API_VERSION}/orders/{channel_order_id}/{tail}"

    @staticmethod
    def read_refund(refund: dict) -> PushAnswer:
        """A Refund: succeeded by its successful refund transactions; still pending; or every transaction failed."""
        transactions = [item for item in refund.get("transactions") or []
                        if isinstance(item, dict) and item.get("kind") == "refund"]
        done = [item for item in transactions if item.get("status") == "success"]
        refund_id = str(refund.get("id")) if refund.get("id") is not None else None
        when = refund.get("processed_at") or refund.get("created_at")
        try:
            refunded_at = offset_time(when, "processed_at") if when else None
        except PayloadProblem:
            refunded_at = None
        if done:
            amount = sum((_decimal(item.get("amount")) or Decimal("0.00") for item in done), Decimal("0.00"))
            return PushAnswer(SUCCEEDED, refund_id, amount, refunded_at)
        if any(item.get("status") == "pending" for item in transactions):
            return PushAnswer(PROCESSING, refund_id)
        failed = next((item for item in transactions if item.get("status") in ("failure", "error")), None)
        message = (failed or {}).get("message") or "the refund carries no successful refund transaction"
        return PushAnswer(REFUSED, refund_id, code=(failed or {}).get("error_code") or "refund_failed",
                          message=str(message)[:500])

    def _parent(self, client, creds: Credentials, request: PushRequest) -> dict | PushAnswer:
        response = _call(client.get, self._order_url(creds, request.channel_order_id, "transactions.json"),
                         headers=self._headers(creds))
        _unreachable_status(response)
        body = _json(response)
        if response.status_code >= 400:
            return PushAnswer(REFUSED, code=f"http_{response.status_code}", message=_shopify_errors(body))
        sales = [item for item in (body.get("transactions") or []) if isinstance(item, dict)
                 and item.get("kind") in ("sale", "capture") and item.get("status") == "success"]
        if not sales:
            return PushAnswer(REFUSED, code="no_sale_transaction",
                              message="the order has no successful sale or capture transaction to refund")
        return max(sales, key=lambda item: _decimal(item.get("amount")) or Decimal("0.00"))

    def create(self, client, creds: Credentials, request: PushRequest) -> PushAnswer:
        parent = self._parent(client, creds, request)
        if isinstance(parent, PushAnswer):
            return parent
        note = f"{request.reason} {marker(request.out_refund_no)}"
        payload = {"refund": {"currency": request.currency, "notify": True, "note": note,
                              "transactions": [{"parent_id": parent["id"], "amount": money_text(request.amount),
                                                "kind": "refund", "gateway": parent.get("gateway")}]}}
        response = _call(client.post, self._order_url(creds, request.channel_order_id, "refunds.json"),
                         headers=self._headers(creds), json=payload)
        _unreachable_status(response)
        body = _json(response)
        if response.status_code >= 400:
            return PushAnswer(REFUSED, code=f"http_{response.status_code}", message=_shopify_errors(body))
        refund = body.get("refund") if isinstance(body, dict) else None
        if not isinstance(refund, dict):
            raise PlatformUnreachable(f"Shopify answered without a refund: {str(body)[:200]}")
        return self.read_refund(refund)

    def find(self, client, creds: Credentials, request: PushRequest) -> PushAnswer:
        response = _call(client.get, self._order_url(creds, request.channel_order_id, "refunds.json"),
                         headers=self._headers(creds))
        _unreachable_status(response)
        body = _json(response)
        if response.status_code >= 400:
            raise PlatformUnreachable(f"HTTP {response.status_code}: {_shopify_errors(body)}")
        for refund in body.get("refunds") or []:
            if isinstance(refund, dict) and marker(request.out_refund_no) in (refund.get("note") or ""):
                return self.read_refund(refund)
        return PushAnswer(NOT_FOUND)


# ---------------------------------------------------------------- WooCommerce

# What WooCommerce answers when it decided against the refund (the order, the amount, the gateway); any other 5xx
# is a site that could not answer.
WOO_REFUSALS = frozenset({"woocommerce_rest_cannot_create_order_refund", "woocommerce_rest_invalid_order_refund",
                          "woocommerce_rest_shop_order_invalid_id", "woocommerce_rest_invalid_shop_order_id"})


class WooCommerceRefunds(RefundPush):
    kind = "woocommerce"

    @staticmethod
    def _url(creds: Credentials, channel_order_id: str) -> str:
        return f"{creds.base_url}/wp-json/wc/v3/orders/{channel_order_id}/refunds"

    @staticmethod
    def read_refund(refund: dict) -> PushAnswer:
        when = refund.get("date_created_gmt")
        try:
            refunded_at = gmt_time(when, "date_created_gmt") if when else None
        except PayloadProblem:
            refunded_at = None
        amount = _decimal(refund.get("amount"))
        return PushAnswer(SUCCEEDED, str(refund.get("id")), abs(amount) if amount is not None else None, refunded_at)

    @staticmethod
    def _refusal(response: httpx.Response) -> PushAnswer | None:
        body = _json(response)
        code = body.get("code") if isinstance(body, dict) else None
        if response.status_code >= 500 and code not in WOO_REFUSALS:
            raise PlatformUnreachable(f"HTTP {response.status_code}: {response.text[:200]}")
        message = body.get("message") if isinstance(body, dict) else None
        return PushAnswer(REFUSED, code=str(code or f"http_{response.status_code}")[:60],
                          message=str(message or response.text)[:500])

    def create(self, client, creds: Credentials, request: PushRequest) -> PushAnswer:
        payload = {"amount": money_text(request.amount), "reason": f"{request.reason} {marker(request.out_refund_no)}",
                   "api_refund": True, "meta_data": [{"key": META_KEY, "value": request.out_refund_no}]}
        response = _call(client.post, self._url(creds, request.channel_order_id),
                         auth=(creds.app_key or "", creds.app_secret or ""), json=payload)
        if response.status_code in (401, 403, 408, 429):
            raise PlatformUnreachable(f"HTTP {response.status_code}: {response.text[:200]}")
        if response.status_code >= 400:
            return self._refusal(response)
        body = _json(response)
        if not isinstance(body, dict) or body.get("id") is None:
            raise PlatformUnreachable(f"WooCommerce answered without a refund: {str(body)[:200]}")
        return self.read_refund(body)

    def find(self, client, creds: Credentials, request: PushRequest) -> PushAnswer:
        response = _call(client.get, self._url(creds, request.channel_order_id),
                         auth=(creds.app_key or "", creds.app_secret or ""), params={"per_page": "100"})
        _unreachable_status(response)
        body = _json(response)
        if response.status_code >= 400 or not isinstance(body, list):
            raise PlatformUnreachable(f"HTTP {response.status_code}: {str(body)[:200]}")
        for refund in body:
            if not isinstance(refund, dict):
                continue
            meta = {item.get("key"): item.get("value") for item in refund.get("meta_data") or []
                    if isinstance(item, dict)}
            if meta.get(META_KEY) == request.out_refund_no or marker(request.out_refund_no) in (refund.get("reason")
                                                                                                  or ""):
                return self.read_refund(refund)
        return PushAnswer(NOT_FOUND)


PUSHES: dict[str, RefundPush] = {push.kind: push for push in (ShopifyRefunds(), WooCommerceRefunds())}


def push_for(kind: str) -> RefundPush | None:
    """The refund API of a channel kind; None where the platform publishes none we speak (the Chinese platforms'
    refund APIs answer a buyer's refund application: see docs/CHANNELS.md, "Refunds pushed to the platform")."""
    return PUSHES.get(kind)
