"""Payments through the real SDK over real HTTP against the loopback Authorize.Net, and order finalization."""

import hashlib
import hmac
import json
import subprocess
import sys
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import create_engine, delete, select, update
from sqlalchemy.orm import Session

from jobs import maintenance
from jobs import payments as payment_jobs
from jobs.payments import check_payment, finalize_order, reconcile_charge
from storefront import ROOT, create_app, queues
from storefront.catalog.models import Category, Product
from storefront.orders.models import Order
from storefront.payments import services as payments
from storefront.payments.gateway import AuthorizeNetGateway, GatewayUnavailable
from storefront.payments.models import PaymentAttempt, WebhookEvent
from tests.factories import make_order, make_product
from tools import anet_loopback

LOGIN, KEY = anet_loopback.DEFAULT_LOGIN, anet_loopback.DEFAULT_KEY
NONCE = "COMMON.ACCEPT.INAPP.PAYMENT"


def charge(gateway, nonce="test-approve", invoice="SF-TEST000001", amount="19.99", **extra):
    return gateway.charge(
        amount=Decimal(amount),
        nonce_descriptor=NONCE,
        nonce_value=nonce,
        invoice_number=invoice,
        ref_id="A1-1",
        capture=True,
        email="a@example.com",
        name="Ada Lovelace",
        zip_code=extra.pop("zip_code", "62701"),
        country="US",
        **extra,
    )


# --- the adapter --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nonce", "outcome", "reason"),
    [
        ("test-approve", "approved", "1"),
        ("test-decline", "declined", "2"),
        ("test-held", "held", "252"),
        ("test-error", "error", "57"),
    ],
)
def test_outcomes_follow_the_response_code(gateway, nonce, outcome, reason):
    result = charge(gateway, nonce)
    assert (result.outcome, result.reason_code) == (outcome, reason)


def test_an_approval_carries_its_transaction(gateway, loopback):
    result = charge(gateway)
    assert result.outcome == "approved" and result.trans_id and len(result.auth_code) == 6
    assert result.avs == "Y" and result.account == "Visa XXXX1111"
    [txn] = loopback.ledger.transactions()
    assert txn.trans_id == result.trans_id and txn.auth_amount == Decimal("19.99")


def test_decline_by_billing_zip(gateway):
    assert charge(gateway, zip_code="46282").outcome == "declined"


def test_an_invalid_nonce_is_an_error_that_charged_nothing(gateway, loopback):
    result = charge(gateway, "no-such-nonce")
    assert result.outcome == "error" and result.nonce_spent and result.reason_code == "E00114"
    assert loopback.ledger.transactions() == []


def test_a_resend_inside_the_duplicate_window_returns_the_original(gateway, loopback):
    first = charge(gateway)
    again = charge(gateway)
    assert again.duplicate and again.trans_id == first.trans_id
    assert len(loopback.ledger.transactions()) == 1


@pytest.mark.parametrize("mode", ["http500", "lost_after_charge", "hang"])
def test_no_answer_is_unknown_never_a_decline(gateway, loopback, mode):
    loopback.set_fault(mode, hang_seconds=4)
    result = charge(gateway)
    assert result.outcome == "unknown"
    booked = loopback.ledger.transactions()
    if mode == "lost_after_charge":
        assert [t.invoice_number for t in gateway.find_by_invoice("SF-TEST000001")] == [
            booked[0].invoice_number
        ]
    else:
        assert booked == [] and gateway.find_by_invoice("SF-TEST000001") == []


def test_queries_without_an_answer_raise_gateway_unavailable(loopback):
    dead = AuthorizeNetGateway(LOGIN, KEY, "http://127.0.0.1:9/xml/v1/request.api", timeout=(1, 1))
    with pytest.raises(GatewayUnavailable):
        dead.find_by_invoice("SF-X")
    assert charge(dead).outcome == "unknown"


def test_bad_credentials_are_an_error(loopback):
    wrong = AuthorizeNetGateway(LOGIN, "wrong-key", loopback.endpoint)
    result = charge(wrong)
    assert result.outcome == "error" and result.reason_code == "E00007"


