"""Every job is idempotent: run twice, directly, it gives the same result and changes nothing twice.

The jobs run on the embedded test gateway (Authorize.Net's sandbox rules, in this process) and, with no
REDIS_URL, whatever a job enqueues runs right away in the same process, as in `make run`.
"""

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from jobs import emails, maintenance
from jobs.payments import (
    capture_payment,
    check_payment,
    finalize_order,
    reconcile_charge,
    refund_payment,
    void_payment,
)
from storefront.cart.models import Cart
from storefront.catalog.models import Variant
from storefront.orders.models import Order, OrderEvent
from storefront.payments import followups
from storefront.payments.gateway import TestGateway
from storefront.payments.models import PaymentAttempt
from tests.factories import make_order, make_user
from tests.helpers import read_outbox


@pytest.fixture
def gateway(app, monkeypatch) -> TestGateway:
    """A fresh in-process gateway for one test, so its ledger holds only this test's transactions."""
    fresh = TestGateway()
    monkeypatch.setitem(app.extensions, "payment_gateway", fresh)
    monkeypatch.setitem(app.config, "PAYMENT_CAPTURE", "auth_capture")
    return fresh


def run(app, job, *args):
    with app.app_context():
        return job(*args)


def twice(app, job, *args) -> list:
    return [run(app, job, *args), run(app, job, *args)]


def charge_of(session, order) -> PaymentAttempt:
    session.expire_all()
    return session.scalar(
        select(PaymentAttempt)
        .where(PaymentAttempt.order_id == order.id, PaymentAttempt.kind == "charge")
        .order_by(PaymentAttempt.id.desc())
    )


def status_of(session, order) -> str:
    session.expire_all()
    return session.get(Order, order.id).status


def events_of(session, order) -> list[str]:
    return list(session.scalars(select(OrderEvent.kind).where(OrderEvent.order_id == order.id)))


def paid(app, session) -> Order:
    order = make_order(session, quantity=2)
    assert run(app, finalize_order, order.id) == "paid"
    session.expire_all()
    return session.get(Order, order.id)


def follow_up(app, session, order, kind: str, **extra) -> PaymentAttempt:
    """Record a capture, void or refund the way the staff's request does, without sending it."""
    state = followups.money(session, order, app.config["PAYMENT_CAPTURE"] == "auth_only")
    new = {"capture": followups.new_capture, "void": followups.new_void, "refund": followups.new_refund}[kind]
    attempt = new(session, order, state, *extra.values(), "staff@example.com")
    session.flush()
    return attempt


def age(session, attempt: PaymentAttempt, by: timedelta) -> None:
    session.execute(
        update(PaymentAttempt)
        .where(PaymentAttempt.id == attempt.id)
        .values(created_at=datetime.now(UTC) - by, updated_at=datetime.now(UTC) - by)
    )


# --- payment jobs --------------------------------------------------------------------------------------


def test_finalize_order_twice_charges_and_confirms_once(app, gateway, connection, session, outbox):
    order = make_order(session)
    assert twice(app, finalize_order, order.id) == ["paid", "nothing to do"]
    assert status_of(session, order) == "paid"
    assert len(gateway.ledger.transactions()) == 1
    assert [m["Subject"] for m in read_outbox(outbox)] == [f"Your Storefront order {order.number}"]


def test_reconcile_charge_twice_sends_a_lost_charge_once(app, gateway, connection, session):
    order = make_order(session)
    attempt = charge_of(session, order)
    attempt.status, attempt.tries = "unknown", 1  # sent, answer lost; the gateway never got it
    session.flush()
    assert twice(app, reconcile_charge, attempt.id) == ["paid", "already handled"]
    assert status_of(session, order) == "paid" and len(gateway.ledger.transactions()) == 1


def test_reconcile_charge_twice_finds_an_answered_charge_without_resending(app, gateway, connection, session):
    order = make_order(session)
    attempt = charge_of(session, order)
    gateway.charge(
        amount=attempt.amount,
        nonce_descriptor=attempt.nonce_descriptor,
        nonce_value=attempt.nonce_value,
        invoice_number=attempt.invoice_number,
        ref_id="A-lost",
        capture=True,
    )
    attempt.status, attempt.tries = "unknown", 1
    session.flush()
    assert twice(app, reconcile_charge, attempt.id) == ["reconciled: paid", "already handled"]
    assert len(gateway.ledger.transactions()) == 1


