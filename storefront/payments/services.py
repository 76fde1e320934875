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


def _record(attempt: PaymentAttempt, result: Result, status: str) -> None:
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
        _record(attempt, result, "approved")
        _move(
            session,
            order,
            "paid",
            f"Payment approved ({result.account or 'card'}).",
            trans_id=result.trans_id,
        )
        return "paid"
    if result.outcome == "held":
        _record(attempt, result, "held")
        _move(
            session,
            order,
            "payment_review",
            "The payment is held for review by the gateway.",
            trans_id=result.trans_id,
        )
        return "held"
    if result.outcome == "unknown":
        _record(attempt, result, "unknown")
        orders.add_event(session, order, "payment", "No answer from the gateway yet; checking again.")
        return "unknown"
    _record(attempt, result, "declined" if result.outcome == "declined" else "error")
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
    _record(attempt, Result("error", message="Payment could not be confirmed with the gateway."), "error")
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


# --- staff operations ---
# Capture, void and refund follow an approved charge. Like the charge, each is recorded first (status
# created) in the staff request's transaction, then sent by a job after the commit, claimed with the same
# guarded UPDATE. A capture or a void is keyed by the charge's trans id, so a repeat is harmless (311, 310);
# a refund is not, so each has its own invoice number (R-<order>-<n>) to find it again by.
# (Imported here so this section stays an append to the file; they can move to the top at any time.)
from dataclasses import dataclass  # noqa: E402

FOLLOW_UPS = ("capture", "void", "refund")
PENDING = ("created", "sending", "unknown")
AUTHORIZED = "authorizedPendingCapture"
SETTLED = "settledSuccessfully"
CAPTURED = {"capturedPendingSettlement", SETTLED}
REFUNDED = {"refundPendingSettlement", "refundSettledSuccessfully"}
VOIDED = "voided"
NOT_SETTLED = "54"  # "does not meet the criteria for issuing a credit": the charge has not settled yet
# A lost refund is sent again only well inside the 8-hour duplicate window it was sent with: inside it the
# gateway answers a repeat with the original refund instead of booking a second one.
REFUND_RESEND_WITHIN = timedelta(hours=7)
BUSY = "A payment operation on this order is still waiting for the gateway. Wait for its outcome first."
LABELS = {"capture": "capture", "void": "void", "refund": "refund"}


class PaymentRefused(ValueError):
    """A staff payment operation that cannot be done now; the message says why and is safe to show."""


@dataclass(frozen=True)
class Money:
    """Where an order's money stands, worked out from its payment attempts."""

    attempts: list[PaymentAttempt]
    charge: PaymentAttempt | None  # the approved charge (or authorization)
    auth_only: bool
    captured: Decimal
    refunded: Decimal
    refunding: Decimal  # refunds sent or about to be, not answered yet
    voided: bool

    @property
    def pending(self) -> list[PaymentAttempt]:
        """Captures, voids and refunds not answered yet (an unknown one is still being reconciled)."""
        return [a for a in self.attempts if a.kind in FOLLOW_UPS and a.status in PENDING]

    @property
    def busy(self) -> bool:
        return bool(self.pending)

    @property
    def polling(self) -> bool:
        """Worth asking again in a moment: something is queued or on the wire right now."""
        return any(a.status in ("created", "sending") for a in self.pending)

    @property
    def can_capture(self) -> bool:
        return self.charge is not None and self.auth_only and not self.voided and not self.captured

    @property
    def can_void(self) -> bool:
        return self.charge is not None and not self.voided and not self.refunded and not self.refunding

    @property
    def refundable(self) -> Decimal:
        """Captured and not yet given back (nor on its way back)."""
        if self.voided:
            return Decimal("0.00")
        return self.captured - self.refunded - self.refunding

    @property
    def returned(self) -> Decimal:
        """Money given back so far, by void or refunds."""
        return self.charge.amount if self.voided and self.charge else self.refunded

    @property
    def all_returned(self) -> bool:
        return self.charge is not None and (
            self.voided or (self.captured > 0 and self.refunded >= self.captured)
        )


