"""Periodic sweeps (run by `rq cron jobs.schedule`, or once by `flask --app wsgi sweep`).

Each one is idempotent and only enqueues or does work that is safe to repeat: a sweep that runs twice, or
alongside a worker finishing the same order, changes nothing twice.
"""

import logging
from datetime import UTC, datetime, timedelta

from jobs import job
from jobs.notify import notify_restocked
from jobs.payments import FOLLOW_UP_JOBS, check_payment, finalize_order, reconcile_charge
from storefront import queues
from storefront.cart import services as cart
from storefront.db import get_session
from storefront.orders import services as orders
from storefront.payments import followups, hosted
from storefront.payments import services as payments
from storefront.payments.gateway import silent_since

log = logging.getLogger(__name__)
LOST_AFTER = timedelta(seconds=60)
HELD_RECHECK = timedelta(minutes=5)
HOSTED_FORM_LIFE = timedelta(minutes=16)  # Accept Hosted tokens last 15 minutes; a minute of slack
ABANDONED_CART = timedelta(days=30)


@job
def release_expired_reservations() -> int:
    """Expire unpaid orders past their hold and give their stock back, unless a charge is in flight."""
    session = get_session()
    released = 0
    for order_id in orders.expired_holds(session, datetime.now(UTC)):
        order = orders.lock_id(session, order_id)
        if order is None or order.status not in ("pending_payment", "payment_failed"):
            session.rollback()
            continue
        if not payments.cancel_unsent(session, order):
            session.rollback()  # a charge was sent or may have been: reconciliation decides first
            continue
        orders.move(session, order, "expired", "The reservation ran out before the payment went through.")
        orders.release_stock(session, order)
        session.commit()
        released += 1
    return released


@job
def redrive_lost_orders() -> int:
    """Enqueue finalize again for orders whose job died with a worker or was never enqueued."""
    session = get_session()
    order_ids = payments.lost(session, datetime.now(UTC) - LOST_AFTER)
    session.commit()
    for order_id in order_ids:
        queues.enqueue(finalize_order, order_id, queue="payments")
    return len(order_ids)


@job
def reconcile_uncertain_payments() -> int:
    """Enqueue reconciliation of charges whose outcome is unknown or whose worker went silent."""
    session = get_session()
    # A hosted form whose token ran out can no longer be paid: whatever the gateway has now is final.
    hosted.expire_forms(session, datetime.now(UTC) - HOSTED_FORM_LIFE)
    attempt_ids = payments.uncertain(session, silent_since())
    session.commit()
    for attempt_id in attempt_ids:
        queues.enqueue(reconcile_charge, attempt_id, queue="payments")
    return len(attempt_ids)


@job
def redrive_payment_operations() -> int:
    """Enqueue again the staff's captures, voids and refunds whose job was lost or whose answer was."""
    session = get_session()
    pending = followups.follow_ups_to_redrive(session, datetime.now(UTC) - LOST_AFTER, silent_since())
    session.commit()
    for attempt_id, kind in pending:
        queues.enqueue(FOLLOW_UP_JOBS[kind], attempt_id, queue="payments")
    return len(pending)


@job
def recheck_held_payments() -> int:
    """Ask the gateway again about charges held for review (in case a webhook never came)."""
    session = get_session()
    attempt_ids = payments.held_before(session, datetime.now(UTC) - HELD_RECHECK)
    session.commit()
    for attempt_id in attempt_ids:
        queues.enqueue(check_payment, attempt_id, queue="payments")
    return len(attempt_ids)


@job
def purge_abandoned_carts() -> int:
    """Delete anonymous carts nobody touched for a month."""
    session = get_session()
    deleted = cart.purge_abandoned(session, datetime.now(UTC) - ABANDONED_CART)
    session.commit()
    return deleted


SWEEPS = (
    release_expired_reservations,
    redrive_lost_orders,
    reconcile_uncertain_payments,
    redrive_payment_operations,
    recheck_held_payments,
    purge_abandoned_carts,
    notify_restocked,
)
