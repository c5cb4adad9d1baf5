"""What both web apps share at the edge: security headers, error pages and JSON errors, the request actor."""
import logging

from flask import Flask, jsonify, redirect, render_template, request, session, url_for
from flask_wtf.csrf import CSRFError
from sqlalchemy.orm.exc import StaleDataError

from shared.actors import Actor
from shared.appcore import LANGUAGES
from shared.extensions import db
from shared.services.errors import Conflict, ServiceError

CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "frame-ancestors 'none'; form-action 'self'; base-uri 'self'")


def client_ip() -> str | None:
    return request.remote_addr


def wants_json() -> bool:
    return request.path.startswith("/api/") or (
        request.accept_mimetypes.best == "application/json" and not request.headers.get("HX-Request"))


def error_response(error: ServiceError):
    if wants_json():
        return jsonify(error.as_json()), error.status
    return render_template("error.html", error=error), error.status


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
        return error_response(Conflict("someone else changed this order at the same moment; reload and retry",
                                       code="concurrent_change"))

    @app.errorhandler(CSRFError)
    def _csrf(error):
        db.session.rollback()
        refused = ServiceError(f"the form expired or was not sent from this site ({error.description})",
                               code="csrf_failed")
        return error_response(refused)

    for status, code, message in ((404, "not_found", "not found"), (405, "method_not_allowed", "method not allowed"),
                                  (413, "too_large", "request body too large"),
                                  (429, "rate_limited", "too many attempts; wait a few minutes")):
        def _handler(_error, status=status, code=code, message=message):
            error = ServiceError(message, code=code)
            error.status = status
            return error_response(error)
        app.register_error_handler(status, _handler)


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
        return jsonify({"status": "ok"})

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
