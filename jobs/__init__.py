"""RQ job entry points. Each takes ids, opens its own app context and session, and is safe to run twice."""

import functools

from flask import Flask, current_app, has_app_context

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
    """Run the job inside its own app context, so it gets a fresh database session."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with _app().app_context():
            return func(*args, **kwargs)

    return wrapper
