"""Server-side authorization for every portal route, from the one permission table.

Each view declares the (resource, action) it needs with @requires; the wrapper carries it as
`required_permission`, so the matrix test can walk every route of the app for every role.
"""
import functools

from flask import g, jsonify, redirect, request, url_for
from flask_login import current_user

from shared.security.permissions import can
from shared.services.errors import Forbidden
from shared.web import error_response

PUBLIC_ENDPOINTS: set[str] = {"static", "auth.sign_in", "auth.sign_out", "health", "api_docs.openapi",
                              "api_docs.docs", "set_language"}


def register_public(endpoint: str) -> None:
    PUBLIC_ENDPOINTS.add(endpoint)


def acting_user():
    """The staff user behind this request: the bearer token's on the API, the session's elsewhere."""
    if request.path.startswith("/api/"):
        return g.get("api_user")
    return current_user if current_user.is_authenticated and hasattr(current_user, "role") else None


def requires(resource: str, action: str, also=None):
    """Let the request through only for signed-in staff whose role may take `action` on `resource`.

    `also(role)` adds a check from the same table, e.g. that the role may see personal data in full.
    """

    def decorate(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            user = acting_user()
            if user is None:
                return _sign_in_required()
            if not can(user.role, resource, action) or (also is not None and not also(user.role)):
                return error_response(Forbidden(f"your role ({user.role}) may not {action} {resource}",
                                                code="forbidden"))
            return view(*args, **kwargs)

        wrapper.required_permission = (resource, action)
        wrapper.also_required = also
        return wrapper

    return decorate


def _sign_in_required():
    if request.path.startswith("/api/"):
        return jsonify({"error": {"code": "unauthenticated", "message": "sign in or send a bearer token"}}), 401
    target = url_for("auth.sign_in", next=request.full_path if request.method == "GET" else None)
    if request.headers.get("HX-Request"):
        response = jsonify({})
        response.headers["HX-Redirect"] = target
        return response, 401
    return redirect(target)
