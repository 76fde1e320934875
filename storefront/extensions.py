"""Extension instances, created unbound; create_app() binds them in init_app."""

import time

import fakeredis
import redis
from flask import Flask, current_app, request
from flask_limiter import Limiter
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect


def client_ip() -> str:
    # ProxyFix has already rewritten remote_addr from the trusted hops only.
    return request.remote_addr or "unknown"


class ViewLimiter(Limiter):
    """flask-limiter for per-view limits only (`@limiter.limit`), which their decorators check.

    flask-limiter also walks every request's view, blueprint and exemptions in a before_request hook, to apply
    default, application and blueprint limits: ~0.1 ms on each product page, the busiest page of a drop, for
    limits this shop does not have. This skips that walk, and refuses to start with such limits configured,
    since they would silently not apply.
    """

    def init_app(self, app: Flask) -> None:
        if app.config.get("RATELIMIT_DEFAULT") or app.config.get("RATELIMIT_APPLICATION"):
            raise RuntimeError("only per-view rate limits (@limiter.limit) are checked; see ViewLimiter")
        super().init_app(app)

    def _check_request_limit(self, callable_name: str | None = None, in_middleware: bool = True) -> None:
        if not in_middleware:
            super()._check_request_limit(callable_name, in_middleware)


csrf = CSRFProtect()
limiter = ViewLimiter(key_func=client_ip, default_limits=[])
login_manager = LoginManager()


class Clock:
    """Wall-clock seconds; tests replace `now` to move time without waiting."""

    def now(self) -> float:
        return time.time()


clock = Clock()


def init_redis(app: Flask) -> None:
    """Redis from REDIS_URL; the embedded default keeps the same commands in an in-process server."""
    url = app.config["REDIS_URL"]
    if url:
        app.extensions["redis"] = redis.Redis.from_url(
            url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30
        )
    else:
        app.extensions["redis"] = fakeredis.FakeRedis(server=fakeredis.FakeServer())


def redis_client() -> redis.Redis:
    return current_app.extensions["redis"]
