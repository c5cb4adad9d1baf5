"""The carrier simulator: a KDNiao-style e-waybill service, Kuaidi100's real-time query and 17TRACK's gettrackinfo
served over real HTTP on one loopback port, plus both platforms' tracking pushes sent on request.

    sim = CarrierSimulator(seed=7)
    base = sim.start()                                # http://127.0.0.1:PORT, the base URL of all three services
    waybill = WaybillClient(base, **business).request(...)
    sim.advance_parcel(waybill.waybill_no, "collected")
    sim.push_kuaidi100(receiver_url)                  # signed with the configured salt
    sim.stop()

Every public method takes the simulator's lock, so tests, the HTTP threads and the run loop can share one.
"""
import math
import random
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import httpx
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from shared.carriers.signing import kuaidi100_push_sign, track17_sign
from devtools.simulators.carriers import endpoints
from devtools.simulators.carriers import pickups as pickup_endpoint
from devtools.simulators.loopback import LoopbackServing
from devtools.simulators.carriers.formats import (CARRIERS, DEFAULT_RECEIVER, DEFAULT_SENDER, FINAL_KINDS, JOURNEY, KINDS,
                                               SimEvent, event_text, json_bytes, kuaidi100_push_param,
                                               print_template, sort_code, track17_event, track17_push_body,
                                               track17_track_info, utc_text, waybill_number)
from shared.carriers.waybills import ADDRESS_FIELDS

# What the simulated services accept unless told otherwise.
DEFAULT_CREDENTIALS = {
    "kdniao": {"business_id": "1688001", "app_key": "sim-kdniao-app-key-5c2e9a71"},
    "kuaidi100": {"customer": "SIM0C4F7E2A9B1D3E5F60718293A4B5C6", "key": "simKuaidi100Key7Q",
                  "salt": "sim-kuaidi100-salt-4d1b", "secret": "sim-kuaidi100-secret-8c3e"},
    "17track": {"token": "SIM17TRACKTOKEN8E3F1A2B4C6D", "key": "sim-17track-security-key-90ab"},
}
SERVICES = tuple(DEFAULT_CREDENTIALS)
FAILURE_KINDS = ("http500", "not_json", "timeout")
DEFAULT_HEADSTART = timedelta(days=3)  # how far before now simulated time starts by default
DEFAULT_REFUSAL = "电子面单余额不足"

URL_MAP = Map([
    Rule("/api/EOrderService", endpoint="kdniao", methods=["POST"]),
    Rule("/poll/query.do", endpoint="kuaidi100", methods=["POST"]),
    Rule("/track/v2.2/gettrackinfo", endpoint="17track", methods=["POST"]),
    Rule("/order/borderapi.do", endpoint="pickups", methods=["POST"]),
])
HANDLERS = {"kdniao": endpoints.eorder, "kuaidi100": endpoints.kuaidi100_query,
            "17track": endpoints.track17_gettrackinfo, "pickups": pickup_endpoint.border}



@dataclass(frozen=True)
class IssuedWaybill:
    order_code: str
    carrier_code: str
    waybill_no: str
    sort_code: str
    sender: dict
    receiver: dict
    goods: list
    issued_at: datetime
    label_html: str
    request_data: str  # RequestData exactly as received


@dataclass(frozen=True)
class Issue:
    waybill: IssuedWaybill
    repeated: bool
    request_number: str


@dataclass
class Parcel:
    waybill_no: str
    carrier_code: str
    sender: dict
    receiver: dict
    created_at: datetime
    events: list[SimEvent] = field(default_factory=list)
    _rendered: list[dict] = field(default_factory=list)  # 17TRACK renderings of `events`, kept in step

    def add(self, event: SimEvent) -> None:
        self.events.append(event)
        self._rendered.append(track17_event(event))

    def track17_events(self) -> list[dict]:
        return list(self._rendered)

    @property
    def last_at(self) -> datetime:
        return self.events[-1].occurred_at if self.events else self.created_at

    def next_kind(self) -> str | None:
        """The next step of a normal journey after what happened so far; None when the parcel's story is over."""
        if not self.events:
            return JOURNEY[0]
        last = self.events[-1].kind
        if last in FINAL_KINDS:
            return None
        if last in ("refused", "returning"):
            return "returning" if last == "refused" else "returned"
        if last == "delivery_failed":
            return "out_for_delivery"
        progress, in_transit_seen = -1, 0
        for event in self.events:
            if event.kind == "in_transit":
                in_transit_seen += 1
                progress = max(progress, min(in_transit_seen, 2))
            elif event.kind in JOURNEY:
                progress = max(progress, JOURNEY.index(event.kind))
        return JOURNEY[progress + 1] if progress + 1 < len(JOURNEY) else None


