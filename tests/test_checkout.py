"""Checkout with the built-in test gateway: totals, placing orders, declines and retries, limits, idempotency."""

import re
import time
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from storefront.cart.models import CartLine
from storefront.orders.models import Order
from storefront.payments.models import PaymentAttempt
from tests.factories import make_product, make_user
from tests.helpers import ADDRESS, checkout_form, csrf_token, login, read_outbox


@pytest.fixture
def necklace(session):
    return make_product(session, name="Drop Necklace", variants=[{"price": Decimal("20.00"), "on_hand": 5}])


def add(client, variant, quantity=1):
    response = client.post(
        "/cart/add", data={"variant_id": variant.id, "quantity": quantity, "csrf_token": csrf_token(client)}
    )
    assert response.status_code == 303, response.get_data(as_text=True)


def place(client, nonce="test-approve", values=None, **overrides):
    data = (
        (values or checkout_form(client))
        | ADDRESS
        | {"dataDescriptor": "COMMON.ACCEPT.INAPP.PAYMENT", "dataValue": nonce}
        | overrides
    )
    return client.post("/checkout", data=data)


def order_of(session, response) -> Order:
    number = response.headers["Location"].rsplit("/", 1)[-1]
    session.expire_all()
    return session.scalar(select(Order).where(Order.number == number))


def charges(app, invoice: str) -> list:
    return [t for t in app.extensions["payment_gateway"].ledger.transactions() if t.invoice_number == invoice]


def test_checkout_needs_a_cart(client):
    response = client.get("/checkout")
    assert response.status_code == 303 and response.headers["Location"] == "/cart"


def test_checkout_page_never_names_the_card_fields(client, necklace):
    add(client, necklace.variants[0])
    page = client.get("/checkout").get_data(as_text=True)
    for card_field in ("card-number", "card-expiry", "card-code"):
        tag = re.search(rf'<input id="{card_field}"[^>]*>', page).group(0)
        assert "name=" not in tag
    assert "js/accept-test.js" in page and "js/checkout.js" in page
    assert 'name="idempotency_key"' in page and "$20.00" in page


def test_an_approved_order_is_paid_reserved_and_confirmed(app, client, session, necklace, outbox):
    add(client, necklace.variants[0], 2)
    response = place(client)
    assert response.status_code == 303 and response.headers["Location"].startswith("/orders/SF-")
    order = order_of(session, response)
    assert order.status == "paid" and order.total == Decimal("44.95")  # 40.00 + 4.95 shipping, no tax
    session.refresh(necklace.variants[0])
    assert (necklace.variants[0].on_hand, necklace.variants[0].reserved) == (
        5,
        2,
    )  # two-stage: still allocated
    assert session.scalar(select(func.count(CartLine.id))) == 0
    [charge] = charges(app, order.number)
    assert charge.status == "capturedPendingSettlement" and charge.auth_amount == Decimal("44.95")
    [mail] = read_outbox(outbox)
    assert order.number in mail["Subject"] and f"/orders/{order.number}?key=" in mail.get_content()
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Your order is paid" in page and "Drop Necklace" in page
    attempt = session.scalar(select(PaymentAttempt).where(PaymentAttempt.order_id == order.id))
    assert (
        attempt.status == "approved" and attempt.nonce_value is None and attempt.trans_id == charge.trans_id
    )


def test_stock_command_counts_paid_units_as_sold(app, client, session, necklace):
    add(client, necklace.variants[0], 2)
    place(client)
    output = app.test_cli_runner().invoke(args=["stock", necklace.variants[0].sku]).output
    assert '"sold": 2' in output and '"reserved": 2' in output


