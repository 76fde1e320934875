"""The cart: add, change and remove with HTMX or plain forms, checked against live stock, merged at login."""

import pytest
from sqlalchemy import delete, func, select

from storefront.cart.models import Cart, CartLine
from tests.factories import make_product, make_user
from tests.helpers import csrf_token, login

HTMX = {"HX-Request": "true"}


@pytest.fixture
def ring(session):
    return make_product(
        session,
        name="Halo Ring",
        variants=[{"name": "Gold / 7", "on_hand": 5}, {"name": "Silver / 7", "on_hand": 0}],
    )


def add(client, variant_id, quantity=1, headers=None):
    data = {"variant_id": variant_id, "quantity": quantity, "csrf_token": csrf_token(client)}
    return client.post("/cart/add", data=data, headers=headers or {})


def lines(session):
    return session.execute(select(CartLine.variant_id, CartLine.quantity).order_by(CartLine.id)).all()


def test_htmx_add_returns_badge_and_status_out_of_band(client, session, ring):
    response = add(client, ring.variants[0].id, 2, HTMX)
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'id="cart-badge"' in body and 'hx-swap-oob="true"' in body and ">2</span>" in body
    assert 'id="cart-status" hx-swap-oob="innerHTML"' in body and "Added to your cart" in body
    assert response.headers["HX-Trigger"] == "cart-updated"
    assert lines(session) == [(ring.variants[0].id, 2)]


