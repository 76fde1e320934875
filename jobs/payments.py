"""Payment jobs: finalize an order (charge it once), reconcile a charge whose answer was lost.

Both are idempotent and safe after a crash at any point: the attempt is recorded before the gateway is called
and claimed with a guarded UPDATE; the gateway is called with no database transaction open; an unanswered
call is never repeated blindly: the gateway's books are searched by invoice number first, and a resend carries
the same nonce and invoice number inside the duplicate window, so the gateway cannot charge twice.
"""

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from flask import current_app

from jobs import job
from storefront import metrics, queues
from storefront.db import get_session
from storefront.orders import services as orders
from storefront.payments import hosted
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
    attempt = session.get(PaymentAttempt, attempt_id)
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
    attempt = session.get(PaymentAttempt, attempt_id)
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
    attempt = get_session().get(PaymentAttempt, attempt_id)
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


# --- staff operations: capture, void and refund -----------------------------------------------------
# Each runs like finalize_order: claim the recorded attempt (created → sending) and commit, call the gateway
# with no transaction open, then lock the order and record the answer. An answer that never came is not
# resent blindly: a refund is looked up by its own invoice number, a capture or void by the charge's record
# (and resending those is harmless anyway: 311 already captured, 310 already voided).


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
    attempt = session.get(PaymentAttempt, attempt_id)
    if attempt is None or attempt.kind != kind:
        session.commit()
        return "no such attempt"
    was = attempt.status
    if was not in payments.PENDING or not payments.claim(session, attempt, stale_before=silent_since()):
        session.commit()
        return "already handled"
    session.commit()  # on record as sending before anything leaves this process
    if was == "created":
        return _send_follow_up(attempt_id)
    # It was sent before (or may have been) and the answer was lost: look before sending again.
    return _reconcile_follow_up(attempt_id)


def _send_follow_up(attempt_id: int) -> str:
    """Call the gateway for a claimed capture, void or refund (no transaction open) and record the answer."""
    session = get_session()
    attempt = session.get(PaymentAttempt, attempt_id)
    session.commit()
    gateway = get_gateway()
    ref_id = f"A{attempt.id}-{attempt.tries}"
    if attempt.kind == "capture":
        result = gateway.capture(attempt.ref_trans_id, attempt.amount, ref_id)
    elif attempt.kind == "void":
        result = gateway.void(attempt.ref_trans_id, ref_id)
    else:
        result = gateway.refund(
            attempt.ref_trans_id, attempt.amount, attempt.account[-4:], attempt.invoice_number, ref_id
        )
    if attempt.kind == "refund" and result.duplicate:
        # A resent refund inside its duplicate window: the gateway names the original; its record decides.
        return _record_follow_up(attempt_id, _original_refund(gateway, result.trans_id))
    if attempt.kind == "void" and result.outcome in ("declined", "error"):
        # Why was the void refused? Already voided is success; settled means a refund must do it.
        try:
            txn = gateway.transaction(attempt.ref_trans_id)
        except GatewayUnavailable:
            return _record_follow_up(
                attempt_id, Result("unknown", message="Void refused; gateway unavailable")
            )
        state = payments.follow_up_state("void", txn.status if txn else "")
        if state == "done":
            return _record_follow_up(
                attempt_id, Result("approved", trans_id=attempt.ref_trans_id, reason_code="310")
            )
        return _record_follow_up(attempt_id, result, settled=state == "fall_back")
    return _record_follow_up(attempt_id, result)


def _original_refund(gateway, trans_id: str) -> Result:
    """The refund a duplicate answer points at; unknown (so reconciled by invoice) if it cannot be read."""
    try:
        txn = gateway.transaction(trans_id) if trans_id else None
    except GatewayUnavailable:
        txn = None
    if txn is not None and txn.status in payments.REFUNDED:
        return Result(
            "approved", trans_id=txn.trans_id, message="Found on the gateway (a repeat of this refund)"
        )
    return Result("unknown", message="A repeat of a refund we could not read back")


def _reconcile_follow_up(attempt_id: int) -> str:
    """Find out whether a capture, void or refund whose answer was lost went through, and finish it."""
    session = get_session()
    attempt = session.get(PaymentAttempt, attempt_id)
    session.commit()
    gateway = get_gateway()
    try:
        if attempt.kind == "refund":
            found = [t for t in gateway.find_by_invoice(attempt.invoice_number) if t.amount == attempt.amount]
            if found:
                return _record_follow_up(
                    attempt_id,
                    Result(
                        "approved",
                        trans_id=found[0].trans_id,
                        message="Found on the gateway by invoice number",
                    ),
                )
            if datetime.now(UTC) - attempt.created_at > payments.REFUND_RESEND_WITHIN:
                # Past the duplicate window a resend could refund twice, and a settled refund is no longer
                # on the unsettled list: a person has to look.
                return _record_follow_up(
                    attempt_id,
                    Result(
                        "error",
                        message=f"Not confirmed. Look for invoice {attempt.invoice_number} at the gateway "
                        "before refunding again.",
                    ),
                )
            # Not on the books: it never arrived. The resend has the same invoice number and amount, so even
            # a late arrival of the first one would be answered as a duplicate, not refunded twice.
            return _send_follow_up(attempt_id)
        txn = gateway.transaction(attempt.ref_trans_id)
    except GatewayUnavailable:
        return _record_follow_up(attempt_id, Result("unknown", message="The gateway did not answer"))
    status = txn.status if txn else "not found"
    state = payments.follow_up_state(attempt.kind, status)
    if state == "resend":
        return _send_follow_up(attempt_id)
    if state == "done":
        return _record_follow_up(
            attempt_id,
            Result("approved", trans_id=attempt.ref_trans_id, message=f"The gateway shows it {status}"),
        )
    return _record_follow_up(
        attempt_id,
        Result("error", message=f"The gateway shows the payment as {status}"),
        settled=state == "fall_back",
    )


def _record_follow_up(attempt_id: int, result: Result, settled: bool = False) -> str:
    """Lock the order, record the answer, commit; then send a replacement or schedule another look."""
    session = get_session()
    attempt = session.get(PaymentAttempt, attempt_id)
    order = orders.lock_id(session, attempt.order_id)
    session.refresh(attempt)
    if attempt.status != "sending":
        # Another worker took a silent attempt over and has recorded it already.
        session.commit()
        return "already handled"
    outcome, replacement = payments.record_follow_up(
        session, order, attempt, result, not captures_at_checkout(), settled
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

        queues.enqueue(emails.send_refund_notice, order.id, attempt.id, retry=queues.EMAIL_RETRY)
    return outcome
