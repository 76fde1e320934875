"""The catalog in a real browser: browse, load more, filter, search, live stock, with and without JavaScript."""

import re
from contextlib import contextmanager
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

CARDS = "#product-grid > li article"
FLASH_SLUG = "aurora-crystal-drop-necklace"
STOCK_LABEL = re.compile(r"^(In stock|Only \d+ left|Sold out)$")
STOCK_POLL_WAIT_MS = 15_000  # the product page polls every 5 s


def card_names(page: Page) -> list[str]:
    return page.locator(f"{CARDS} h3").all_inner_texts()


def query(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def columns(page: Page, selector: str) -> int:
    """How many columns a grid shows: the distinct left edges of its items."""
    return page.evaluate(
        "s => new Set([...document.querySelectorAll(s)].map(e => Math.round(e.getBoundingClientRect().left))).size",
        selector,
    )


def assert_no_horizontal_scroll(page: Page) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{page.url} scrolls sideways by {overflow}px"


def mark_page(page: Page) -> None:
    """Leave a marker in the window and count HTMX settles: a full page load would erase both."""
    page.evaluate(
        "() => { window.__marker = 1; window.__settles = 0;"
        " document.body.addEventListener('htmx:afterSettle', () => { window.__settles += 1 }) }"
    )


def assert_same_page(page: Page) -> None:
    assert page.evaluate("window.__marker") == 1, "the page was reloaded instead of swapped"


@contextmanager
def htmx_swap(page: Page):
    """Wait, after the block, until HTMX has swapped and settled new content into this same page."""
    before = page.evaluate("window.__settles")
    assert before is not None, "call mark_page(page) first"
    yield
    page.wait_for_function("n => window.__settles > n", arg=before, timeout=10_000)


def category_with_sold_out_products(live_server) -> str:
    """The demo category with the most sold-out products, so the in-stock filter visibly changes it."""
    slugs = live_server.scalars(
        """
        SELECT c.slug FROM categories c JOIN products p ON p.category_id = c.id
        WHERE p.is_active AND c.slug <> 'necklaces' AND NOT EXISTS (
            SELECT 1 FROM variants v WHERE v.product_id = p.id AND v.on_hand > v.reserved)
        GROUP BY c.slug, c.position ORDER BY count(*) DESC, c.position LIMIT 1
        """
    )
    assert slugs, "the demo catalog should have a sold-out product"
    return slugs[0]


def in_stock_names(live_server, category: str) -> list[str]:
    """What the in-stock filter of a category must show, newest first, straight from the database."""
    return live_server.scalars(
        """
        SELECT p.name FROM products p JOIN categories c ON c.id = p.category_id
        WHERE c.slug = :category AND p.is_active AND EXISTS (
            SELECT 1 FROM variants v WHERE v.product_id = p.id AND v.on_hand > v.reserved)
        ORDER BY p.created_at DESC, p.id DESC
        """,
        category=category,
    )


# -- browsing -----------------------------------------------------------------------------------------


def test_phone_shopper_goes_from_home_to_a_category_to_a_product(phone, screenshot, browser_errors):
    page = phone
    page.goto("/")
    expect(page.locator(".hero h1")).to_be_visible()
    assert page.locator(".category-grid a").count() == 20
    assert_no_horizontal_scroll(page)
    screenshot(page, "home-390")

    page.locator(".category-grid").get_by_role("link", name="Rings", exact=True).click()
    expect(page).to_have_url(re.compile(r"/categories/rings$"))
    expect(page.locator("h1")).to_have_text("Rings")
    page.wait_for_load_state("load")  # the stylesheet, before measuring the layout
    cards = page.locator(CARDS)
    assert 0 < cards.count() <= 24
    assert columns(page, "#product-grid > li") == 2
    assert_no_horizontal_scroll(page)
    screenshot(page, "listing-390")

    # The first card with a photo: other browser tests add products (without photos) to this catalog.
    card = page.locator("#product-grid > li:has(img) article").first
    name = card.locator("h3").inner_text()
    card.get_by_role("link").click()
    expect(page).to_have_url(re.compile(r"/products/[a-z0-9-]+$"))
    expect(page.locator("h1")).to_have_text(name)
    expect(
        page.get_by_role("navigation", name="breadcrumb").get_by_role("link", name="Rings")
    ).to_be_visible()

    images = page.locator(".gallery img")
    assert images.count() >= 1
    for image in images.all():
        assert int(image.get_attribute("width")) > 0 and int(image.get_attribute("height")) > 0
        assert image.get_attribute("alt")
    expect(images.first).to_be_visible()
    assert images.first.evaluate("img => img.complete && img.naturalWidth > 0"), "the main image did not load"

    variants = page.locator(".variant")
    assert variants.count() >= 1
    for variant in variants.all():
        assert variant.locator(".variant-name").inner_text().strip()
        assert re.fullmatch(r"\$\d+\.\d\d", variant.locator(".variant-price").inner_text().strip())
        expect(variant.locator(".stock")).to_have_text(STOCK_LABEL)
    assert_no_horizontal_scroll(page)
    screenshot(page, "product-390")
    browser_errors.assert_none(page)


def test_desktop_layout_of_home_listing_and_product(desktop, screenshot, browser_errors):
    page = desktop
    page.goto("/")
    hero_text, hero_image = page.locator(".hero > div"), page.locator(".hero > img")
    assert hero_image.bounding_box()["x"] > hero_text.bounding_box()["x"], "the hero should be two columns"
    assert_no_horizontal_scroll(page)
    screenshot(page, "home-1280")

    page.goto("/products")
    expect(page.locator(CARDS)).to_have_count(24)
    assert columns(page, f"{CARDS}") == 4
    filters, results = page.locator("aside[aria-label=Filters]"), page.locator("#results")
    assert filters.bounding_box()["x"] < results.bounding_box()["x"], "filters should sit beside the results"
    assert_no_horizontal_scroll(page)
    screenshot(page, "listing-1280")

    page.goto(f"/products/{FLASH_SLUG}")
    gallery, details = page.locator(".gallery"), page.locator(".details")
    assert gallery.bounding_box()["x"] < details.bounding_box()["x"], "gallery and details side by side"
    assert_no_horizontal_scroll(page)
    screenshot(page, "product-1280")
    browser_errors.assert_none(page)


# -- HTMX enhancements --------------------------------------------------------------------------------


def test_load_more_appends_the_next_page_in_place(phone, browser_errors):
    page = phone
    page.goto("/products")
    cards = page.locator(CARDS)
    expect(cards).to_have_count(24)
    first_page = card_names(page)
    url = page.url
    token = page.evaluate("JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRFToken']")
    assert token
    mark_page(page)
    documents = []
    page.on("request", lambda r: documents.append(r.url) if r.resource_type == "document" else None)

    with page.expect_request(lambda r: "page=2" in r.url) as caught, htmx_swap(page):
        page.get_by_role("button", name="Load more").click()

    expect(cards).to_have_count(48)
    request = caught.value
    headers = request.all_headers()
    assert headers.get("hx-request") == "true"
    assert headers.get("x-csrftoken") == token, "HTMX requests must carry the CSRF header from <body>"
    assert request.resource_type in {"xhr", "fetch"}
    assert page.url == url
    assert_same_page(page)
    assert documents == []
    names = card_names(page)
    assert names[:24] == first_page
    assert len(set(names)) == 48, "page 2 repeated products of page 1"
    expect(page.locator("#load-more")).to_have_count(1)
    assert page.locator("#load-more a").get_attribute("href") == "/products?page=3"
    browser_errors.assert_none(page)


def test_double_click_on_load_more_sends_one_request(phone, browser_errors):
    page = phone
    page.goto("/products")
    mark_page(page)
    requests = []
    page.on("request", lambda r: requests.append(r.url) if "page=2" in r.url else None)

    with htmx_swap(page):
        page.get_by_role("button", name="Load more").dblclick()
    page.wait_for_timeout(500)  # a second request would have been sent by now

    assert len(requests) == 1, requests
    expect(page.locator(CARDS)).to_have_count(48)
    browser_errors.assert_none(page)


def test_filters_swap_results_push_the_url_and_survive_back_and_reload(phone, live_server, browser_errors):
    page = phone
    category = category_with_sold_out_products(live_server)
    page.goto("/products")
    mark_page(page)

    with page.expect_request(lambda r: f"category={category}" in r.url) as caught, htmx_swap(page):
        page.locator("#filter-category").select_option(category)
    assert caught.value.all_headers().get("hx-request") == "true"
    expect(page).to_have_url(re.compile(rf"[?&]category={category}(&|$)"))
    assert "in_stock" not in query(page)
    whole_category = card_names(page)
    sold_out = page.locator(".badge-sold-out").count()
    assert sold_out > 0

    with htmx_swap(page):
        page.get_by_label("In stock only").check()
    expect(page).to_have_url(re.compile(r"[?&]in_stock=y(&|$)"))
    assert query(page)["category"] == [category]
    expect(page.locator(".badge-sold-out")).to_have_count(0)
    in_stock = card_names(page)
    assert in_stock == in_stock_names(live_server, category)
    assert len(in_stock) == len(whole_category) - sold_out
    assert_same_page(page)

    page.go_back()
    expect(page).not_to_have_url(re.compile(r"in_stock="))
    assert query(page)["category"] == [category]
    expect(page.locator(CARDS)).to_have_count(len(whole_category))
    assert card_names(page) == whole_category
    expect(page.get_by_label("In stock only")).not_to_be_checked()
    expect(page.locator("#filter-category")).to_have_value(category)

    page.reload()
    expect(page.locator("h1")).to_have_text("All products")
    expect(page.locator("#filter-category")).to_have_value(category)
    assert card_names(page) == whole_category
    browser_errors.assert_none(page)


def test_invalid_price_range_swaps_in_the_error_message(phone, browser_errors):
    page = phone
    page.goto("/products")
    mark_page(page)
    browser_errors.expect(r"status of 422")  # Chromium notes every 4xx response in the console

    with htmx_swap(page):
        page.get_by_label("Minimum price").fill("50")
        page.get_by_label("Minimum price").press("Tab")
    with page.expect_response(lambda r: "max_price=10" in r.url) as caught, htmx_swap(page):
        page.get_by_label("Maximum price").fill("10")
        page.get_by_label("Maximum price").press("Tab")

    assert caught.value.status == 422
    alert = page.locator("#results [role=alert]")
    expect(alert).to_contain_text("Please check the filters.")
    expect(alert).to_contain_text("Max price must be at least the min price.")
    expect(page.locator(CARDS)).to_have_count(0)
    assert_same_page(page)
    browser_errors.assert_none(page)


def test_enter_in_a_price_field_sends_one_request(phone, browser_errors):
    page = phone
    page.goto("/products")
    mark_page(page)
    requests = []
    page.on("request", lambda r: requests.append(r.url) if "min_price=20" in r.url else None)

    with htmx_swap(page):
        page.get_by_label("Minimum price").fill("20")
        page.get_by_label("Minimum price").press("Enter")
    page.wait_for_timeout(500)  # a second request would have been sent by now

    expect(page).to_have_url(re.compile(r"[?&]min_price=20(&|$)"))
    assert len(requests) == 1, f"Enter sent {len(requests)} requests: {requests}"
    assert_same_page(page)
    browser_errors.assert_none(page)  # an aborted duplicate makes htmx log console errors


def test_search_as_you_type_shows_results_and_replaces_the_url(phone, browser_errors):
    page = phone
    page.goto("/search")
    expect(page.locator("#results")).to_contain_text("Type a word to search the shop.")
    mark_page(page)
    history_length = page.evaluate("history.length")
    searches = []
    page.on("request", lambda r: searches.append(r.url) if "/search?" in r.url else None)

    with htmx_swap(page):
        page.locator("#search-q").press_sequentially("gold", delay=80)

    expect(page).to_have_url(re.compile(r"/search\?(.*&)?q=gold(&|$)"))
    found = card_names(page)
    assert found, "searching for gold found nothing"
    assert page.evaluate("history.length") == history_length, "as-you-type must replace, not push, the URL"
    assert_same_page(page)
    assert len(searches) < 4, f"typing should be debounced: {searches}"
    assert "q=gold" in searches[-1]

    page.reload()  # the replaced URL is the full search page with the same results
    expect(page.locator("#search-q")).to_have_value("gold")
    assert card_names(page) == found

    mark_page(page)
    with htmx_swap(page):
        page.locator("#search-q").press("Control+a")
        page.locator("#search-q").press_sequentially("qzxvjk", delay=40)
    expect(page.locator("#results h2")).to_have_text("No products match “qzxvjk”")
    expect(page.locator(CARDS)).to_have_count(0)
    expect(page).to_have_url(re.compile(r"q=qzxvjk"))
    browser_errors.assert_none(page)


def test_enter_in_the_search_box_sends_one_request(phone, browser_errors):
    page = phone
    page.goto("/search")
    mark_page(page)
    requests = []
    # Search requests only: the suggestions under the box are their own, smaller request while typing.
    page.on(
        "request", lambda r: requests.append(r.url) if "q=ring" in r.url and "/suggest" not in r.url else None
    )

    with htmx_swap(page):
        page.locator("#search-q").press_sequentially("ring", delay=40)
        page.locator("#search-q").press("Enter")
    page.wait_for_timeout(800)  # past the 300 ms as-you-type delay

    assert card_names(page), "searching for ring found nothing"
    assert len(requests) == 1, f"Enter sent {len(requests)} requests: {requests}"
    assert_same_page(page)
    browser_errors.assert_none(page)


def test_stock_label_updates_live_without_a_reload(desktop, live_server, browser_errors):
    page = desktop
    page.goto(f"/products/{FLASH_SLUG}")
    label = page.locator(".variant .stock")
    expect(label).to_have_count(1)
    expect(label).to_have_text("In stock")
    mark_page(page)
    flash = "UPDATE variants SET reserved = {} WHERE sku = 'DEMO-FLASH'"
    try:
        assert live_server.execute(flash.format("on_hand - 3")) == 1
        expect(label).to_have_text("Only 3 left", timeout=STOCK_POLL_WAIT_MS)
        expect(label).to_have_class(re.compile(r"\bstock-low\b"))

        live_server.execute(flash.format("on_hand"))
        expect(label).to_have_text("Sold out", timeout=STOCK_POLL_WAIT_MS)
        expect(label).to_have_class(re.compile(r"\bstock-sold_out\b"))
        assert_same_page(page)
    finally:
        live_server.execute(flash.format("0"))
    browser_errors.assert_none(page)


# -- without JavaScript -------------------------------------------------------------------------------


def test_without_javascript_home_category_and_product_are_plain_links(nojs, browser_errors):
    page = nojs
    page.goto("/")
    page.locator(".category-grid").get_by_role("link", name="Rings", exact=True).click()
    expect(page).to_have_url(re.compile(r"/categories/rings$"))
    # The first card with a photo: other browser tests add products (without photos) to this catalog.
    card = page.locator("#product-grid > li:has(img) article").first
    name = card.locator("h3").inner_text()
    card.get_by_role("link").click()
    expect(page).to_have_url(re.compile(r"/products/[a-z0-9-]+$"))
    expect(page.locator("h1")).to_have_text(name)
    for label in page.locator(".variant .stock").all():
        expect(label).to_have_text(STOCK_LABEL)
    browser_errors.assert_none(page)


def test_without_javascript_filters_submit_as_a_get_to_a_full_page(nojs, live_server, browser_errors):
    page = nojs
    category = category_with_sold_out_products(live_server)
    page.goto("/products")
    page.locator("#filter-category").select_option(category)
    page.get_by_label("In stock only").check()
    assert query(page) == {}, "nothing may happen before the form is submitted"

    page.get_by_role("button", name="Apply filters").click()

    expect(page).to_have_url(re.compile(r"/products\?.*in_stock=y"))
    assert query(page)["category"] == [category]
    expect(page.locator("h1")).to_have_text("All products")
    expect(page.locator("#filter-category")).to_have_value(category)
    expect(page.get_by_label("In stock only")).to_be_checked()
    assert card_names(page) == in_stock_names(live_server, category)
    browser_errors.assert_none(page)


def test_without_javascript_load_more_is_a_link_to_page_2(nojs, browser_errors):
    page = nojs
    page.goto("/products")
    first_page = card_names(page)
    load_more = page.get_by_role("button", name="Load more")
    assert load_more.get_attribute("href") == "/products?page=2"

    load_more.click()

    expect(page).to_have_url(re.compile(r"/products\?page=2$"))
    expect(page.locator(CARDS)).to_have_count(24)
    assert not set(card_names(page)) & set(first_page)
    expect(page.get_by_role("link", name="← Previous page")).to_have_attribute("href", "/products?page=1")
    browser_errors.assert_none(page)


def test_without_javascript_search_submits_with_the_button(nojs, browser_errors):
    page = nojs
    page.goto("/search")
    page.locator("#search-q").fill("gold")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page).to_have_url(re.compile(r"/search\?q=gold"))
    expect(page).to_have_title(re.compile(r"^Search: gold"))
    assert card_names(page)
    browser_errors.assert_none(page)


