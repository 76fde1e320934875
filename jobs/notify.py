"""Back-in-stock e-mails: the double opt-in confirmation, and the notices when stock comes back.

Stock changes arrive as the `stock_changed` signal (storefront.inventory.services), sent after the commit with
the variant ids; the receiver only enqueues a job for variants someone confirmed they are waiting for.
"""

import logging

from flask import current_app

from jobs import job
from storefront import mail, queues
from storefront.catalog.models import Variant
from storefront.db import get_session
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


def on_stock_changed(sender, variant_ids=(), **_extra) -> None:
    """After a stock change commits: enqueue the notices, if anyone confirmed they wait for these variants."""
    variant_ids = sorted({int(v) for v in variant_ids})
    if not variant_ids:
        return
    # A session of its own: the sender's transaction has ended, and its session is not ours to use.
    with current_app.extensions["db_sessionmaker"]() as own:
        watched = notify.watched(own, variant_ids)
    if watched:
        queues.enqueue(send_restock_notices, watched)


def connect() -> bool:
    """Listen to inventory's stock_changed signal; False (and a warning) if this build has no such signal."""
    try:
        from storefront.inventory.services import stock_changed
    except ImportError:
        log.warning("storefront.inventory.services.stock_changed is missing: no back-in-stock e-mails")
        return False
    stock_changed.connect(on_stock_changed)
    return True
