"""The shopper's catalog: home, listings, filters, search, product page and live stock."""

import re
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import update

from storefront.catalog.models import Product, Variant
from tests.factories import make_category, make_product


@pytest.fixture
def shop(session):
    """A small catalog: two categories, products at known prices and stock, created in a known order."""
    rings = make_category(session, slug="rings", name="Rings")
    necklaces = make_category(session, slug="necklaces", name="Necklaces")
    now = datetime.now(UTC)
    products = {
        "cheap": make_product(
            session,
            rings,
            slug="tiny-ring",
            name="Tiny Silver Ring",
            variants=[{"price": Decimal("5.00")}],
            created_at=now - timedelta(days=3),
        ),
        "mid": make_product(
            session,
            rings,
            slug="gold-hoop-ring",
            name="Gold Hoop Ring",
            variants=[{"price": Decimal("20.00")}, {"price": Decimal("25.00")}],
            created_at=now - timedelta(days=2),
        ),
        "dear": make_product(
            session,
            necklaces,
            slug="pearl-necklace",
            name="Pearl Necklace",
            description="Freshwater pearls on a gold chain.",
            variants=[{"price": Decimal("45.00"), "on_hand": 0}],
            is_featured=True,
            created_at=now - timedelta(days=1),
        ),
        "hidden": make_product(
            session,
            necklaces,
            slug="archived-necklace",
            name="Archived Necklace",
            is_active=False,
            created_at=now,
        ),
    }
    return {"rings": rings, "necklaces": necklaces, **products}


def names(response) -> list[str]:
    """Product names in the order the page shows them."""
    return re.findall(r"<h3>([^<]+)</h3>", response.get_data(as_text=True))


def test_home_shows_the_featured_drop_and_categories(client, shop):
    response = client.get("/")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "Pearl Necklace" in body and "The current drop" in body
    assert 'href="/categories/rings"' in body and 'href="/categories/necklaces"' in body


def test_listing_shows_active_products_newest_first(client, shop):
    response = client.get("/products")
    assert response.status_code == 200
    assert names(response) == ["Pearl Necklace", "Gold Hoop Ring", "Tiny Silver Ring"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("sort=price_asc", ["Tiny Silver Ring", "Gold Hoop Ring", "Pearl Necklace"]),
        ("sort=price_desc", ["Pearl Necklace", "Gold Hoop Ring", "Tiny Silver Ring"]),
        ("category=rings", ["Gold Hoop Ring", "Tiny Silver Ring"]),
        ("min_price=10&max_price=30", ["Gold Hoop Ring"]),
        ("in_stock=y", ["Gold Hoop Ring", "Tiny Silver Ring"]),
        ("category=rings&sort=price_desc&max_price=10", ["Tiny Silver Ring"]),
    ],
)
def test_listing_filters_and_sorts_from_the_query_string(client, shop, query, expected):
    response = client.get(f"/products?{query}")
    assert response.status_code == 200
    assert names(response) == expected


def test_product_price_sorts_by_its_cheapest_variant(client, shop):
    body = client.get("/products?sort=price_asc").get_data(as_text=True)
    assert "$20.00" in body and "$25.00" not in body


def test_category_page_lists_only_that_category(client, shop):
    response = client.get("/categories/necklaces")
    assert response.status_code == 200
    assert names(response) == ["Pearl Necklace"]
    assert "<h1>Necklaces</h1>" in response.get_data(as_text=True)


def test_unknown_category_and_product_slugs_are_404(client, shop):
    assert client.get("/categories/nope").status_code == 404
    assert client.get("/products/nope").status_code == 404
    assert client.get("/products/archived-necklace").status_code == 404
    assert client.get("/products/nope/stock").status_code == 404


@pytest.mark.parametrize(
    "query",
    [
        "min_price=abc",
        "max_price=-1",
        "min_price=1e9",
        "sort=evil",
        "page=0",
        "page=x",
        "category=nope",
        "min_price=30&max_price=10",
        "q=" + "x" * 101,
    ],
)
def test_bad_filters_get_a_clear_message_not_a_500(client, shop, query):
    response = client.get(f"/products?{query}")
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "Please check the filters" in body and 'role="alert"' in body


