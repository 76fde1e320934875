"""Payment jobs: finalize an order (charge it once), reconcile a charge whose answer was lost.

Both are idempotent and safe after a crash at any point: the attempt is recorded before the gateway is called
and claimed with a guarded UPDATE; the gateway is called with no database transaction open; an unanswered
call is never repeated blindly: the gateway's books are searched by invoice number first, and a resend carries
the same nonce and invoice number inside the duplicate window, so the gateway cannot charge twice.
"""

import logging
import time
from concurrent.futures import ThreadPoolExecutor

from flask import current_app

from jobs import job
from storefront import metrics, queues
from storefront.db import get_session
from storefront.orders import services as orders
from storefront.payments import followups, hosted
from storefront.payments import services as payments
from storefront.payments.gateway import (
    GatewayUnavailable,
    Result,
    Transaction,
    captures_at_checkout,
    get_gateway,
    silent_since,
)
from storefront.payments.models import PaymentAttempt

log = logging.getLogger(__name__)
MAX_TRIES = 6


@job
def finalize_order(order_id: int) -> str:
    """Charge a pending order once and record the outcome; returns what happened.

    A gateway call waits ~300 ms for the answer, so one call at a time per process would need hundreds of
    processes in a drop. Instead the job also claims up to PAYMENT_BATCH - 1 other charges waiting to be sent
    and sends the whole batch at once from a thread pool; their own jobs then find them handled.
    """
    session = get_session()
    order = orders.get(session, order_id)
    if order is None or order.status != "pending_payment":
        return "nothing to do"
    attempt = payments.latest_charge(session, order.id)
    if attempt is None:
        return "no charge recorded"
    if attempt.status == hosted.WAITING:
        session.commit()
        return _collect_hosted(attempt.id)
    if attempt.status in ("sending", "unknown"):
        session.commit()
        return _reconcile(attempt.id)
    if attempt.status != "created" or not payments.claim(session, attempt):
        session.commit()
        return "already handled"
    others = payments.claim_waiting(session, _batch_size() - 1)
    session.commit()  # every attempt of the batch is on record as sending before anything leaves this process
    outcome, *more = _send_all([attempt.id, *others])
    if more:
        log.info("order %s: %s; %d more charges sent with it: %s", order_id, outcome, len(more), more)
    return outcome


@job
def reconcile_charge(attempt_id: int) -> str:
    """Settle a charge whose outcome is unknown: search the gateway's books, then resend only if absent."""
    return _reconcile(attempt_id)


def _reconcile(attempt_id: int) -> str:
    session = get_session()
    attempt = payments.get_attempt(session, attempt_id)
    if attempt is None or not payments.claim(session, attempt, stale_before=silent_since()):
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


def _collect_hosted(attempt_id: int) -> str:
    """A charge the shopper made on the Accept Hosted form: find it on the gateway's books by invoice number."""
    session = get_session()
    attempt = payments.get_attempt(session, attempt_id)
    if attempt is None or not hosted.claim(session, attempt):
        session.commit()
        return "already handled"
    order = orders.get(session, attempt.order_id)
    session.commit()
    try:
        found = get_gateway().find_by_invoice(attempt.invoice_number)
    except GatewayUnavailable as error:
        log.warning("looking up hosted payment %s: gateway unavailable (%s)", attempt.invoice_number, error)
        found = []
    txn = payments.matching(found, attempt.amount)
    if txn is None:
        # Not paid (yet): the form stays open to the shopper; its expiry hands the charge to reconciliation.
        hosted.reopen(session, attempt)
        session.commit()
        return "waiting for the shopper"
    outcome = payments.record_from_gateway(session, order, attempt, txn)
    session.commit()
    _after(order.id, attempt.id, outcome)
    return outcome


def _batch_size() -> int:
    """Charges one job sends at once; in-process (no worker, jobs run inside the request) only its own."""
    return current_app.config["PAYMENT_BATCH"] if current_app.config["REDIS_URL"] else 1


def _send(attempt_id: int) -> str:
    """Call the gateway for one claimed attempt and record the answer."""
    return _send_all([attempt_id])[0]


def _send_all(attempt_ids: list[int]) -> list[str]:
    """Call the gateway for claimed charges, all at once from a thread pool, and record each answer.

    The threads only talk to the gateway: reading the attempts before and recording the answers after happen
    here, on the job's one session, so a batch of 32 needs one database connection, not 32, and no
    transaction is open while the gateway is asked."""
    session = get_session()
    attempts = {attempt.id: attempt for attempt in payments.attempts(session, attempt_ids)}
    by_id = orders.by_ids(session, {attempt.order_id for attempt in attempts.values()})
    # In the order asked for: the job's own charge first, so its outcome is the job's result.
    claimed = [(attempts[i], by_id[attempts[i].order_id]) for i in attempt_ids]
    session.commit()  # end the read transaction (without expiring)
    gateway = get_gateway()
    capture = captures_at_checkout()

    def ask(pair) -> Result | Transaction:
        return _ask_gateway(gateway, capture, *pair)

    if len(claimed) == 1:
        answers = [ask(claimed[0])]
    else:
        with ThreadPoolExecutor(max_workers=len(claimed), thread_name_prefix="charge") as pool:
            answers = list(pool.map(ask, claimed))
    outcomes = [_record_answer(session, *pair, answer) for pair, answer in zip(claimed, answers, strict=True)]
    _confirm(
        [order.id for (_attempt, order), outcome in zip(claimed, outcomes, strict=True) if outcome == "paid"]
    )
    return outcomes


