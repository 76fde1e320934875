"""Accept Hosted, the no-JavaScript way to pay: the real SDK asks the loopback Authorize.Net for a form token
over real HTTP (each request validated against the official XSD), and the loopback's hosted form charges a test
card under the order's invoice number and sends the shopper back to the shop's return URL."""

from decimal import Decimal

import requests

from storefront.payments.gateway import AuthorizeNetGateway, HostedPageRequest, hosted_form_url
from tools import anet_loopback

LOGIN, KEY = anet_loopback.DEFAULT_LOGIN, anet_loopback.DEFAULT_KEY
RETURN = "http://127.0.0.1:5999/checkout/hosted/SF-H1/return"
CANCEL = "http://127.0.0.1:5999/checkout/hosted/SF-H1/cancel"


def page_for(invoice="SF-H1", amount="42.50"):
    return HostedPageRequest(
        amount=Decimal(amount),
        invoice_number=invoice,
        ref_id="H1",
        capture=True,
        return_url=RETURN,
        cancel_url=CANCEL,
        email="shopper@example.com",
        customer_id="U7",
    )


def pay(page, card="4111111111111111", expiry="12/35", cvv="900", zip_code="46201"):
    """What the shopper's browser does: post the token to the hosted form, then submit the card there."""
    opened = requests.post(page.url, data={"token": page.token}, timeout=5)
    assert opened.status_code == 200 and "Card number" in opened.text
    return requests.post(
        page.url + "/pay",
        data={
            "token": page.token,
            "cardNumber": card,
            "expirationDate": expiry,
            "cardCode": cvv,
            "zip": zip_code,
        },
        allow_redirects=False,
        timeout=5,
    )


def test_the_sdk_gets_a_form_token_for_the_loopbacks_hosted_form(gateway, loopback):
    page = gateway.hosted_page(page_for())
    assert page is not None and len(page.token) > 20
    assert page.url == loopback.url + "/payment/payment"
    form = loopback.ledger.form(page.token)
    assert (form.amount, form.invoice_number, form.return_url, form.cancel_url) == (
        Decimal("42.50"),
        "SF-H1",
        RETURN,
        CANCEL,
    )


def test_an_approved_card_on_the_hosted_form_is_charged_under_the_invoice_and_returns_to_the_shop(gateway):
    page = gateway.hosted_page(page_for())
    answer = pay(page)
    assert answer.status_code == 303 and answer.headers["Location"] == RETURN
    [found] = gateway.find_by_invoice("SF-H1")
    assert found.charged and found.amount == Decimal("42.50")
    assert gateway.transaction(found.trans_id).status == "capturedPendingSettlement"


def test_a_declined_card_stays_on_the_hosted_form_and_charges_nothing(gateway):
    page = gateway.hosted_page(page_for())
    answer = pay(page, zip_code="46282")
    assert answer.status_code == 200 and "declined" in answer.text
    assert 'name="token"' in answer.text  # the shopper may try another card
    assert gateway.find_by_invoice("SF-H1") == []


def test_a_paid_form_token_cannot_pay_twice(gateway, loopback):
    page = gateway.hosted_page(page_for())
    assert pay(page).status_code == 303
    again = requests.post(
        page.url + "/pay",
        data={"token": page.token, "cardNumber": "4111111111111111", "expirationDate": "12/35"},
        allow_redirects=False,
        timeout=5,
    )
    assert again.status_code == 303
    assert len(loopback.ledger.transactions()) == 1


def test_an_unknown_form_token_is_refused(gateway, loopback):
    answer = requests.post(loopback.url + "/payment/payment", data={"token": "forged"}, timeout=5)
    assert answer.status_code == 400 and "expired" in answer.text


def test_an_expired_card_is_refused_on_the_hosted_form(gateway):
    page = gateway.hosted_page(page_for())
    answer = pay(page, expiry="01/20")
    assert answer.status_code == 200 and "expired" in answer.text
    assert gateway.find_by_invoice("SF-H1") == []


def test_no_token_comes_back_when_the_gateway_refuses_the_credentials(loopback, monkeypatch):
    monkeypatch.delenv("http_proxy", raising=False)
    wrong = AuthorizeNetGateway(LOGIN, "wrong-key", loopback.endpoint, timeout=(2, 2))
    assert wrong.hosted_page(page_for()) is None


def test_the_hosted_form_is_authorize_nets_own_beside_its_endpoints():
    assert hosted_form_url("https://apitest.authorize.net/xml/v1/request.api") == (
        "https://test.authorize.net/payment/payment"
    )
    assert hosted_form_url("https://api2.authorize.net/xml/v1/request.api") == (
        "https://accept.authorize.net/payment/payment"
    )