@dataclass(frozen=True, slots=True)
class PushResult:
    waybill_no: str
    status: int | None  # the receiver's HTTP status; None when it could not be reached
    accepted: bool  # the receiver took it (Kuaidi100 also needs {"result": true} in the answer)
    error: str = ""


def _aware(moment: datetime, name: str) -> datetime:
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return moment.astimezone(UTC).replace(microsecond=0)


def _int(value, default: int) -> int:
    try:
        return max(1, int(value))
    except (TypeError, ValueError):
        return default


def _check_carrier(carrier_code: str) -> None:
    if carrier_code not in CARRIERS:
        raise ValueError(f"unknown carrier {carrier_code!r}; one of {', '.join(CARRIERS)}")


class CarrierSimulator(LoopbackServing):
    """Fake KDNiao e-waybills, Kuaidi100 and 17TRACK tracking, deterministic for a seed and a sequence of calls."""

    thread_name = "carrier-simulator"

    def __init__(self, seed=1, credentials: dict | None = None, *, start: datetime | None = None,
                 realtime: bool = False):
        """`credentials` overrides DEFAULT_CREDENTIALS per service. Simulated time begins at `start` (default: three
        days before now) and moves forward a few minutes to hours per event; with `realtime`, events happen at the
        wall clock instead (the run loop)."""
        self.credentials = {service: {**DEFAULT_CREDENTIALS[service], **(credentials or {}).get(service, {})}
                            for service in SERVICES}
        self.seed = seed
        self.realtime = realtime
        self.lock = threading.RLock()
        self._rng = random.Random(f"{seed}:carriers")
        self._clock = _aware(start, "start") if start else \
            (datetime.now(UTC) - DEFAULT_HEADSTART).replace(microsecond=0)
        self.issued: dict[str, IssuedWaybill] = {}  # by OrderCode, in issue order
        self.parcels: dict[str, Parcel] = {}  # by waybill number
        self._refusals: dict[str, tuple[str, str]] = {}
        self._failures: dict[str, deque] = {service: deque() for service in SERVICES}
        self._pushed: dict[tuple[str, str], dict[str, int]] = {}  # (format, target) → waybill → events delivered
        self._bulk_calls = 0
        self.pickups: dict[str, pickup_endpoint.SimPickup] = {}  # door pickups (商家寄件) by taskId
        self.pickups_by_third: dict[str, pickup_endpoint.SimPickup] = {}  # by thirdOrderId (idempotency)
        self.pickup_refused_provinces: set[str] = set()
        self.carrier_loads: dict[str, float] = {}  # carrier code → load (0..1) the 运力 query reports; 1.0: none left
        self.callbacks_sent: dict[str, int] = {}
        self._init_serving()

    # ------------------------------------------------------------ serving

    def wsgi_app(self, environ, start_response):
        request = Request(environ)
        try:
            service, _arguments = URL_MAP.bind_to_environ(environ).match()
            response = self._failure_response(service) or HANDLERS[service](self, request)
        except HTTPException as exc:
            response = exc.get_response(environ)
        return response(environ, start_response)

    def _failure_response(self, service: str) -> Response | None:
        with self.lock:
            queue = self._failures.get(service)
            failure = queue.popleft() if queue else None
        if failure is None:
            return None
        kind, delay = failure
        if kind == "http500":
            return Response("Internal Server Error", 500, content_type="text/plain")
        if kind == "not_json":
            return Response("<html><body><h1>502 Bad Gateway</h1></body></html>", 200, content_type="text/html")
        self._stopping.wait(delay)  # timeout: hold the answer longer than a sane client waits
        return None

    def fail_next(self, service: str, count: int = 1, kind: str = "http500", *, delay: float = 30.0) -> None:
        """The next `count` requests to a service ("kdniao", "kuaidi100", "17track") fail: HTTP 500, an HTML page
        instead of JSON, or a timeout (the answer is held `delay` seconds, then given)."""
        if service not in SERVICES:
            raise ValueError(f"service must be one of {', '.join(SERVICES)}")
        if kind not in FAILURE_KINDS:
            raise ValueError(f"kind must be one of {', '.join(FAILURE_KINDS)}")
        with self.lock:
            self._failures[service].extend([(kind, delay)] * count)

    # ------------------------------------------------------------ time
    def _now(self) -> datetime:
        return datetime.now(UTC).replace(microsecond=0) if self.realtime else self._clock

    def now_text(self) -> str:
        return utc_text(self._now())

    def _next_time(self, parcel: Parcel, at: datetime | None) -> datetime:
        if at is not None:
            return _aware(at, "at")
        if self.realtime:
            return max(self._now(), parcel.last_at + timedelta(seconds=1))
        gap = timedelta(hours=self._rng.randint(1, 4)) if not parcel.events else \
            timedelta(minutes=self._rng.randint(20, 300))
        return parcel.last_at + gap

    # ------------------------------------------------------------ waybills
    def _new_waybill_no(self, carrier_code: str, taken=()) -> str:
        while True:
            number = waybill_number(carrier_code, self._rng)
            if number not in self.parcels and number not in taken:
                return number

    def issue_waybill(self, body: dict, request_data: str) -> Issue | tuple[str, str]:
        """What the e-waybill endpoint does with a checked RequestData: the waybill already issued for this
        OrderCode, a new one, or the (ResultCode, Reason) of a refusal set with refuse()."""
        with self.lock:
            order_code = str(body["OrderCode"]).strip()
            request_number = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
            existing = self.issued.get(order_code)
            if existing is not None:
                return Issue(existing, True, request_number)
            carrier_code = body["ShipperCode"]
            if carrier_code in self._refusals:
                return self._refusals[carrier_code]
            sender = {name: str(body["Sender"][name]) for name in ADDRESS_FIELDS}
            receiver = {name: str(body["Receiver"][name]) for name in ADDRESS_FIELDS}
            goods = [(str(item["GoodsName"]), _int(item.get("Goodsquantity"), 1)) for item in body["Commodity"]]
            waybill_no = self._new_waybill_no(carrier_code)
            mark = sort_code(receiver, self._rng)
            issued_at = self._now()
            self._clock += timedelta(seconds=self._rng.randint(30, 600))
            issued = IssuedWaybill(
                order_code=order_code, carrier_code=carrier_code, waybill_no=waybill_no, sort_code=mark,
                sender=sender, receiver=receiver, goods=goods, issued_at=issued_at,
                label_html=print_template(carrier_code, waybill_no, mark, sender, receiver, goods,
                                          _int(body.get("Quantity"), 1)),
                request_data=request_data)
            self.issued[order_code] = issued
            self.parcels[waybill_no] = Parcel(waybill_no, carrier_code, sender, receiver, issued_at)
            return Issue(issued, False, request_number)

    def waybills(self) -> list[IssuedWaybill]:
        """Every waybill issued through the e-waybill endpoint, in issue order."""
        with self.lock:
            return list(self.issued.values())

    def refuse(self, carrier_code: str, reason: str = DEFAULT_REFUSAL, code: str = "105") -> None:
        """New waybill requests for this carrier are refused with (code, reason) until resume(); orders that already
        have a waybill still get it back."""
        _check_carrier(carrier_code)
        with self.lock:
            self._refusals[carrier_code] = (str(code), reason)

    def resume(self, carrier_code: str) -> None:
        _check_carrier(carrier_code)
        with self.lock:
            self._refusals.pop(carrier_code, None)

    # ------------------------------------------------------------ door pickups (商家寄件)
    def set_load(self, carrier_code: str, load: float) -> None:
        """What the 商家寄件运力 query (querymkt) reports for a carrier from now on: 1.0 leaves it out (no capacity)."""
        _check_carrier(carrier_code)
        with self.lock:
            self.carrier_loads[carrier_code] = float(load)

    def refuse_pickups_from(self, province: str) -> None:
        """Pickups whose sender is in this province are refused (寄件地址超出服务范围) until allowed again."""
        with self.lock:
            self.pickup_refused_provinces.add(province)

    def pickup(self, task_id: str) -> "pickup_endpoint.SimPickup":
        with self.lock:
            return self.pickups[task_id]

    def pickup_callback_form(self, task_id: str, index: int = -1) -> dict[str, str]:
        """A pickup's order callback (default: the latest, e.g. status 1 已接单 with the courier), signed."""
        with self.lock:
            return pickup_endpoint.callback_form(self.pickups[task_id], index)

    def collect_pickup(self, task_id: str, *, at: datetime | None = None) -> SimEvent:
        """The courier collects the return parcel: its first tracking event (collected) and the 10 已取件 callback."""
        with self.lock:
            pickup = self.pickups[task_id]
            event = self.advance_parcel(pickup.waybill_no, "collected", at=at)
            pickup.status = "10"
            pickup.callbacks.append(pickup_endpoint.callback_param(pickup, "10"))
            return event

    def push_pickup_callbacks(self, timeout: float = 10.0) -> list[tuple[str, int | None]]:
        """POST the order callbacks not yet delivered to each order's callBackUrl."""
        return pickup_endpoint.push_callbacks(self, timeout)

    # ------------------------------------------------------------ tracking
    def add_parcel(self, carrier_code: str = "SF", *, sender: dict | None = None,
                   receiver: dict | None = None) -> str:
        """A parcel with a fresh waybill number but no e-waybill order (for tracking tests); returns the number."""
        _check_carrier(carrier_code)
        with self.lock:
            waybill_no = self._new_waybill_no(carrier_code)
            self.parcels[waybill_no] = Parcel(waybill_no, carrier_code, {**DEFAULT_SENDER, **(sender or {})},
                                              {**DEFAULT_RECEIVER, **(receiver or {})}, self._now())
            return waybill_no

    def advance_parcel(self, waybill_no: str, kind: str | None = None, *, at: datetime | None = None) -> SimEvent:
        """Append the parcel's next tracking event: `kind` (one of KINDS), or the next step of a normal journey.
        The event happens after the previous one (or at `at`, an aware datetime)."""
        if kind is not None and kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        with self.lock:
            parcel = self._parcel(waybill_no)
            kind = kind or parcel.next_kind()
            if kind is None:
                raise ValueError(f"parcel {waybill_no} has finished its journey; name a kind to add more")
            description, province, city = event_text(kind, parcel.sender, parcel.receiver, self._rng)
            event = SimEvent(kind, self._next_time(parcel, at), description, province, city)
            parcel.add(event)
            return event

    def events_of(self, waybill_no: str) -> list[SimEvent]:
        """The parcel's events so far, oldest first: the truth both platforms render."""
        with self.lock:
            return list(self._parcel(waybill_no).events)

    def unfinished(self) -> list[str]:
        """Waybill numbers of parcels whose normal journey has a next step."""
        with self.lock:
            return [number for number, parcel in self.parcels.items() if parcel.next_kind() is not None]

    def _parcel(self, waybill_no: str) -> Parcel:
        parcel = self.parcels.get(str(waybill_no))
        if parcel is None:
            raise KeyError(f"no parcel {waybill_no}")
        return parcel

    # ------------------------------------------------------------ pushes
    def signed_kuaidi100(self, param: dict, salt: str | None = None) -> dict[str, str]:
        """The form Kuaidi100 posts: `param` as JSON text and its sign (default: the configured salt)."""
        text = json_bytes(param).decode()
        return {"param": text, "sign": kuaidi100_push_sign(text, salt or self.credentials["kuaidi100"]["salt"])}

    def signed_17track(self, body: dict, key: str | None = None) -> tuple[bytes, str]:
        """The raw body 17TRACK would post and its `sign` header (default: the configured security key)."""
        raw = json_bytes(body)
        return raw, track17_sign(raw, key or self.credentials["17track"]["key"])

    def _due(self, fmt: str, target_url: str, waybill_no: str | None) -> list[Parcel]:
        if waybill_no is not None:
            return [self._parcel(waybill_no)]
        delivered = self._pushed.get((fmt, target_url), {})
        return [parcel for parcel in self.parcels.values() if len(parcel.events) > delivered.get(parcel.waybill_no, 0)]

    def _delivered(self, fmt: str, target_url: str, waybill_no: str, count: int) -> None:
        with self.lock:
            delivered = self._pushed.setdefault((fmt, target_url), {})
            delivered[waybill_no] = max(delivered.get(waybill_no, 0), count)

    def push_kuaidi100(self, target_url: str, salt: str | None = None, waybill_no: str | None = None, *,
                       resultv2: str = "4", timeout: float = 10.0) -> list[PushResult]:
        """POST Kuaidi100 subscription pushes (form param + sign) to target_url. Without waybill_no: every parcel with
        events this target has not accepted yet (a push that was not answered {"result": true} is sent again next
        time); with it: that parcel as it is now. resultv2="4" sends advanced states, anything else the main ones."""
        with self.lock:
            forms = [(parcel.waybill_no, len(parcel.events), self.signed_kuaidi100(
                kuaidi100_push_param(parcel.waybill_no, parcel.carrier_code, list(parcel.events), resultv2 == "4"),
                salt)) for parcel in self._due("kuaidi100", target_url, waybill_no)]
        results = []
        with httpx.Client(timeout=timeout) as client:  # sent outside the lock: the receiver may call us back
            for number, count, form in forms:
                try:
                    response = client.post(target_url, content=urlencode(form).encode(),
                                           headers={"Content-Type": "application/x-www-form-urlencoded"})
                except httpx.HTTPError as exc:
                    results.append(PushResult(number, None, False, f"{type(exc).__name__}: {exc}"))
                    continue
                try:
                    accepted = response.status_code == 200 and response.json().get("result") is True
                except (ValueError, AttributeError):
                    accepted = False
                if accepted:
                    self._delivered("kuaidi100", target_url, number, count)
                results.append(PushResult(number, response.status_code, accepted))
        return results

    def push_17track(self, target_url: str, key: str | None = None, waybill_no: str | None = None, *,
                     timeout: float = 10.0, shape: str = "track_info") -> list[PushResult]:
        """POST 17TRACK TRACKING_UPDATED webhooks (JSON body, `sign` header) to target_url, chosen as in
        push_kuaidi100; any 2xx answer counts as accepted. `shape` (formats.TRACK17_SHAPES): the current
        `track_info` by default, or `latest_event` / `v1` to exercise the other shapes 17TRACK sends."""
        with self.lock:
            synced_at = self.now_text()
            bodies = []
            for parcel in self._due("17track", target_url, waybill_no):
                track_info = track17_track_info(parcel.carrier_code, parcel.sender, parcel.receiver,
                                                parcel.track17_events(), [event.kind for event in parcel.events],
                                                synced_at)
                raw, sign = self.signed_17track(track17_push_body(parcel.waybill_no, parcel.carrier_code, track_info,
                                                                  shape, list(parcel.events)), key)
                bodies.append((parcel.waybill_no, len(parcel.events), raw, sign))
        results = []
        with httpx.Client(timeout=timeout) as client:
            for number, count, raw, sign in bodies:
                try:
                    response = client.post(target_url, content=raw,
                                           headers={"Content-Type": "application/json", "sign": sign})
                except httpx.HTTPError as exc:
                    results.append(PushResult(number, None, False, f"{type(exc).__name__}: {exc}"))
                    continue
                accepted = 200 <= response.status_code < 300
                if accepted:
                    self._delivered("17track", target_url, number, count)
                results.append(PushResult(number, response.status_code, accepted))
        return results

    def bulk_events(self, count: int) -> list[tuple[str, dict]]:
        """`count` 17TRACK push bodies as (waybill number, body), fast, for ingest benchmarks. Parcels are made up
        for the purpose (not stored, not served) and follow the normal journey; each body carries its parcel's whole
        history so far, as 17TRACK sends it, and adds exactly one event: ingesting all of them yields `count`
        distinct events. Bodies of one parcel share their event objects: treat them as read-only.
        signed_17track(body) gives the bytes to send and their sign."""
        if count < 0:
            raise ValueError("count must not be negative")
        with self.lock:
            self._bulk_calls += 1
            rng = random.Random(f"{self.seed}:bulk:{self._bulk_calls}")
            synced_at = self.now_text()
            base = self._now() - timedelta(days=2)
            taken: set[str] = set()
            bodies: list[tuple[str, dict]] = []
            for index in range(math.ceil(count / len(JOURNEY))):
                carrier_code = CARRIERS[index % len(CARRIERS)]
                waybill_no = self._new_waybill_no(carrier_code, taken)
                taken.add(waybill_no)
                moment = base + timedelta(seconds=rng.randint(0, 86_400))
                rendered, kinds = [], []
                for kind in JOURNEY[:min(len(JOURNEY), count - len(bodies))]:
                    moment += timedelta(minutes=rng.randint(20, 300))
                    description, province, city = event_text(kind, DEFAULT_SENDER, DEFAULT_RECEIVER, rng)
                    rendered.append(track17_event(SimEvent(kind, moment, description, province, city)))
                    kinds.append(kind)
                    track_info = track17_track_info(carrier_code, DEFAULT_SENDER, DEFAULT_RECEIVER, rendered[:],
                                                    kinds[:], synced_at)
                    bodies.append((waybill_no, track17_push_body(waybill_no, carrier_code, track_info)))
            return bodies

    # ------------------------------------------------------------ context manager
