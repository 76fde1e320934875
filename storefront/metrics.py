"""Prometheus metrics: counted in every process, served at /metrics by the web process.

With PROMETHEUS_MULTIPROC_DIR set (it must be in the environment before Python starts: prometheus-client
reads it at import), every gunicorn worker and rq worker writes its own files there and /metrics adds them up;
without it (`make run`) the one process counts alone. Figures that live elsewhere (orders by state, queue
depths, sale stock) are read when Prometheus scrapes, not kept up to date on every request.

Other parts register what only they know: `gauge_from(name, documentation, fn)` for a figure the web process
can read at scrape time (the waiting room's size in Redis); the module-level STREAMS_OPEN and
WAITING_ROOM_ADMITTED for processes that count as they go.
"""

import hmac
import ipaddress
import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from flask import Blueprint, Flask, Response, abort, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY
from sqlalchemy import func, select

from storefront.extensions import limiter

log = logging.getLogger(__name__)
bp = Blueprint("metrics", __name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
PAYMENT_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30)
JOB_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300)

HTTP_REQUESTS = Counter(
    "storefront_http_requests_total",
    "Requests answered, by endpoint, method and status.",
    ["endpoint", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "storefront_http_request_duration_seconds",
    "Time to answer a request, by endpoint.",
    ["endpoint"],
    buckets=LATENCY_BUCKETS,
)
PLACE_ORDER = Counter(
    "storefront_place_order_total", "Place-order outcomes: accepted, sold_out, limited, refused.", ["outcome"]
)
PAYMENTS = Counter("storefront_payments_total", "Gateway answers to charges, by outcome.", ["outcome"])
PAYMENT_LATENCY = Histogram(
    "storefront_payment_duration_seconds",
    "Time the gateway took to answer a charge.",
    buckets=PAYMENT_BUCKETS,
)
JOB_DURATION = Histogram(
    "storefront_job_duration_seconds",
    "Time a job ran, by job and outcome.",
    ["job", "outcome"],
    buckets=JOB_BUCKETS,
)
EVENTS = Counter(
    "storefront_events_total",
    "Events worth an alert (login_lockout, oversell_attempt, ...), by event.",
    ["event"],
)
# For the live-stock stream processes (inc on open, dec on close) and the waiting room (inc per admission).
STREAMS_OPEN = Gauge(
    "storefront_streams_open", "Live-stock event streams open now.", multiprocess_mode="livesum"
)
WAITING_ROOM_ADMITTED = Counter(
    "storefront_waiting_room_admitted_total", "Shoppers let out of the waiting room."
)

_scrape_gauges: dict[str, tuple[str, Callable[[], float]]] = {}


def gauge_from(name: str, documentation: str, fn: Callable[[], float]) -> None:
    """Report `fn()` as gauge `name` on every scrape (fn runs in the web process, inside an app context)."""
    _scrape_gauges[name] = (documentation, fn)


def enabled() -> bool:
    return current_app.config.get("METRICS_ENABLED", False)


def observe_job(job: str, outcome: str, seconds: float) -> None:
    """A job's duration and outcome (the @job wrapper calls this in every worker)."""
    JOB_DURATION.labels(job, outcome).observe(seconds)


def observe_payment(outcome: str, seconds: float) -> None:
    """One gateway answer to a charge and how long it took."""
    PAYMENTS.labels(outcome).inc()
    PAYMENT_LATENCY.observe(seconds)


def place_order(outcome: str) -> None:
    """One place-order attempt's outcome."""
    PLACE_ORDER.labels(outcome).inc()


# --- what is read at scrape time ----------------------------------------------------------------------------


class ShopCollector:
    """Orders by state, queue depths and their oldest job's age, stock of the variants on sale now."""

    def __init__(self, app: Flask):
        self.app = app

    def describe(self):
        return []  # registering must not query anything; collect() runs at scrape time

    def collect(self):
        with self.app.app_context():
            yield from self._orders()
            yield from self._queues()
            yield from self._sale_stock()
            for name, (documentation, fn) in list(_scrape_gauges.items()):
                try:
                    yield GaugeMetricFamily(name, documentation, value=float(fn()))
                except Exception:  # another part's figure must not break the scrape
                    log.exception("metric %s could not be read", name)

    def _orders(self):
        from storefront.db import get_session
        from storefront.orders.models import Order

        family = GaugeMetricFamily("storefront_orders", "Orders by state.", labels=["state"])
        rows = get_session().execute(select(Order.status, func.count()).group_by(Order.status))
        for state, count in rows:
            family.add_metric([state], count)
        yield family

    def _queues(self):
        from rq import Queue

        from storefront.extensions import redis_client
        from storefront.queues import QUEUES

        depth = GaugeMetricFamily("storefront_queue_depth", "Jobs waiting, by queue.", labels=["queue"])
        oldest = GaugeMetricFamily(
            "storefront_queue_oldest_job_seconds",
            "Age of the oldest waiting job, by queue.",
            labels=["queue"],
        )
        failed = GaugeMetricFamily(
            "storefront_queue_failed_jobs", "Jobs in the failed registry.", labels=["queue"]
        )
        if not self.app.config.get("REDIS_URL"):
            return
        for name in QUEUES:
            queue = Queue(name, connection=redis_client())
            depth.add_metric([name], queue.count)
            first = queue.get_job_ids(0, 1)
            job = queue.fetch_job(first[0]) if first else None
            age = (
                (datetime.now(UTC) - job.enqueued_at.replace(tzinfo=UTC)).total_seconds()
                if job and job.enqueued_at
                else 0
            )
            oldest.add_metric([name], max(0.0, age))
            failed.add_metric([name], queue.failed_job_registry.count)
        yield from (depth, oldest, failed)

    def _sale_stock(self):
        from storefront.catalog.models import Sale, SaleItem, Variant
        from storefront.db import get_session

        now = datetime.now(UTC)
        family = GaugeMetricFamily(
            "storefront_sale_stock_available", "Units left of each variant on sale now.", labels=["sku"]
        )
        rows = get_session().execute(
            select(Variant.sku, Variant.on_hand - Variant.reserved)
            .join(SaleItem, SaleItem.variant_id == Variant.id)
            .join(Sale, Sale.id == SaleItem.sale_id)
            .where(Sale.starts_at <= now, Sale.ends_at > now)
            .distinct()
        )
        for sku, available in rows:
            family.add_metric([sku], available)
        yield family


def registry_for(app: Flask) -> CollectorRegistry:
    """What /metrics serves: every process's files added up (or this process's own), and the shop's figures."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        registry.register(_ProcessRegistry())
    registry.register(ShopCollector(app))
    return registry


class _ProcessRegistry:
    """The default registry's own metrics, for single-process mode."""

    def describe(self):
        return []

    def collect(self):
        yield from REGISTRY.collect()


def prune_dead_files(directory: str) -> int:
    """Remove the files of processes that are gone (gunicorn's on_starting): a restart starts at zero without
    losing what the rq workers still running have counted. How many were removed."""
    removed = 0
    for path in Path(directory).glob("*.db"):
        pid = path.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- the web side -------------------------------------------------------------------------------------------


def _allowed() -> bool:
    token = current_app.config.get("METRICS_TOKEN")
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].encode(), token.encode()):
        return True
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    return any(address in network for network in current_app.extensions["metrics_networks"])