def money(session: Session, order: Order, auth_only: bool) -> Money:
    """The order's payment attempts, oldest first, and what they add up to. `auth_only` is the shop's
    PAYMENT_CAPTURE setting: then a charge only authorizes, and money is taken by a later capture."""
    attempts = list(
        session.scalars(
            select(PaymentAttempt).where(PaymentAttempt.order_id == order.id).order_by(PaymentAttempt.id)
        )
    )
    charge = next((a for a in reversed(attempts) if a.kind == "charge" and a.status == "approved"), None)

    def total(kind: str, statuses: tuple[str, ...]) -> Decimal:
        return sum((a.amount for a in attempts if a.kind == kind and a.status in statuses), Decimal("0.00"))

    if charge is None:
        captured = Decimal("0.00")
    elif auth_only:
        captured = total("capture", ("approved",))
    else:
        captured = charge.amount
    return Money(
        attempts=attempts,
        charge=charge,
        auth_only=auth_only,
        captured=captured,
        refunded=total("refund", ("approved",)),
        refunding=total("refund", PENDING),
        voided=any(a.kind == "void" and a.status == "approved" for a in attempts),
    )


def refund_invoice(order: Order, n: int) -> str:
    """The n-th refund's own invoice number, R-<order number without SF->-<n> (the gateway keeps 20)."""
    invoice = f"R-{order.number.removeprefix('SF-')}-{n}"
    if len(invoice) > 20:
        raise PaymentRefused("Too many refunds on one order for the gateway's invoice numbers.")
    return invoice


def _follow_up(
    session: Session, order: Order, charge: PaymentAttempt, kind: str, amount: Decimal
) -> PaymentAttempt:
    """Record a capture, void or refund of this charge, to be sent by a job after the commit."""
    n = 1 + session.scalar(
        select(func.count(PaymentAttempt.id)).where(
            PaymentAttempt.order_id == order.id, PaymentAttempt.kind == kind
        )
    )
    attempt = PaymentAttempt(
        order_id=order.id,
        kind=kind,
        status="created",
        amount=amount,
        invoice_number=refund_invoice(order, n) if kind == "refund" else order.number,
        # No nonce here; the (order, kind, nonce_hash) unique key gets the attempt's number instead: it must
        # differ per attempt anyway, and so the n-th refund of an order can never be recorded twice.
        nonce_hash=f"{kind}:{n}",
        ref_trans_id=charge.trans_id,
        account=charge.account,  # "Visa XXXX1111": a refund names the card's last four digits
    )
    session.add(attempt)
    session.flush()
    return attempt


def _requested(session: Session, order: Order, attempt: PaymentAttempt, by: str) -> None:
    what = "Refund" if attempt.kind == "refund" else attempt.kind.capitalize()
    invoice = f" (invoice {attempt.invoice_number})" if attempt.kind == "refund" else ""
    orders.add_event(
        session,
        order,
        "payment",
        f"{what} of ${attempt.amount:,.2f}{invoice} requested by {by}.",
        attempt=attempt.id,
        operation=attempt.kind,
        by=by,
    )


def _usable_charge(state: Money) -> PaymentAttempt:
    if state.busy:
        raise PaymentRefused(BUSY)
    if state.charge is None or not state.charge.trans_id:
        raise PaymentRefused("This order has no approved payment.")
    if state.voided:
        raise PaymentRefused("The payment was voided: nothing is left to take or give back.")
    return state.charge


def new_capture(session: Session, order: Order, state: Money, by: str) -> PaymentAttempt:
    """Record the capture of an authorized (authOnly) payment, for its full amount."""
    charge = _usable_charge(state)
    if not state.auth_only:
        raise PaymentRefused("Payments are captured at checkout here (PAYMENT_CAPTURE=auth_capture).")
    if state.captured:
        raise PaymentRefused("The payment is already captured.")
    attempt = _follow_up(session, order, charge, "capture", charge.amount)
    _requested(session, order, attempt, by)
    return attempt


