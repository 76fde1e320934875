"""E-mail jobs. They take ids and build links themselves, so no token or secret sits in a job's arguments."""

import logging

from flask import current_app

from jobs import job
from storefront import mail, queues
from storefront.accounts import services as accounts
from storefront.accounts.models import User
from storefront.db import get_session
from storefront.orders import services as orders
from storefront.payments import followups
from storefront.payments import services as payments
from storefront.payments.gateway import captures_at_checkout

log = logging.getLogger(__name__)


def _user(user_id: int | None) -> User | None:
    return get_session().get(User, user_id) if user_id is not None else None


@job
def send_verification(user_id: int) -> None:
    """Send the link that confirms a new account's e-mail address."""
    user = _user(user_id)
    if user is None or user.email_verified_at is not None:
        return
    token = accounts.make_token(current_app.config["SECRET_KEY"], "verify", user)
    link = mail.external_url("accounts.verify", token=token)
    mail.send(mail.compose(user.email, "Confirm your Storefront account", "emails/verify.txt", link=link))


@job
def send_account_exists(user_id: int) -> None:
    """Tell an existing account holder that someone tried to register with their address."""
    user = _user(user_id)
    if user is None:
        return
    mail.send(
        mail.compose(
            user.email,
            "You already have a Storefront account",
            "emails/account_exists.txt",
            login=mail.external_url("accounts.login"),
            reset=mail.external_url("accounts.reset_request"),
        )
    )


@job
def send_password_reset(user_id: int | None) -> None:
    """Send a single-use reset link; None (an unknown address) sends nothing, but took the same path."""
    user = _user(user_id)
    if user is None or user.is_disabled:
        return
    token = accounts.make_token(current_app.config["SECRET_KEY"], "reset", user)
    link = mail.external_url("accounts.reset_password", token=token)
    hours = current_app.config["RESET_TOKEN_MAX_AGE"] // 3600
    mail.send(
        mail.compose(user.email, "Reset your Storefront password", "emails/reset.txt", link=link, hours=hours)
    )


def _mail_about(order, subject: str, template: str, **context) -> None:
    """E-mail the order's customer, with a link to the order a guest can open without an account."""
    key = orders.view_key(current_app.config["SECRET_KEY"], order.number)
    link = mail.external_url("orders.status", number=order.number, key=key)
    mail.send(mail.compose(order.email, subject, template, order=order, link=link, **context))


@job
def send_order_confirmation(order_id: int) -> None:
    """Confirm a paid order."""

    _confirm(orders.get(get_session(), order_id))


@job
def send_order_confirmations(order_ids: list[int]) -> None:
    """Confirm paid orders, one e-mail each (a payment batch's, read in one query). Should the mail server
    fail partway, the orders not confirmed yet go on as single jobs with their own retries, so nobody is
    confirmed twice by a retry of the whole batch."""

    by_id = orders.by_ids(get_session(), set(order_ids), lines=True)
    for position, order_id in enumerate(order_ids):
        try:
            _confirm(by_id.get(order_id))
        except Exception:
            log.exception(
                "confirming order %s failed; it and the rest of its batch go on one by one", order_id
            )
            for rest in order_ids[position:]:
                queues.enqueue(send_order_confirmation, rest, retry=queues.EMAIL_RETRY)
            return


def _confirm(order) -> None:

    if order is not None and order.status in orders.SOLD:
        _mail_about(order, f"Your Storefront order {order.number}", "emails/order_confirmation.txt")


@job
def send_shipping_confirmation(order_id: int) -> None:
    """Tell the customer the order is on its way: the tracking number and a link to the order."""

    order = orders.get(get_session(), order_id)
    if order is None or order.status != "shipped" or not order.tracking_number:
        return
    _mail_about(order, f"Your Storefront order {order.number} is on its way", "emails/shipped.txt")


@job
def send_refund_notice(order_id: int, attempt_id: int) -> None:
    """Tell the customer money went back to their card, once the gateway has confirmed that refund (or the
    void that gave all of it back)."""

    session = get_session()
    order = orders.get(session, order_id)
    attempt = payments.get_attempt(session, attempt_id)
    if (
        order is None
        or attempt is None
        or attempt.order_id != order.id
        or attempt.kind not in ("refund", "void")
        or attempt.status != "approved"
    ):
        return
    state = followups.money(session, order, not captures_at_checkout())
    _mail_about(
        order,
        f"Your Storefront order {order.number}: ${attempt.amount:,.2f} refunded",
        "emails/refunded.txt",
        attempt=attempt,
        returned=state.returned,
        all_returned=state.all_returned,
    )


@job
def send_cancellation_notice(order_id: int) -> None:
    """Tell the customer the order was cancelled, and whether money is on its way back."""

    order = orders.get(get_session(), order_id)
    if order is None or order.status != "cancelled":
        return
    _mail_about(
        order,
        f"Your Storefront order {order.number} is cancelled",
        "emails/cancelled.txt",
        paid=order.paid_at is not None,
    )