def test_check_payment_twice_settles_a_held_charge_once(app, gateway, connection, session, outbox):
    order = make_order(session)
    attempt = charge_of(session, order)
    attempt.nonce_value = "test-held"
    session.flush()
    assert run(app, finalize_order, order.id) == "held"
    assert twice(app, check_payment, attempt.id) == ["still held", "still held"]
    gateway.ledger.review(charge_of(session, order).trans_id, approve=True)
    assert twice(app, check_payment, attempt.id) == ["paid", "nothing to do"]
    assert status_of(session, order) == "paid" and len(read_outbox(outbox)) == 1


def test_capture_payment_twice_captures_once(app, gateway, connection, session, monkeypatch):
    monkeypatch.setitem(app.config, "PAYMENT_CAPTURE", "auth_only")
    order = paid(app, session)
    capture = follow_up(app, session, order, "capture")
    assert twice(app, capture_payment, capture.id) == ["approved", "already handled"]
    [txn] = gateway.ledger.transactions()
    assert txn.status == "capturedPendingSettlement"
    assert events_of(session, order).count("payment") == 2  # requested, captured: once each


def test_void_payment_twice_voids_and_tells_the_customer_once(app, gateway, connection, session, outbox):
    order = paid(app, session)
    void = follow_up(app, session, order, "void")
    assert twice(app, void_payment, void.id) == ["approved", "already handled"]
    assert status_of(session, order) == "refunded"
    assert session.get(Variant, order.lines[0].variant_id).reserved == 0  # released once, not twice
    assert [m["Subject"] for m in read_outbox(outbox)][1:] == [
        f"Your Storefront order {order.number}: $20.00 refunded"
    ]


def test_refund_payment_twice_refunds_once(app, gateway, connection, session, outbox):
    order = paid(app, session)
    gateway.ledger.settle()
    refund = follow_up(app, session, order, "refund", amount=Decimal("5.00"))
    assert twice(app, refund_payment, refund.id) == ["approved", "already handled"]
    refunds = [t for t in gateway.ledger.transactions() if t.invoice_number == refund.invoice_number]
    assert len(refunds) == 1
    session.expire_all()
    assert followups.money(session, order, False).refunded == Decimal("5.00")
    assert len(read_outbox(outbox)) == 2  # the confirmation, then one refund notice


def test_a_follow_up_job_for_another_kind_does_nothing(app, gateway, connection, session):
    order = paid(app, session)
    void = follow_up(app, session, order, "void")
    assert twice(app, capture_payment, void.id) == ["no such attempt", "no such attempt"]
    session.expire_all()
    assert session.get(PaymentAttempt, void.id).status == "created"


# --- e-mail jobs: at least once, so a second run sends the same message again and changes no data ---------


def mails(outbox) -> list[tuple[str, str, str]]:
    """To, subject and body of each e-mail; links are left out, as their signed tokens carry the time."""
    return [
        (m["To"], m["Subject"], re.sub(r"https?://\S+", "<link>", m.get_content()))
        for m in read_outbox(outbox)
    ]


def same_mail_twice(app, outbox, job, *args) -> list:
    run(app, job, *args)
    first = mails(outbox)
    run(app, job, *args)
    assert mails(outbox)[len(first) :] == first
    return first


def test_account_e_mails_run_twice_send_the_same_message(app, connection, session, outbox):
    user = make_user(session, email_verified_at=None)
    for job, subject in [
        (emails.send_verification, "Confirm your Storefront account"),
        (emails.send_account_exists, "You already have a Storefront account"),
        (emails.send_password_reset, "Reset your Storefront password"),
    ]:
        for old in outbox.glob("*.eml"):
            old.unlink()
        [(to, got, _body)] = same_mail_twice(app, outbox, job, user.id)
        assert (to, got) == (user.email, subject)


