"""Template helpers for the portal: money, viewer-zone time, labels, and permission checks."""
from flask import Flask
from flask_login import current_user

from shared.dispatch import jobs_run_inline
from shared.security.permissions import can
from shared.web import EDGE_ERRORS

EDGE_CODES = frozenset(code for code, _message in EDGE_ERRORS.values())


def install_templating(app: Flask) -> None:
    @app.context_processor
    def _portal_globals():
        def allowed(resource: str, action: str = "view") -> bool:
            return current_user.is_authenticated and hasattr(current_user, "role") and can(
                current_user.role, resource, action)

        # The codes of the refusals the edge answers itself: the error page gives them its own words.
        return {"allowed": allowed, "jobs_inline": jobs_run_inline, "edge_codes": EDGE_CODES}
