"""Extension instances, created unbound; create_app() binds them in init_app."""

import functools
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


def check_limits(view):
    """Check the view's own `@limiter.limit` declarations when it runs: once, however many are stacked.

    The limiter is built with auto_check off, the library's way to skip its before_request hook, which walks
    every request's view, blueprint and exemptions for default and application limits (~0.1 ms on each product
    page, the busiest page of a drop) that this shop does not have. `Limiter.check()` is its public call for
    checking the limits of the view being served.
    """

    @functools.wraps(view)  # the same qualified name, by which the limiter finds the view's declared limits
    def checked(*args, **kwargs):
        limiter.check()
        return view(*args, **kwargs)

    return checked


def refuse_unchecked_limits(app: Flask) -> None:
    """Default or application-wide limits would never be checked (auto_check is off): refuse to start."""
    if app.config.get("RATELIMIT_DEFAULT") or app.config.get("RATELIMIT_APPLICATION"):
        raise RuntimeError("only per-view rate limits (@check_limits with @limiter.limit) are checked")


csrf = CSRFProtect()
limiter = Limiter(key_func=client_ip, default_limits=[], auto_check=False)
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
