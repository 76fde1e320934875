"""Accept Hosted, the way to pay without JavaScript: the shopper types the card on Authorize.Net's hosted form.

The shop never sends this charge itself. A hosted charge attempt is recorded `hosted` when the order is placed
(or paid again); the form charges the card under the order's invoice number; when the shopper comes back (or
cancels, or never returns) the finalize job looks the charge up on the gateway's books by invoice number, like
the reconciliation of a lost answer, and the order follows the usual flow to paid or payment_failed.
An attempt runs hosted → sending (being looked up) → approved | held, back to hosted (not paid yet), or
unknown (the shopper is done with the form: reconciliation decides, and with no nonce to resend, a charge
not found fails the payment).
"""

from datetime import datetime

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from storefront.orders.models import Order
from storefront.payments.gateway import HostedPageRequest
from storefront.payments.models import PaymentAttempt

DESCRIPTOR = "ACCEPT.HOSTED"  # stands where an Accept.js nonce's dataDescriptor would
WAITING = "hosted"


def charge_values(order_id: int, total, number: str, n: int = 1) -> dict:
    """The row of a hosted charge for an order: nothing to send, the shopper pays on the hosted form."""
    return {
        "order_id": order_id,
        "kind": "charge",
        "status": WAITING,
        "amount": total,
        "invoice_number": number,
        "nonce_descriptor": DESCRIPTOR,
        "nonce_value": None,
        # One hosted charge per visit to the pay page: the unique (order, kind, nonce_hash) keeps repeats out.
        "nonce_hash": f"hosted:{n}",
    }


def new_charge(session: Session, order: Order) -> PaymentAttempt:
    """Record another hosted charge for an order whose payment failed."""
    n = 1 + session.scalar(
        select(func.count(PaymentAttempt.id)).where(
            PaymentAttempt.order_id == order.id, PaymentAttempt.nonce_descriptor == DESCRIPTOR
        )
    )
    attempt = PaymentAttempt(**charge_values(order.id, order.total, order.number, n))
    session.add(attempt)
    return attempt


def _signer(secret_key: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret_key, salt="storefront.hosted-return")


def return_key(secret_key: str, number: str, attempt_id: int) -> str:
    """The signed part of the return and cancel URLs the gateway sends the shopper back to (no cookie needed)."""
    return _signer(secret_key).dumps([number, attempt_id])


def read_return_key(secret_key: str, key: str) -> tuple[str, int] | None:
    """(order number, attempt id) a return key names, or None when it is forged."""
    try:
        number, attempt_id = _signer(secret_key).loads(key)
    except (BadSignature, ValueError, TypeError):
        return None
    return (number, attempt_id) if isinstance(number, str) and isinstance(attempt_id, int) else None


def is_hosted(attempt: PaymentAttempt | None) -> bool:
    return attempt is not None and attempt.nonce_descriptor == DESCRIPTOR


def page_request(
    order: Order, attempt: PaymentAttempt, capture: bool, return_url: str, cancel_url: str
) -> HostedPageRequest:
    """What the hosted form is to charge for this attempt, and where it sends the shopper back to."""
    return HostedPageRequest(
        amount=attempt.amount,
        invoice_number=attempt.invoice_number,
        ref_id=f"H{attempt.id}",
        capture=capture,
        return_url=return_url,
        cancel_url=cancel_url,
        email=order.email,
        customer_id=f"U{order.user_id}" if order.user_id else "",
    )


def _move(session: Session, attempt: PaymentAttempt, source: tuple[str, ...], to: str) -> bool:
    won = session.execute(
        update(PaymentAttempt)
        .where(PaymentAttempt.id == attempt.id, PaymentAttempt.status.in_(source))
        .values(status=to, tries=PaymentAttempt.tries + int(to == "sending"), updated_at=func.now())
    ).rowcount
    session.refresh(attempt)
    return bool(won)


def claim(session: Session, attempt: PaymentAttempt) -> bool:
    """Take the right to look this hosted charge up on the gateway; only one caller wins."""
    return _move(session, attempt, (WAITING,), "sending")


def reopen(session: Session, attempt: PaymentAttempt) -> bool:
    """Not on the gateway's books yet: the shopper may still pay on the form."""
    return _move(session, attempt, ("sending",), WAITING)


def finish(session: Session, attempt: PaymentAttempt) -> bool:
    """The shopper is done with the form (cancelled, or its token ran out): reconciliation decides now."""
    return _move(session, attempt, (WAITING,), "unknown")


def issued(session: Session, attempt: PaymentAttempt) -> None:
    """A form token was just issued for this charge: its 15 minutes count from now."""
    session.execute(
        update(PaymentAttempt)
        .where(PaymentAttempt.id == attempt.id, PaymentAttempt.status == WAITING)
        .values(updated_at=func.now())
    )


def expire_forms(session: Session, issued_before: datetime) -> int:
    """Hosted charges whose last form token ran out before `issued_before`: hand them to reconciliation."""
    return session.execute(
        update(PaymentAttempt)
        .where(
            PaymentAttempt.nonce_descriptor == DESCRIPTOR,
            PaymentAttempt.status == WAITING,
            PaymentAttempt.updated_at < issued_before,
        )
        .values(status="unknown", updated_at=func.now())
    ).rowcount
