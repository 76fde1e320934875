"""The live sale dashboard's figures: the last hour, minute by minute, of what staff watch during a drop.

Orders and declines come from the database, counted per minute when the page asks. What has no history of its
own (units left on sale, queue depth, the waiting room's figures, registered by its code through
`metrics.gauge_from`) is sampled once a minute by the clock (jobs.dashboard.sample) into Redis, kept two hours.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from rq import Queue
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storefront import metrics, queues
from storefront.catalog.models import Sale, SaleItem, Variant
from storefront.payments.models import PaymentAttempt

log = logging.getLogger(__name__)
MINUTES = 60
KEEP_SECONDS = 2 * 3600
SAMPLED = {
    "units_left": "Units left on sale",
    "queue_depth": "Jobs waiting",
    "storefront_waiting_room_size": "Waiting room",
    "storefront_waiting_room_admit_rate": "Admitted per minute",
}


@dataclass(frozen=True)
class Series:
    key: str
    title: str
    unit: str
    points: list[tuple[str, float | None]]  # ("HH:MM", value or None when not sampled)

    @property
    def known(self) -> list[float]:
        return [value for _minute, value in self.points if value is not None]

    @property
    def now(self) -> float | None:
        return self.known[-1] if self.known else None

    @property
    def peak(self) -> float:
        return max(self.known, default=0)


def _minutes(now: datetime) -> list[datetime]:
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=MINUTES - 1)
    return [start + timedelta(minutes=i) for i in range(MINUTES)]


def units_left(session: Session, now: datetime) -> int:
    """Units still available of every variant on sale now."""
    total = session.scalar(
        select(func.coalesce(func.sum(Variant.on_hand - Variant.reserved), 0)).where(
            Variant.id.in_(
                select(SaleItem.variant_id)
                .join(Sale, Sale.id == SaleItem.sale_id)
                .where(Sale.starts_at <= now, Sale.ends_at > now)
            )
        )
    )
    return int(total or 0)


def queue_depth(redis_client, is_async: bool) -> int:
    if not is_async:
        return 0
    return sum(Queue(name, connection=redis_client).count for name in queues.QUEUES)


def sample(session: Session, redis_client, is_async: bool, now: datetime | None = None) -> dict:
    """Record this minute's values of the sampled figures; what was recorded."""
    now = now or datetime.now(UTC)
    minute = int(now.replace(second=0, microsecond=0).timestamp())
    values = {"units_left": units_left(session, now), "queue_depth": queue_depth(redis_client, is_async)}
    for name, (_doc, fn) in list(metrics._scrape_gauges.items()):
        if name in SAMPLED:
            try:
                values[name] = float(fn())
            except Exception:  # another part's figure must not stop the others
                log.exception("dashboard figure %s could not be read", name)
    pipe = redis_client.pipeline()
    for key, value in values.items():
        pipe.hset(f"dashboard:{key}", str(minute), str(value))
        pipe.expire(f"dashboard:{key}", KEEP_SECONDS)
    pipe.execute()
    return values


def _sampled(redis_client, key: str, minutes: list[datetime]) -> list[tuple[str, float | None]]:
    stored = redis_client.hgetall(f"dashboard:{key}")
    values = {int(k): float(v) for k, v in stored.items()}
    return [(m.strftime("%H:%M"), values.get(int(m.timestamp()))) for m in minutes]


def _per_minute(rows, minutes: list[datetime]) -> dict[str, list]:
    buckets: dict[str, list] = {m.strftime("%H:%M"): [] for m in minutes}
    for created_at, value in rows:
        label = (
            created_at.astimezone(UTC).strftime("%H:%M")
            if created_at.tzinfo
            else created_at.strftime("%H:%M")
        )
        if label in buckets:
            buckets[label].append(value)
    return buckets


def live_sale(session: Session, redis_client, is_async: bool, now: datetime | None = None) -> list[Series]:
    """Every chart of the dashboard, oldest minute first."""
    from storefront.orders import services as orders

    now = now or datetime.now(UTC)
    minutes = _minutes(now)
    since = minutes[0]
    placed = orders.per_minute(session, since)
    charges = session.execute(
        select(PaymentAttempt.created_at, PaymentAttempt.status)
        .where(PaymentAttempt.kind == "charge", PaymentAttempt.created_at >= since)
        .where(PaymentAttempt.status.in_(("approved", "declined")))
        .limit(200_000)
    ).all()
    by_minute = _per_minute(charges, minutes)
    declines = [
        (label, round(100 * statuses.count("declined") / len(statuses), 1) if statuses else None)
        for label, statuses in by_minute.items()
    ]
    charts = [
        Series(
            "orders",
            "Orders per minute",
            "orders",
            [(m.strftime("%H:%M"), placed.get(m.strftime("%H:%M"), 0)) for m in minutes],
        ),
        Series("declines", "Decline rate", "%", declines),
    ]
    for key, title in SAMPLED.items():
        points = _sampled(redis_client, key, minutes)
        if key in ("units_left", "queue_depth") or any(value is not None for _m, value in points):
            charts.append(Series(key, title, "units" if key == "units_left" else "", points))
    # The now-figures that need no clock: read afresh, so the last point is live.
    live_now = {"units_left": units_left(session, now), "queue_depth": queue_depth(redis_client, is_async)}
    return [
        Series(c.key, c.title, c.unit, [*c.points[:-1], (c.points[-1][0], live_now[c.key])])
        if c.key in live_now
        else c
        for c in charts
    ]


def chart_path(series: Series, width: int = 600, height: int = 120) -> str:
    """The SVG polyline points of a series, scaled to its peak (gaps where nothing was sampled)."""
    peak = series.peak or 1
    step = width / max(1, len(series.points) - 1)
    return " ".join(
        f"{i * step:.1f},{height - (value / peak) * (height - 10):.1f}"
        for i, (_minute, value) in enumerate(series.points)
        if value is not None
    )
