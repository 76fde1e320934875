"""Slack alerts: the events that matter, sent by an RQ job to an incoming webhook, a storm summarised.

`notify(event, **details)` is all a caller needs (after its commit): it counts the event for Prometheus and,
when a webhook is set and the event is not switched off, either enqueues the message (the first of a window)
or counts it into the summary that follows the window ("37 more login lockouts in the last 5 minutes").
The gate and the count live in Redis, so a storm across all web and worker processes still sends two
messages. Nothing is sent from a request; details are scrubbed before they are stored or sent.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis
from flask import Flask, current_app, has_request_context
from rq import Queue, Retry
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storefront import metrics, queues
from storefront.extensions import client_ip, redis_client
from storefront.observability import scrub

log = logging.getLogger(__name__)
SEND_RETRY = Retry(max=3, interval=[10, 60, 300])


@dataclass(frozen=True)
class Event:
    title: str
    plural: str
    admin_path: str  # where the button in the message leads


EVENTS = {
    "login_lockout": Event("Login lockout", "login lockouts", "/admin/customers"),
    "staff_new_address": Event(
        "Staff sign-in from a new address", "staff sign-ins from new addresses", "/admin/staff"
    ),
    "big_order": Event("Big order", "big orders", "/admin/orders"),
    "decline_rate": Event(
        "Card declines are high", "decline-rate alerts", "/admin/orders?status=payment_failed"
    ),
    "queue_stuck": Event("A queue is stuck", "stuck-queue alerts", "/admin/jobs"),
    "job_failed": Event("Jobs failed", "job failures", "/admin/jobs"),
    "oversell_attempt": Event("Order refused: not enough stock", "orders refused for stock", "/admin/stock"),
    "backup_failed": Event("Backup failed", "backup failures", "/admin"),
}


def _key(kind: str, event: str) -> str:
    return f"alerts:{kind}:{event}"


def enabled(event: str) -> bool:
    """Whether messages for this event go out: a webhook is set and ALERTS_OFF does not name it."""
    config = current_app.config
    return bool(config.get("SLACK_WEBHOOK_URL")) and event not in config["ALERTS_OFF"]


def notify(event: str, **details) -> bool:
    """Count the event; send it, or fold it into the window's summary. Whether a message was enqueued.
    Never raises: an alert must not break what it reports on."""
    if event not in EVENTS:
        log.warning("unknown alert event %r", event)
        return False
    metrics.EVENTS.labels(event).inc()
    if not enabled(event):
        return False
    window = current_app.config["ALERT_WINDOW_SECONDS"]
    safe = {key: str(value)[:200] for key, value in scrub(details).items()}
    try:
        store = redis_client()
        if store.set(_key("gate", event), "1", nx=True, ex=window):
            queues.enqueue("jobs.alerts.send_alert", event, safe, retry=SEND_RETRY)
            queues.enqueue_in(timedelta(seconds=window), "jobs.alerts.send_summary", event)
            return True
        pipe = store.pipeline()
        pipe.incr(_key("more", event))
        pipe.expire(_key("more", event), window * 3)
        pipe.execute()
    except redis.RedisError as error:
        log.warning("alert %s not queued (%s)", event, error.__class__.__name__)
    return False


# --- the messages (run in the job) --------------------------------------------------------------------------


def message(event: str, details: dict, more: int = 0) -> dict:
    """The Block Kit payload: a header, the details as fields, a button to the admin page."""
    spec = EVENTS[event]
    base = current_app.config["BASE_URL"].rstrip("/")
    window_minutes = max(1, round(current_app.config["ALERT_WINDOW_SECONDS"] / 60))
    if more:
        title = f"{more} more {spec.plural} in the last {window_minutes} minute{'s' if window_minutes != 1 else ''}"
    else:
        title = spec.title
    blocks: list[dict] = [{"type": "header", "text": {"type": "plain_text", "text": title[:150]}}]
    fields = [
        {"type": "mrkdwn", "text": f"*{key.replace('_', ' ')}*\n{value}"} for key, value in details.items()
    ]
    if fields:
        blocks.append({"type": "section", "fields": fields[:10]})
    blocks.append(
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Open in admin"},
                    "url": base + spec.admin_path,
                }
            ],
        }
    )
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"{event} · {stamp}"}]})
    return {"text": title, "blocks": blocks}


class SendError(RuntimeError):
    """Slack did not take the message (the job retries)."""


def send(payload: dict) -> None:
    """POST one message to the webhook, with a timeout and the SDK's retries on connection errors and 429s."""
    from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler
    from slack_sdk.webhook import WebhookClient

    client = WebhookClient(
        current_app.config["SLACK_WEBHOOK_URL"],
        timeout=current_app.config["SLACK_TIMEOUT"],
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=2),
            RateLimitErrorRetryHandler(max_retry_count=2),
        ],
    )
    response = client.send_dict(scrub(payload))
    if response.status_code != 200:
        raise SendError(f"Slack answered {response.status_code}")


def send_alert(event: str, details: dict) -> None:
    """Send one event's message."""
    send(message(event, details))


def send_summary(event: str) -> int:
    """After a window: send "N more ..." if more came in it; how many."""
    more = int(redis_client().getdel(_key("more", event)) or 0)
    if more:
        send(message(event, {}, more=more))
    return more


# --- the call points ------------------------------------------------------------------------------------


def order_placed() -> None:
    """Place order accepted."""
    metrics.place_order("accepted")


