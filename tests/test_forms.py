"""Every state-changing route needs a CSRF token; every form survives hostile input with a 4xx, never a 500."""

import pytest
from sqlalchemy import func, select, text

from storefront.accounts import services as accounts
from storefront.cart.models import CartLine
from storefront.db import Base
from tests.factories import make_order, make_product, make_user
from tests.helpers import ODD_VALUES, csrf_token, login


@pytest.fixture
def world(app, client, session):
    """A signed-in shopper with an address and a cart line, and the ids to fill URL rules with."""
    user = make_user(session, "fuzz@example.com")
    address = accounts.save_address(
        session, user, {"full_name": "A", "line1": "B", "city": "C", "postal_code": "12345", "country": "US"}
    )
    product = make_product(session, variants=[{"on_hand": 5}])
    login(client, user.email)
    client.post(
        "/cart/add",
        data={"variant_id": product.variants[0].id, "quantity": 1, "csrf_token": csrf_token(client)},
    )
    line_id = session.scalar(select(CartLine.id))
    token = accounts.make_token(app.config["SECRET_KEY"], "reset", user)
    order = make_order(session, user=user, status="payment_failed")
    return {
        "address_id": address.id,
        "line_id": line_id,
        "token": token,
        "variant_id": product.variants[0].id,
        "number": order.number,
    }


def row_counts(session) -> dict[str, int]:
    return {
        table.name: session.scalar(select(func.count()).select_from(table))
        for table in Base.metadata.sorted_tables
    }


# Authenticated by an HMAC signature over the body instead of a CSRF token (tested in test_payments).
SIGNED_INSTEAD = {"payments.authorizenet_webhook"}


def state_changing_urls(app, world) -> list[str]:
    urls = []
    for rule in app.url_map.iter_rules():
        if rule.methods & {"POST", "PUT", "PATCH", "DELETE"} and rule.endpoint not in SIGNED_INSTEAD:
            urls.append(rule.build({name: world.get(name, 1) for name in rule.arguments})[1])
    return urls


def test_only_the_signed_webhook_is_exempt_from_csrf(app):
    from storefront.extensions import csrf

    exempt = {view for view in csrf._exempt_views}
    assert {name.rsplit(".", 1)[-1] for name in exempt} == {"authorizenet_webhook"}


def test_the_walk_covers_every_form(app, world):
    urls = state_changing_urls(app, world)
    assert "/login" in urls and "/cart/add" in urls and len(urls) >= 12


@pytest.mark.parametrize("token", [None, "", "not-a-token", "IjEyMyI.ZZZZ.forged"])
def test_every_state_changing_route_refuses_a_missing_or_wrong_csrf_token(app, client, session, world, token):
    before = row_counts(session)
    data = {
        "email": "fuzz@example.com",
        "password": "whatever-it-is",
        "quantity": "2",
        "full_name": "Changed",
        "variant_id": str(world["variant_id"]),
    }
    if token is not None:
        data["csrf_token"] = token
    for url in state_changing_urls(app, world):
        response = client.post(url, data=data)
        assert response.status_code == 400, url
        assert "CSRF" in response.get_data(as_text=True), url
    assert row_counts(session) == before
    assert client.get("/account").status_code == 200  # still signed in: even logout needs the token


def test_csrf_token_in_the_htmx_header_is_accepted(client, session, world):
    token = csrf_token(client)
    response = client.post(
        f"/cart/lines/{world['line_id']}",
        data={"quantity": 2},
        headers={"HX-Request": "true", "X-CSRFToken": token},
    )
    assert response.status_code == 200


FORMS = {
    "/register": ["email", "password", "confirm"],
    "/login": ["email", "password", "remember", "next"],
    "/password/reset": ["email"],
    "/password/reset/{token}": ["password", "confirm"],
    "/account/password": ["current_password", "password", "confirm"],
    "/account/addresses/new": [
        "full_name",
        "line1",
        "line2",
        "city",
        "region",
        "postal_code",
        "country",
        "phone",
    ],
    "/account/addresses/{address_id}/edit": ["full_name", "line1", "city", "postal_code", "country", "phone"],
    "/cart/add": ["variant_id", "quantity"],
    "/cart/lines/{line_id}": ["quantity"],
    "/checkout": [
        "email",
        "full_name",
        "line1",
        "city",
        "postal_code",
        "country",
        "shipping_method",
        "idempotency_key",
        "dataDescriptor",
        "dataValue",
    ],
    "/orders/{number}/pay": ["dataDescriptor", "dataValue"],
}


@pytest.mark.parametrize("url", list(FORMS))
def test_hostile_input_in_every_field_gets_a_4xx_never_a_500(app, client, session, world, url, monkeypatch):
    for setting in (
        "LOGIN_LIMIT_PER_IP",
        "LOGIN_LIMIT_PER_ACCOUNT",
        "REGISTER_LIMIT",
        "RESET_LIMIT",
        "ADD_TO_CART_LIMIT",
    ):
        monkeypatch.setitem(app.config, setting, "10000/minute")
    monkeypatch.setitem(app.config, "LOCKOUT_FAILURES", 10000)
    monkeypatch.setitem(app.config, "LOCKOUT_IP_FAILURES", 10000)
    target = url.format(**world)
    for field in FORMS[url]:
        for value in ODD_VALUES:
            for headers in ({}, {"HX-Request": "true"}):
                data = {"csrf_token": csrf_token(client), field: value}
                response = client.post(target, data=data, headers=headers)
                assert response.status_code < 500, (target, field, value)
                if response.status_code >= 400:
                    assert response.status_code in (400, 404, 413, 422, 429), (target, field, value)
                    body = response.get_data(as_text=True)
                    assert any(
                        mark in body for mark in ('role="alert"', "field-error", "status-error", "error-page")
                    ), (target, field, value)
            if client.get("/account").status_code != 200:  # a field like password may have changed things
                login(client, "fuzz@example.com")


def test_a_huge_form_is_refused_with_413(client, world):
    response = client.post(
        "/login", data={"csrf_token": csrf_token(client), "email": "x" * (3 * 1024 * 1024)}
    )
    assert response.status_code == 413


def test_the_database_never_stored_markup_as_markup(session, world):
    rows = session.execute(text("SELECT full_name FROM addresses")).scalars().all()
    assert all("<script>" not in row for row in rows)
