"""The staff portal: orders, stock, users, audit, dashboards, and the JSON API."""
from flask import Flask, g, request, session
from flask_login import current_user

from shared.extensions import csrf, htmx, login_manager
from shared.web import create_web_app


def _remember_language(code: str) -> None:
    """A signed-in staff member's language is kept on their account (audited)."""
    from shared.extensions import db
    from shared.services import staff
    from shared.web import staff_actor

    if current_user.is_authenticated and hasattr(current_user, "role"):
        staff.update_user(current_user, staff_actor(current_user), locale=code)
        db.session.commit()


# What a user whose password an administrator reset may reach before choosing their own.
PASSWORD_CHANGE_OPEN = frozenset({"security.password", "auth.sign_out", "set_language", "static"})


def _to_password_change():
    from flask import redirect, url_for

    target = url_for("security.password")
    if request.headers.get("HX-Request"):
        from flask import make_response

        response = make_response("", 204)
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target, 303)


def create_app(config: dict | None = None) -> Flask:
    app = create_web_app("portal", {"SESSION_COOKIE_NAME": "orderloom_portal", "MAX_CONTENT_LENGTH": 1024 * 1024,
                                      "ERROR_TEMPLATE": "portal/error.html"},
                         config, home="dashboard.index", remember_language=_remember_language)
    htmx.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.sign_in"
    login_manager.session_protection = "strong"

    from portal import after_sales as after_sales_pages
    from portal import (api, api_docs, approvals, audit, auth, catalog, channels, customers, dashboard, dashboards,
                        devices, exceptions, exports, finance_profiles, fulfilment, hooks, invoices, orders, payments,
                        purchasing, retention, roles, security, setup, stock, stock_ops, users, webhooks)
    from portal.templating import install_templating

    for module in (auth, dashboard, dashboards, orders, stock, stock_ops, catalog, channels, setup, fulfilment, devices,
                   webhooks, users, roles, approvals, exceptions, audit, exports, retention, payments, api_docs,
                   security, finance_profiles, invoices, customers, purchasing):
        app.register_blueprint(module.bp)
    app.register_blueprint(after_sales_pages.bp)
    app.register_blueprint(api.bp, url_prefix="/api/v1")
    csrf.exempt(api.bp)  # bearer tokens only: the API never reads the session cookie
    app.register_blueprint(hooks.bp)
    csrf.exempt(hooks.bp)  # platforms sign their webhooks; there is no session and no form
    from portal import scan

    app.register_blueprint(scan.bp)
    csrf.exempt(scan.bp)  # handheld devices authenticate with their own bearer token
    from portal import customer_care

    app.register_blueprint(customer_care.bp)
    from portal import bulk, saved_filters

    app.register_blueprint(bulk.bp)
    app.register_blueprint(saved_filters.bp)
    install_templating(app)

    from shared.services.second_factor import CodeRefused
    from shared.web import error_response

    @app.errorhandler(CodeRefused)
    def _code_refused(refused: CodeRefused):
        """A refused second-factor code that no view caught: its failure count and lock are kept (committed),
        unlike other refusals, which change nothing."""
        from shared.extensions import db

        db.session.commit()
        return error_response(refused)

    @login_manager.user_loader
    def _load_user(user_id: str):
        from shared.extensions import db
        from shared.models import StaffUser

        kind, _, raw_id = user_id.partition(":")
        if kind != "staff" or not raw_id.isdigit():
            return None
        from shared.security import sessions

        user = db.session.get(StaffUser, int(raw_id))
        # A session that never passed the sign-in's second-factor step (one from before it existed) is not one.
        if user is None or not user.active or not sessions.still_valid(session, user) \
                or not session.get(auth.SECOND_FACTOR):
            session.clear()  # ended on the server (signed out elsewhere, timed out, role changed): sign in again
            return None
        return user

    @app.before_request
    def _viewer_preferences():
        if request.path.startswith("/hooks/"):
            # A platform's or provider's call, read by no person here: what it leaves behind (an inbox item's
            # reason) is written in English like a job's, not in the default language of a browser
            g.locale = "en"
            return
        if request.path.startswith("/api/"):
            return  # the API never looks at the session cookie
        if current_user.is_authenticated and hasattr(current_user, "locale"):
            g.locale, g.timezone = current_user.locale, current_user.timezone
            if current_user.must_change_password and request.endpoint not in PASSWORD_CHANGE_OPEN:
                return _to_password_change()

    return app
