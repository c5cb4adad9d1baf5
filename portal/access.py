"""Server-side authorization for every portal route, from the one permission table.

Each view declares the (resource, action) it needs with @requires; the wrapper carries it as
`required_permission`, so the matrix test can walk every route of the app for every role. A sensitive route adds
`step_up=True`: it also needs a fresh second verification (shared/services/second_factor.py), answered per kind of
caller by `step_up_refusal`.
"""
import functools
from urllib.parse import urlsplit

from flask import abort, flash, g, jsonify, make_response, redirect, request, session, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from shared.extensions import db
from shared.security import sessions
from shared.security.permissions import can
from shared.services.errors import Forbidden
from shared.services.validation import N_, say
from shared.web import error_response, staff_actor

# What a person reads when this module refuses: message codes, said in the reader's language (say).
ROLE_MAY_NOT = N_("Your role (%(role)s) may not %(action)s %(resource)s")

PUBLIC_ENDPOINTS: set[str] = {"static", "auth.sign_in", "auth.sign_out", "health", "api_docs.openapi",
                              "api_docs.docs", "set_language", "auth.second_factor", "auth.enrol"}
# The API has no session to hold a step-up: a sensitive call carries a current TOTP code in this header.
OTP_HEADER = "X-Orderloom-OTP"
STEP_UP_MESSAGES = {
    "page": _l("This is a sensitive operation: confirm it with your second factor. Then submit the form again."),
    "api": _l("This call is sensitive: send a current code of your second factor in the X-Orderloom-OTP header."),
}


def register_public(endpoint: str) -> None:
    PUBLIC_ENDPOINTS.add(endpoint)


def acting_user():
    """The staff user behind this request: the bearer token's on the API, the session's elsewhere."""
    if request.path.startswith("/api/"):
        return g.get("api_user")
    return current_user if current_user.is_authenticated and hasattr(current_user, "role") else None


def requires(resource: str, action: str, also=None, step_up: bool = False):
    """Let the request through only for signed-in staff whose role may take `action` on `resource`.

    `also(role)` adds a check from the same table, e.g. that the role may see personal data in full.
    `step_up=True` marks a sensitive operation: it also needs a fresh second verification (`step_up_refusal`).
    """

    def decorate(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            user = acting_user()
            if user is None:
                return _sign_in_required()
            if not can(user.role, resource, action) or (also is not None and not also(user.role)):
                _record_refusal(user, resource, action)
                refused = Forbidden(say(ROLE_MAY_NOT, role=user.role, action=action, resource=resource), code="forbidden")
                refused.permission = (resource, action)  # the error page names it in words
                return error_response(refused)
            if step_up:
                refused = step_up_refusal(user)
                if refused is not None:
                    return refused
            return view(*args, **kwargs)

        wrapper.required_permission = (resource, action)
        wrapper.also_required = also
        wrapper.step_up = step_up
        return wrapper

    return decorate


def _record_refusal(user, resource: str, action: str) -> None:
    """Every 403 of the permission table is in the audit chain (`access.forbidden`: who, which path, what they
    lacked), committed before the answer, so the access report can count refused attempts per account."""
    from shared.services import audit

    audit.record(staff_actor(user), "access.forbidden", "permission", f"{resource}:{action}",
                 after={"path": request.path[:200], "method": request.method, "resource": resource,
                        "action": action, "role": user.role})
    db.session.commit()


def require_step_up() -> None:
    """For an operation that is sensitive only sometimes (e.g. cancelling an order that is paid): stop the request
    here with the step-up answer unless it carries a fresh second verification."""
    refused = step_up_refusal(acting_user())
    if refused is not None:
        abort(refused)


def _same_site_path(target: str | None) -> str | None:
    if not target:
        return None
    parts = urlsplit(target)
    if parts.netloc and parts.netloc != request.host:
        return None
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return path if path.startswith("/") and not path.startswith("//") else None


def step_up_refusal(user):
    """None when this request carries a fresh second verification; else the answer for this kind of caller.

    - API (bearer token, no session): the header X-Orderloom-OTP with a current TOTP code, verified for this call
      alone; none → 403 `step_up_required`, a refused code → 403 with the refusal's code (counted, audited).
    - A page: the session needs a grant from the last 5 minutes; else a GET is sent to the step-up page and back,
      a POST to the step-up page and then back to the page it was sent from (the form is submitted again), and an
      htmx request gets HX-Redirect to the step-up page.
    """
    from shared.services import audit, second_factor

    actor = staff_actor(user)
    if request.path.startswith("/api/"):
        code = request.headers.get(OTP_HEADER, "").strip()
        if not code:
            audit.record(actor, "step_up.refused", "staff_user", user.username,
                         after={"path": request.path, "reason": "no_code"})
            db.session.commit()
            return make_response(error_response(second_factor.StepUpRequired(str(STEP_UP_MESSAGES["api"]))))
        try:
            second_factor.verify_for_request(user, code, actor)
        except second_factor.CodeRefused as refused:
            db.session.commit()  # the failure count, the lock and the audit event stay
            return make_response(error_response(refused))
        db.session.commit()  # the accepted time step: the same code never passes twice
        return None
    if second_factor.is_fresh(user, sessions.session_id(session)):
        return None
    audit.record(actor, "step_up.refused", "staff_user", user.username,
                 after={"path": request.path, "reason": "no_fresh_step_up"})
    db.session.commit()
    if request.method == "GET" and not request.headers.get("HX-Request"):
        back = request.full_path.rstrip("?")
    else:
        back = _same_site_path(request.headers.get("HX-Current-URL") or request.referrer)
    target = url_for("security.step_up", next=back)
    if request.headers.get("HX-Request"):
        response = make_response(jsonify({}), 403)
        response.headers["HX-Redirect"] = target
        return response
    if request.method != "GET":
        flash(str(STEP_UP_MESSAGES["page"]), "info")
    return redirect(target, 303)


def _sign_in_required():
    if request.path.startswith("/api/"):
        return jsonify({"error": {"code": "unauthenticated", "message": "sign in or send a bearer token"}}), 401
    target = url_for("auth.sign_in", next=request.full_path if request.method == "GET" else None)
    if request.headers.get("HX-Request"):
        response = jsonify({})
        response.headers["HX-Redirect"] = target
        return response, 401
    return redirect(target)
