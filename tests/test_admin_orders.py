"""Staff orders: filters, detail, and capture, void, refund, ship and cancel through the real SDK over HTTP
against the loopback Authorize.Net, with the test app's inline queue running each job right after commit."""

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from jobs import emails
from jobs import payments as payment_jobs
from jobs.payments import finalize_order, refund_payment
from storefront.audit.models import AuditEntry
from storefront.catalog.models import Variant
from storefront.orders.models import Order
from storefront.payments import followups
from storefront.payments.gateway import AuthorizeNetGateway
from storefront.payments.models import PaymentAttempt
from tests.factories import make_order, make_product, make_user
from tests.helpers import csrf_token, read_outbox
from tools import anet_loopback

LOGIN, KEY = anet_loopback.DEFAULT_LOGIN, anet_loopback.DEFAULT_KEY


@pytest.fixture
def anet_app(app, loopback, monkeypatch):
    """The session's app, paying through Authorize.Net (the loopback) for one test."""
    monkeypatch.delenv("http_proxy", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    monkeypatch.setitem(
        app.extensions,
        "payment_gateway",
        AuthorizeNetGateway(LOGIN, KEY, loopback.endpoint, timeout=(1, 1.5)),
    )
    monkeypatch.setitem(app.config, "PAYMENT_CAPTURE", "auth_capture")
    loopback.reset()
    return app


@pytest.fixture
def auth_only(anet_app, monkeypatch):
    monkeypatch.setitem(anet_app.config, "PAYMENT_CAPTURE", "auth_only")


def run(app, job, *args):
    with app.app_context():
        return job(*args)


def paid_order(app, session, quantity=2, **fields) -> Order:
    """An order charged through the loopback ($10.00 a unit, reserved like checkout does)."""
    order = make_order(session, quantity=quantity, **fields)
    assert run(app, finalize_order, order.id) == "paid"
    session.expire_all()
    return session.get(Order, order.id)


def act(client, order, action, htmx=False, **data):
    headers = {"HX-Request": "true"} if htmx else {}
    return client.post(
        f"/admin/orders/{order.number}/{action}",
        data={"csrf_token": csrf_token(client), **data},
        headers=headers,
    )


def attempts(session, order, kind=None) -> list[PaymentAttempt]:
    session.expire_all()
    stmt = select(PaymentAttempt).where(PaymentAttempt.order_id == order.id).order_by(PaymentAttempt.id)
    if kind:
        stmt = stmt.where(PaymentAttempt.kind == kind)
    return list(session.scalars(stmt))


def refunds_on(loopback) -> list:
    return [t for t in loopback.ledger.transactions() if t.transaction_type == "refundTransaction"]


def status_of(session, order) -> str:
    session.expire_all()
    return session.get(Order, order.id).status


def variant_of(session, order) -> Variant:
    session.expire_all()
    return session.get(Variant, session.get(Order, order.id).lines[0].variant_id)


# --- list, search, export --------------------------------------------------------------------------


@pytest.fixture
def shelf(session):
    """Four orders to filter: statuses, customers, totals and days differ."""
    variant = make_product(session, variants=[{"on_hand": 50}]).variants[0]
    old = datetime.now(UTC) - timedelta(days=10)
    return {
        "ann": make_order(session, variant, 1, status="paid", email="ann@example.com"),
        "bob": make_order(session, variant, 3, status="shipped", email="bob@example.com", reserve=False),
        "cat": make_order(session, variant, 5, status="pending_payment", email="cat@example.com"),
        "old": make_order(session, variant, 2, status="paid", email="ann@example.com", created_at=old),
    }


def listed(client, query: str) -> set[str]:
    response = client.get(f"/admin/orders?{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return set(re.findall(r'href="/admin/orders/(SF-[A-Z0-9]+)"', response.get_data(as_text=True)))


def test_orders_filter_by_status_customer_amount_and_date(client, session, staff, shelf):
    numbers = {name: order.number for name, order in shelf.items()}
    assert listed(client, "") >= set(numbers.values())
    assert listed(client, "status=paid") & set(numbers.values()) == {numbers["ann"], numbers["old"]}
    assert listed(client, "email=ANN@") & set(numbers.values()) == {numbers["ann"], numbers["old"]}
    assert listed(client, "min_total=25&max_total=40") & set(numbers.values()) == {numbers["bob"]}
    today = datetime.now(UTC).date()
    recent = listed(client, f"since={today - timedelta(days=1)}&until={today}")
    assert numbers["old"] not in recent and numbers["ann"] in recent
    ten_days_ago = (today - timedelta(days=10)).isoformat()
    assert numbers["old"] in listed(client, f"since={ten_days_ago}&until={ten_days_ago}")


def test_orders_search_by_number_or_email(client, session, staff, shelf):
    numbers = {name: order.number for name, order in shelf.items()}
    assert listed(client, f"q={numbers['cat']}") == {numbers["cat"]}
    assert listed(client, f"q={numbers['cat'][3:].lower()}") == {numbers["cat"]}  # without SF-, any case
    assert listed(client, "q=bob%40example") == {numbers["bob"]}
    assert listed(client, "q=%25") == set()  # a wildcard typed is a literal character


def test_bad_filters_say_what_is_wrong_and_list_nothing(client, staff, shelf):
    for query, words in [
        ("min_total=abc", "Total from"),
        ("min_total=NaN", "dollars and cents"),
        ("min_total=50&max_total=10", "below the lower"),
        ("since=2026-02-01&until=2026-01-01", "before the start"),
        ("status=lost", "Status"),
    ]:
        response = client.get(f"/admin/orders?{query}")
        page = response.get_data(as_text=True)
        assert response.status_code == 422, query
        assert words in page and shelf["ann"].number not in page, query


def test_the_filter_form_answers_htmx_with_the_results_only(client, staff, shelf):
    response = client.get("/admin/orders?status=paid", headers={"HX-Request": "true"})
    fragment = response.get_data(as_text=True)
    assert fragment.lstrip().startswith('<section id="order-results"')
    assert shelf["ann"].number in fragment and "HX-Request" in response.headers["Vary"]


def test_csv_export_follows_the_filters_and_defuses_formulas(client, session, staff, shelf):
    shelf["ann"].ship_name = "=HYPERLINK(evil)"
    session.flush()
    response = client.get("/admin/orders/export.csv?status=paid")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert {row["number"] for row in rows} == {shelf["ann"].number, shelf["old"].number}
    ann = next(row for row in rows if row["number"] == shelf["ann"].number)
    assert ann["ship_name"] == "'=HYPERLINK(evil)" and ann["total"] == "10.00" and ann["refunded"] == "0.00"
    assert client.get("/admin/orders/export.csv?min_total=x").status_code == 422


def test_a_missing_order_is_404(client, staff):
    assert client.get("/admin/orders/SF-NOPE").status_code == 404
    missing = client.post("/admin/orders/SF-NOPE/cancel", data={"csrf_token": csrf_token(client)})
    assert missing.status_code == 404


# --- detail and timeline -----------------------------------------------------------------------------


def test_detail_shows_lines_address_payments_and_timeline(anet_app, client, session, staff):
    order = paid_order(anet_app, session)
    page = client.get(f"/admin/orders/{order.number}").get_data(as_text=True)
    assert order.number in page and order.lines[0].sku in page and "1 Main St" in page
    assert "Charged" in page and "Visa XXXX1111" in page and "$20.00" in page
    assert "Payment approved (Visa XXXX1111)." in page  # the timeline
    assert "Mark shipped" in page and "Refund" in page and "Cancel order" in page
    assert 'hx-trigger="every 2s"' not in page  # nothing in flight: no polling


def test_the_panel_polls_while_an_operation_waits_for_the_gateway(
    anet_app, client, session, staff, monkeypatch
):
    order = paid_order(anet_app, session)
    loopback_jobs = []
    monkeypatch.setattr(
        "storefront.admin.orders.queues.enqueue", lambda *args, **kw: loopback_jobs.append(args)
    )
    assert act(client, order, "void").status_code == 303
    page = client.get(f"/admin/orders/{order.number}").get_data(as_text=True)
    assert 'hx-trigger="every 2s"' in page and "Waiting for the payment gateway" in page
    assert "Cancel order" in page and "disabled" in page  # nothing else while the void is out
    [(job, attempt_id)] = [args[:2] for args in loopback_jobs]
    assert job is payment_jobs.void_payment
    assert run(anet_app, job, attempt_id) == "approved"
    panel = client.get(f"/admin/orders/{order.number}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert panel.lstrip().startswith('<section id="order-panel"') and "every 2s" not in panel
    assert "Payment voided" in panel and "Refunded" in panel


# --- capture, void, refund ---------------------------------------------------------------------------


def test_capturing_an_auth_only_order(anet_app, auth_only, client, session, staff, loopback):
    order = paid_order(anet_app, session)
    [txn] = loopback.ledger.transactions()
    assert txn.status == "authorizedPendingCapture"
    assert "Capture $20.00" in client.get(f"/admin/orders/{order.number}").get_data(as_text=True)
    response = act(client, order, "capture", htmx=True)
    assert response.status_code == 200 and "Capture of $20.00 sent" in response.get_data(as_text=True)
    assert "Captured $20.00." in response.get_data(as_text=True)  # the job's answer is already in
    assert loopback.ledger.details(txn.trans_id).status == "capturedPendingSettlement"
    [capture] = attempts(session, order, "capture")
    assert capture.status == "approved" and capture.ref_trans_id == txn.trans_id
    again = act(client, order, "capture")
    assert again.status_code == 409 and "already captured" in again.get_data(as_text=True)


def test_capture_is_refused_when_checkout_captures(anet_app, client, session, staff):
    order = paid_order(anet_app, session)
    response = act(client, order, "capture")
    assert response.status_code == 409 and "captured at checkout" in response.get_data(as_text=True)
    assert attempts(session, order, "capture") == []


def test_void_gives_everything_back_and_closes_the_order(anet_app, client, session, staff, loopback):
    order = paid_order(anet_app, session)
    assert variant_of(session, order).reserved == 2
    response = act(client, order, "void")
    assert response.status_code == 303
    [txn] = loopback.ledger.transactions()
    assert txn.status == "voided"
    assert status_of(session, order) == "refunded" and variant_of(session, order).reserved == 0
    assert [a.status for a in attempts(session, order, "void")] == ["approved"]


def test_full_and_partial_refunds_after_settlement(anet_app, client, session, staff, loopback):
    order = paid_order(anet_app, session)
    act(client, order, "ship", tracking_number="1Z999AA10123456784")
    loopback.ledger.settle()
    first = act(client, order, "refund", htmx=True, amount="5.00")
    assert first.status_code == 200 and "Refunded $5.00 (invoice R-" in first.get_data(as_text=True)
    assert status_of(session, order) == "shipped"  # partly refunded: still shipped, refund shown
    assert "Left to refund</dt><dd>$15.00" in client.get(f"/admin/orders/{order.number}").get_data(
        as_text=True
    )
    rest = act(client, order, "refund", amount="15.00")
    assert rest.status_code == 303
    assert status_of(session, order) == "refunded"
    number = order.number.removeprefix("SF-")
    assert [(t.invoice_number, t.auth_amount) for t in refunds_on(loopback)] == [
        (f"R-{number}-1", Decimal("5.00")),
        (f"R-{number}-2", Decimal("15.00")),
    ]
    nothing_left = act(client, order, "refund", amount="1.00")
    assert nothing_left.status_code == 409


def test_a_partial_refund_before_settlement_says_to_wait_or_void(anet_app, client, session, staff, loopback):
    order = paid_order(anet_app, session)
    response = act(client, order, "refund", htmx=True, amount="5.00")
    page = response.get_data(as_text=True)
    assert "has not settled yet" in page and "void it to give everything back now" in page
    [refund] = attempts(session, order, "refund")
    assert (refund.status, refund.reason_code) == ("error", "54")
    assert refunds_on(loopback) == [] and status_of(session, order) == "paid"
    assert "Void payment" in page  # the way out is offered


def test_a_full_refund_before_settlement_becomes_a_void(anet_app, client, session, staff, loopback):
    order = paid_order(anet_app, session)
    act(client, order, "refund", amount="20.00")
    [refund] = attempts(session, order, "refund")
    [void] = attempts(session, order, "void")
    assert (refund.status, refund.reason_code, void.status) == ("error", "54", "approved")
    assert loopback.ledger.transactions()[0].status == "voided" and refunds_on(loopback) == []
    assert status_of(session, order) == "refunded"


def test_an_over_refund_is_refused_before_anything_is_sent(anet_app, client, session, staff, loopback):
    order = paid_order(anet_app, session)
    loopback.ledger.settle()
    for amount, words in [
        ("20.01", "At most $20.00"),
        ("0", "above zero"),
        ("abc", "Not a valid"),
        ("1.001", "two decimals"),
    ]:
        response = act(client, order, "refund", amount=amount)
        assert response.status_code == 422 and words in response.get_data(as_text=True), amount
    assert attempts(session, order, "refund") == [] and refunds_on(loopback) == []
    assert session.scalars(select(AuditEntry).where(AuditEntry.action == "order.refund")).all() == []


def test_a_refund_job_run_twice_sends_one_refund(anet_app, client, session, staff, loopback, monkeypatch):
    order = paid_order(anet_app, session)
    loopback.ledger.settle()
    monkeypatch.setattr("storefront.admin.orders.queues.enqueue", lambda *args, **kw: None)
    act(client, order, "refund", amount="7.50")
    [refund] = attempts(session, order, "refund")
    assert refund.status == "created" and refunds_on(loopback) == []
    assert run(anet_app, refund_payment, refund.id) == "approved"
    assert run(anet_app, refund_payment, refund.id) == "already handled"
    assert len(refunds_on(loopback)) == 1


def test_a_worker_killed_after_the_refund_went_out_does_not_refund_twice(
    anet_app, client, session, staff, loopback, monkeypatch
):
    order = paid_order(anet_app, session)
    loopback.ledger.settle()
    monkeypatch.setattr("storefront.admin.orders.queues.enqueue", lambda *args, **kw: None)
    act(client, order, "refund", amount="7.50")
    [refund] = attempts(session, order, "refund")

    def killed(*_args, **_kwargs):
        raise SystemExit("worker killed after the gateway answered")

    with monkeypatch.context() as patched:
        patched.setattr(followups, "record_follow_up", killed)
        with pytest.raises(SystemExit):
            run(anet_app, refund_payment, refund.id)
    assert attempts(session, order, "refund")[0].status == "sending" and len(refunds_on(loopback)) == 1
    assert run(anet_app, refund_payment, refund.id) == "already handled"  # its worker may still be busy
    session.execute(
        update(PaymentAttempt)
        .where(PaymentAttempt.id == refund.id)
        .values(updated_at=datetime.now(UTC) - timedelta(minutes=5))
    )
    assert run(anet_app, refund_payment, refund.id) == "approved"  # found by its invoice number
    assert len(refunds_on(loopback)) == 1
    assert attempts(session, order, "refund")[0].trans_id == refunds_on(loopback)[0].trans_id


@pytest.mark.parametrize("fault", ["lost_after_charge", "http500"])
def test_a_refund_with_no_answer_is_reconciled_by_invoice_number(
    anet_app, client, session, staff, loopback, fault
):
    order = paid_order(anet_app, session)
    loopback.ledger.settle()
    loopback.set_fault(fault)
    page = act(client, order, "refund", htmx=True, amount="8.00").get_data(as_text=True)
    [refund] = attempts(session, order, "refund")
    assert refund.status == "unknown" and "Check again" in page
    assert len(refunds_on(loopback)) == (1 if fault == "lost_after_charge" else 0)
    blocked = act(client, order, "refund", amount="1.00")
    assert blocked.status_code == 409 and "still waiting for the gateway" in blocked.get_data(as_text=True)
    checked = client.post(
        f"/admin/orders/{order.number}/payments/{refund.id}/check", data={"csrf_token": csrf_token(client)}
    )
    assert checked.status_code == 303
    [refund] = attempts(session, order, "refund")
    assert refund.status == "approved"
    [booked] = refunds_on(loopback)
    assert (booked.invoice_number, booked.auth_amount, refund.trans_id) == (
        refund.invoice_number,
        Decimal("8.00"),
        booked.trans_id,
    )


def test_a_lost_refund_that_settled_meanwhile_is_recognised_by_the_gateway(
    anet_app, client, session, staff, loopback
):
    order = paid_order(anet_app, session)
    loopback.ledger.settle()
    loopback.set_fault("lost_after_charge")
    act(client, order, "refund", amount="6.00")
    loopback.ledger.settle()  # the refund left the unsettled list before anyone looked for it
    [refund] = attempts(session, order, "refund")
    assert refund.status == "unknown" and refunds_on(loopback)[0].status == "refundSettledSuccessfully"
    assert run(anet_app, refund_payment, refund.id) == "approved"  # resent: answered as a duplicate
    [booked] = refunds_on(loopback)
    assert attempts(session, order, "refund")[0].trans_id == booked.trans_id


@pytest.mark.parametrize("fault", ["lost_after_charge", "http500"])
def test_a_capture_with_no_answer_is_reconciled_from_the_charge(
    anet_app, auth_only, client, session, staff, loopback, fault
):
    order = paid_order(anet_app, session)
    loopback.set_fault(fault)
    act(client, order, "capture")
    [capture] = attempts(session, order, "capture")
    assert capture.status == "unknown"
    assert run(anet_app, payment_jobs.capture_payment, capture.id) == "approved"
    assert attempts(session, order, "capture")[0].status == "approved"
    [charge] = loopback.ledger.transactions()
    assert charge.status == "capturedPendingSettlement" and charge.settle_amount == Decimal("20.00")


def test_a_void_with_no_answer_is_reconciled_from_the_charge(anet_app, client, session, staff, loopback):
    order = paid_order(anet_app, session)
    loopback.set_fault("lost_after_charge")
    act(client, order, "void")
    [void] = attempts(session, order, "void")
    assert void.status == "unknown" and loopback.ledger.transactions()[0].status == "voided"
    assert run(anet_app, payment_jobs.void_payment, void.id) == "approved"
    assert status_of(session, order) == "refunded"


# --- ship and cancel ---------------------------------------------------------------------------------


def test_shipping_consumes_stock_and_emails_the_tracking_number(anet_app, client, session, staff, outbox):
    order = paid_order(anet_app, session, user=make_user(session, "ship@example.com"))
    variant = variant_of(session, order)
    on_hand, reserved = variant.on_hand, variant.reserved
    response = act(client, order, "ship", tracking_number=" 1Z999AA10123456784 ")
    assert response.status_code == 303
    session.expire_all()
    shipped = session.get(Order, order.id)
    assert (
        shipped.status == "shipped" and shipped.tracking_number == "1Z999AA10123456784" and shipped.shipped_at
    )
    variant = variant_of(session, order)
    assert (variant.on_hand, variant.reserved) == (on_hand - 2, reserved - 2)
    [mail] = [m for m in read_outbox(outbox) if "on its way" in m["Subject"]]
    body = mail.get_content()
    assert mail["To"] == "ship@example.com" and "1Z999AA10123456784" in body
    assert f"/orders/{order.number}?key=" in body
    assert "Shipped by" in client.get(f"/admin/orders/{order.number}").get_data(as_text=True)


def test_shipping_needs_a_tracking_number(anet_app, client, session, staff):
    order = paid_order(anet_app, session)
    response = act(client, order, "ship", tracking_number="")
    assert response.status_code == 422 and "tracking number" in response.get_data(as_text=True)
    assert status_of(session, order) == "paid" and variant_of(session, order).reserved == 2


def test_shipping_an_auth_only_order_captures_it(anet_app, auth_only, client, session, staff, loopback):
    order = paid_order(anet_app, session)
    act(client, order, "ship", tracking_number="1Z999AA10123456784")
    assert status_of(session, order) == "shipped"
    assert [a.status for a in attempts(session, order, "capture")] == ["approved"]
    assert loopback.ledger.transactions()[0].status == "capturedPendingSettlement"


def test_shipping_from_the_list_swaps_the_row(anet_app, client, session, staff):
    order = paid_order(anet_app, session)
    response = client.post(
        f"/admin/orders/{order.number}/ship?view=row",
        data={"csrf_token": csrf_token(client), "tracking_number": "1Z999AA10123456784"},
        headers={"HX-Request": "true"},
    )
    row = response.get_data(as_text=True)
    assert response.status_code == 200 and row.lstrip().startswith(f'<tr id="order-{order.number}"')
    assert "Shipped" in row and "1Z999AA10123456784" in row


def test_shipping_an_unpaid_order_is_refused_and_changes_nothing(client, session, staff):
    order = make_order(session, quantity=2)
    response = act(client, order, "ship", tracking_number="1Z999AA10123456784")
    page = response.get_data(as_text=True)
    assert response.status_code == 409 and "Only a paid order can be shipped" in page
    assert status_of(session, order) == "pending_payment" and variant_of(session, order).reserved == 2
    row = client.post(
        f"/admin/orders/{order.number}/ship?view=row",
        data={"csrf_token": csrf_token(client), "tracking_number": "1Z999AA10123456784"},
        headers={"HX-Request": "true"},
    )
    assert row.status_code == 409 and "Only a paid order" in row.get_data(as_text=True)


def test_cancelling_an_unpaid_order_releases_its_stock(client, session, staff):
    order = make_order(session, quantity=3, status="payment_failed")
    [charge] = attempts(session, order)
    charge.status = "declined"
    session.flush()
    assert act(client, order, "cancel").status_code == 303
    assert status_of(session, order) == "cancelled" and variant_of(session, order).reserved == 0


def test_an_order_whose_charge_is_unsent_is_cancelled_and_the_charge_withdrawn(client, session, staff):
    order = make_order(session, quantity=1)
    assert act(client, order, "cancel").status_code == 303
    assert status_of(session, order) == "cancelled"
    assert [a.status for a in attempts(session, order)] == ["cancelled"]


def test_an_order_whose_charge_is_out_cannot_be_cancelled_yet(client, session, staff):
    order = make_order(session, quantity=1)
    [charge] = attempts(session, order)
    charge.status = "sending"
    session.flush()
    response = act(client, order, "cancel")
    assert response.status_code == 409 and "still being decided" in response.get_data(as_text=True)
    assert status_of(session, order) == "pending_payment" and variant_of(session, order).reserved == 1


def test_cancelling_a_paid_order_voids_the_payment(anet_app, client, session, staff, loopback):
    order = paid_order(anet_app, session)
    response = act(client, order, "cancel", htmx=True)
    assert response.status_code == 200 and "void of $20.00 was sent" in response.get_data(as_text=True)
    assert status_of(session, order) == "cancelled" and variant_of(session, order).reserved == 0
    assert loopback.ledger.transactions()[0].status == "voided" and refunds_on(loopback) == []
    assert [a.status for a in attempts(session, order, "void")] == ["approved"]


def test_cancelling_a_settled_order_refunds_it_instead(anet_app, client, session, staff, loopback):
    order = paid_order(anet_app, session)
    loopback.ledger.settle()
    act(client, order, "cancel")
    [void] = attempts(session, order, "void")
    [refund] = attempts(session, order, "refund")
    assert (void.status, void.reason_code) == ("error", "16")  # the gateway no longer finds it voidable
    assert refund.status == "approved" and refund.amount == Decimal("20.00")
    [booked] = refunds_on(loopback)
    assert booked.invoice_number == f"R-{order.number.removeprefix('SF-')}-1"
    assert status_of(session, order) == "cancelled"


def test_a_shipped_order_cannot_be_cancelled(anet_app, client, session, staff):
    order = paid_order(anet_app, session)
    act(client, order, "ship", tracking_number="1Z999AA10123456784")
    response = act(client, order, "cancel")
    assert response.status_code == 409 and "Refund it instead" in response.get_data(as_text=True)
    assert status_of(session, order) == "shipped"


def test_staff_changes_are_audited_with_before_and_after(anet_app, client, session, staff):
    order = paid_order(anet_app, session)
    loopback_settled = act(client, order, "ship", tracking_number="1Z999AA10123456784")
    assert loopback_settled.status_code == 303
    act(client, order, "refund", amount="20.00")  # before settlement: becomes a void
    entries = session.scalars(
        select(AuditEntry)
        .where(AuditEntry.entity == "order", AuditEntry.entity_id == order.number)
        .order_by(AuditEntry.id)
    ).all()
    assert [entry.action for entry in entries] == ["order.ship", "order.refund"]
    ship, refund = entries
    assert ship.user_email == staff.email and ship.created_at is not None
    assert ship.before == {"status": "paid", "tracking_number": ""}
    assert ship.after["status"] == "shipped" and ship.after["tracking_number"] == "1Z999AA10123456784"
    assert refund.before["refunded"] == "0.00" and refund.after["refund_requested"] == "20.00"
    assert refund.after["invoice_number"].startswith("R-")


ODD_VALUES = [
    "x" * 5000,
    "\u202eevil\u202c",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "%00",
    "\x00",
    "-1",
    "9" * 40,
    "NaN",
    "Infinity",
    "1e999",
    "💍" * 50,
]


@pytest.mark.parametrize("value", ODD_VALUES)
def test_hostile_input_gets_a_4xx_never_a_500(anet_app, client, session, staff, value):
    order = paid_order(anet_app, session)
    for field in ("q", "email", "status", "since", "min_total", "max_total", "page"):
        assert client.get("/admin/orders", query_string={field: value}).status_code in (200, 400, 422), field
        assert client.get("/admin/orders/export.csv", query_string={field: value}).status_code in (
            200,
            400,
            422,
        )
    assert act(client, order, "refund", amount=value).status_code in (400, 409, 422)
    assert act(client, order, "ship", tracking_number=value).status_code in (303, 400, 422)
    assert client.get(f"/admin/orders/{value[:100]}").status_code in (400, 404)
    assert status_of(session, order) in ("paid", "shipped") and attempts(session, order, "refund") == []


def test_a_void_whose_job_was_lost_is_sent_by_the_sweep(
    anet_app, client, session, staff, loopback, monkeypatch
):
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from jobs import maintenance
    from storefront import queues

    order = paid_order(anet_app, session)
    with monkeypatch.context() as lost:
        lost.setattr(queues, "enqueue", lambda *args, **kwargs: None)  # Redis lost the job
        assert act(client, order, "void").status_code == 303
    [void] = attempts(session, order, "void")
    assert void.status == "created"
    session.execute(
        update(PaymentAttempt)
        .where(PaymentAttempt.id == void.id)
        .values(created_at=datetime.now(UTC) - timedelta(minutes=5))
    )
    assert run(anet_app, maintenance.redrive_payment_operations) == 1
    assert [a.status for a in attempts(session, order, "void")] == ["approved"]
    assert loopback.ledger.transactions()[0].status == "voided"


# --- the customer hears about refunds and cancellations ----------------------------------------------


def mails_about(outbox, words: str) -> list:
    return [message for message in read_outbox(outbox) if words in message["Subject"]]


def test_each_confirmed_refund_emails_the_customer(anet_app, client, session, staff, loopback, outbox):
    order = paid_order(anet_app, session, user=make_user(session, "refund.me@example.com"))
    act(client, order, "ship", tracking_number="1Z999AA10123456784")
    loopback.ledger.settle()
    act(client, order, "refund", amount="5.00")
    [first] = mails_about(outbox, "refunded")
    body = first.get_content()
    assert first["To"] == "refund.me@example.com" and first["Subject"].endswith("$5.00 refunded")
    assert "We have refunded $5.00" in body and "Refunded so far: $5.00 of $20.00." in body
    assert f"/orders/{order.number}?key=" in body
    act(client, order, "refund", amount="15.00")
    _first, second = mails_about(outbox, "refunded")
    assert second["Subject"].endswith("$15.00 refunded")
    assert "All of your payment has now gone back to you." in second.get_content()


def test_a_refund_the_gateway_refuses_emails_nobody(anet_app, client, session, staff, loopback, outbox):
    order = paid_order(anet_app, session)
    act(client, order, "refund", amount="5.00")  # not settled yet: refused (54), and not a full refund
    assert [a.status for a in attempts(session, order, "refund")] == ["error"]
    assert mails_about(outbox, "refunded") == []


def test_a_full_refund_that_becomes_a_void_emails_the_customer(anet_app, client, session, staff, outbox):
    order = paid_order(anet_app, session)
    act(client, order, "refund", amount="20.00")
    [message] = mails_about(outbox, "refunded")
    body = message.get_content()
    assert "We have cancelled the payment of $20.00" in body and "All of your payment" in body


def test_the_refund_email_waits_for_the_gateway_and_goes_once(
    anet_app, client, session, staff, loopback, outbox, monkeypatch
):
    order = paid_order(anet_app, session)
    loopback.ledger.settle()
    with monkeypatch.context() as held:
        held.setattr("storefront.admin.orders.queues.enqueue", lambda *args, **kw: None)
        act(client, order, "refund", amount="7.50")
    [refund] = attempts(session, order, "refund")
    run(anet_app, emails.send_refund_notice, order.id, refund.id)  # recorded, not confirmed: no e-mail
    assert mails_about(outbox, "refunded") == []
    assert run(anet_app, refund_payment, refund.id) == "approved"
    assert run(anet_app, refund_payment, refund.id) == "already handled"
    assert len(mails_about(outbox, "refunded")) == 1
    other = make_order(session)
    run(anet_app, emails.send_refund_notice, other.id, refund.id)  # not that order's refund
    assert len(mails_about(outbox, "refunded")) == 1


def test_cancelling_an_unpaid_order_emails_the_customer(client, session, staff, outbox):
    order = make_order(session, quantity=1, email="cancel.me@example.com")
    assert act(client, order, "cancel").status_code == 303
    [message] = mails_about(outbox, "is cancelled")
    assert message["To"] == "cancel.me@example.com" and order.number in message["Subject"]
    body = message.get_content()
    assert "You have not been charged" in body and f"/orders/{order.number}?key=" in body


def test_cancelling_a_paid_order_emails_the_cancellation_then_the_money_back(
    anet_app, client, session, staff, loopback, outbox
):
    order = paid_order(anet_app, session)
    act(client, order, "cancel")
    cancelled, refunded = mails_about(outbox, "is cancelled"), mails_about(outbox, "refunded")
    assert len(cancelled) == 1 and "going back to your card" in cancelled[0].get_content()
    assert len(refunded) == 1 and "We have cancelled the payment of $20.00" in refunded[0].get_content()


def test_a_refused_cancellation_emails_nobody(anet_app, client, session, staff, outbox):
    order = make_order(session, quantity=1)
    [charge] = attempts(session, order)
    charge.status = "sending"
    session.flush()
    assert act(client, order, "cancel").status_code == 409
    run(anet_app, emails.send_cancellation_notice, order.id)  # the job itself checks the order, too
    assert mails_about(outbox, "is cancelled") == []