def test_pagination_links_to_the_next_page_keeping_filters(app, client, session):
    category = make_category(session, slug="bulk", name="Bulk")
    for n in range(app.config["PAGE_SIZE"] + 5):
        make_product(session, category, name=f"Bulk item {n:02d}", variants=[{"price": Decimal(n + 1)}])
    first = client.get("/categories/bulk?sort=price_asc")
    assert len(names(first)) == app.config["PAGE_SIZE"]
    body = first.get_data(as_text=True)
    assert 'href="/categories/bulk?sort=price_asc&amp;page=2"' in body
    second = client.get("/categories/bulk?sort=price_asc&page=2")
    assert names(second) == [
        f"Bulk item {n:02d}" for n in range(app.config["PAGE_SIZE"], app.config["PAGE_SIZE"] + 5)
    ]
    assert "Load more" not in second.get_data(as_text=True)
    assert "Previous page" in second.get_data(as_text=True)


def test_htmx_listing_request_gets_only_the_results_fragment(htmx, shop):
    response = htmx.get("/products?category=rings")
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert body.lstrip().startswith('<section id="results"')
    assert "<html" not in body
    assert "HX-Request" in response.headers["Vary"]


def test_history_restore_gets_the_full_page(client, shop):
    response = client.get("/products", headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert "<html" in response.get_data(as_text=True)
    assert "HX-Request" in response.headers["Vary"]


def test_full_page_also_varies_on_hx_request(client, shop):
    assert "HX-Request" in client.get("/products").headers["Vary"]


def test_search_finds_products_by_word_and_prefix(client, shop):
    assert names(client.get("/search?q=pearl")) == ["Pearl Necklace"]
    assert names(client.get("/search?q=neckl")) == ["Pearl Necklace"]
    assert names(client.get("/search?q=freshwater")) == ["Pearl Necklace"]  # from the description
    assert names(client.get("/search?q=gold+ring")) == ["Gold Hoop Ring"]


def test_search_ranks_better_matches_first(client, session):
    category = make_category(session)
    make_product(session, category, name="Silver chain", description="Goes with a ring.")
    make_product(session, category, name="Ring ring ring", description="A ring, a ring.")
    assert names(client.get("/search?q=ring"))[0] == "Ring ring ring"


def test_search_treats_operators_and_quotes_as_plain_text(client, shop):
    for query in ["pearl%20%26%20!", "%27%3B%20drop%20table%20products%3B--", "a:*|b", "%F0%9F%92%8D"]:
        response = client.get(f"/search?q={query}")
        assert response.status_code == 200
    assert client.get("/search?q=pearl%00").status_code == 400


def test_search_with_no_results_helps_the_shopper(client, shop):
    body = client.get("/search?q=unobtainium").get_data(as_text=True)
    assert "No products match “unobtainium”" in body
    assert "Check the spelling" in body
    assert 'href="/categories/rings"' in body


def test_empty_search_asks_for_a_word(client, shop):
    body = client.get("/search").get_data(as_text=True)
    assert "Type a word to search" in body
    assert names(client.get("/search")) == []


def test_search_as_you_type_returns_the_fragment(htmx, shop):
    response = htmx.get("/search?q=pear")
    body = response.get_data(as_text=True)
    assert body.lstrip().startswith('<section id="results"')
    assert "Pearl Necklace" in body


def test_product_page_shows_images_variants_prices_and_stock(client, session):
    product = make_product(
        session,
        name="Twin Hoops",
        images=2,
        variants=[
            {"name": "Gold", "sku": "HOOP-G", "price": Decimal("12.00"), "on_hand": 40},
            {"name": "Silver", "sku": "HOOP-S", "price": Decimal("14.00"), "on_hand": 3},
            {"name": "Rose", "sku": "HOOP-R", "price": Decimal("14.00"), "on_hand": 5, "reserved": 5},
        ],
    )
    body = client.get(f"/products/{product.slug}").get_data(as_text=True)
    assert body.count('width="800" height="800"') == 2
    assert "$12.00 – $14.00" in body
    for sku in ("HOOP-G", "HOOP-S", "HOOP-R"):
        assert sku in body
    assert "In stock" in body and "Only 3 left" in body and "Sold out" in body


def test_stock_fragment_reports_live_availability_out_of_band(client, session):
    product = make_product(session, variants=[{"on_hand": 20}])
    variant = product.variants[0]
    url = f"/products/{product.slug}/stock"
    assert "In stock" in client.get(url).get_data(as_text=True)
    session.execute(update(Variant).where(Variant.id == variant.id).values(reserved=18))
    response = client.get(url)
    body = response.get_data(as_text=True)
    assert f'id="stock-{variant.id}"' in body and 'hx-swap-oob="true"' in body
    assert "Only 2 left" in body
    assert "no-store" in response.headers["Cache-Control"]
    session.execute(update(Variant).where(Variant.id == variant.id).values(reserved=20))
    assert "Sold out" in client.get(url).get_data(as_text=True)


def test_sold_out_product_is_marked_in_listings(client, shop):
    body = client.get("/categories/necklaces").get_data(as_text=True)
    assert "Sold out" in body


def test_user_content_is_escaped_never_interpreted(client, session):
    product = make_product(
        session, name="<script>alert(1)</script>", description="<img src=x onerror=alert(1)>"
    )
    body = client.get(f"/products/{product.slug}").get_data(as_text=True)
    assert "<script>alert(1)" not in body and "&lt;script&gt;" in body
    assert "<img src=x" not in body


def test_price_from_follows_the_cheapest_variant(session):
    product = make_product(session, variants=[{"price": Decimal("9.50")}, {"price": Decimal("7.25")}])
    assert product.price_from == Decimal("7.25")
    assert isinstance(session.get(Product, product.id).price_from, Decimal)


# --- snapshots: the product page and listings served from the process's cache for a few seconds ---


@pytest.fixture
def cached(app, monkeypatch):
    """The catalog cache on (2 s) with a clock the test moves by hand; the cache is empty before and after."""
    from storefront.extensions import clock

    moment = {"now": clock.now()}
    monkeypatch.setattr(clock, "now", lambda: moment["now"])
    monkeypatch.setitem(app.config, "CATALOG_CACHE_SECONDS", 2)
    cache = app.extensions["catalog_cache"]
    cache.clear()

    class Clock:
        def advance(self, seconds: float) -> None:
            moment["now"] += seconds

        def at(self, when: datetime) -> None:
            moment["now"] = when.timestamp()

    yield Clock()
    cache.clear()


def sale(session, variant, price: str, starts_at: datetime, ends_at: datetime, limit: int | None = None):
    from storefront.catalog.models import Sale, SaleItem

    drop = Sale(name="Flash drop", starts_at=starts_at, ends_at=ends_at, per_customer_limit=limit)
    drop.items.append(SaleItem(variant_id=variant.id, sale_price=Decimal(price)))
    session.add(drop)
    session.flush()
    return drop


def test_a_cached_product_page_runs_no_sql_and_is_still_per_shopper(app, client, connection, session, cached):
    from tests.helpers import count_statements

    product = make_product(session, name="Snapshot Ring", variants=[{"price": Decimal("30.00")}])
    first = client.get(f"/products/{product.slug}")
    with count_statements(connection) as statements:
        again = client.get(f"/products/{product.slug}")
        other = app.test_client().get(f"/products/{product.slug}")
    assert statements == []
    assert again.status_code == other.status_code == 200
    assert again.get_data(as_text=True) == first.get_data(as_text=True)
    token = re.compile(r'name="csrf_token" value="([^"]+)"')
    assert token.search(other.get_data(as_text=True))[1] != token.search(first.get_data(as_text=True))[1]
    with client.session_transaction() as cookie:
        cookie["cart_count"] = 4
    assert 'aria-label="4 items"' in client.get(f"/products/{product.slug}").get_data(as_text=True)


def test_a_cached_product_page_shows_a_flash_once_and_the_hx_token_is_the_shoppers(client, session, cached):
    product = make_product(session, name="Flash Ring")
    url = f"/products/{product.slug}"
    client.get(url)  # the page is in the cache now
    with client.session_transaction() as cookie:
        cookie["_flashes"] = [("success", "Your address was saved.")]
    assert "Your address was saved." in client.get(url).get_data(as_text=True)
    page = client.get(url).get_data(as_text=True)
    assert "Your address was saved." not in page
    assert "<!--storefront:" not in page  # every hole filled
    header_token = re.search(r'"X-CSRFToken": "([^"]+)"', page)[1]
    assert header_token == re.search(r'name="csrf_token" value="([^"]+)"', page)[1]


def test_a_rebuilt_product_page_keeps_no_earlier_shoppers_token(app, client, session, cached, monkeypatch):
    """CSRF tokens are signed once per session and kept (security.csrf_token): a page rebuilt for a returning
    shopper must still cut out every copy of that shopper's token, or the next shopper would get it."""
    from itsdangerous.timed import TimestampSigner

    start = int(time.time())
    ticks = iter(range(start, start + 100_000))
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda _self: next(ticks))  # a signature per second
    product = make_product(session, name="Token Ring", variants=[{"on_hand": 5}])
    url = f"/products/{product.slug}"
    client.get(url)
    client.get(url)  # this shopper's signed token is kept now
    cached.advance(2.1)
    client.get(url)  # the page is rebuilt during this shopper's visit
    newcomer = app.test_client()
    page = newcomer.get(url).get_data(as_text=True)
    header_token = re.search(r'"X-CSRFToken": "([^"]+)"', page)[1]
    assert header_token == re.search(r'name="csrf_token" value="([^"]+)"', page)[1]
    added = newcomer.post(
        "/cart/add",
        data={"variant_id": product.variants[0].id, "quantity": 1},
        headers={"X-CSRFToken": header_token},
    )
    assert added.status_code == 303


