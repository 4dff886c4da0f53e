"""moderation: a self-hosted comment service with a moderation queue."""
import os

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from . import db_engine  # noqa: F401  (SQLite pragmas and BEGIN IMMEDIATE, registered on import)
from .addresses import CanonicalRemoteAddr
from .config import DEFAULTS, DEV_SECRET_KEY
from .extensions import csrf, db, limiter, login_manager, migrate

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIGRATIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations")


def create_app(config: dict | None = None) -> Flask:
    """Build the app: config, extensions, blueprints, command line, error pages."""
    app = Flask(
        __name__,
        instance_path=os.path.join(PROJECT_ROOT, "instance"),
        instance_relative_config=True,
        template_folder=os.path.join(PROJECT_ROOT, "templates"),
    )
    configure(app, config)
    configure_extensions(app)
    register_blueprints(app)

    from . import cache, cached_reads, cli, errors, ops, security

    cache.init_app(app)
    ops.init_app(app)
    cli.init_app(app)
    errors.init_app(app)
    security.init_app(app)
    app.wsgi_app = cached_reads.CachedReads(app, app.wsgi_app)
    return app


def configure(app: Flask, config: dict | None) -> None:
    """Defaults, then instance/config.py, then MODERATION_* variables, then the caller's dict."""
    app.config.from_mapping(DEFAULTS)
    app.config.from_pyfile("config.py", silent=True)
    app.config.from_prefixed_env("MODERATION")
    if config:
        app.config.update(config)
    if not app.config["SQLALCHEMY_DATABASE_URI"]:
        os.makedirs(app.instance_path, exist_ok=True)
        path = os.path.join(app.instance_path, "moderation.sqlite")
        app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{path}"
    app.config["PUBLIC_URL"] = app.config["PUBLIC_URL"].rstrip("/")
    if app.config["PUBLIC_URL"].startswith("https://"):
        # Over https the moderator's cookie is Secure and host-only (the __Host- prefix).
        app.config.update(SESSION_COOKIE_SECURE=True, REMEMBER_COOKIE_SECURE=True,
                          SESSION_COOKIE_NAME="__Host-session")
    if app.config["SECRET_KEY"] == DEV_SECRET_KEY and not (app.debug or app.testing):
        raise RuntimeError(
            "SECRET_KEY is the built-in development value. Set MODERATION_SECRET_KEY, "
            "or SECRET_KEY in instance/config.py (see instance/config.py.example)."
        )
    app.wsgi_app = CanonicalRemoteAddr(app.wsgi_app)
    if app.config["PROXY_COUNT"]:
        count = int(app.config["PROXY_COUNT"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count)


def configure_extensions(app: Flask) -> None:
    from .auth import SessionCookie

    app.session_interface = SessionCookie()
    db.init_app(app)
    migrate.init_app(app, db, directory=MIGRATIONS)
    csrf.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in to moderate comments."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "strong"


def register_blueprints(app: Flask) -> None:
    from . import admin, api, auth, embed, feeds, mail, moderate, oversight, privacy_admin, reader

    for blueprint in (embed.bp, reader.bp, feeds.bp, auth.bp, moderate.bp, oversight.bp, mail.bp,
                      api.bp, admin.bp, privacy_admin.bp):
        app.register_blueprint(blueprint)
    if app.config["DEMO"]:
        from . import demo

        app.register_blueprint(demo.bp)