# -- accessibility, errors, CSP -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/", "/products", "/categories/rings", f"/products/{FLASH_SLUG}", "/search?q=gold"]
)
def test_page_has_no_serious_accessibility_violations(axe, path):
    violations = axe(path)
    assert not violations, f"axe on {path}:\n{axe.report(violations)}"


def test_no_serious_accessibility_violations_after_htmx_swaps(axe, live_server):
    page = axe.page
    page.goto("/products")
    mark_page(page)
    with htmx_swap(page):
        page.locator("#filter-category").select_option(category_with_sold_out_products(live_server))
    violations = axe.scan()
    assert not violations, f"axe after a filter swap:\n{axe.report(violations)}"

    page.goto("/products")
    mark_page(page)
    with htmx_swap(page):
        page.get_by_role("button", name="Load more").click()
    violations = axe.scan()
    assert not violations, f"axe after Load more:\n{axe.report(violations)}"


def test_unknown_product_shows_the_404_page(phone, live_server, browser_errors):
    page = phone
    browser_errors.expect(r"status of 404")
    response = page.goto("/products/nope")
    assert response.status == 404
    expect(page.locator("h1")).to_have_text("Page not found")
    expect(page).to_have_title(re.compile(r"^Page not found"))
    page.get_by_role("button", name="Back to the shop").click()
    expect(page).to_have_url(f"{live_server.url}/")
    browser_errors.assert_none(page)


def test_console_watch_catches_a_csp_violation(phone, browser_errors):
    """The "no console errors" checks can fail: an inline style, blocked by the CSP, is reported."""
    page = phone
    page.goto("/")
    page.evaluate("document.body.setAttribute('style', 'outline: 1px solid red')")
    for _ in range(20):  # the console message arrives asynchronously; wait at most 2 s
        errors = browser_errors.of(page)
        if any("Content Security Policy" in e for e in errors):
            break
        page.wait_for_timeout(100)
    assert any("Content Security Policy" in e for e in errors), errors
    browser_errors.expect("Content Security Policy")
