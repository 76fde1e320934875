"""Back-in-stock e-mails: the double opt-in confirmation, and the notices when stock comes back.

Stock changes arrive as the `stock_changed` signal (storefront.inventory.services), sent after the commit with
the variant ids; the receiver only enqueues a job for variants someone confirmed they are waiting for.
"""

import logging
import threading
import time

from flask import current_app, has_app_context

from jobs import job
from storefront import mail, queues
from storefront.catalog.models import Variant
from storefront.db import get_session
from storefront.inventory.services import stock_changed
from storefront.notify import services as notify
from storefront.notify.models import StockSubscription

log = logging.getLogger(__name__)


def _links(subscription: StockSubscription, *purposes: str) -> dict[str, str]:
    secret = current_app.config["SECRET_KEY"]
    return {
        purpose: mail.external_url(
            f"notify.{purpose}", token=notify.make_token(secret, purpose, subscription)
        )
        for purpose in purposes
    }


@job
def send_stock_confirmation(subscription_id: int) -> None:
    """Send the link that confirms a back-in-stock request (nothing else is sent before it is followed)."""
    session = get_session()
    subscription = session.get(StockSubscription, subscription_id)
    if subscription is None or subscription.confirmed_at or subscription.unsubscribed_at:
        return
    variant = session.get(Variant, subscription.variant_id)
    links = _links(subscription, "confirm", "unsubscribe")
    mail.send(
        mail.compose(
            subscription.email,
            f"Confirm: e-mail me when {variant.product.name} is back",
            "emails/notify_confirm.txt",
            product=variant.product.name,
            option=variant.name,
            link=links["confirm"],
            unsubscribe=links["unsubscribe"],
        )
    )


@job
def send_restock_notices(variant_ids: list[int]) -> int:
    """E-mail everyone waiting for these variants that have stock again, each request once; returns how many."""
    session = get_session()
    waiting = notify.to_notify(session, variant_ids)
    session.commit()
    sent = 0
    for subscription_id in waiting:
        if not notify.claim_notice(session, subscription_id):
            session.rollback()
            continue  # another run of this job has it
        session.commit()  # claimed before sending: a second run finds it taken
        subscription = session.get(StockSubscription, subscription_id)
        variant = session.get(Variant, subscription.variant_id)
        try:
            mail.send(
                mail.compose(
                    subscription.email,
                    f"{variant.product.name} is back in stock",
                    "emails/notify_restock.txt",
                    product=variant.product.name,
                    option=variant.name,
                    link=mail.external_url("catalog.product", slug=variant.product.slug),
                    unsubscribe=_links(subscription, "unsubscribe")["unsubscribe"],
                )
            )
        except Exception:
            log.exception(
                "restock notice %s not sent; it stays open for the next restock job", subscription_id
            )
            notify.release_notice(session, subscription_id)
            session.commit()
            raise
        sent += 1
    return sent


class Watched:
    """Which variants confirmed addresses wait for, read at most every NOTIFY_WATCH_SECONDS per process: the
    signal follows every reservation of a drop, and most of them must cost no query at all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until = 0.0
        self._ids: frozenset[int] = frozenset()

    def ids(self) -> frozenset[int]:
        now = time.monotonic()
        with self._lock:
            if now < self._until:
                return self._ids
        # A session of its own: the sender's transaction has ended, and its session is not ours to use.
        with current_app.extensions["db_sessionmaker"]() as own:
            ids = frozenset(notify.watched(own))
        with self._lock:
            self._ids, self._until = ids, now + current_app.config["NOTIFY_WATCH_SECONDS"]
        return ids

    def forget(self) -> None:
        """A request was just confirmed: read again next time."""
        with self._lock:
            self._until = 0.0


def watched() -> Watched:
    return current_app.extensions.setdefault("notify_watched", Watched())


def on_stock_changed(sender, variant_ids=(), **_extra) -> None:
    """After a stock change commits: enqueue the notices, if anyone confirmed they wait for these variants."""
    if not has_app_context():
        # A script's own session, outside the app: the restock sweep tells the waiting within minutes.
        log.info(
            "stock changed outside the app (variants %s): left to the restock sweep", sorted(variant_ids)
        )
        return
    wanted = sorted({int(v) for v in variant_ids} & watched().ids())
    if wanted:
        queues.enqueue(send_restock_notices, wanted)


@job
def notify_restocked() -> int:
    """The sweep behind the signal: a restock a stale process list missed is still told (every 5 minutes)."""
    session = get_session()
    variant_ids = notify.watched(session)
    session.commit()
    return send_restock_notices(variant_ids) if variant_ids else 0


def connect() -> None:
    """Listen to inventory's stock_changed signal (a process-wide receiver; connecting again is a no-op)."""
    stock_changed.connect(on_stock_changed)
