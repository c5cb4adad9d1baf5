"""What both web apps share at the edge: security headers, error pages and JSON errors, the request actor."""
import logging

from flask import Flask, current_app, jsonify, redirect, render_template, request, session, url_for
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException

from shared.actors import Actor
from shared.appcore import LANGUAGES
from shared.extensions import db
from shared.services.errors import Conflict, ServiceError
from shared.services.validation import N_, say

# What a person reads when this module refuses: message codes, said in the reader's language (say).
CSRF_FAILED = N_("The form expired or was not sent from this site: reload the page and try again")
CONCURRENT_CHANGE = N_("Someone else changed this order at the same moment; reload and retry")

log = logging.getLogger("orderloom.web")
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "frame-ancestors 'none'; form-action 'self'; base-uri 'self'")


def client_ip() -> str | None:
    return request.remote_addr


# Machine callers: the JSON API, the handhelds' scan API and the platforms' webhooks always get JSON errors.
JSON_PREFIXES = ("/api/", "/scan/", "/hooks/")
# A database that does not answer (down, restarting, out of connections, locked past the busy timeout): 503 and
# "try again", never a 500. Errors the database raises about the statement itself stay bugs (500).
DATABASE_DOWN = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError, sa_exc.TimeoutError)
RETRY_AFTER_SECONDS = 5
# Errors the edge answers itself, by HTTP status: (code, message in the viewer's language).
EDGE_ERRORS = {
    400: ("bad_request", _l("The request could not be read.")),
    404: ("not_found", _l("Not found.")),
    405: ("method_not_allowed", _l("This method is not allowed here.")),
    413: ("too_large", _l("The request body is too large.")),
    415: ("unsupported_media_type", _l("This content type is not accepted here.")),
    429: ("rate_limited", _l("Too many attempts; wait a few minutes.")),
    500: ("internal_error", _l("Something went wrong on our side; it has been logged. Try again later.")),
    503: ("database_unavailable", _l("The database is not answering; try again in a moment.")),
}


def wants_json() -> bool:
    return request.path.startswith(JSON_PREFIXES) or (
        request.accept_mimetypes.best == "application/json" and not request.headers.get("HX-Request"))


def error_response(error: ServiceError):
    """JSON for machine callers; else the app's error page (ERROR_TEMPLATE: the portal's is in its frame), or the
    plain one when the framed page itself cannot be drawn (a broken layout must not hide the answer)."""
    if wants_json():
        return jsonify(error.as_json()), error.status
    template = current_app.config.get("ERROR_TEMPLATE", "error.html")
    try:
        return render_template(template, error=error), error.status
    except Exception:  # noqa: BLE001  (logged; the plain page needs nothing but the error)
        if template == "error.html":
            raise
        log.exception("the error page %s failed; answering with the plain one", template)
        _rollback_quietly()
        return render_template("error.html", error=error), error.status


def edge_error(status: int, code: str | None = None) -> ServiceError:
    """The refusal the edge itself answers with `status` (its message in the request's language)."""
    default_code, message = EDGE_ERRORS.get(status, (f"http_{status}", _l("The request was refused.")))
    error = ServiceError(str(message), code=code or default_code)
    error.status = status
    return error


def _rollback_quietly() -> None:
    """Roll back after a failure; a database that is gone cannot even roll back, and that must not hide the answer."""
    try:
        db.session.rollback()
    except Exception:  # noqa: BLE001  (the connection is dead: the pool discards it)
        log.warning("rollback failed after an error", exc_info=True)


def database_status() -> str:
    """"up" when the database answers a trivial query now, else "down"."""
    try:
        db.session.execute(text("SELECT 1"))
        db.session.rollback()
        return "up"
    except DATABASE_DOWN + (sa_exc.DBAPIError,):
        _rollback_quietly()
        return "down"