@bp.get("/metrics")
@limiter.exempt
def metrics():
    """Prometheus text format; loopback (METRICS_ALLOWED_IPS) or a bearer token only, a 404 to anyone else."""
    if not enabled() or not _allowed():
        abort(404)
    output = generate_latest(current_app.extensions["metrics_registry"])
    return Response(output, headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})


def init_app(app: Flask) -> None:
    """Count every request (when METRICS_ENABLED) and serve /metrics."""
    app.extensions["metrics_networks"] = [
        ipaddress.ip_network(part.strip(), strict=False)
        for part in app.config["METRICS_ALLOWED_IPS"].split(",")
        if part.strip()
    ]
    app.extensions["metrics_registry"] = registry_for(app)
    app.register_blueprint(bp)
    if not app.config["METRICS_ENABLED"]:
        return

    @app.before_request
    def start_timer():
        g.metrics_started = time.perf_counter()

    @app.after_request
    def count_request(response):
        started = g.pop("metrics_started", None)
        if started is None:
            return response
        endpoint = request.endpoint or "unmatched"
        HTTP_REQUESTS.labels(endpoint, request.method, str(response.status_code)).inc()
        HTTP_LATENCY.labels(endpoint).observe(time.perf_counter() - started)
        if endpoint == "checkout.place" and response.status_code == 429:
            place_order("limited")
        return response
