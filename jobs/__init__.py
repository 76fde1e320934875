"""RQ job entry points. Each takes ids, opens its own app context and session, and is safe to run twice."""

import functools
import logging
import time

from flask import Flask, current_app, has_app_context
from rq import get_current_job

from storefront import logs, observability

log = logging.getLogger("storefront.jobs")

_worker_app: Flask | None = None


def _app() -> Flask:
    """The running app when enqueued inline; in an `rq worker`, one app built lazily per process."""
    global _worker_app
    if has_app_context():
        return current_app._get_current_object()
    if _worker_app is None:
        from storefront import create_app

        _worker_app = create_app()
    return _worker_app


def job(func):
    """Run the job inside its own app context, so it gets a fresh database session; its log lines carry the
    request id of the request that enqueued it, and its outcome and duration are logged and counted."""
    name = f"{func.__module__}.{func.__name__}"

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        app = _app()
        current = get_current_job()
        meta = current.meta if current is not None else {}
        token = logs.bind_request_id(meta.get("request_id") or logs.current_request_id())
        started, outcome = time.perf_counter(), "failed"
        try:
            with app.app_context():
                result = func(*args, **kwargs)
            outcome = "ok"
            return result
        except Exception as error:
            observability.capture_job_exception(error)
            raise
        finally:
            seconds = time.perf_counter() - started
            log.info(
                "job %s %s",
                name,
                outcome,
                extra={
                    "job": name,
                    "job_id": current.id if current else None,
                    "outcome": outcome,
                    "duration_ms": round(seconds * 1000, 2),
                },
            )
            logs.unbind_request_id(token)

    return wrapper