def order_refused(error: Exception, session: Session) -> None:
    """Place order refused: sold out (the stock guard refused a reserve; during a sale, an oversell attempt
    worth an alert) or for another reason."""
    from storefront.catalog.models import Sale
    from storefront.checkout.services import OutOfStock

    if not isinstance(error, OutOfStock):
        metrics.place_order("refused")
        return
    metrics.place_order("sold_out")
    now = datetime.now(UTC)
    if session.scalar(select(Sale.id).where(Sale.starts_at <= now, Sale.ends_at > now).limit(1)) is not None:
        notify("oversell_attempt", refused=str(error), ip=client_ip() if has_request_context() else "")


def login_locked(lock) -> None:
    """A sign-in failure just locked an (account, address) pair, or an address across accounts."""
    scope = "address, across accounts" if lock.email == "*" else "account from one address"
    notify("login_lockout", account="" if lock.email == "*" else lock.email, ip=lock.ip, locked=scope)


def staff_signed_in(user, ip: str) -> None:
    """A staff member signed in: alert when the address is new for them (addresses kept 90 days)."""
    if not getattr(user, "is_staff", False):
        return
    key = f"alerts:staff_ips:{user.id}"
    try:
        store = redis_client()
        known = store.sadd(key, ip) == 0
        store.expire(key, 90 * 24 * 3600)
    except redis.RedisError:
        return
    if not known:
        notify("staff_new_address", staff=user.email, role=user.role, ip=ip)


# --- the periodic checks (jobs.alerts.check, every minute from the clock) --------------------------------


def run_checks(session: Session, now: datetime | None = None) -> dict:
    """Big orders, the decline rate, stuck queues and failed jobs; what each found."""
    now = now or datetime.now(UTC)
    return {
        "big_orders": check_big_orders(session, now),
        "decline_rate": check_decline_rate(session, now),
        "stuck_queues": check_queues(now),
        "failed_jobs": check_failed_jobs(),
    }


def check_big_orders(session: Session, now: datetime) -> int:
    """Each order over ALERT_BIG_ORDER in the last hour, once."""
    from storefront.orders.models import Order

    threshold = current_app.config["ALERT_BIG_ORDER"]
    if threshold is None:
        return 0
    rows = session.execute(
        select(Order.id, Order.number, Order.total, Order.status).where(
            Order.created_at >= now - timedelta(hours=1), Order.total > threshold
        )
    ).all()
    found = 0
    for order_id, number, total, status in rows:
        if redis_client().set(f"alerts:seen:order:{order_id}", "1", nx=True, ex=2 * 3600):
            found += 1
            notify("big_order", order=number, total=f"${total:,.2f}", status=status)
    return found


def check_decline_rate(session: Session, now: datetime) -> float | None:
    """The share of charges declined in the window; alerts above ALERT_DECLINE_RATE (with enough charges)."""
    from storefront.payments.models import PaymentAttempt

    config = current_app.config
    since = now - timedelta(seconds=config["ALERT_DECLINE_WINDOW"])
    counts = dict(
        session.execute(
            select(PaymentAttempt.status, func.count())
            .where(PaymentAttempt.kind == "charge", PaymentAttempt.created_at >= since)
            .where(PaymentAttempt.status.in_(("approved", "declined")))
            .group_by(PaymentAttempt.status)
        ).all()
    )
    total = sum(counts.values())
    if total < config["ALERT_DECLINE_MIN"]:
        return None
    rate = counts.get("declined", 0) / total
    if rate > config["ALERT_DECLINE_RATE"]:
        notify(
            "decline_rate",
            declined=f"{rate:.0%} of {total} charges",
            window=f"{config['ALERT_DECLINE_WINDOW'] // 60} min",
        )
    return rate


def check_queues(now: datetime) -> list[str]:
    """Queues whose oldest waiting job is older than ALERT_QUEUE_STUCK_MINUTES."""
    if not current_app.config.get("REDIS_URL"):
        return []
    limit = timedelta(minutes=current_app.config["ALERT_QUEUE_STUCK_MINUTES"])
    stuck = []
    for name in queues.QUEUES:
        queue = Queue(name, connection=redis_client())
        first = queue.get_job_ids(0, 1)
        job = queue.fetch_job(first[0]) if first else None
        if job is None or job.enqueued_at is None:
            continue
        age = now - job.enqueued_at.replace(tzinfo=UTC)
        if age > limit:
            stuck.append(name)
            notify(
                "queue_stuck",
                queue=name,
                waiting=str(queue.count),
                oldest=f"{int(age.total_seconds() // 60)} min",
            )
    return stuck


def check_failed_jobs() -> int:
    """Jobs that failed since the last check (the failed registries only grow until staff clear them)."""
    if not current_app.config.get("REDIS_URL"):
        return 0
    store = redis_client()
    total = sum(Queue(name, connection=store).failed_job_registry.count for name in queues.QUEUES)
    last = store.getset("alerts:failed_seen", total)
    new = total - int(last) if last is not None else 0
    if new > 0:
        notify("job_failed", new=str(new), failed_now=str(total))
    return max(new, 0)


def init_app(app: Flask) -> None:
    """Staff sign-ins are watched through Flask-Login's signal (no change to the sign-in views)."""
    from flask_login import user_logged_in

    @user_logged_in.connect_via(app)
    def _signed_in(_sender, user, **_extra):
        if has_request_context():
            staff_signed_in(user, client_ip())
