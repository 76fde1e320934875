"""Paying without JavaScript on the Accept Hosted form: the order is placed pending_payment, the shopper pays on
the hosted form (the loopback Authorize.Net's, reached through the real SDK over HTTP, or the test gateway's own
stand-in), comes back, and the finalize job finds the charge by invoice number: paid, or payment_failed."""

import re
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import func, select

from jobs import maintenance
from storefront.orders.models import Order
from storefront.payments.gateway import AuthorizeNetGateway
from storefront.payments.models import PaymentAttempt
from tests.factories import make_product
from tests.helpers import ADDRESS, checkout_form, csrf_token
from tools import anet_loopback

APPROVED = {"cardNumber": "4111111111111111", "expirationDate": "12/35", "cardCode": "900", "zip": "46201"}
DECLINED = APPROVED | {"zip": "46282"}


@pytest.fixture
def anet(app, loopback, monkeypatch):
    """The session's app on Authorize.Net (over the loopback) for one test."""
    monkeypatch.delenv("http_proxy", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    loopback.reset()
    gateway = AuthorizeNetGateway(
        anet_loopback.DEFAULT_LOGIN, anet_loopback.DEFAULT_KEY, loopback.endpoint, timeout=(2, 2)
    )
    monkeypatch.setitem(app.extensions, "payment_gateway", gateway)
    return loopback


@pytest.fixture
def ring(session):
    return make_product(session, name="Halo Ring", variants=[{"price": Decimal("30.00"), "on_hand": 3}])


def place_hosted(client, variant, values=None):
    """Add to the cart and press "pay on the secure payment page" (no card fields, no JavaScript)."""
    client.post("/cart/add", data={"variant_id": variant.id, "quantity": 1, "csrf_token": csrf_token(client)})
    data = (values or checkout_form(client)) | ADDRESS | {"pay_with": "hosted"}
    return client.post("/checkout", data=data)


def hosted_step(client, placed):
    """The shop's page before the hosted form: its form action and the token it posts."""
    assert placed.status_code == 303, placed.get_data(as_text=True)
    page = client.get(placed.headers["Location"])
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    action = re.search(r'<form method="post" action="([^"]+)" id="hosted-payment"', html).group(1)
    token = re.search(r'name="token" value="([^"]+)"', html).group(1)
    return action, token, page


def pay_on_loopback(action, token, card):
    """The shopper's browser on the loopback's hosted form: open it with the token, then pay."""
    opened = requests.post(action, data={"token": token}, timeout=5)
    assert opened.status_code == 200
    pay_url = action + "/pay"
    return requests.post(pay_url, data={"token": token} | card, allow_redirects=False, timeout=5)


def local(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def order_numbered(session, number) -> Order:
    session.expire_all()
    return session.scalar(select(Order).where(Order.number == number))


def number_of(response) -> str:
    return urlsplit(response.headers["Location"]).path.split("/")[2]


def test_the_real_hosted_form_never_gets_our_csrf_token(anet, client, session, ring):
    _action, _token, page = hosted_step(client, place_hosted(client, ring.variants[0]))
    assert (
        "csrf_token" not in page.get_data(as_text=True).split('id="hosted-payment"', 1)[1].split("</form>")[0]
    )


def test_an_approved_card_on_the_hosted_form_pays_the_order(anet, client, session, ring):
    placed = place_hosted(client, ring.variants[0])
    number = number_of(placed)
    assert order_numbered(session, number).status == "pending_payment"
    action, token, page = hosted_step(client, placed)
    assert action == anet.url + "/payment/payment"
    # The page may post its form to the hosted form's origin, and only that page.
    assert f"form-action 'self' {anet.url}" in page.headers["Content-Security-Policy"]
    paid = pay_on_loopback(action, token, APPROVED)
    assert paid.status_code == 303
    back = client.get(local(paid.headers["Location"]))
    assert back.status_code == 303 and back.headers["Location"].endswith(f"/orders/{number}")
    order = order_numbered(session, number)
    assert order.status == "paid"
    [charge] = [t for t in anet.ledger.transactions() if t.invoice_number == number]
    assert charge.auth_amount == order.total and charge.status == "capturedPendingSettlement"
    assert "Thank you" in client.get(f"/orders/{number}").get_data(as_text=True)


def test_a_return_url_visited_twice_creates_nothing_twice(anet, client, session, ring):
    placed = place_hosted(client, ring.variants[0])
    number = number_of(placed)
    action, token, _page = hosted_step(client, placed)
    back = local(pay_on_loopback(action, token, APPROVED).headers["Location"])
    assert client.get(back).status_code == 303
    assert client.get(back).status_code == 303
    order = order_numbered(session, number)
    assert order.status == "paid"
    attempts = session.scalar(
        select(func.count(PaymentAttempt.id)).where(PaymentAttempt.order_id == order.id)
    )
    assert attempts == 1
    assert len([t for t in anet.ledger.transactions() if t.invoice_number == number]) == 1
    events = [e.message for e in order.events if "Payment approved" in e.message]
    assert len(events) == 1


def test_the_same_hosted_checkout_posted_twice_makes_one_order(anet, client, session, ring):
    client.post(
        "/cart/add", data={"variant_id": ring.variants[0].id, "quantity": 1, "csrf_token": csrf_token(client)}
    )
    values = checkout_form(client) | ADDRESS | {"pay_with": "hosted"}
    first = client.post("/checkout", data=values)
    second = client.post("/checkout", data=values)
    assert number_of(first) == number_of(second)
    assert session.scalar(select(func.count(Order.id)).where(Order.email == ADDRESS["email"])) == 1


def test_a_declined_card_stays_on_the_hosted_form_and_cancelling_fails_the_payment(
    anet, client, session, ring
):
    placed = place_hosted(client, ring.variants[0])
    number = number_of(placed)
    action, token, _page = hosted_step(client, placed)
    declined = pay_on_loopback(action, token, DECLINED)
    assert declined.status_code == 200 and "declined" in declined.text
    cancel = re.search(r"<a href='([^']+)'>Cancel</a>", declined.text).group(1).replace("&amp;", "&")
    # Coming back by the return link before paying changes nothing: the form is still open.
    assert client.get(local(cancel.replace("/cancel", "/return"))).status_code == 303
    assert order_numbered(session, number).status == "pending_payment"
    assert client.get(local(cancel)).status_code == 303
    order = order_numbered(session, number)
    assert order.status == "payment_failed"
    assert not [
        t for t in anet.ledger.transactions() if t.invoice_number == number and t.status != "declined"
    ]
    # Paying again on the hosted form after the failure: a new hosted charge, and this time it goes through.
    again = client.post(
        f"/orders/{number}/hosted", data={"csrf_token": csrf_token(client, f"/orders/{number}/pay")}
    )
    action, token, _page = hosted_step(client, again)
    client.get(local(pay_on_loopback(action, token, APPROVED).headers["Location"]))
    assert order_numbered(session, number).status == "paid"


def test_a_forged_return_link_is_a_404(anet, client, session, ring):
    placed = place_hosted(client, ring.variants[0])
    number = number_of(placed)
    assert client.get(f"/orders/{number}/hosted/return?key=forged").status_code == 404
    assert client.get(f"/orders/{number}/hosted/cancel").status_code == 404


def test_a_shopper_who_pays_and_never_returns_is_found_when_the_form_expires(
    anet, app, client, session, ring, monkeypatch
):
    placed = place_hosted(client, ring.variants[0])
    number = number_of(placed)
    action, token, _page = hosted_step(client, placed)
    assert pay_on_loopback(action, token, APPROVED).status_code == 303  # and the browser closes
    monkeypatch.setattr(maintenance, "HOSTED_FORM_LIFE", -maintenance.HOSTED_FORM_LIFE)  # the form ran out
    with app.app_context():
        maintenance.reconcile_uncertain_payments()
    assert order_numbered(session, number).status == "paid"


def test_the_test_gateways_own_hosted_form_pays_without_javascript(client, session, ring):
    placed = place_hosted(client, ring.variants[0])
    number = number_of(placed)
    action, token, _page = hosted_step(client, placed)
    assert urlsplit(action).path == "/payments/test-hosted"
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', _page.get_data(as_text=True)).group(1)
    opened = client.post(local(action), data={"token": token, "csrf_token": csrf})
    form = opened.get_data(as_text=True)
    pay_action = re.search(r'<form method="post" action="([^"]+)"', form).group(1)
    assert re.search(r'name="csrf_token" value="([^"]+)"', form).group(1) == csrf
    paid = client.post(pay_action.replace("&amp;", "&"), data={"token": token, "csrf_token": csrf} | APPROVED)
    assert paid.status_code == 303
    client.get(local(paid.headers["Location"]))
    assert order_numbered(session, number).status == "paid"
