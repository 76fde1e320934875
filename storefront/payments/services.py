"""Payment records: create and claim attempts, record what the gateway said, and move the order to match.

A charge attempt is written before the gateway is called and claimed with a guarded UPDATE, so two workers
(or a worker and a sweep) never send the same charge; an answer that never came back leaves the attempt
`unknown` until reconciliation by invoice number decides it.
"""

import hashlib
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from storefront.orders import services as orders
from storefront.orders.models import Order
from storefront.payments.gateway import Result, Transaction
from storefront.payments.models import PaymentAttempt

IN_FLIGHT = ("created", "sending", "unknown", "held", "hosted")  # hosted: the shopper may be paying
FRIENDLY_DECLINE = "Your card was declined. Please try another card."


def nonce_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def charge_values(order_id: int, total: Decimal, number: str, descriptor: str, value: str) -> dict:
    """The row of a charge to be sent for an order with this nonce (not sent yet)."""
    return {
        "order_id": order_id,
        "kind": "charge",
        "status": "created",
        "amount": total,
        "invoice_number": number,
        "nonce_descriptor": descriptor,
        "nonce_value": value,
        "nonce_hash": nonce_hash(value),
    }


def new_charge(session: Session, order: Order, descriptor: str, value: str) -> PaymentAttempt:
    """Record a charge to be sent for this order with this nonce (not sent yet)."""
    attempt = PaymentAttempt(**charge_values(order.id, order.total, order.number, descriptor, value))
    session.add(attempt)
    return attempt


def attempts(session: Session, attempt_ids: list[int]) -> list[PaymentAttempt]:
    """These attempts, in one query."""
    return list(session.scalars(select(PaymentAttempt).where(PaymentAttempt.id.in_(attempt_ids))))


def get_attempt(session: Session, attempt_id: int) -> PaymentAttempt | None:
    """One payment attempt (a charge or a follow-up) by id."""
    return session.get(PaymentAttempt, attempt_id)


def latest_charge(session: Session, order_id: int) -> PaymentAttempt | None:
    return session.scalar(
        select(PaymentAttempt)
        .where(PaymentAttempt.order_id == order_id, PaymentAttempt.kind == "charge")
        .order_by(PaymentAttempt.id.desc())
        .limit(1)
    )


def claim(session: Session, attempt: PaymentAttempt, stale_before: datetime | None = None) -> bool:
    """Take the right to send (or re-check) this attempt: from created or unknown, or from a sending one
    that has been silent since `stale_before` (its worker died). Only one caller wins."""
    claimable = [PaymentAttempt.status.in_(("created", "unknown"))]
    if stale_before is not None:
        claimable.append((PaymentAttempt.status == "sending") & (PaymentAttempt.updated_at < stale_before))
    won = session.execute(
        update(PaymentAttempt)
        .where(PaymentAttempt.id == attempt.id, or_(*claimable))
        .values(status="sending", tries=PaymentAttempt.tries + 1, updated_at=func.now())
    ).rowcount
    session.refresh(attempt)
    return bool(won)