def new_void(session: Session, order: Order, state: Money, by: str) -> PaymentAttempt:
    """Record a void: the whole payment goes back (if it has settled, the job refunds what is left)."""
    charge = _usable_charge(state)
    if state.refunded or state.refunding:
        raise PaymentRefused("Part of the payment was refunded already: refund the rest instead of voiding.")
    attempt = _follow_up(session, order, charge, "void", charge.amount)
    _requested(session, order, attempt, by)
    return attempt


def new_refund(session: Session, order: Order, state: Money, amount: Decimal, by: str) -> PaymentAttempt:
    """Record a refund of `amount` (at most what is captured and not yet refunded), with its own invoice."""
    charge = _usable_charge(state)
    if not state.captured:
        raise PaymentRefused("Nothing has been captured yet: void the authorization instead.")
    if amount <= 0:
        raise PaymentRefused("Enter an amount above zero.")
    if amount > state.refundable:
        raise PaymentRefused(f"At most ${state.refundable:,.2f} can be refunded.")
    attempt = _follow_up(session, order, charge, "refund", amount)
    _requested(session, order, attempt, by)
    return attempt


def return_all(session: Session, order: Order, state: Money, by: str) -> PaymentAttempt | None:
    """Give every cent back (for a cancellation): a void while nothing has been refunded, otherwise a
    refund of what is left; None when there is nothing to give back."""
    if state.charge is None or state.voided:
        return None
    if not state.refunded and not state.refunding:
        return new_void(session, order, state, by)
    if state.refundable > 0:
        return new_refund(session, order, state, state.refundable, by)
    return None


def follow_up_state(kind: str, gateway_status: str) -> str:
    """What the gateway's record of the charge says about a capture or void whose answer was lost:
    done (it went through), resend (it never arrived; a repeat is harmless), fall_back (a void the settled
    charge no longer allows: refund instead), or failed."""
    if kind == "capture":
        if gateway_status in CAPTURED:
            return "done"
        if gateway_status == AUTHORIZED:
            return "resend"
    elif kind == "void":
        if gateway_status == VOIDED:
            return "done"
        if gateway_status == SETTLED:
            return "fall_back"
        if gateway_status in (AUTHORIZED, "capturedPendingSettlement"):
            return "resend"
    return "failed"


def record_follow_up(
    session: Session,
    order: Order,
    attempt: PaymentAttempt,
    result: Result,
    auth_only: bool,
    settled: bool = False,
) -> tuple[str, PaymentAttempt | None]:
    """Store the gateway's answer to a capture, void or refund, note it on the timeline, and close the order
    once all its money is back. `settled`: the gateway's record shows the charge settled (a void refused).

    Returns the outcome (approved | declined | error | unknown | replaced) and, when replaced, the attempt
    that takes over: a full refund refused before settlement becomes a void (the same money back, sooner),
    a void refused after settlement becomes a refund of what is left.
    """
    label = LABELS[attempt.kind]
    amount = f"${attempt.amount:,.2f}"
    if result.outcome == "approved":
        _record(attempt, result, "approved")
        already = {"311": " (it was already captured)", "310": " (it was already voided)"}.get(
            result.reason_code, ""
        )
        done = {"capture": f"Captured {amount}", "void": "Payment voided", "refund": f"Refunded {amount}"}
        invoice = f" (invoice {attempt.invoice_number})" if attempt.kind == "refund" else ""
        orders.add_event(
            session,
            order,
            "payment",
            f"{done[attempt.kind]}{invoice}{already}.",
            attempt=attempt.id,
            operation=attempt.kind,
            trans_id=attempt.trans_id,
        )
        session.flush()
        if money(session, order, auth_only).all_returned:
            orders.close_refunded(session, order, "All of the payment went back to the customer.")
        return "approved", None
    if result.outcome == "unknown":
        _record(attempt, result, "unknown")
        orders.add_event(
            session,
            order,
            "payment",
            f"No answer from the gateway to the {label}; checking again.",
            attempt=attempt.id,
            operation=attempt.kind,
        )
        return "unknown", None
    status = "declined" if result.outcome == "declined" else "error"  # 2 or 3, as the gateway said
    if attempt.kind == "refund" and result.reason_code == NOT_SETTLED:
        _record(attempt, result, status)
        state = money(session, order, auth_only)
        if not state.refunded and not state.refunding and attempt.amount == state.captured:
            attempt.message = "Not settled yet, so the payment is voided instead (the same money back)."
            return "replaced", _replace(session, order, state, attempt, "void", attempt.amount)
        attempt.message = (
            "The payment has not settled yet (usually within a day), so it cannot be refunded in part. "
            "Refund again after settlement, or void it to give everything back now."
        )
        orders.add_event(
            session,
            order,
            "payment",
            f"Refund of {amount} refused: {attempt.message}",
            attempt=attempt.id,
            operation="refund",
            reason=result.reason_code,
        )
        return status, None
    _record(attempt, result, status)
    if attempt.kind == "void" and settled:
        state = money(session, order, auth_only)
        if state.refundable > 0:
            attempt.message = "The payment has settled, so it is refunded instead."
            return "replaced", _replace(session, order, state, attempt, "refund", state.refundable)
    reason = f"{result.reason_code}: {result.message}" if result.reason_code else result.message
    orders.add_event(
        session,
        order,
        "payment",
        f"The {label} of {amount} failed ({reason}).",
        attempt=attempt.id,
        operation=attempt.kind,
        reason=result.reason_code,
    )
    return status, None