def test_transaction_details_and_follow_ups(gateway, loopback):
    auth = gateway.charge(
        amount=Decimal("30.00"),
        nonce_descriptor=NONCE,
        nonce_value="test-approve",
        invoice_number="SF-AUTH0001",
        ref_id="A2-1",
        capture=False,
    )
    assert gateway.transaction(auth.trans_id).status == "authorizedPendingCapture"
    assert gateway.capture(auth.trans_id, Decimal("30.00"), "C1").outcome == "approved"
    again = gateway.capture(auth.trans_id, Decimal("30.00"), "C2")
    assert again.outcome == "approved" and again.reason_code == "311"
    assert gateway.refund(auth.trans_id, Decimal("5.00"), "1111", "R-SF-AUTH0001-1", "R1").reason_code == "54"
    loopback.ledger.settle()
    assert (
        gateway.refund(auth.trans_id, Decimal("5.00"), "1111", "R-SF-AUTH0001-1", "R1").outcome == "approved"
    )
    other = charge(gateway, invoice="SF-VOID0001")
    assert gateway.void(other.trans_id, "V1").outcome == "approved"
    assert gateway.void(other.trans_id, "V2").reason_code == "310"
    assert gateway.transaction("99999999999") is None


def test_two_gateways_in_threads_never_cross_endpoints(loopback):
    """The SDK keeps one global endpoint; our transport must post each call to its own gateway's."""
    second = anet_loopback.start()
    try:
        loopback.reset()
        gateways = {
            "A": AuthorizeNetGateway(LOGIN, KEY, loopback.endpoint),
            "B": AuthorizeNetGateway(LOGIN, KEY, second.endpoint),
        }

        outcomes = []

        def run(name, thread, n):
            for i in range(n):
                outcomes.append(charge(gateways[name], invoice=f"SF-{name}{thread}{i:06d}").outcome)

        threads = [threading.Thread(target=run, args=(name, t, 15)) for name in "AB" for t in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert outcomes == ["approved"] * 90
        assert {t.invoice_number[3] for t in loopback.ledger.transactions()} == {"A"}
        assert {t.invoice_number[3] for t in second.ledger.transactions()} == {"B"}
    finally:
        second.stop()


# --- finalization against the loopback ----------------------------------------------------------------


@pytest.fixture
def anet_app(database_url, media_folder, loopback, app, monkeypatch):
    """The session's app, switched to Authorize.Net (over the loopback) for one test."""
    monkeypatch.setitem(
        app.extensions,
        "payment_gateway",
        AuthorizeNetGateway(LOGIN, KEY, loopback.endpoint, timeout=(1, 1.5)),
    )
    loopback.reset()
    return app


def run(app, job, *args):
    with app.app_context():
        return job(*args)


def attempt_of(session, order) -> PaymentAttempt:
    session.expire_all()
    return session.scalar(
        select(PaymentAttempt).where(PaymentAttempt.order_id == order.id).order_by(PaymentAttempt.id.desc())
    )


def test_finalize_charges_once_however_often_it_runs(anet_app, connection, session, loopback):
    order = make_order(session)
    assert run(anet_app, finalize_order, order.id) == "paid"
    assert run(anet_app, finalize_order, order.id) == "nothing to do"
    session.refresh(order)
    assert order.status == "paid" and len(loopback.ledger.transactions()) == 1


def test_a_batch_claims_the_oldest_waiting_charges_of_pending_orders(connection, session):
    first, second, third = (make_order(session) for _ in range(3))
    expired = make_order(session)
    expired.status = "expired"
    session.flush()

    claimed = payments.claim_waiting(session, 2)

    ids = {order.id: attempt_of(session, order) for order in (first, second, third, expired)}
    assert claimed == [ids[first.id].id, ids[second.id].id]
    assert [ids[o.id].status for o in (first, second, third, expired)] == [
        "sending",
        "sending",
        "created",
        "created",
    ]
    assert ids[first.id].tries == 1
    assert payments.claim_waiting(session, 5) == [ids[third.id].id]  # never the expired order's, never twice
    assert payments.claim_waiting(session, 0) == []


def test_finalize_sends_a_batch_on_threads_and_each_order_is_charged_once(
    anet_app, database_url, loopback, monkeypatch
):
    """Threads need their own connections, so this test commits to the database (and cleans up after)."""
    monkeypatch.setitem(anet_app.config, "PAYMENT_BATCH", 3)
    monkeypatch.setitem(anet_app.config, "REDIS_URL", "redis://unused")  # batches are for real workers only
    enqueued = []  # the e-mails: no queue here
    monkeypatch.setattr(queues, "enqueue", lambda func, *args, **_kw: enqueued.append((func.__name__, *args)))
    sessions_from = []
    real_get_session = payment_jobs.get_session

    def get_session():
        sessions_from.append(threading.current_thread().name)
        return real_get_session()

    monkeypatch.setattr(payment_jobs, "get_session", get_session)
    engine = create_engine(database_url)
    with Session(engine) as own:
        product = make_product(own, variants=[{"on_hand": 10}])
        made = [make_order(own, product.variants[0]).id for _ in range(4)]
        product_id, category_id = product.id, product.category_id
        own.commit()
    try:
        outcomes = [run(anet_app, finalize_order, order_id) for order_id in made]
        with Session(engine) as own:
            statuses = dict(own.execute(select(Order.id, Order.status).where(Order.id.in_(made))).all())
            tries = own.scalars(select(PaymentAttempt.tries).where(PaymentAttempt.order_id.in_(made))).all()
    finally:
        with Session(engine) as own:
            own.execute(delete(Order).where(Order.id.in_(made)))
            own.delete(own.get(Product, product_id))  # with its variants and images
            own.flush()
            own.delete(own.get(Category, category_id))
            own.commit()
        engine.dispose()

    # The gateway threads never touched the database: one session (one connection) per job, not per charge.
    assert sessions_from and all(name == threading.main_thread().name for name in sessions_from)
    # The first job sent three charges at once; the next two found their orders paid, the fourth sent its own.
    assert outcomes == ["paid", "nothing to do", "nothing to do", "paid"]
    assert statuses == dict.fromkeys(made, "paid")
    assert sorted(tries) == [1, 1, 1, 1]
    invoices = Counter(t.invoice_number for t in loopback.ledger.transactions())
    assert sorted(invoices.values()) == [1, 1, 1, 1]
    # One confirmation job per payment job, for every order it found paid.
    assert enqueued == [("send_order_confirmations", made[:3]), ("send_order_confirmations", [made[3]])]


def test_a_batch_of_confirmations_never_confirms_twice_when_the_mail_server_fails(
    anet_app, connection, session, outbox, monkeypatch
):
    from jobs import emails
    from storefront import mail
    from tests.helpers import read_outbox

    made = [make_order(session, status="paid").id for _ in range(3)]
    real_send, sent = mail.send, []

    def flaky(message):
        if len(sent) == 1:
            raise OSError("mail server went away")
        sent.append(message["To"])
        real_send(message)

    monkeypatch.setattr(mail, "send", flaky)
    enqueued = []
    monkeypatch.setattr(queues, "enqueue", lambda func, *args, **_kw: enqueued.append((func.__name__, *args)))
    run(anet_app, emails.send_order_confirmations, made)
    assert len(read_outbox(outbox)) == 1  # the first; the second failed
    assert enqueued == [("send_order_confirmation", made[1]), ("send_order_confirmation", made[2])]


def test_a_crash_after_the_gateway_approved_is_reconciled_to_one_charge(
    anet_app, connection, session, loopback, monkeypatch
):
    from storefront.payments import services as payments

    order = make_order(session)

    def crash(*_args, **_kwargs):
        raise SystemExit("worker killed after the gateway answered")

    with monkeypatch.context() as patched:
        patched.setattr(payments, "record_charge", crash)
        with pytest.raises(SystemExit):
            run(anet_app, finalize_order, order.id)
    attempt = attempt_of(session, order)
    assert attempt.status == "sending" and len(loopback.ledger.transactions()) == 1
    # Another worker, a moment later: the silent attempt is stale, so reconcile finds the charge.
    session.execute(
        update(PaymentAttempt)
        .where(PaymentAttempt.id == attempt.id)
        .values(updated_at=datetime.now(UTC) - timedelta(minutes=5))
    )
    assert run(anet_app, maintenance.reconcile_uncertain_payments) == 1
    session.refresh(order)
    assert order.status == "paid" and len(loopback.ledger.transactions()) == 1


def test_an_answer_lost_after_the_charge_is_found_by_invoice(anet_app, connection, session, loopback):
    order = make_order(session)
    loopback.set_fault("lost_after_charge")
    assert run(anet_app, finalize_order, order.id) == "unknown"
    assert attempt_of(session, order).status == "unknown"
    assert run(anet_app, reconcile_charge, attempt_of(session, order).id).startswith("reconciled")
    session.refresh(order)
    assert order.status == "paid" and len(loopback.ledger.transactions()) == 1


@pytest.mark.parametrize("mode", ["http500", "hang"])
def test_a_charge_that_never_arrived_is_sent_again_once(anet_app, connection, session, loopback, mode):
    order = make_order(session)
    loopback.set_fault(mode, hang_seconds=3)
    assert run(anet_app, finalize_order, order.id) == "unknown"
    assert loopback.ledger.transactions() == []
    assert run(anet_app, reconcile_charge, attempt_of(session, order).id) == "paid"
    session.refresh(order)
    assert order.status == "paid" and len(loopback.ledger.transactions()) == 1


def test_a_decline_fails_the_order_and_keeps_the_reservation_until_it_expires(anet_app, connection, session):
    order = make_order(session)
    attempt = attempt_of(session, order)
    attempt.nonce_value = "test-decline"
    session.flush()
    assert run(anet_app, finalize_order, order.id) == "failed"
    session.refresh(order)
    variant_id = order.lines[0].variant_id
    from storefront.catalog.models import Variant

    assert order.status == "payment_failed" and session.get(Variant, variant_id).reserved == 1
    order.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    session.flush()
    assert run(anet_app, maintenance.release_expired_reservations) == 1
    session.expire_all()
    assert session.get(Order, order.id).status == "expired" and session.get(Variant, variant_id).reserved == 0


def test_an_order_with_a_charge_in_flight_does_not_expire(anet_app, connection, session):
    order = make_order(session, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    attempt = attempt_of(session, order)
    attempt.status = "unknown"
    session.flush()
    assert run(anet_app, maintenance.release_expired_reservations) == 0
    session.refresh(order)
    assert order.status == "pending_payment"


def test_an_unsent_charge_of_an_expired_order_is_withdrawn(anet_app, connection, session, loopback):
    order = make_order(session, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert run(anet_app, maintenance.release_expired_reservations) == 1
    assert attempt_of(session, order).status == "cancelled"
    assert run(anet_app, finalize_order, order.id) == "nothing to do"
    assert loopback.ledger.transactions() == []


def test_lost_orders_are_driven_again(anet_app, connection, session, loopback):
    order = make_order(session)
    session.execute(
        update(PaymentAttempt)
        .where(PaymentAttempt.order_id == order.id)
        .values(created_at=datetime.now(UTC) - timedelta(minutes=5))
    )
    assert run(anet_app, maintenance.redrive_lost_orders) == 1  # inline queue: finalize runs now
    session.refresh(order)
    assert order.status == "paid"


def test_a_held_payment_is_settled_by_a_later_check(anet_app, connection, session, loopback):
    order = make_order(session)
    attempt = attempt_of(session, order)
    attempt.nonce_value = "test-held"
    session.flush()
    assert run(anet_app, finalize_order, order.id) == "held"
    session.refresh(order)
    assert order.status == "payment_review"
    txn = loopback.ledger.details(attempt_of(session, order).trans_id)
    assert run(anet_app, check_payment, attempt.id) == "still held"
    loopback.ledger.review(txn.trans_id, approve=True)  # the merchant approved it in the review queue
    assert run(anet_app, check_payment, attempt.id) == "paid"
    session.refresh(order)
    assert order.status == "paid"


# --- webhooks -----------------------------------------------------------------------------------------

SIGNATURE_KEY = "A1B2C3" * 21 + "D4"


def signed(body: bytes, key: str = SIGNATURE_KEY) -> dict:
    digest = hmac.new(key.encode(), body, hashlib.sha512).hexdigest().upper()
    return {"X-ANET-Signature": f"sha512={digest}", "Content-Type": "application/json"}


def event(notification_id="n-1", trans_id="60000000001") -> bytes:
    return json.dumps(
        {
            "notificationId": notification_id,
            "eventType": "net.authorize.payment.fraud.approved",
            "eventDate": "2026-11-28T10:00:00Z",
            "webhookId": "w-1",
            "payload": {"responseCode": 1, "authAmount": 300.00, "entityName": "transaction", "id": trans_id},
        },
        separators=(",", ":"),
    ).encode()


@pytest.fixture
def webhook_app(app, monkeypatch):
    monkeypatch.setitem(app.config, "AUTHNET_SIGNATURE_KEY", SIGNATURE_KEY)
    return app


def test_webhook_with_a_bad_signature_is_refused(webhook_app, client, session):
    body = event()
    assert (
        client.post("/payments/webhooks/authorizenet", data=body, headers=signed(body, "0" * 128)).status_code
        == 401
    )
    assert client.post("/payments/webhooks/authorizenet", data=body).status_code == 401
    tampered = body.replace(b"300.0", b"3.0")
    assert (
        client.post("/payments/webhooks/authorizenet", data=tampered, headers=signed(body)).status_code == 401
    )
    assert session.scalar(select(WebhookEvent.id)) is None


def test_webhook_signature_is_checked_on_the_raw_bytes(webhook_app, client, session):
    body = b'{"notificationId":"n-raw","eventType":"x","payload":{"id":"1","authAmount":300.00}}'
    response = client.post("/payments/webhooks/authorizenet", data=body, headers=signed(body))
    assert response.status_code == 200  # json.dumps would have written 300.0: only raw bytes verify


def test_a_repeated_webhook_is_ignored(webhook_app, client, session):
    body = event("n-repeat")
    first = client.post("/payments/webhooks/authorizenet", data=body, headers=signed(body))
    second = client.post("/payments/webhooks/authorizenet", data=body, headers=signed(body))
    assert first.json == {"status": "accepted"} and second.json == {"status": "duplicate"}


def test_a_webhook_for_a_held_charge_rechecks_it(webhook_app, client, session, loopback, monkeypatch):
    monkeypatch.setitem(
        webhook_app.extensions,
        "payment_gateway",
        AuthorizeNetGateway(LOGIN, KEY, loopback.endpoint, timeout=(1, 1.5)),
    )
    loopback.reset()
    order = make_order(session)
    attempt = attempt_of(session, order)
    attempt.nonce_value = "test-held"
    session.flush()
    run(webhook_app, finalize_order, order.id)
    trans_id = attempt_of(session, order).trans_id
    loopback.ledger.review(trans_id, approve=True)
    body = event("n-held", trans_id)
    assert client.post("/payments/webhooks/authorizenet", data=body, headers=signed(body)).status_code == 200
    session.refresh(order)
    assert order.status == "paid"


def test_without_credentials_the_test_gateway_is_used_with_a_warning(database_url, caplog, monkeypatch):
    from storefront.payments.gateway import TestGateway

    monkeypatch.delenv("AUTHNET_API_LOGIN_ID", raising=False)
    app = create_app({"SECRET_KEY": "x", "DATABASE_URL": database_url, "PAYMENT_GATEWAY": "authorizenet"})
    assert isinstance(app.extensions["payment_gateway"], TestGateway)
    assert "using the built-in TEST payment gateway" in caplog.text


def test_importing_the_gateway_leaves_the_sdk_alone_until_a_gateway_is_set_up():
    probe = (
        "import authorizenet.apicontrollersbase as base, requests\n"
        "import storefront.payments.gateway as gateway\n"
        "assert base.requests is requests, 'patched at import'\n"
        "gateway.AuthorizeNetGateway('login', 'key', 'http://127.0.0.1:9/xml/v1/request.api')\n"
        "assert base.requests is not requests, 'not patched at set-up'\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
