"""The customer self-service site. Being filled in."""
from flask import Flask

from shared.appcore import create_core_app
from shared.extensions import csrf
from shared.web import install_edges


def create_app(config: dict | None = None) -> Flask:
    app = create_core_app("customer_site", config)
    app.config.setdefault("SESSION_COOKIE_NAME", "orderloom_customer")
    csrf.init_app(app)
    install_edges(app)
    return app
