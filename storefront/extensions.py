"""Extension instances, created unbound; create_app() binds them with init_app."""

from flask import request
from flask_limiter import Limiter
from flask_wtf.csrf import CSRFProtect


def client_ip() -> str:
    # ProxyFix has already rewritten remote_addr from the trusted hops only.
    return request.remote_addr or "unknown"


csrf = CSRFProtect()
limiter = Limiter(key_func=client_ip, default_limits=[])