def _replace(
    session: Session, order: Order, state: Money, attempt: PaymentAttempt, kind: str, amount: Decimal
) -> PaymentAttempt:
    replacement = _follow_up(session, order, state.charge, kind, amount)
    what = (
        "voiding the payment"
        if kind == "void"
        else f"refunding ${amount:,.2f} (invoice {replacement.invoice_number})"
    )
    orders.add_event(
        session,
        order,
        "payment",
        f"The gateway refused the {attempt.kind}: {attempt.message} Now {what}.",
        attempt=replacement.id,
        operation=kind,
        replaces=attempt.id,
    )
    return replacement


def stuck(session: Session, order: Order, stale_before: datetime) -> list[PaymentAttempt]:
    """This order's captures, voids and refunds that nobody is finishing: unknown ones, created ones whose
    job was lost, and sending ones silent since `stale_before` (their worker died)."""
    return [
        a
        for a in money(session, order, False).pending
        if a.status in ("unknown", "created") or a.updated_at < stale_before
    ]


def refunded_by_order(session: Session, order_ids: list[int]) -> dict[int, Decimal]:
    """Approved refunds per order, for lists and exports."""
    if not order_ids:
        return {}
    rows = session.execute(
        select(PaymentAttempt.order_id, func.sum(PaymentAttempt.amount))
        .where(
            PaymentAttempt.order_id.in_(order_ids),
            PaymentAttempt.kind == "refund",
            PaymentAttempt.status == "approved",
        )
        .group_by(PaymentAttempt.order_id)
    ).tuples()
    return dict(rows.all())


def follow_ups_to_redrive(
    session: Session, created_before: datetime, stale_before: datetime
) -> list[tuple[int, str]]:
    """Captures, voids and refunds nobody is finishing: never picked up, unanswered, or gone silent."""
    return list(
        session.execute(
            select(PaymentAttempt.id, PaymentAttempt.kind)
            .where(
                PaymentAttempt.kind.in_(("capture", "void", "refund")),
                or_(
                    (PaymentAttempt.status == "created") & (PaymentAttempt.created_at < created_before),
                    PaymentAttempt.status == "unknown",
                    (PaymentAttempt.status == "sending") & (PaymentAttempt.updated_at < stale_before),
                ),
            )
            .order_by(PaymentAttempt.id)
            .limit(200)
        ).tuples()
    )
