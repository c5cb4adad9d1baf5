"""A loopback HTTP server that records what it is sent and answers what the test tells it to.

    with RobotReceiver(answer={"errcode": 0, "errmsg": "ok"}) as receiver:
        deliver("wecom", receiver.url + "/cgi-bin/webhook/send?key=k", alert)
        path, query, headers, body = receiver.requests[0]

Made for robot webhooks, but generic: any method, any path, a JSON or raw answer with any status, an optional delay.
"""
import json
import threading
import time
from typing import Any, NamedTuple

from werkzeug.datastructures import Headers
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response


class _RequestFields(NamedTuple):
    path: str
    query: dict[str, str]
    headers: Headers
    json: Any


class ReceivedRequest(_RequestFields):
    """One request as received: (path, query with the first value per name, case-insensitive headers, JSON body).

    `json` is None when the body is not JSON. The method and raw body ride along as attributes, outside the tuple.
    """

    def __new__(cls, path: str, query: dict[str, str], headers: Headers, json: Any, method: str = "POST",
                raw: bytes = b""):
        self = super().__new__(cls, path, query, headers, json)
        self.method, self.raw = method, raw
        return self


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:  # the access log would only clutter test output
        pass


class RobotReceiver:
    """A threaded werkzeug server on 127.0.0.1 at a free port, from __enter__ to __exit__."""

    def __init__(self, answer: Any = None, status: int = 200, delay: float = 0.0):
        self.requests: list[ReceivedRequest] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self.set_answer(answer if answer is not None else {"errcode": 0, "errmsg": "ok"}, status=status, delay=delay)
        self._server = None
        self._thread = None
        self.url = ""

    def set_answer(self, answer: Any, status: int = 200, delay: float = 0.0) -> None:
        """Answer later requests with this body (dict/list → JSON, str/bytes → as is), status, after delay seconds."""
        with self._lock:
            self._answer, self._status, self._delay = answer, status, delay

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedRequest]:
        """Block until `count` requests have arrived (for senders in other threads); fail the test after timeout."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.requests) >= count, timeout=timeout):
                raise AssertionError(f"expected {count} request(s) within {timeout}s, got {len(self.requests)}")
            return list(self.requests)

    def _app(self, environ, start_response):
        request = Request(environ)
        raw = request.get_data()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        received = ReceivedRequest(request.path, request.args.to_dict(), Headers(request.headers), body,
                                   request.method, raw)
        with self._arrived:
            self.requests.append(received)
            self._arrived.notify_all()
            answer, status, delay = self._answer, self._status, self._delay
        if delay:
            time.sleep(delay)
        if isinstance(answer, (dict, list)):
            response = Response(json.dumps(answer, ensure_ascii=False), status=status, mimetype="application/json")
        else:
            response = Response(answer, status=status, mimetype="text/plain")
        return response(environ, start_response)

    def __enter__(self) -> "RobotReceiver":
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True, request_handler=_QuietHandler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="robot-receiver", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