def install_edges(app: Flask) -> None:
    """Headers on every answer, and one way of turning refused operations into answers."""

    @app.after_request
    def _security_headers(response):
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Cache-Control", "no-store")
        if app.config.get("SESSION_COOKIE_SECURE"):
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        return response

    @app.errorhandler(ServiceError)
    def _service_error(error: ServiceError):
        db.session.rollback()
        return error_response(error)

    @app.errorhandler(StaleDataError)
    def _stale(_error):
        db.session.rollback()
        return error_response(Conflict(say(CONCURRENT_CHANGE),
                                       code="concurrent_change"))

    @app.errorhandler(CSRFError)
    def _csrf(error):
        db.session.rollback()
        refused = ServiceError(say(CSRF_FAILED),
                               code="csrf_failed")
        return error_response(refused)

    def _database_down(error):
        _rollback_quietly()
        log.error("database unavailable path=%s error=%s", request.path, str(error).splitlines()[0][:300])
        refused = edge_error(503)
        if wants_json():
            response = jsonify(refused.as_json())
        else:  # the plain page: the layout would ask the database who is signed in
            response = app.response_class(refused.message, mimetype="text/plain")
        response.status_code = 503
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

    for kind in DATABASE_DOWN:
        app.register_error_handler(kind, _database_down)

    for status in (404, 405, 413, 429):
        def _handler(_error, status=status):
            return error_response(edge_error(status))
        app.register_error_handler(status, _handler)

    @app.errorhandler(HTTPException)
    def _other_http(error: HTTPException):
        """Any other refusal werkzeug raises (400, 415, 501...): JSON for machine callers, werkzeug's page otherwise."""
        if error.code is None or error.code < 400 or not wants_json():
            return error
        return error_response(edge_error(error.code))

    @app.errorhandler(500)
    def _internal(error):
        """A bug (Flask has logged it with its traceback): answered without internals, JSON for machine callers."""
        _rollback_quietly()
        return error_response(edge_error(500))


class RedactPersonalValues(logging.Filter):
    """Request log lines (werkzeug's, gunicorn's access log) without phone numbers or search values."""

    def filter(self, record: logging.LogRecord) -> bool:
        from shared.order_search import redact

        record.msg, record.args = redact(record.getMessage()), None
        return True


def install_log_redaction() -> None:
    for name in ("werkzeug", "gunicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactPersonalValues) for f in logger.filters):
            logger.addFilter(RedactPersonalValues())


def create_web_app(name: str, defaults: dict, config: dict | None = None, home: str = "index",
                   remember_language=None) -> Flask:
    """A web app on the core: CSRF, rate limits, security headers, error answers, shared filters,
    a health check and the language switch.

    `defaults` are passed as overrides (Flask's own defaults already hold keys such as the cookie name).
    `remember_language(code)` may keep a signed-in person's choice beyond the session.
    """
    from shared.appcore import create_core_app
    from shared.extensions import csrf, limiter
    from shared.templating import install_common_filters

    app = create_core_app(name, {**defaults, **(config or {})})
    app.json.ensure_ascii = False
    csrf.init_app(app)
    limiter.init_app(app)
    install_edges(app)
    install_common_filters(app)
    install_log_redaction()

    @app.get("/healthz", endpoint="health")
    def _health():
        """For load balancers and monitors: 503 when the database does not answer (the app cannot serve);
        Redis down is "degraded", 200: jobs then run inline or wait for the sweeper, and nothing is refused."""
        from shared.dispatch import redis_status

        parts = {"database": database_status(), "redis": redis_status(fresh=True)}
        down = [part for part, state in parts.items() if state == "down"]
        status = "unavailable" if parts["database"] == "down" else "degraded" if down else "ok"
        response = jsonify({"status": status, "down": down, **parts})
        response.status_code = 503 if status == "unavailable" else 200
        if status == "unavailable":
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

    @app.post("/language", endpoint="set_language")
    def _set_language():
        """Switch the UI language and go back where the switch was pressed (same site only)."""
        code = request.form.get("lang", "")
        if code in LANGUAGES:
            session["lang"] = code
            if remember_language is not None:
                remember_language(code)
        target = request.referrer or ""
        return redirect(target if target.startswith(request.host_url) else url_for(home))

    return app


def staff_actor(user) -> Actor:
    return Actor.for_staff(user, ip=client_ip())