def test_a_decline_keeps_the_reservation_and_another_card_can_pay(app, client, session, necklace):
    add(client, necklace.variants[0])
    response = place(client, "test-decline")
    order = order_of(session, response)
    assert order.status == "payment_failed"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Your card was declined" in page and "Pay with another card" in page
    session.refresh(necklace.variants[0])
    assert necklace.variants[0].reserved == 1
    retry = client.post(
        f"/orders/{order.number}/pay",
        data={
            "csrf_token": csrf_token(client, f"/orders/{order.number}/pay"),
            "dataDescriptor": "COMMON.ACCEPT.INAPP.PAYMENT",
            "dataValue": "test-approve",
        },
    )
    assert retry.status_code == 303
    session.refresh(order)
    assert order.status == "paid"
    assert [c.status for c in charges(app, order.number)] == ["declined", "capturedPendingSettlement"]


@pytest.mark.parametrize(
    ("nonce", "status", "text"),
    [
        ("test-held", "payment_review", "being reviewed"),
        ("test-error", "payment_failed", "process the payment"),
        ("bogus-nonce", "payment_failed", "card details have expired"),
    ],
)
def test_gateway_outcomes_map_to_order_states(client, session, necklace, nonce, status, text):
    add(client, necklace.variants[0])
    response = place(client, nonce)
    order = order_of(session, response)
    assert order.status == status
    assert text in client.get(response.headers["Location"]).get_data(as_text=True)


def test_the_same_form_posted_twice_makes_one_order_and_one_charge(app, client, session, necklace):
    add(client, necklace.variants[0])
    values = checkout_form(client)
    first = place(client, values=values)
    second = place(client, values=values)
    assert first.headers["Location"] == second.headers["Location"]
    order = order_of(session, first)
    assert session.scalar(select(func.count(Order.id))) == 1
    assert len(charges(app, order.number)) == 1


def test_too_little_stock_says_what_is_left_and_changes_nothing(client, session, necklace):
    add(client, necklace.variants[0], 3)
    necklace.variants[0].reserved = 4  # someone else bought meanwhile
    session.flush()
    response = place(client)
    assert response.status_code == 409
    assert "Only 1 left of Drop Necklace" in response.get_data(as_text=True)
    assert session.scalar(select(func.count(Order.id))) == 0
    assert session.scalar(select(func.count(CartLine.id))) == 1
    session.refresh(necklace.variants[0])
    assert necklace.variants[0].reserved == 4


def test_per_customer_limit_counts_earlier_orders(client, session):
    limited = make_product(session, variants=[{"on_hand": 50, "per_customer_limit": 2}]).variants[0]
    add(client, limited, 2)
    assert order_of(session, place(client)).status == "paid"
    add(client, limited, 1)
    response = place(client)
    assert response.status_code == 409 and "limited to 2 per customer" in response.get_data(as_text=True)
    other = place(client, email="someone.else@example.com")
    assert other.status_code == 303


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("dataValue", "", "Enter your card details"),
        ("dataDescriptor", "SOMETHING.ELSE", "Enter your card details"),
        ("postal_code", "!", "valid postal code"),
        ("email", "not-an-email", "email address"),
        ("shipping_method", "teleport", "Not a valid choice"),
        ("idempotency_key", "short", "This form had expired"),
    ],
)
def test_bad_checkout_input_gets_422_and_nothing_is_made(client, session, necklace, field, value, message):
    add(client, necklace.variants[0])
    response = place(client, **{field: value})
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert session.scalar(select(func.count(Order.id))) == 0


def test_totals_follow_destination_and_method(client, session, necklace):
    add(client, necklace.variants[0], 3)  # 60.00: standard shipping is free over 50
    california = client.get("/checkout/summary?country=US&region=CA&shipping_method=standard")
    body = california.get_data(as_text=True)
    assert "$0.00" in body and "$4.35" in body and "$64.35" in body  # 7.25% of 60.00
    express = client.get("/checkout/summary?country=US&region=NY&shipping_method=express").get_data(
        as_text=True
    )
    assert "$12.95" in express and "$2.40" in express and "$75.35" in express
    britain = client.get("/checkout/summary?country=GB&shipping_method=standard").get_data(as_text=True)
    assert "International" in britain and "VAT" in britain and "$12.00" in britain
    # The methods on offer change with the country, swapped in out of band.
    assert 'id="shipping-methods" hx-swap-oob="true"' in britain and 'value="international"' in britain
    assert 'value="standard"' not in britain