def test_adding_touches_a_cart_at_most_once_an_hour(client, session, ring):
    """The abandoned-cart purge only needs to know a cart is in use; rewriting its indexed row on every add
    would cost a drop's busiest write for nothing."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    add(client, ring.variants[0].id)
    half_an_hour_ago = datetime.now(UTC) - timedelta(minutes=30)
    session.execute(update(Cart).values(updated_at=half_an_hour_ago))
    add(client, ring.variants[0].id)
    assert session.scalar(select(Cart.updated_at)) == half_an_hour_ago
    session.execute(update(Cart).values(updated_at=datetime.now(UTC) - timedelta(hours=2)))
    add(client, ring.variants[0].id)
    assert session.scalar(select(Cart.updated_at)) > half_an_hour_ago
    assert lines(session) == [(ring.variants[0].id, 3)]


def test_plain_add_redirects_to_the_cart_with_303(client, session, ring):
    response = add(client, ring.variants[0].id, 1)
    assert response.status_code == 303 and response.headers["Location"] == "/cart"
    page = client.get("/cart").get_data(as_text=True)
    assert "Halo Ring" in page and "Added to your cart" in page and "$10.00" in page


def test_adding_again_adds_to_the_same_line(client, session, ring):
    add(client, ring.variants[0].id, 1)
    add(client, ring.variants[0].id, 2)
    assert lines(session) == [(ring.variants[0].id, 3)]
    assert 'aria-label="3 items"' in client.get("/").get_data(as_text=True)


def test_adding_more_than_is_available_says_how_many_are_left(client, session, ring):
    add(client, ring.variants[0].id, 3)
    response = add(client, ring.variants[0].id, 3, HTMX)
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "Only 5 left" in body and "You already have 3" in body
    assert lines(session) == [(ring.variants[0].id, 3)]


def test_a_line_stops_at_the_per_line_cap_and_the_badge_counts_every_line(client, session):
    necklace = make_product(session, variants=[{"on_hand": 50}, {"on_hand": 50}])
    first, second = (variant.id for variant in necklace.variants)
    add(client, first, 8)
    assert ">10</span>" in add(client, second, 2, HTMX).get_data(as_text=True)  # 8 + 2 across two lines
    refused = add(client, first, 3, HTMX)
    assert refused.status_code == 422 and "at most 10 of each item" in refused.get_data(as_text=True)
    assert lines(session) == [(first, 8), (second, 2)]


def test_a_sold_out_variant_cannot_be_added(client, session, ring):
    response = add(client, ring.variants[1].id, 1)
    assert response.status_code == 422
    assert "sold out" in response.get_data(as_text=True)
    assert lines(session) == []


def test_an_archived_product_cannot_be_added(client, session):
    product = make_product(session, is_active=False)
    response = add(client, product.variants[0].id, 1, HTMX)
    assert response.status_code == 422 and "no longer available" in response.get_data(as_text=True)


@pytest.mark.parametrize("quantity", ["0", "-1", "+1", "1.5", "1e3", "1_0", str(10**9), "abc", "", " ", "١"])
def test_bad_quantities_get_a_message_and_change_nothing(client, session, ring, quantity):
    add(client, ring.variants[0].id, 1)
    for headers in (HTMX, {}):
        response = add(client, ring.variants[0].id, quantity, headers)
        assert response.status_code == 422, quantity
        body = response.get_data(as_text=True)
        assert "whole number" in body or "Enter a quantity" in body
    assert lines(session) == [(ring.variants[0].id, 1)]


@pytest.mark.parametrize("variant_id", ["", "abc", "0", "99999999", str(2**40), "1; drop table carts"])
def test_bad_variant_ids_are_refused(client, session, variant_id):
    response = add(client, variant_id, 1)
    assert response.status_code == 422
    assert session.scalar(select(func.count(CartLine.id))) == 0


def test_price_and_totals_come_from_the_server(client, session, ring):
    client.post(
        "/cart/add",
        data={
            "variant_id": ring.variants[0].id,
            "quantity": 2,
            "price": "0.01",
            "csrf_token": csrf_token(client),
        },
    )
    page = client.get("/cart").get_data(as_text=True)
    assert "$20.00" in page and "0.01" not in page


def test_changing_the_quantity_with_htmx_returns_the_line_and_summary(client, session, ring):
    add(client, ring.variants[0].id, 1)
    line_id = session.scalar(select(CartLine.id))
    response = client.post(
        f"/cart/lines/{line_id}", data={"quantity": 4, "csrf_token": csrf_token(client)}, headers=HTMX
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert f'id="line-{line_id}"' in body and "$40.00" in body
    assert 'id="cart-summary"' in body and 'id="cart-badge"' in body and "Quantity updated" in body
    assert lines(session) == [(ring.variants[0].id, 4)]


def test_changing_to_more_than_available_is_refused(client, session, ring):
    add(client, ring.variants[0].id, 1)
    line_id = session.scalar(select(CartLine.id))
    response = client.post(f"/cart/lines/{line_id}", data={"quantity": 6, "csrf_token": csrf_token(client)})
    assert response.status_code == 422 and "Only 5 left" in response.get_data(as_text=True)
    assert lines(session) == [(ring.variants[0].id, 1)]


def test_removing_a_line(client, session, ring):
    add(client, ring.variants[0].id, 1)
    line_id = session.scalar(select(CartLine.id))
    response = client.post(
        f"/cart/lines/{line_id}/remove", data={"csrf_token": csrf_token(client)}, headers=HTMX
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and f'id="line-{line_id}"' not in body
    assert "Your cart is empty" in body and "Removed Halo Ring" in body
    assert lines(session) == []
    plain = client.post(f"/cart/lines/{line_id}/remove", data={"csrf_token": csrf_token(client)})
    assert plain.status_code == 404


def test_a_shopper_can_never_change_another_shoppers_cart(app, client, session, ring):
    other = app.test_client()
    add(other, ring.variants[0].id, 2)
    line_id = session.scalar(select(CartLine.id))
    token = csrf_token(client)
    assert client.post(f"/cart/lines/{line_id}", data={"quantity": 1, "csrf_token": token}).status_code == 404
    assert client.post(f"/cart/lines/{line_id}/remove", data={"csrf_token": token}).status_code == 404
    assert lines(session) == [(ring.variants[0].id, 2)]
    assert "Halo Ring" not in client.get("/cart").get_data(as_text=True)


def test_a_forged_cart_cookie_cannot_read_another_cart(app, client, session, ring):
    other = app.test_client()
    add(other, ring.variants[0].id, 2)
    cart_id = session.scalar(select(Cart.id))
    client.set_cookie("session", f'{{"cart_id": {cart_id}}}')  # unsigned: ignored
    assert "Halo Ring" not in client.get("/cart").get_data(as_text=True)


def test_the_anonymous_cart_merges_into_the_account_at_login(client, session, ring):
    user = make_user(session, "merge@example.com")
    earring = make_product(session, name="Drop Earrings", variants=[{"on_hand": 3}])
    account_cart = Cart(user_id=user.id)
    session.add(account_cart)
    session.flush()
    session.add(CartLine(cart_id=account_cart.id, variant_id=ring.variants[0].id, quantity=3))
    session.flush()
    add(client, ring.variants[0].id, 4)  # 3 + 4 > 5 available: capped at 5
    add(client, earring.variants[0].id, 2)
    response = login(client, "merge@example.com")
    assert response.status_code == 303
    assert lines(session) == [(ring.variants[0].id, 5), (earring.variants[0].id, 2)]
    assert session.scalar(select(func.count(Cart.id))) == 1
    page = client.get("/cart").get_data(as_text=True)
    assert "Halo Ring" in page and "Drop Earrings" in page
    assert 'aria-label="7 items"' in page


def test_the_account_cart_follows_the_shopper_to_another_device(app, client, session, ring):
    user = make_user(session)
    login(client, user.email)
    add(client, ring.variants[0].id, 2)
    phone = app.test_client()
    login(phone, user.email)
    assert "Halo Ring" in phone.get("/cart").get_data(as_text=True)


def test_the_badge_fragment_counts_items(client, session, ring):
    add(client, ring.variants[0].id, 3)
    response = client.get("/cart/badge")
    assert ">3</span>" in response.get_data(as_text=True)
    assert "no-store" in response.headers["Cache-Control"]


def test_product_page_offers_only_available_variants(client, session, ring):
    body = client.get(f"/products/{ring.slug}").get_data(as_text=True)
    assert f'value="{ring.variants[0].id}"\n             checked' in body or "checked" in body
    assert body.count("disabled") >= 1 and 'action="/cart/add"' in body


def test_adding_to_cart_is_rate_limited_per_ip(app, client, session, ring, monkeypatch):
    monkeypatch.setitem(app.config, "ADD_TO_CART_LIMIT", "2/minute")
    assert add(client, ring.variants[0].id).status_code == 303
    assert add(client, ring.variants[0].id, headers=HTMX).status_code == 200
    refused = add(client, ring.variants[0].id)
    assert refused.status_code == 429 and "Slow down" in refused.get_data(as_text=True)
    assert int(refused.headers["Retry-After"]) > 0
    assert add(client, ring.variants[0].id, headers=HTMX).status_code == 429
    assert lines(session) == [(ring.variants[0].id, 2)]


def test_a_signed_in_shopper_adds_to_one_account_cart(client, session, ring):
    user = make_user(session)
    login(client, user.email)
    add(client, ring.variants[0].id, 1)
    response = add(client, ring.variants[0].id, 2, HTMX)
    assert response.status_code == 200 and ">3</span>" in response.get_data(as_text=True)
    assert session.execute(select(Cart.user_id)).all() == [(user.id,)]
    assert lines(session) == [(ring.variants[0].id, 3)]


def test_a_cart_that_was_purged_is_replaced_by_a_new_one(client, session, ring):
    add(client, ring.variants[0].id, 2)
    session.execute(delete(Cart))  # as purge_abandoned_carts does
    response = add(client, ring.variants[0].id, 1, HTMX)
    assert response.status_code == 200 and ">1</span>" in response.get_data(as_text=True)
    assert lines(session) == [(ring.variants[0].id, 1)]
    with client.session_transaction() as cookie:
        assert cookie["cart_id"] == session.scalar(select(Cart.id))


def test_another_anonymous_cart_id_is_never_an_account_cart(client, session, ring):
    user = make_user(session)
    account_cart = Cart(user_id=user.id)
    session.add(account_cart)
    session.flush()
    with client.session_transaction() as cookie:
        cookie["cart_id"] = account_cart.id  # cannot be forged, but even so
    add(client, ring.variants[0].id, 1)
    assert session.scalar(select(func.count(CartLine.id)).where(CartLine.cart_id == account_cart.id)) == 0
    assert lines(session) == [(ring.variants[0].id, 1)]


def test_outside_a_test_transaction_adding_executes_a_statement_prepared_per_connection(
    database_url, media_folder
):
    """The app's own connections: add to cart runs on the autocommit pool as an EXECUTE of the statement
    each of its connections prepared, with the same checks as everywhere else."""
    from sqlalchemy import event, text
    from sqlalchemy.orm import Session

    from storefront import create_app
    from storefront.cart import services as carts
    from storefront.catalog.models import Category, Product
    from storefront.db import autocommit_session

    app = create_app({"SECRET_KEY": "x", "DATABASE_URL": database_url, "MEDIA_FOLDER": str(media_folder)})
    with Session(app.extensions["db_engine"]) as own:
        product = make_product(own, variants=[{"on_hand": 5}])
        variant_id, product_id, category_id = product.variants[0].id, product.id, product.category_id
        own.commit()
    sent = []
    single = app.extensions["db_autocommit_engine"]
    event.listen(single, "before_cursor_execute", lambda _c, _cur, statement, *_a: sent.append(statement))
    cart_id = None
    try:
        with app.test_request_context("/"):
            db = autocommit_session()
            added = carts.add_item(db, variant_id, 2, 10)
            cart_id = added.cart_id
            again = carts.add_item(db, variant_id, 1, 10, cart_id=cart_id)
            with pytest.raises(carts.CartError, match="Only 5 left"):
                carts.add_item(db, variant_id, 3, 10, cart_id=cart_id)
            pid = db.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar()
        assert (added.count, again.count, again.cart_id) == (2, 3, cart_id)
        assert sum(s.startswith("EXECUTE storefront_add_to_anonymous_cart(") for s in sent) == 3
        # PostgreSQL drops the pooled connection (a restart): the next add finds it dead and runs on a new one.
        with Session(app.extensions["db_engine"]) as own:
            own.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with app.test_request_context("/"):
            last = carts.add_item(autocommit_session(), variant_id, 1, 10, cart_id=cart_id)
        assert last.count == 4
        with Session(app.extensions["db_engine"]) as own:
            assert own.scalar(select(CartLine.quantity).where(CartLine.cart_id == cart_id)) == 4
    finally:
        with Session(app.extensions["db_engine"]) as own:
            if cart_id is not None:
                own.execute(delete(Cart).where(Cart.id == cart_id))
            own.delete(own.get(Product, product_id))
            own.flush()
            own.delete(own.get(Category, category_id))
            own.commit()
        for engine in (app.extensions["db_engine"], single):
            engine.dispose()
