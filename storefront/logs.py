"""Logs: one line per request with its request id, the same id in the jobs it enqueues, JSON or text.

The request id is nginx's `X-Request-ID` when it sends a sane one, else a new one; it goes back in the
response header, into RQ job meta at enqueue (storefront/queues.py) and from there into the job's lines
(jobs/__init__.py). Every line passes through the scrubber (storefront/observability.py) on its way out.
"""

import contextvars
import logging
import re
import sys
import time
import uuid

from flask import Flask, g, request
from pythonjsonlogger.json import JsonFormatter

from storefront.observability import scrub_text

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(process)d %(request_id)s %(message)s"
request_log = logging.getLogger("storefront.request")


def current_request_id() -> str | None:
    """The id of the request (or of the request that enqueued the job) being served, if any."""
    return _request_id.get()


def bind_request_id(request_id: str | None) -> contextvars.Token:
    return _request_id.set(request_id)


def unbind_request_id(token: contextvars.Token) -> None:
    _request_id.reset(token)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get() or "-"
        return True


class ScrubFilter(logging.Filter):
    """For handlers we do not format (rq's own): the message and any traceback, scrubbed in the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info = record.exc_text = None
        record.msg, record.args = scrub_text(text), None
        return True


def scrub_foreign_handlers() -> None:
    """rq's worker logs through a handler of its own (tracebacks of failed jobs, with their messages)."""
    for name in ("rq", "rq.worker", "rq.scheduler", "rq.job"):
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, ScrubFilter) for f in handler.filters):
                handler.addFilter(ScrubFilter())


class ScrubbingJsonFormatter(JsonFormatter):
    def format(self, record: logging.LogRecord) -> str:
        return scrub_text(super().format(record))


class ScrubbingTextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return scrub_text(super().format(record))


def make_handler(log_format: str, stream=None) -> logging.Handler:
    """A stderr handler in the chosen format, scrubbing, with the request id on every record."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if log_format == "json":
        handler.setFormatter(
            ScrubbingJsonFormatter(JSON_FIELDS, rename_fields={"levelname": "level", "asctime": "time"})
        )
    else:
        handler.setFormatter(ScrubbingTextFormatter(TEXT_FORMAT))
    handler.addFilter(RequestIdFilter())
    handler.storefront = True  # ours: a second create_app in the process does not add another
    return handler


def configure(app: Flask) -> None:
    """Install the root handler (unless something, like pytest, already logs) and the request log."""
    scrub_foreign_handlers()
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(make_handler(app.config["LOG_FORMAT"]))
        root.setLevel(app.config["LOG_LEVEL"])
    elif not any(getattr(handler, "storefront", False) for handler in root.handlers):
        for handler in root.handlers:
            handler.addFilter(RequestIdFilter())

    @app.before_request
    def start_request_log():
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if SANE_ID.fullmatch(incoming) else uuid.uuid4().hex
        g.request_token = bind_request_id(g.request_id)
        g.request_started = time.perf_counter()

    @app.after_request
    def write_request_log(response):
        started = g.get("request_started")
        if started is None:
            return response
        response.headers["X-Request-ID"] = g.request_id
        user = _user_id()
        # Load balancers ask for health every few seconds: those lines only at debug level.
        level = logging.DEBUG if request.path in ("/healthz", "/readyz", "/metrics") else logging.INFO
        request_log.log(
            level,
            "%s %s %s",
            request.method,
            request.path,
            response.status_code,
            extra={
                "method": request.method,
                "path": request.path,  # never the query string: it can carry tokens
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "user_id": user,
            },
        )
        return response

    @app.teardown_request
    def end_request_log(_error=None):
        token = g.pop("request_token", None)
        if token is not None:
            unbind_request_id(token)


def _user_id() -> int | None:
    from flask_login import current_user

    # Only when the view already loaded the user: looking it up here would cost a query per request.
    if "_login_user" not in g:
        return None
    return current_user.id if current_user.is_authenticated else None