def test_an_edit_shows_on_the_product_page_once_the_snapshot_expires(client, session, cached):
    product = make_product(session, variants=[{"price": Decimal("30.00")}])
    url = f"/products/{product.slug}"
    assert "$30.00" in client.get(url).get_data(as_text=True)
    session.execute(
        update(Variant).where(Variant.id == product.variants[0].id).values(price=Decimal("35.00"))
    )
    cached.advance(1.5)
    assert "$30.00" in client.get(url).get_data(as_text=True)
    cached.advance(0.6)
    assert "$35.00" in client.get(url).get_data(as_text=True)


def test_a_drop_starts_and_ends_on_time_however_long_the_cache(app, client, session, cached):
    app.config["CATALOG_CACHE_SECONDS"] = 3600
    product = make_product(session, variants=[{"price": Decimal("30.00")}])
    starts = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
    sale(session, product.variants[0], "12.00", starts, starts + timedelta(minutes=10))
    url = f"/products/{product.slug}"
    assert "$12.00" not in client.get(url).get_data(as_text=True)
    cached.at(starts - timedelta(seconds=1))
    assert "$12.00" not in client.get(url).get_data(as_text=True)
    cached.at(starts)
    body = client.get(url).get_data(as_text=True)
    assert "<del>$30.00</del> <ins>$12.00</ins>" in body and "Flash drop until" in body
    cached.at(starts + timedelta(minutes=10))
    assert "$12.00" not in client.get(url).get_data(as_text=True)


