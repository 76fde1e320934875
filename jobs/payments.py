"""Payment jobs: finalize an order (charge it once), reconcile a charge whose answer was lost.

Both are idempotent and safe after a crash at any point: the attempt is recorded before the gateway is called
and claimed with a guarded UPDATE; the gateway is called with no database transaction open; an unanswered
call is never repeated blindly: the gateway's books are searched by invoice number first, and a resend carries
the same nonce and invoice number inside the duplicate window, so the gateway cannot charge twice.
"""

import logging
from datetime import UTC, datetime, timedelta

from flask import current_app

from jobs import job
from storefront import queues
from storefront.db import get_session
from storefront.orders import services as orders
from storefront.payments import services as payments
from storefront.payments.gateway import GatewayUnavailable, Result, get_gateway
from storefront.payments.models import PaymentAttempt

log = logging.getLogger(__name__)
MAX_TRIES = 6


@job
def finalize_order(order_id: int) -> str:
    """Charge a pending order once and record the outcome; returns what happened."""
    session = get_session()
    order = orders.get(session, order_id)
    if order is None or order.status != "pending_payment":
        return "nothing to do"
    attempt = payments.latest_charge(session, order.id)
    if attempt is None:
        return "no charge recorded"
    if attempt.status in ("sending", "unknown"):
        session.commit()
        return _reconcile(attempt.id)
    if attempt.status != "created" or not payments.claim(session, attempt):
        session.commit()
        return "already handled"
    session.commit()  # the attempt is on record as sending before anything leaves this process
    return _send(attempt.id)


@job
def reconcile_charge(attempt_id: int) -> str:
    """Settle a charge whose outcome is unknown: search the gateway's books, then resend only if absent."""
    return _reconcile(attempt_id)


def _stale_before() -> datetime:
    """A charge still `sending` after this long has lost its worker (twice the gateway read timeout)."""
    return datetime.now(UTC) - timedelta(seconds=2 * current_app.config["AUTHNET_READ_TIMEOUT"] + 5)


def _reconcile(attempt_id: int) -> str:
    session = get_session()
    attempt = session.get(PaymentAttempt, attempt_id)
    if attempt is None or not payments.claim(session, attempt, stale_before=_stale_before()):
        session.commit()
        return "already handled"
    order = orders.get(session, attempt.order_id)
    session.commit()
    try:
        found = get_gateway().find_by_invoice(attempt.invoice_number)
    except GatewayUnavailable as error:
        log.warning("reconciling %s: gateway unavailable (%s)", attempt.invoice_number, error)
        return _later(session, attempt, "gateway unavailable")
    txn = payments.matching(found, attempt.amount)
    if txn is not None:
        outcome = payments.record_from_gateway(session, order, attempt, txn)
        session.commit()
        _after(order.id, attempt.id, outcome)
        return f"reconciled: {outcome}"
    if not attempt.nonce_value or attempt.tries > MAX_TRIES:
        payments.give_up(session, order, attempt)
        session.commit()
        return "gave up"
    # Not on the gateway's books: the charge never arrived, so sending it again cannot charge twice.
    return _send(attempt.id)


def _send(attempt_id: int) -> str:
    """Call the gateway for a claimed attempt (no transaction open) and record the answer."""
    session = get_session()
    attempt = session.get(PaymentAttempt, attempt_id)
    order = orders.get(session, attempt.order_id)
    session.commit()  # end the read transaction (without expiring): nothing stays open across the gateway call
    config = current_app.config
    gateway = get_gateway()
    result = gateway.charge(
        amount=attempt.amount,
        nonce_descriptor=attempt.nonce_descriptor,
        nonce_value=attempt.nonce_value or "",
        invoice_number=attempt.invoice_number,
        ref_id=f"A{attempt.id}-{attempt.tries}",
        capture=config["PAYMENT_CAPTURE"] == "auth_capture",
        email=order.email,
        customer_id=f"U{order.user_id}" if order.user_id else "",
        name=order.ship_name,
        zip_code=order.ship_postal_code,
        country=order.ship_country,
    )
    if result.duplicate and result.trans_id:
        # The gateway already has this charge (a resend); its record says how it ended.
        try:
            txn = gateway.transaction(result.trans_id)
        except GatewayUnavailable:
            txn = None
        if txn is not None:
            outcome = payments.record_from_gateway(session, order, attempt, txn)
            session.commit()
            _after(order.id, attempt.id, outcome)
            return outcome
        result = Result("unknown", message="Duplicate of a charge we could not read back")
    outcome = payments.record_charge(session, order, attempt, result)
    session.commit()
    _after(order.id, attempt.id, outcome)
    return outcome


def _later(session, attempt, why: str) -> str:
    attempt.status = "unknown"
    attempt.message = why
    session.commit()
    queues.enqueue_in(payments.retry_delay(attempt.tries), reconcile_charge, attempt.id, queue="payments")
    return "retry later"


def _after(order_id: int, attempt_id: int, outcome: str) -> None:
    """Side effects after the commit: the confirmation e-mail, or another look at an unknown outcome."""
    from jobs import emails

    if outcome == "paid":
        queues.enqueue(emails.send_order_confirmation, order_id, retry=queues.EMAIL_RETRY)
    elif outcome == "unknown":
        session = get_session()
        attempt = session.get(PaymentAttempt, attempt_id)
        queues.enqueue_in(payments.retry_delay(attempt.tries), reconcile_charge, attempt_id, queue="payments")


@job
def check_payment(attempt_id: int) -> str:
    """Re-read a charge's status from the gateway (after a webhook, or for one held for review)."""
    session = get_session()
    attempt = session.get(PaymentAttempt, attempt_id)
    if attempt is None:
        return "no such attempt"
    if attempt.status in ("sending", "unknown"):
        session.commit()
        return _reconcile(attempt_id)
    if attempt.status != "held" or not attempt.trans_id:
        return "nothing to do"
    order = orders.get(session, attempt.order_id)
    session.commit()
    try:
        txn = get_gateway().transaction(attempt.trans_id)
    except GatewayUnavailable:
        return "gateway unavailable"
    if txn is None or txn.held:
        return "still held"
    outcome = payments.record_from_gateway(session, order, attempt, txn)
    session.commit()
    _after(order.id, attempt.id, outcome)
    return outcome