def test_order_e_mails_run_twice_send_the_same_message(app, gateway, connection, session, outbox):
    order = paid(app, session)
    order.status, order.tracking_number = "shipped", "1Z999AA10123456784"
    session.flush()
    for old in outbox.glob("*.eml"):
        old.unlink()
    [(_to, subject, _body)] = same_mail_twice(app, outbox, emails.send_shipping_confirmation, order.id)
    assert subject.endswith("is on its way")
    for old in outbox.glob("*.eml"):
        old.unlink()
    assert len(same_mail_twice(app, outbox, emails.send_order_confirmations, [order.id])) == 1
    order.status = "cancelled"
    session.flush()
    for old in outbox.glob("*.eml"):
        old.unlink()
    [(_to, subject, _body)] = same_mail_twice(app, outbox, emails.send_cancellation_notice, order.id)
    assert subject.endswith("is cancelled")


def test_e_mails_about_the_wrong_state_send_nothing_however_often(app, gateway, connection, session, outbox):
    order = make_order(session)  # not paid, not shipped, not cancelled
    verified = make_user(session)
    for job, arg in [
        (emails.send_order_confirmation, order.id),
        (emails.send_shipping_confirmation, order.id),
        (emails.send_cancellation_notice, order.id),
        (emails.send_verification, verified.id),
        (emails.send_password_reset, None),
    ]:
        twice(app, job, arg)
    twice(app, emails.send_refund_notice, order.id, charge_of(session, order).id)
    assert read_outbox(outbox) == []


# --- maintenance sweeps ----------------------------------------------------------------------------------


def test_releasing_expired_reservations_twice_releases_once(app, gateway, connection, session):
    order = make_order(session, quantity=3, expires_at=datetime.now(UTC) - timedelta(minutes=1))
    variant_id = order.lines[0].variant_id
    assert twice(app, maintenance.release_expired_reservations) == [1, 0]
    assert status_of(session, order) == "expired"
    assert session.get(Variant, variant_id).reserved == 0


def test_redriving_lost_orders_twice_charges_once(app, gateway, connection, session):
    order = make_order(session)
    age(session, charge_of(session, order), timedelta(minutes=5))
    assert twice(app, maintenance.redrive_lost_orders) == [1, 0]
    assert status_of(session, order) == "paid" and len(gateway.ledger.transactions()) == 1


def test_reconciling_uncertain_payments_twice_settles_once(app, gateway, connection, session):
    order = make_order(session)
    attempt = charge_of(session, order)
    attempt.status, attempt.tries = "unknown", 1
    session.flush()
    assert twice(app, maintenance.reconcile_uncertain_payments) == [1, 0]
    assert status_of(session, order) == "paid" and len(gateway.ledger.transactions()) == 1


def test_redriving_payment_operations_twice_sends_once(app, gateway, connection, session):
    order = paid(app, session)
    void = follow_up(app, session, order, "void")
    age(session, void, timedelta(minutes=5))
    assert twice(app, maintenance.redrive_payment_operations) == [1, 0]
    session.expire_all()
    assert session.get(PaymentAttempt, void.id).status == "approved"
    assert [t.status for t in gateway.ledger.transactions()] == ["voided"]


def test_rechecking_held_payments_twice_asks_again_and_changes_nothing(app, gateway, connection, session):
    order = make_order(session)
    attempt = charge_of(session, order)
    attempt.nonce_value = "test-held"
    session.flush()
    assert run(app, finalize_order, order.id) == "held"
    age(session, attempt, timedelta(minutes=10))
    assert twice(app, maintenance.recheck_held_payments) == [1, 1]  # still held: still worth asking
    assert charge_of(session, order).status == "held" and status_of(session, order) == "payment_review"


def test_purging_abandoned_carts_twice_deletes_once(app, connection, session):
    old, fresh, owned = Cart(), Cart(), Cart(user_id=make_user(session).id)
    session.add_all([old, fresh, owned])
    session.flush()
    long_ago = datetime.now(UTC) - timedelta(days=31)
    session.execute(update(Cart).where(Cart.id.in_([old.id, owned.id])).values(updated_at=long_ago))
    assert twice(app, maintenance.purge_abandoned_carts) == [1, 0]
    left = set(session.scalars(select(Cart.id).where(Cart.id.in_([old.id, fresh.id, owned.id]))))
    assert left == {fresh.id, owned.id}
