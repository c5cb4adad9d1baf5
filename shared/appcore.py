"""The application core both apps and the workers build on: config, database, keys, languages."""
from flask import Flask, g, has_request_context, request, session
from flask_babel import get_locale

from shared.config import PROJECT_ROOT, load_config
from shared.database import tune_engine
from shared.extensions import babel, db
from shared.security import crypto

LANGUAGES = {"zh_CN": "简体中文", "en": "English"}


def create_core_app(name: str, config: dict | None = None) -> Flask:
    """A Flask app with configuration, database and encryption keys bound; no blueprints."""
    app = Flask(name, template_folder=str(PROJECT_ROOT / "templates"), static_folder=str(PROJECT_ROOT / "static"),
                instance_path=str(PROJECT_ROOT / "instance"))
    app.config.update(load_config(config))
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///"):
        (PROJECT_ROOT / "instance").mkdir(exist_ok=True)
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(PROJECT_ROOT / "translations"))
    db.init_app(app)
    crypto.configure(app.config["DATA_KEYS"], app.config["BLIND_INDEX_KEY"])
    with app.app_context():
        tune_engine(db.engine)
    babel.init_app(app, locale_selector=_select_locale, timezone_selector=_select_timezone)
    app.jinja_env.globals.update(LANGUAGES=LANGUAGES, current_language=current_language)
    return app


def current_language() -> str:
    """The code (a key of LANGUAGES) of the language this request is shown in."""
    locale = get_locale()
    return "zh_CN" if locale is not None and locale.language == "zh" else "en"


def _select_locale() -> str:
    """The signed-in person's language, else an explicit ?lang=, else the browser's preference; outside a request
    (a job, the CLI) English, unless the caller chose a language with flask_babel.force_locale."""
    chosen = getattr(g, "locale", None)
    if chosen in LANGUAGES:
        return chosen
    if not has_request_context():
        return "en"
    asked = request.args.get("lang") or session.get("lang")
    if asked in LANGUAGES:
        return asked
    return request.accept_languages.best_match(list(LANGUAGES), default="zh_CN")


def _select_timezone() -> str:
    return getattr(g, "timezone", None) or "Asia/Shanghai"
