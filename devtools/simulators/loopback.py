"""Serving a WSGI app on loopback from a background thread: what the channel and carrier simulators share."""
import threading

from werkzeug.serving import WSGIRequestHandler, make_server


class QuietRequestHandler(WSGIRequestHandler):
    """No access log line per request: a benchmark makes thousands."""

    def log_request(self, code="-", size="-"):
        pass


class LoopbackServing:
    """Mixin: `start()` serves `self.wsgi_app` on a free port (or the one given), `stop()` ends it; usable as a
    context manager. The subclass calls `_init_serving()` in its __init__ and may watch `self._stopping`."""

    thread_name = "loopback-server"

    def _init_serving(self) -> None:
        self._stopping = threading.Event()
        self._server = None
        self._thread = None
        self.base_url: str | None = None

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0: a free port) from a background thread; returns the base URL."""
        if self._server is not None:
            raise RuntimeError("the simulator is already serving")
        self._stopping.clear()
        self._server = make_server(host, port, self.wsgi_app, threaded=True, request_handler=QuietRequestHandler)
        self.base_url = f"http://{host}:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=self.thread_name, daemon=True)
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        """Stop serving; requests held by a simulated timeout are released."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self):
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