def test_the_lowest_running_sale_price_wins(client, session):
    product = make_product(session, variants=[{"price": Decimal("30.00")}])
    now = datetime.now(UTC)
    sale(session, product.variants[0], "20.00", now - timedelta(hours=1), now + timedelta(hours=1))
    sale(session, product.variants[0], "15.00", now - timedelta(hours=1), now + timedelta(hours=2))
    sale(session, product.variants[0], "5.00", now + timedelta(hours=1), now + timedelta(hours=2))
    body = client.get(f"/products/{product.slug}").get_data(as_text=True)
    assert "<ins>$15.00</ins>" in body and "$20.00" not in body and "$5.00" not in body


def test_a_cache_time_of_zero_turns_the_cache_off(app, client, connection, session, cached):
    from tests.helpers import count_statements

    app.config["CATALOG_CACHE_SECONDS"] = 0
    product = make_product(session, variants=[{"price": Decimal("30.00")}])
    client.get(f"/products/{product.slug}")
    session.execute(
        update(Variant).where(Variant.id == product.variants[0].id).values(price=Decimal("35.00"))
    )
    with count_statements(connection) as statements:
        assert "$35.00" in client.get(f"/products/{product.slug}").get_data(as_text=True)
    assert statements


def test_live_stock_and_add_to_cart_never_use_the_snapshot(client, session, cached):
    from tests.helpers import csrf_token

    product = make_product(session, variants=[{"on_hand": 20}])
    variant = product.variants[0]
    assert "In stock" in client.get(f"/products/{product.slug}").get_data(as_text=True)
    session.execute(update(Variant).where(Variant.id == variant.id).values(reserved=20))
    assert "In stock" in client.get(f"/products/{product.slug}").get_data(as_text=True)  # a hint, for 2 s
    assert "Sold out" in client.get(f"/products/{product.slug}/stock").get_data(as_text=True)
    token = csrf_token(client, f"/products/{product.slug}")
    refused = client.post("/cart/add", data={"variant_id": variant.id, "quantity": 1, "csrf_token": token})
    assert refused.status_code == 422 and "sold out" in refused.get_data(as_text=True)


def test_listings_are_cached_too_and_show_new_products_after_expiry(client, session, cached):
    category = make_category(session, slug="fresh", name="Fresh")
    make_product(session, category, name="First arrival")
    assert names(client.get("/categories/fresh")) == ["First arrival"]
    make_product(
        session, category, name="Second arrival", created_at=datetime.now(UTC) + timedelta(seconds=1)
    )
    assert names(client.get("/categories/fresh")) == ["First arrival"]
    cached.advance(2.1)
    assert names(client.get("/categories/fresh")) == ["Second arrival", "First arrival"]


# --- a drop's product page: the countdown by the server's clock, the limit before adding, going live in place ---


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
