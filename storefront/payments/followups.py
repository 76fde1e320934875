"""Payment follow-ups: capture, void and refund of an approved charge, and finishing them with the gateway.

Capture, void and refund follow an approved charge. Like the charge, each is recorded first (status created)
in the staff request's transaction, then sent by a job after the commit, claimed with the same guarded UPDATE.
A capture or a void is keyed by the charge's trans id, so a repeat is harmless (311, 310); a refund is not,
so each has its own invoice number (R-<order>-<n>) to find it again by. An answer that never came is not
resent blindly: a refund is looked up by its own invoice number, a capture or void by the charge's record.
The gateway is called here with no database transaction open: the job commits the claim before, and locks
the order and records the answer after.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from storefront.orders import services as orders
from storefront.orders.models import Order
from storefront.payments import services as charges
from storefront.payments.gateway import GatewayUnavailable, Result
from storefront.payments.models import PaymentAttempt

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


# Long because each gateway outcome (approved, unknown, not settled, refused) has its own record and event.
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
        charges.store_result(attempt, result, "approved")
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
        charges.store_result(attempt, result, "unknown")
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
        charges.store_result(attempt, result, status)
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
    charges.store_result(attempt, result, status)
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


# --- finishing a follow-up with the gateway (the jobs' steps) -------------------------------------------


def claim_follow_up(session: Session, attempt_id: int, kind: str, stale_before: datetime) -> str:
    """Claim a recorded capture, void or refund (→ sending): `send` it, `look` for it first (it was sent
    before, or may have been, and the answer was lost), or say why not (no such attempt, already handled)."""
    attempt = session.get(PaymentAttempt, attempt_id)
    if attempt is None or attempt.kind != kind:
        return "no such attempt"
    was = attempt.status
    if was not in PENDING or not charges.claim(session, attempt, stale_before=stale_before):
        return "already handled"
    return "send" if was == "created" else "look"


def send(gateway, attempt: PaymentAttempt) -> tuple[Result, bool]:
    """Send a claimed capture, void or refund (no database here); the answer to record, and whether the
    gateway's record showed the charge settled (a refused void that a refund must do instead)."""
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
        return _original_refund(gateway, result.trans_id), False
    if attempt.kind == "void" and result.outcome in ("declined", "error"):
        # Why was the void refused? Already voided is success; settled means a refund must do it.
        try:
            txn = gateway.transaction(attempt.ref_trans_id)
        except GatewayUnavailable:
            return Result("unknown", message="Void refused; gateway unavailable"), False
        state = follow_up_state("void", txn.status if txn else "")
        if state == "done":
            return Result("approved", trans_id=attempt.ref_trans_id, reason_code="310"), False
        return result, state == "fall_back"
    return result, False


def _original_refund(gateway, trans_id: str) -> Result:
    """The refund a duplicate answer points at; unknown (so reconciled by invoice) if it cannot be read."""
    try:
        txn = gateway.transaction(trans_id) if trans_id else None
    except GatewayUnavailable:
        txn = None
    if txn is not None and txn.status in REFUNDED:
        return Result(
            "approved", trans_id=txn.trans_id, message="Found on the gateway (a repeat of this refund)"
        )
    return Result("unknown", message="A repeat of a refund we could not read back")


def look_up(gateway, attempt: PaymentAttempt) -> tuple[Result, bool]:
    """Find out whether a capture, void or refund whose answer was lost went through, sending it again only
    where that cannot count twice (no database here); the answer to record, and whether the charge settled."""
    try:
        if attempt.kind == "refund":
            found = [t for t in gateway.find_by_invoice(attempt.invoice_number) if t.amount == attempt.amount]
            if found:
                return Result(
                    "approved", trans_id=found[0].trans_id, message="Found on the gateway by invoice number"
                ), False
            if datetime.now(UTC) - attempt.created_at > REFUND_RESEND_WITHIN:
                # Past the duplicate window a resend could refund twice, and a settled refund is no longer
                # on the unsettled list: a person has to look.
                return Result(
                    "error",
                    message=f"Not confirmed. Look for invoice {attempt.invoice_number} at the gateway "
                    "before refunding again.",
                ), False
            # Not on the books: it never arrived. The resend has the same invoice number and amount, so even
            # a late arrival of the first one would be answered as a duplicate, not refunded twice.
            return send(gateway, attempt)
        txn = gateway.transaction(attempt.ref_trans_id)
    except GatewayUnavailable:
        return Result("unknown", message="The gateway did not answer"), False
    status = txn.status if txn else "not found"
    state = follow_up_state(attempt.kind, status)
    if state == "resend":
        return send(gateway, attempt)
    if state == "done":
        return Result(
            "approved", trans_id=attempt.ref_trans_id, message=f"The gateway shows it {status}"
        ), False
    return Result("error", message=f"The gateway shows the payment as {status}"), state == "fall_back"


def record_answer(
    session: Session, attempt_id: int, result: Result, settled: bool, auth_only: bool
) -> tuple[str, PaymentAttempt, PaymentAttempt | None]:
    """Lock the order and record a follow-up's answer (see record_follow_up); `already handled` when another
    worker took the silent attempt over and recorded it first. Returns the outcome, the attempt and any
    replacement, for the job to enqueue after its commit."""
    attempt = session.get(PaymentAttempt, attempt_id)
    order = orders.lock_id(session, attempt.order_id)
    session.refresh(attempt)
    if attempt.status != "sending":
        return "already handled", attempt, None
    outcome, replacement = record_follow_up(session, order, attempt, result, auth_only, settled)
    return outcome, attempt, replacement
