"""CSRF matrix: every state-changing route from the URL map by no token, a wrong token, another session's
token, and a cross-site Origin/Referer under HTTPS (with a valid token): each refused before its view runs."""

import pytest

from storefront.payments import views as payment_views
from tests.helpers import csrf_token, staff_login
from tests.security.conftest import build, routes

STATE_CHANGING = ("POST", "PUT", "PATCH", "DELETE")
# Exempt from CSRF because a browser never posts there: each checks an HMAC signature of its own instead.
SIGNED_INSTEAD = {f"payments.{payment_views.authorizenet_webhook.__name__}"}
HTTPS = "https://localhost/"
EVIL = {"Origin": "https://evil.example", "Referer": "https://evil.example/form"}


def state_changing_urls(app) -> list[tuple[str, str]]:
    return [
        (method, build(rule, {}))
        for rule, method in routes(app)
        if method in STATE_CHANGING and rule.endpoint not in SIGNED_INSTEAD
    ]


def refused_for_csrf(response) -> bool:
    body = response.get_data(as_text=True)
    return response.status_code == 400 and ("CSRF" in body or "referrer" in body)


@pytest.fixture
def admin_client(app, client, session):
    """Signed in as an admin with both factors, so no other gate stands before a view."""
    staff_login(client, session, role="admin")
    return client


def test_the_matrix_walks_every_form_of_the_shop(app):
    urls = state_changing_urls(app)
    assert ("POST", "/logout") in urls and ("POST", "/checkout") in urls and ("POST", "/cart/add") in urls
    assert len(urls) >= 50
    print(f"\nCSRF matrix: {len(urls)} state-changing routes × 4 attacks")


def test_every_state_changing_route_refuses_a_forged_request(app, admin_client):
    other = app.test_client()
    other_token = csrf_token(other)
    own_token = csrf_token(admin_client)
    assert own_token != other_token
    attacks = {
        "no token": ({}, {}, None),
        "wrong token": ({"csrf_token": "IjAwMDAi.aaaa.bbbb"}, {}, None),
        "another session's token": ({"csrf_token": other_token}, {}, None),
        "cross-site origin under https": ({"csrf_token": own_token}, EVIL, HTTPS),
    }
    accepted = []
    tried = 0
    for method, url in state_changing_urls(app):
        for name, (data, headers, base_url) in attacks.items():
            response = admin_client.open(url, method=method, data=data, headers=headers, base_url=base_url)
            tried += 1
            if not refused_for_csrf(response):
                accepted.append((method, url, name, response.status_code))
    print(f"\nCSRF matrix: {tried - len(accepted)} of {tried} forged requests refused")
    assert accepted == [], accepted


def test_the_same_request_with_its_own_token_and_origin_gets_through(app, admin_client):
    """The control: the matrix refuses the forgeries, not every request."""
    token = csrf_token(admin_client)
    same_site = {"Origin": "https://localhost", "Referer": "https://localhost/cart"}
    response = admin_client.post(
        "/cart/add",
        data={"csrf_token": token, "variant_id": "1", "quantity": "1"},
        headers=same_site,
        base_url=HTTPS,
    )
    assert not refused_for_csrf(response)
