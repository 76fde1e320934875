"""IDOR walk: anonymous, shopper B, staff and admin by every route with an id or number in it (from the URL
map), filled with shopper A's real ids: nobody but A reads or changes A's addresses, cart or orders, and only
staff reach the admin's."""

import pytest
from sqlalchemy import select

from storefront.accounts.models import Address
from storefront.cart.models import CartLine
from storefront.orders.models import Order
from tests.factories import make_order, make_product, make_user
from tests.helpers import csrf_token, login, staff_login
from tests.security.conftest import build, routes

SECRET = "Idor-Secret-Lane 42"
FORM = {
    "full_name": "Mallory Attacker",
    "line1": "1 Changed St",
    "city": "Elsewhere",
    "postal_code": "99999",
    "country": "US",
    "quantity": "3",
}


@pytest.fixture
def victim(app, session):
    """Shopper A, signed in on a client of its own, with an address, a cart line and an order."""
    user = make_user(session, "victim-a@example.com")
    address = Address(
        user_id=user.id, full_name="Ada A", line1=SECRET, city="Town", postal_code="12345", country="US"
    )
    session.add(address)
    product = make_product(session, variants=[{"on_hand": 9}])
    order = make_order(session, user=user, ship_line1=SECRET)
    session.flush()
    browser = app.test_client()
    login(browser, user.email)
    browser.post(
        "/cart/add",
        data={"variant_id": product.variants[0].id, "quantity": 1, "csrf_token": csrf_token(browser)},
    )
    line = session.scalar(select(CartLine).order_by(CartLine.id.desc()))
    ids = {
        "address_id": str(address.id),
        "line_id": str(line.id),
        "number": order.number,
        "user_id": str(user.id),
    }
    return {"user": user, "client": browser, "ids": ids}


def snapshot(session, ids) -> tuple:
    session.expire_all()
    address = session.get(Address, int(ids["address_id"]))
    line = session.get(CartLine, int(ids["line_id"]))
    order = session.scalar(select(Order).where(Order.number == ids["number"]))
    return (
        address and (address.full_name, address.line1, address.is_default),
        line and line.quantity,
        order and (order.status, order.ship_line1),
    )


def shopper_routes(app, ids) -> list[tuple[str, str]]:
    """Every non-admin route whose arguments name one of A's things."""
    return [
        (method, build(rule, ids))
        for rule, method in routes(app, with_arguments=True)
        if not rule.rule.startswith("/admin") and set(rule.arguments) & {"address_id", "line_id", "number"}
    ]


def admin_routes(app, ids) -> list[tuple[str, str]]:
    return [
        (method, build(rule, ids))
        for rule, method in routes(app, with_arguments=True)
        if rule.rule.startswith("/admin")
    ]


def attempt(client, method: str, url: str):
    data = {"csrf_token": csrf_token(client), **FORM} if method != "GET" else None
    return client.open(url, method=method, data=data)


@pytest.fixture
def actors(app, session):
    """Everyone who is not A: a stranger, another shopper, a staff member and an admin (each a browser)."""
    anonymous, shopper_b, staff, admin = (app.test_client() for _ in range(4))
    make_user(session, "shopper-b@example.com")
    login(shopper_b, "shopper-b@example.com")
    staff_login(staff, session, role="staff")
    staff_login(admin, session, role="admin")
    return {"anonymous": anonymous, "shopper B": shopper_b, "staff": staff, "admin": admin}


def test_nobody_else_reads_or_changes_a_shoppers_things(app, session, victim, actors):
    ids = victim["ids"]
    urls = shopper_routes(app, ids)
    assert len(urls) >= 8, urls
    before = snapshot(session, ids)
    leaks = []
    for name, client in actors.items():
        for method, url in urls:
            response = attempt(client, method, url)
            location = response.headers.get("Location", "")
            refused = response.status_code in (401, 403, 404) or (
                response.status_code in (302, 303) and location.startswith("/login")
            )
            if not refused or SECRET in response.get_data(as_text=True):
                leaks.append((name, method, url, response.status_code, location))
    print(f"\nIDOR walk: {len(urls)} routes × {len(actors)} actors, {len(leaks)} crossings")
    assert leaks == []
    assert snapshot(session, ids) == before


def test_the_owner_reaches_every_page_the_walk_tries(app, session, victim):
    """The control: the ids in the walk are real, so a refusal above is a refusal and not a typo."""
    for method, url in shopper_routes(app, victim["ids"]):
        # The hosted payment form's return and cancel links also need the per-attempt signature that only the
        # gateway's redirect carries: without it the owner gets the same 404 as anyone else.
        if method == "GET" and "/hosted/" not in url:
            response = victim["client"].get(url)
            assert response.status_code in (200, 303), (url, response.status_code)
    assert SECRET in victim["client"].get(f"/orders/{victim['ids']['number']}").get_data(as_text=True)


def test_only_staff_reach_the_admins_routes_with_ids(app, session, victim, actors):
    urls = admin_routes(app, victim["ids"])
    crossings = []
    for name in ("anonymous", "shopper B"):
        for method, url in urls:
            response = attempt(actors[name], method, url)
            allowed = (
                response.headers.get("Location", "").startswith("/login")
                if name == "anonymous"
                else response.status_code == 404
            )
            if not allowed:
                crossings.append((name, method, url, response.status_code))
    for method, url in urls:
        response = attempt(victim["client"], method, url)
        if response.status_code != 404:
            crossings.append(("shopper A", method, url, response.status_code))
    page = actors["staff"].get(f"/admin/orders/{victim['ids']['number']}")
    assert page.status_code == 200 and SECRET in page.get_data(as_text=True)
    print(f"\nIDOR walk: {len(urls)} admin routes × 3 non-staff actors, {len(crossings)} crossings")
    assert crossings == []
