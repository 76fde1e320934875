"""RQ queues. Jobs are enqueued only after the transaction that made their rows has committed."""

import logging
from datetime import timedelta

from flask import current_app
from rq import Queue, Retry

from storefront.extensions import redis_client
from storefront.logs import current_request_id

log = logging.getLogger(__name__)

# Every queue a worker must listen to, most urgent first (the Procfile's worker line names them all).
QUEUES = ("payments", "default")
# A mail server that is down for a while delays e-mail; it does not lose it.
EMAIL_RETRY = Retry(max=5, interval=[10, 60, 300, 900, 3600])


def get_queue(name: str = "default") -> Queue:
    """An RQ queue; without REDIS_URL jobs run right away, in this process."""
    return Queue(name, connection=redis_client(), is_async=bool(current_app.config["REDIS_URL"]))


def _meta() -> dict | None:
    """What a job carries from the request that enqueued it: the request id, for its log lines."""
    request_id = current_request_id()
    return {"request_id": request_id} if request_id else None


def enqueue(func, *args, queue: str = "default", retry: Retry | None = None, timeout: int | None = None):
    return get_queue(queue).enqueue(func, *args, retry=retry, job_timeout=timeout, meta=_meta())


def enqueue_in(delay: timedelta, func, *args, queue: str = "default"):
    """Run a job later (needs `rq worker --with-scheduler`). In-process there is no scheduler: the periodic
    sweeps (`flask --app wsgi sweep`, or `rq cron jobs.schedule`) pick the work up instead."""
    target = get_queue(queue)
    if not target.is_async:
        log.info("no scheduler in-process: %s(%s) is left to the sweeps", func.__name__, args)
        return None
    return target.enqueue_in(delay, func, *args, meta=_meta())
