"""Search: a result count, where each product matched (name or materials), close matches for a misspelt word
(pg_trgm on PostgreSQL), and suggestions as the shopper types (an HTMX fragment; a plain search without it)."""

import re

import pytest

from storefront.catalog import search
from storefront.catalog.services import ListingQuery
from tests.factories import make_category, make_product


@pytest.fixture
def jewelry(session):
    category = make_category(session, slug="jewelry-search", name="Jewelry")
    made = [
        make_product(
            session,
            category,
            slug="drop-necklace",
            name="Drop Necklace",
            description="Materials: freshwater pearl on a brass core.",
        ),
        make_product(
            session,
            category,
            slug="halo-ring",
            name="Halo Ring",
            description="A classic. Materials: sterling silver.",
        ),
        make_product(
            session,
            category,
            slug="silver-hoops",
            name="Silver Hoops",
            description="Light hoops. Materials: sterling silver.",
        ),
    ]
    session.flush()
    return made


def names(response) -> list[str]:
    return re.findall(r"<h3>([^<]+)</h3>", response.get_data(as_text=True))


def test_search_says_how_many_products_match(client, jewelry):
    body = client.get("/search?q=silver").get_data(as_text=True)
    assert "2 products for “silver”" in body
    assert "1 product for “pearl”" in client.get("/search?q=pearl").get_data(as_text=True)


def test_a_match_in_the_materials_is_shown_as_such(client, jewelry):
    response = client.get("/search?q=silver")
    body = response.get_data(as_text=True)
    assert sorted(names(response)) == ["Halo Ring", "Silver Hoops"]
    # Halo Ring matched only in its materials; Silver Hoops by name, which needs no hint.
    assert body.count("Matched in: materials") == 1
    ring = body.index("Halo Ring")
    assert body.index("Matched in: materials") > ring


def test_a_misspelt_word_finds_close_matches(client, jewelry):
    response = client.get("/search?q=neckalce")
    body = response.get_data(as_text=True)
    assert names(response) == ["Drop Necklace"]
    assert "close to “neckalce”" in body


def test_a_word_nothing_is_close_to_still_finds_nothing(client, jewelry):
    body = client.get("/search?q=unobtainium").get_data(as_text=True)
    assert "No products match “unobtainium”" in body


def test_the_count_stops_at_the_cap(session, jewelry, monkeypatch):
    monkeypatch.setattr(search, "COUNT_CAP", 1)
    results = search.search(session, ListingQuery(q="silver", sort="relevance"), per_page=24)
    assert results.capped and len(results.page.cards) == 2


def test_suggestions_as_you_type_are_a_fragment_of_product_links(htmx, jewelry):
    response = htmx.get("/search/suggest?q=hal")
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "HX-Request" in response.headers["Vary"]
    assert body.lstrip().startswith("{#") is False and 'id="search-suggestions"' in body
    assert '<a href="/products/halo-ring">Halo Ring</a>' in body
    assert "Drop Necklace" not in body


def test_suggestions_match_the_start_of_any_name_word(htmx, jewelry):
    body = htmx.get("/search/suggest?q=hoo").get_data(as_text=True)
    assert "Silver Hoops" in body and "Halo Ring" not in body


def test_without_htmx_the_suggest_url_is_a_plain_search(client, jewelry):
    response = client.get("/search/suggest?q=halo")
    assert response.status_code == 303 and response.headers["Location"].endswith("/search?q=halo")


def test_the_search_page_asks_for_suggestions_while_typing(client, jewelry):
    body = client.get("/search?q=ring").get_data(as_text=True)
    assert 'hx-get="/search/suggest"' in body and 'id="search-suggestions"' in body
