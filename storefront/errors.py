"""Error pages for 4xx/5xx: a full page, or a message fragment for HTMX requests."""

import logging
import time

import redis
from flask import Flask, make_response, render_template
from flask_limiter import RateLimitExceeded
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError, ServiceUnavailable

from storefront.extensions import limiter
from storefront.htmx import is_htmx

log = logging.getLogger(__name__)

TITLES = {
    400: "That request did not make sense",
    403: "You are not allowed to see this",
    404: "Page not found",
    405: "That action isn't allowed here",
    413: "That upload is too large",
    422: "Please check the form",
    429: "Slow down a moment",
    500: "Something went wrong on our side",
    503: "We're busy right now",
}


def render_error(error: HTTPException):
    """Answer an HTTP error with a page, or for HTMX a fragment swapped into the message area."""
    code = error.code or 500
    context = {"code": code, "title": TITLES.get(code, error.name), "description": error.description}
    htmx = is_htmx()
    template = "errors/_message.html" if htmx else "errors/page.html"
    response = make_response(render_template(template, **context), code)
    # Keep what the exception itself says, such as Allow on a 405 or Retry-After on a 429.
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    if htmx:
        response.headers["HX-Retarget"] = "#messages"
        response.headers["HX-Reswap"] = "innerHTML"
    response.vary.add("HX-Request")
    return response


def rate_limited(error: RateLimitExceeded):
    """flask-limiter's 429 with a Retry-After of our own: its X-RateLimit-* headers are off, because they
    cost one more Redis round trip on every limited request (login, checkout) and nobody reads them."""
    hit = limiter.current_limit
    error.retry_after = max(1, int(hit.reset_at - time.time()) + 1) if hit else 60
    return render_error(error)


def redis_unavailable(error: Exception):
    """Limits, lockouts and the job queue live in Redis: without it we refuse (503) rather than run unguarded."""
    log.error("redis unavailable: %s", error)
    return render_error(
        ServiceUnavailable(
            description="We're briefly unavailable. Please try again in a moment.", retry_after=5
        )
    )


# SQLSTATEs of a database that is there but cannot take this now: a read-only standby (a failover in
# progress), an administrator's or a crash's shutdown, a server still starting.
UNAVAILABLE_SQLSTATES = {"25006", "57P01", "57P02", "57P03"}


def database_unavailable(error: DBAPIError):
    """The database is unreachable or not writable for the moment (a failover): a clear 503 "try again".
    The request's transaction never committed, so nothing was half made."""
    if not (
        isinstance(error, OperationalError)
        or error.connection_invalidated
        or getattr(error.orig, "pgcode", None) in UNAVAILABLE_SQLSTATES
    ):
        return render_unexpected(error)
    log.error("database unavailable: %s", error.orig)
    return render_error(
        ServiceUnavailable(
            description="We're briefly unavailable. Please try again in a moment.", retry_after=3
        )
    )


def render_unexpected(error: Exception):
    """Log an unhandled exception and answer with the 500 page; never leak a traceback."""
    log.exception("unhandled error", exc_info=error)
    return render_error(InternalServerError())


def init_app(app: Flask) -> None:
    app.register_error_handler(RateLimitExceeded, rate_limited)
    app.register_error_handler(HTTPException, render_error)
    app.register_error_handler(redis.RedisError, redis_unavailable)
    app.register_error_handler(DBAPIError, database_unavailable)
    app.register_error_handler(Exception, render_unexpected)
