"""Each catalog page runs a small fixed number of SQL statements, however many products it shows; a page
served from the catalog cache runs none, adding to the cart runs two and a polled order status one."""

import pytest
from sqlalchemy import update

from storefront.catalog.models import Variant
from tests.factories import make_category, make_product
from tests.helpers import count_statements


@pytest.fixture
def big_shop(session):
    category = make_category(session, slug="lots", name="Lots")
    products = [
        make_product(
            session, category, name=f"Gold thing {n}", images=3, is_featured=n < 10, variants=[{}, {}, {}]
        )
        for n in range(30)
    ]
    return products


@pytest.mark.parametrize(
    ("url", "limit"),
    [
        ("/", 5),  # products in a running sale, featured products, images of each, categories
        # categories, one page of products, their first images, which of them are in stock
        ("/products", 4),
        ("/categories/lots?sort=price_desc&in_stock=y", 4),  # the same; the category is one of the categories
        ("/search?q=gold", 4),
        ("/products/{slug}", 2),  # product, category, variants and their sales in one; images
        ("/products/{slug}/stock", 1),
    ],
)
def test_page_statement_count_is_fixed(client, connection, big_shop, url, limit):
    url = url.format(slug=big_shop[0].slug)
    with count_statements(connection) as statements:
        response = client.get(url)
    assert response.status_code == 200
    assert len(statements) <= limit, "\n\n".join(statements)


@pytest.mark.parametrize(
    "url",
    ["/products", "/categories/lots?sort=price_desc&in_stock=y", "/search?q=gold", "/products/{slug}"],
)
def test_a_cached_page_runs_no_statement(app, client, connection, big_shop, monkeypatch, url):
    monkeypatch.setitem(app.config, "CATALOG_CACHE_SECONDS", 60)
    app.extensions["catalog_cache"].clear()
    url = url.format(slug=big_shop[0].slug)
    try:
        client.get(url)
        with count_statements(connection) as statements:
            response = app.test_client().get(url)
    finally:
        app.extensions["catalog_cache"].clear()
    assert response.status_code == 200
    assert statements == []


def test_add_to_cart_is_one_statement_and_a_refusal_one_more(app, client, connection, session, big_shop):
    from tests.factories import make_user
    from tests.helpers import csrf_token, login

    variants = big_shop[0].variants
    token = csrf_token(client)
    for variant in (variants[0], variants[0], variants[1]):  # new cart, same line, new line
        with count_statements(connection) as statements:
            response = client.post(
                "/cart/add", data={"variant_id": variant.id, "quantity": 1, "csrf_token": token}
            )
        # The cart, the line and the check of both in one statement.
        assert response.status_code == 303
        assert len(statements) == 1, "\n\n".join(statements)
    sold_out = big_shop[1].variants[0]
    session.execute(update(Variant).where(Variant.id == sold_out.id).values(reserved=Variant.on_hand))
    with count_statements(connection) as statements:
        refused = client.post(
            "/cart/add", data={"variant_id": sold_out.id, "quantity": 1, "csrf_token": token}
        )
    assert refused.status_code == 422 and "sold out" in refused.get_data(as_text=True)
    # The write that wrote nothing, the read of why, then the product page with the message (two queries).
    assert len(statements) == 4, "\n\n".join(statements)
    shopper = app.test_client()
    user = make_user(session)
    login(shopper, user.email)
    token = csrf_token(shopper)
    with count_statements(connection) as statements:
        response = shopper.post(
            "/cart/add", data={"variant_id": variants[2].id, "quantity": 1, "csrf_token": token}
        )
    assert response.status_code == 303
    assert len(statements) == 2, "\n\n".join(statements)  # + loading the signed-in user


def test_the_polled_order_status_runs_one_statement(client, connection, session):
    """A waiting shopper's status fragment is asked for every second during a drop: the order alone."""
    from tests.factories import make_order

    order = make_order(session)
    with client.session_transaction() as cookie:
        cookie["orders"] = [order.id]
    with count_statements(connection) as statements:
        polled = client.get(f"/orders/{order.number}", headers={"HX-Request": "true"})
    assert polled.status_code == 200 and "Confirming your payment" in polled.get_data(as_text=True)
    assert len(statements) == 1, "\n\n".join(statements)
    page = client.get(f"/orders/{order.number}").get_data(as_text=True)
    assert order.lines[0].product_name in page  # the full page still lists what was bought