def claim_waiting(session: Session, limit: int) -> list[int]:
    """Take up to `limit` charges recorded but not sent yet, oldest first, for one batch of gateway calls.

    Rows another worker is claiming at this moment are skipped, not waited for, so workers never queue up
    behind each other; each claimed attempt is `sending` exactly as `claim` leaves it.
    """
    if limit <= 0:
        return []
    waiting = (
        select(PaymentAttempt.id)
        .join(Order, Order.id == PaymentAttempt.order_id)
        .where(
            PaymentAttempt.kind == "charge",
            PaymentAttempt.status == "created",
            Order.status == "pending_payment",
        )
        .order_by(PaymentAttempt.id)
        .limit(limit)
        .with_for_update(of=PaymentAttempt, skip_locked=True)
        # A CTE, evaluated once: as an IN (subquery) PostgreSQL may run the LIMIT more than once and claim more.
        .cte("waiting")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    claimed = session.scalars(
        update(PaymentAttempt)
        .where(PaymentAttempt.id == waiting.c.id, PaymentAttempt.status == "created")
        .values(status="sending", tries=PaymentAttempt.tries + 1, updated_at=func.now())
        .returning(PaymentAttempt.id)
        .execution_options(synchronize_session=False)
    )
    return sorted(claimed)


def store_result(attempt: PaymentAttempt, result: Result, status: str) -> None:
    """Copy the gateway's answer onto the attempt (charges and follow-ups alike)."""
    attempt.status = status
    attempt.trans_id = result.trans_id or attempt.trans_id
    attempt.auth_code = result.auth_code or attempt.auth_code
    attempt.response_code = result.response_code
    attempt.reason_code = result.reason_code
    attempt.message = result.message[:255]
    attempt.avs = result.avs[:2]
    attempt.cvv = result.cvv[:2]
    attempt.account = result.account[:24] or attempt.account
    if status in ("approved", "declined", "error", "cancelled"):
        attempt.nonce_value = None  # spent or useless: nothing to keep


def record_charge(session: Session, order: Order, attempt: PaymentAttempt, result: Result) -> str:
    """Store the gateway's answer and move the order: paid, payment_failed, payment_review, or still waiting.

    Returns the order-level outcome: "paid", "failed", "held" or "unknown".
    """
    if result.outcome == "approved":
        store_result(attempt, result, "approved")
        _move(
            session,
            order,
            "paid",
            f"Payment approved ({result.account or 'card'}).",
            trans_id=result.trans_id,
        )
        return "paid"
    if result.outcome == "held":
        store_result(attempt, result, "held")
        _move(
            session,
            order,
            "payment_review",
            "The payment is held for review by the gateway.",
            trans_id=result.trans_id,
        )
        return "held"
    if result.outcome == "unknown":
        store_result(attempt, result, "unknown")
        orders.add_event(session, order, "payment", "No answer from the gateway yet; checking again.")
        return "unknown"
    store_result(attempt, result, "declined" if result.outcome == "declined" else "error")
    message = (
        FRIENDLY_DECLINE
        if result.outcome == "declined"
        else (
            "Your card details have expired. Please enter your card again."
            if result.nonce_spent
            else "We couldn't process the payment. Please try again or use another card."
        )
    )
    order.payment_message = message
    _move(
        session,
        order,
        "payment_failed",
        f"{message} ({result.reason_code}: {result.message})",
        reason=result.reason_code,
    )
    return "failed"


def record_from_gateway(session: Session, order: Order, attempt: PaymentAttempt, txn: Transaction) -> str:
    """Adopt a transaction found on the gateway's books for this attempt (reconciliation)."""
    if txn.held:
        result = Result("held", trans_id=txn.trans_id, message="Held for review", account=txn.account)
    elif txn.charged:
        result = Result(
            "approved",
            trans_id=txn.trans_id,
            auth_code=txn.auth_code,
            account=txn.account,
            message="Found on the gateway by invoice number",
        )
    else:
        result = Result("declined", trans_id=txn.trans_id, message=f"Gateway status {txn.status}")
    return record_charge(session, order, attempt, result)


def give_up(session: Session, order: Order, attempt: PaymentAttempt) -> None:
    """After every retry: the charge could not be confirmed either way; the shopper may try again."""
    store_result(
        attempt, Result("error", message="Payment could not be confirmed with the gateway."), "error"
    )
    order.payment_message = "We couldn't confirm your payment. No charge was found; please try again."
    _move(session, order, "payment_failed", order.payment_message)


def _move(session: Session, order: Order, to: str, message: str, **data) -> None:
    if order.status == to:
        return
    if to in orders.TRANSITIONS[order.status]:
        orders.move(session, order, to, message, **data)
    else:
        # The charge outcome arrived for an order that moved on (expired, cancelled): keep it on the record.
        orders.add_event(
            session, order, "payment", f"{message} (order was {order.status})", late=True, **data
        )


def matching(transactions: list[Transaction], amount: Decimal) -> Transaction | None:
    """The transaction for our charge among those with its invoice number: charged first, then held."""
    same_amount = [t for t in transactions if t.amount == amount] or transactions
    for wanted in (lambda t: t.charged and not t.held, lambda t: t.held, lambda t: True):
        found = [t for t in same_amount if wanted(t)]
        if found:
            return found[0]
    return None


def uncertain(session: Session, stale_before: datetime, limit: int = 200) -> list[int]:
    """Charge attempts nobody is finishing: unknown ones, and sending ones silent since stale_before."""
    return list(
        session.scalars(
            select(PaymentAttempt.id)
            .where(
                PaymentAttempt.kind == "charge",
                or_(
                    PaymentAttempt.status == "unknown",
                    (PaymentAttempt.status == "sending") & (PaymentAttempt.updated_at < stale_before),
                ),
            )
            .order_by(PaymentAttempt.id)
            .limit(limit)
        )
    )


def held_before(session: Session, updated_before: datetime) -> list[int]:
    """Charge attempts held for review and not looked at since `updated_before`."""
    return list(
        session.scalars(
            select(PaymentAttempt.id).where(
                PaymentAttempt.status == "held", PaymentAttempt.updated_at < updated_before
            )
        )
    )


def lost(session: Session, created_before: datetime, limit: int = 500) -> list[int]:
    """Orders whose charge was recorded but never picked up (its job was lost with a worker or Redis)."""
    return list(
        session.scalars(
            select(PaymentAttempt.order_id)
            .join(Order, Order.id == PaymentAttempt.order_id)
            .where(
                PaymentAttempt.kind == "charge",
                PaymentAttempt.status == "created",
                PaymentAttempt.created_at < created_before,
                Order.status == "pending_payment",
            )
            .order_by(PaymentAttempt.id)
            .limit(limit)
        )
    )


def cancel_unsent(session: Session, order: Order) -> bool:
    """Withdraw every charge of this order that was never sent; False if one is in flight (sent or unsure)."""
    session.execute(
        update(PaymentAttempt)
        .where(PaymentAttempt.order_id == order.id, PaymentAttempt.status == "created")
        .values(status="cancelled", nonce_value=None)
    )
    busy = session.scalar(
        select(PaymentAttempt.id)
        .where(PaymentAttempt.order_id == order.id, PaymentAttempt.status.in_(IN_FLIGHT))
        .limit(1)
    )
    return busy is None


def retry_delay(tries: int) -> timedelta:
    """Backoff between reconciliation rounds: 5 s, 15 s, 45 s, … capped at 10 minutes."""
    return timedelta(seconds=min(600, 5 * 3 ** max(0, tries - 1)))
