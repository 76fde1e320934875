"""Storefront: a server-rendered shop built for flash sales."""

from pathlib import Path

from flask import Flask, send_from_directory
from werkzeug.middleware.proxy_fix import ProxyFix

from storefront import db, errors, security
from storefront.config import load_config
from storefront.extensions import csrf, init_redis, limiter, login_manager, refuse_unchecked_limits
from storefront.payments import gateway

ROOT = Path(__file__).resolve().parent.parent


def create_app(config: dict | None = None) -> Flask:
    """Build the app: config, database, extensions, blueprints, error pages."""
    app = Flask(
        __name__,
        instance_path=str(ROOT / "instance"),
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    configure(app, config)
    configure_logging(app)
    db.init_app(app)
    configure_extensions(app)
    configure_flags(app)
    configure_metrics(app)
    configure_alerts(app)
    configure_live_stock(app)
    register_blueprints(app)
    configure_media(app)
    errors.init_app(app)
    security.init_app(app)
    register_cli(app)
    return app


def configure(app: Flask, config: dict | None) -> None:
    app.config.from_mapping(load_config(app.instance_path))
    if config:
        app.config.from_mapping(config)
    proxies = app.config["TRUSTED_PROXIES"]
    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)


def configure_logging(app: Flask) -> None:
    from storefront import logs, observability

    logs.configure(app)
    observability.init_sentry(app)


def configure_extensions(app: Flask) -> None:
    csrf.init_app(app)
    refuse_unchecked_limits(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "accounts.login"
    login_manager.login_message = "Please sign in to see that page."
    login_manager.session_protection = "basic"
    init_redis(app)
    gateway.init_app(app)


def configure_flags(app: Flask) -> None:
    from storefront.flags import services as flags

    flags.init_app(app)


def configure_metrics(app: Flask) -> None:
    from storefront import metrics

    metrics.init_app(app)


def configure_alerts(app: Flask) -> None:
    from storefront.alerts import services as alerts

    alerts.init_app(app)


def configure_live_stock(app: Flask) -> None:
    from storefront.live import views as live

    live.init_pages(app)


def create_stream_app(config: dict | None = None) -> Flask:
    """The live stock stream app (gevent workers): config, Redis, security headers and /stream/ only."""
    from storefront.health.views import bp as health_bp
    from storefront.live import services as live
    from storefront.live.views import bp as stream_bp

    app = Flask(__name__, instance_path=str(ROOT / "instance"), template_folder=str(ROOT / "templates"))
    configure(app, config)
    configure_logging(app)
    init_redis(app)
    live.init_stream_app(app)
    app.register_blueprint(stream_bp, url_prefix="/stream")
    app.register_blueprint(health_bp)  # nginx and the orchestrator ask the stream pool too
    security.init_app(app)
    return app


def register_blueprints(app: Flask) -> None:
    from storefront.accounts.views import bp as accounts_bp
    from storefront.admin import bp as admin_bp
    from storefront.cart.views import bp as cart_bp
    from storefront.catalog.views import bp as catalog_bp
    from storefront.checkout.views import bp as checkout_bp
    from storefront.health.views import bp as health_bp
    from storefront.notify.views import bp as notify_bp
    from storefront.orders.views import bp as orders_bp
    from storefront.payments.views import bp as payments_bp
    from storefront.waitingroom.views import bp as waitingroom_bp

    app.register_blueprint(health_bp)
    app.register_blueprint(catalog_bp)
    app.register_blueprint(accounts_bp)
    app.register_blueprint(cart_bp, url_prefix="/cart")
    app.register_blueprint(checkout_bp, url_prefix="/checkout")
    app.register_blueprint(orders_bp)
    app.register_blueprint(payments_bp)
    app.register_blueprint(notify_bp)
    # Back-in-stock notices follow inventory's stock_changed signal (a process-wide receiver, connected once).
    from jobs import notify as notify_jobs

    notify_jobs.connect()
    app.register_blueprint(waitingroom_bp, url_prefix="/waiting-room")
    app.register_blueprint(admin_bp, url_prefix="/admin")


def configure_media(app: Flask) -> None:
    """Serve uploaded and generated product images; nginx serves this folder in production."""

    @app.get("/media/<path:filename>")
    def media(filename: str):
        """Send one file from the media folder, cached for a year (names never change)."""
        return send_from_directory(app.config["MEDIA_FOLDER"], filename, max_age=365 * 24 * 3600)


def register_cli(app: Flask) -> None:
    from storefront import cli

    for command in (
        cli.seed_demo,
        cli.stock,
        cli.lockouts,
        cli.unlock,
        cli.sweep,
        cli.create_staff,
        cli.backup,
        cli.restore_drill,
        cli.waiting_room,
        cli.flags_cli,
    ):
        app.cli.add_command(command)