def _record_answer(session, attempt: PaymentAttempt, order, answer: Result | Transaction) -> str:
    """Record one answer and commit; if that fails, the others of the batch are still recorded and this
    attempt stays `sending` until reconciliation finds the charge by its invoice number."""
    try:
        if isinstance(answer, Transaction):
            outcome = payments.record_from_gateway(session, order, attempt, answer)
        else:
            outcome = payments.record_charge(session, order, attempt, answer)
        session.commit()
    except Exception:
        session.rollback()
        log.exception("the answer for charge attempt %s could not be recorded", attempt.id)
        return "unknown"
    if outcome == "unknown":
        _look_again_later(attempt.id)
    return outcome


def _ask_gateway(gateway, capture: bool, attempt: PaymentAttempt, order) -> Result | Transaction:
    """The charge's answer, or the gateway's record of it when this was a resend (no database here)."""
    started = time.perf_counter()
    result = gateway.charge(
        amount=attempt.amount,
        nonce_descriptor=attempt.nonce_descriptor,
        nonce_value=attempt.nonce_value or "",
        invoice_number=attempt.invoice_number,
        ref_id=f"A{attempt.id}-{attempt.tries}",
        capture=capture,
        email=order.email,
        customer_id=f"U{order.user_id}" if order.user_id else "",
        name=order.ship_name,
        # No billing ZIP of our own: Accept.js put the one the shopper typed into the nonce, for AVS.
    )
    metrics.observe_payment(result.outcome, time.perf_counter() - started)
    if result.duplicate and result.trans_id:
        # The gateway already has this charge (a resend); its record says how it ended.
        try:
            txn = gateway.transaction(result.trans_id)
        except GatewayUnavailable:
            txn = None
        if txn is not None:
            return txn
        return Result("unknown", message="Duplicate of a charge we could not read back")
    return result


def _later(session, attempt, why: str) -> str:
    attempt.status = "unknown"
    attempt.message = why
    session.commit()
    queues.enqueue_in(payments.retry_delay(attempt.tries), reconcile_charge, attempt.id, queue="payments")
    return "retry later"


def _after(order_id: int, attempt_id: int, outcome: str) -> None:
    """Side effects after the commit: the confirmation e-mail, or another look at an unknown outcome."""
    if outcome == "paid":
        _confirm([order_id])
    elif outcome == "unknown":
        _look_again_later(attempt_id)


def _confirm(order_ids: list[int]) -> None:
    """One e-mail job for the orders a job found paid: in a drop a job per e-mail cost the workers more in
    RQ's own bookkeeping than the e-mails, and left hundreds queued behind the payments."""
    from jobs import emails

    if order_ids:
        queues.enqueue(emails.send_order_confirmations, order_ids, retry=queues.EMAIL_RETRY)


def _look_again_later(attempt_id: int) -> None:
    attempt = payments.get_attempt(get_session(), attempt_id)
    queues.enqueue_in(payments.retry_delay(attempt.tries), reconcile_charge, attempt_id, queue="payments")


@job
def check_payment(attempt_id: int) -> str:
    """Re-read a charge's status from the gateway (after a webhook, or for one held for review)."""
    session = get_session()
    attempt = payments.get_attempt(session, attempt_id)
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


# --- staff operations: capture, void and refund -----------------------------------------------------
# Each runs like finalize_order: claim the recorded attempt (created → sending) and commit, call the gateway
# with no transaction open, then lock the order and record the answer (storefront/payments/followups.py).


@job
def capture_payment(attempt_id: int) -> str:
    """Capture an authorization staff asked for, once; returns what happened."""
    return _follow_up(attempt_id, "capture")


@job
def void_payment(attempt_id: int) -> str:
    """Void a payment once; if it has settled meanwhile, refund what is left instead."""
    return _follow_up(attempt_id, "void")


@job
def refund_payment(attempt_id: int) -> str:
    """Send one refund exactly once; before settlement a full refund becomes a void."""
    return _follow_up(attempt_id, "refund")


FOLLOW_UP_JOBS = {"capture": capture_payment, "void": void_payment, "refund": refund_payment}


def _follow_up(attempt_id: int, kind: str) -> str:
    session = get_session()
    step = followups.claim_follow_up(session, attempt_id, kind, silent_since())
    session.commit()  # on record as sending before anything leaves this process
    if step not in ("send", "look"):
        return step
    attempt = payments.get_attempt(session, attempt_id)
    session.commit()  # end the read transaction: none is open while the gateway is asked
    gateway = get_gateway()
    if step == "send":
        result, settled = followups.send(gateway, attempt)
    else:
        result, settled = followups.look_up(gateway, attempt)
    return _record_follow_up(attempt_id, result, settled)


def _record_follow_up(attempt_id: int, result: Result, settled: bool) -> str:
    """Record the answer and commit; then send a replacement, schedule another look, or tell the customer."""
    session = get_session()
    outcome, attempt, replacement = followups.record_answer(
        session, attempt_id, result, settled, not captures_at_checkout()
    )
    session.commit()
    if replacement is not None:
        queues.enqueue(FOLLOW_UP_JOBS[replacement.kind], replacement.id, queue="payments")
    elif outcome == "unknown":
        queues.enqueue_in(
            payments.retry_delay(attempt.tries), FOLLOW_UP_JOBS[attempt.kind], attempt.id, queue="payments"
        )
    elif outcome == "approved" and attempt.kind in ("refund", "void"):
        from jobs import emails

        queues.enqueue(emails.send_refund_notice, attempt.order_id, attempt.id, retry=queues.EMAIL_RETRY)
    return outcome
