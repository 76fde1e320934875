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


csrf = CSRFProtect()
limiter = Limiter(key_func=client_ip, default_limits=[])
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
