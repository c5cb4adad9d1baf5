"""Error pages in the customer's language, inside the customer layout; JSON clients get the usual error body."""
from flask import Flask, render_template
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError

from shared.extensions import db
from shared.services.errors import ServiceError
from shared.web import error_response, wants_json

ERRORS = {
    400: ("csrf_failed", _l("This form has expired or was not sent from this site. Reload the page and try again.")),
    404: ("not_found", _l("We could not find this page or order.")),
    429: ("rate_limited", _l("Too many attempts from your network. Please wait a few minutes and try again.")),
}


def _answer(status: int):
    db.session.rollback()
    code, message = ERRORS[status]
    if wants_json():
        error = ServiceError(str(message), code=code)
        error.status = status
        return error_response(error)
    return render_template("customer/error.html", status=status, message=message), status


def install_customer_errors(app: Flask) -> None:
    """Replace the shared HTML pages for the errors a customer meets (call after shared.web.install_edges)."""
    app.register_error_handler(CSRFError, lambda _error: _answer(400))
    app.register_error_handler(404, lambda _error: _answer(404))
    app.register_error_handler(429, lambda _error: _answer(429))
