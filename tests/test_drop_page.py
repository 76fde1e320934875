"""A drop's product page: the countdown by the server's clock, the limit before adding, going live in place."""

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tests import test_catalog
from tests.factories import make_product
from tests.test_catalog import sale

cached = test_catalog.cached  # the catalog cache with a clock the test moves


def _drop_box(body: str) -> str:
    return re.search(r'<section id="drop".*?</section>', body, re.S).group(0)


def test_before_the_start_the_page_counts_down_by_the_server_clock_and_states_the_limit(
    client, session, cached
):
    product = make_product(session, variants=[{"price": Decimal("30.00")}])
    starts = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    sale(session, product.variants[0], "12.00", starts, starts + timedelta(hours=1), limit=2)
    cached.at(starts - timedelta(hours=1, minutes=5))

    box = _drop_box(client.get(f"/products/{product.slug}").get_data(as_text=True))
    assert '<strong role="timer">1 h 05 min</strong>' in box
    assert "Limit 2 per customer" in box and "$12.00" not in box
    assert 'hx-trigger="every 15s"' in box  # far from the start: minutes are enough

    cached.at(starts - timedelta(seconds=90))  # the last two minutes count seconds, polled every second
    box = _drop_box(client.get(f"/products/{product.slug}/drop").get_data(as_text=True))
    assert '<strong role="timer">90 s</strong>' in box and 'hx-trigger="every 1s"' in box


def test_the_polled_drop_box_swaps_in_the_sale_offer_at_the_start(client, session, cached):
    product = make_product(session, variants=[{"price": Decimal("30.00")}])
    starts = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
    sale(session, product.variants[0], "12.00", starts, starts + timedelta(minutes=10), limit=1)
    cached.at(starts - timedelta(seconds=1))
    assert "Starts in" in client.get(f"/products/{product.slug}/drop").get_data(as_text=True)

    cached.at(starts)
    response = client.get(f"/products/{product.slug}/drop")
    body = response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    assert "Live now" in body and "hx-trigger" not in _drop_box(body)  # live: no more polling
    assert re.search(r'<p id="product-price" class="price" hx-swap-oob="true">\s*<ins>\$12.00</ins>', body)
    assert re.search(r'<form id="add-to-cart"[^>]*hx-swap-oob="true"', body)
    assert "<del>$30.00</del> <ins>$12.00</ins>" in body and "Limit 1 per customer" in body
    assert 'id="cart-status"' not in body  # the page keeps its own status region


def test_a_product_without_a_drop_has_no_drop_box(client, session):
    product = make_product(session, variants=[{"price": Decimal("30.00")}])
    assert 'id="drop"' not in client.get(f"/products/{product.slug}").get_data(as_text=True)
    assert (
        client.get(f"/products/{product.slug}/drop").get_data(as_text=True).strip() == '<div id="drop"></div>'
    )
    assert client.get("/products/no-such-thing/drop").status_code == 404