def test_refresh_button_recalculates_without_placing(client, session, necklace):
    add(client, necklace.variants[0])
    response = place(client, refresh="1", region="CA")
    assert response.status_code == 200 and "California sales tax" in response.get_data(as_text=True)
    assert session.scalar(select(func.count(Order.id))) == 0


def test_a_signed_in_shopper_sees_their_orders_and_nobody_else_does(app, client, session, necklace):
    user = make_user(session, "owner@example.com")
    login(client, user.email)
    add(client, necklace.variants[0])
    response = place(client, email=user.email)
    url = response.headers["Location"]
    assert url.rsplit("/", 1)[-1] in client.get("/account/orders").get_data(as_text=True)
    stranger = app.test_client()
    assert stranger.get(url).status_code == 404
    login(stranger, make_user(session).email)
    assert stranger.get(url).status_code == 404
    assert url.rsplit("/", 1)[-1] not in stranger.get("/account/orders").get_data(as_text=True)


def test_a_guest_sees_the_order_in_the_placing_browser_or_with_the_signed_link(
    app, client, session, necklace, outbox
):
    add(client, necklace.variants[0])
    url = place(client).headers["Location"]
    assert client.get(url).status_code == 200
    other = app.test_client()
    assert other.get(url).status_code == 404
    assert other.get(url + "?key=forged").status_code == 404
    link = re.search(r"http://\S+", read_outbox(outbox)[-1].get_content()).group(0)
    assert other.get(link.split("5000", 1)[1]).status_code == 200


def test_status_page_polls_while_pending_and_stops_when_final(client, session):
    from tests.factories import make_order

    order = make_order(session)
    with client.session_transaction() as browser:
        browser["orders"] = [order.id]
    page = client.get(f"/orders/{order.number}").get_data(as_text=True)
    assert 'hx-trigger="every 1s"' in page and 'http-equiv="refresh"' in page
    fragment = client.get(f"/orders/{order.number}", headers={"HX-Request": "true"})
    assert fragment.get_data(as_text=True).lstrip().startswith('<section id="order-status"')
    order.status = "paid"
    session.flush()
    assert "every 1s" not in client.get(f"/orders/{order.number}").get_data(as_text=True)


def test_shared_shipping_and_tax_survive_a_refused_order_and_follow_a_change(
    app, client, session, necklace, monkeypatch
):
    """With the pricing cache on: a refused (rolled back) order and the pages after it still price the
    cart, and a settings change shows once the snapshot expires."""
    from storefront.checkout.models import ShippingMethod
    from storefront.extensions import clock

    monkeypatch.setitem(app.config, "CATALOG_CACHE_SECONDS", 60)
    app.extensions["catalog_cache"].clear()
    add(client, necklace.variants[0], 2)
    values = checkout_form(client)
    necklace.variants[0].on_hand = 1
    session.flush()
    later = {"by": 61}
    monkeypatch.setattr(clock, "now", lambda: time.time() + later["by"])  # the refused order reads them anew
    assert place(client, values=values).status_code == 409  # rolled back
    page = client.get("/checkout")
    assert page.status_code == 200 and "$4.95" in page.get_data(as_text=True)

    standard = session.scalar(select(ShippingMethod).where(ShippingMethod.code == "standard"))
    standard.price = Decimal("6.50")
    session.flush()
    assert "$6.50" not in client.get("/checkout").get_data(as_text=True)  # still the snapshot
    later["by"] = 122
    assert "$6.50" in client.get("/checkout").get_data(as_text=True)
    app.extensions["catalog_cache"].clear()
