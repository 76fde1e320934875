"""How the shop looks on a phone and a desktop: the one-row header, the product page's first screen, the
sticky buy bar, a drop's countdown going live in place, and screenshots of every shopper page."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import DESKTOP, PHONE

FLASH_SLUG = "aurora-crystal-drop-necklace"
HEADER_MAX_PX = 64
TARGET_MIN_PX = 44


def in_stock_product(live_server, variants: str = "= 1") -> str:
    """The slug of a demo product with a photo, in stock, with the given count of options."""
    [slug] = live_server.scalars(
        f"""
        SELECT p.slug FROM products p
        WHERE p.is_active AND p.slug <> :flash
          AND (SELECT count(*) FROM variants v WHERE v.product_id = p.id) {variants}
          AND NOT EXISTS (SELECT 1 FROM variants v WHERE v.product_id = p.id AND v.on_hand - v.reserved < 20
                                                         AND v.position = 0)
          AND EXISTS (SELECT 1 FROM product_images i WHERE i.product_id = p.id)
        ORDER BY p.id LIMIT 1
        """,
        flash=FLASH_SLUG,
    )
    return slug


def box(page: Page, selector: str) -> dict:
    found = page.locator(selector).first.bounding_box()
    assert found, f"{selector} is not rendered"
    return found


def assert_header_is_one_row(page: Page) -> None:
    header = box(page, ".site-header")
    assert header["height"] <= HEADER_MAX_PX, f"the header is {header['height']} px tall"
    row = [".nav-menu summary", ".brand", ".nav-search summary", ".nav-icon", "#cart-badge"]
    middles = [box(page, s)["y"] + box(page, s)["height"] / 2 for s in row]
    assert max(middles) - min(middles) < 8, (
        f"the header's items are not on one row: {dict(zip(row, middles, strict=True))}"
    )
    for selector in [".nav-menu summary", ".nav-search summary", ".nav-icon", "#cart-badge"]:
        target = box(page, selector)
        assert min(target["width"], target["height"]) >= TARGET_MIN_PX, (
            f"{selector} is a small target: {target}"
        )


def assert_in_first_screen(page: Page, selector: str) -> None:
    found = box(page, selector)
    assert found["y"] >= 0 and found["y"] + found["height"] <= PHONE["height"], (
        f"{selector} is not in the first screen: {found}"
    )


@pytest.mark.parametrize("options", ["= 1", "BETWEEN 2 AND 4"], ids=["one-option", "few-options"])
def test_on_a_phone_the_header_is_one_row_and_the_product_page_shows_the_buy_button_first(
    phone, live_server, options, screenshot, browser_errors
):
    page = phone
    page.goto(f"/products/{in_stock_product(live_server, options)}")
    page.wait_for_load_state("load")
    assert_header_is_one_row(page)
    for selector in [
        ".gallery img",
        "h1",
        "#product-price",
        ".variant .stock",
        "#add-to-cart button[type=submit]",
    ]:
        assert_in_first_screen(page, selector)
    buy = page.get_by_role("button", name="Add to cart")
    assert min(buy.bounding_box()["height"], buy.bounding_box()["width"]) >= TARGET_MIN_PX
    expect(page.locator(".buy-bar")).to_be_hidden()  # no second button while the first is in sight
    screenshot(page, f"product-first-screen-{options.split()[0].lower()}", full_page=False)
    browser_errors.assert_none(page)


def test_on_a_phone_a_product_with_many_options_offers_the_sticky_bar_in_the_first_screen(
    phone, live_server, screenshot, browser_errors
):
    page = phone
    page.goto(f"/products/{in_stock_product(live_server, '> 8')}")
    page.wait_for_load_state("load")
    assert_header_is_one_row(page)
    for selector in [".gallery img", "h1", "#product-price"]:
        assert_in_first_screen(page, selector)
    form_button = box(page, "#add-to-cart button[type=submit]")
    if (
        form_button["y"] + form_button["height"] > PHONE["height"]
    ):  # the options pushed it down: the bar stands in
        expect(page.locator(".buy-bar")).to_be_visible()
        assert_in_first_screen(page, ".buy-bar button")
    screenshot(page, "product-first-screen-many", full_page=False)
    browser_errors.assert_none(page)


def test_the_sticky_buy_bar_shows_only_once_the_buy_button_scrolled_away(phone, live_server, browser_errors):
    page = phone
    page.goto(f"/products/{in_stock_product(live_server)}")
    page.wait_for_load_state("load")
    # A long page (as a product with a long description makes), so the form can scroll out of sight.
    page.evaluate(
        "() => { const room = document.createElement('div'); room.style.height = '2000px';"
        " document.querySelector('.details').append(room) }"
    )
    bar = page.locator(".buy-bar")
    expect(bar).to_be_hidden()  # the form's own button is on screen
    page.mouse.wheel(0, 1500)
    expect(bar).to_be_visible()
    assert box(page, ".buy-bar")["y"] + box(page, ".buy-bar")["height"] <= PHONE["height"] + 1
    bar.locator("button").click()  # submits the same form, in place
    expect(page.locator("#cart-status")).to_contain_text("View cart")
    expect(page.locator("#cart-badge .count")).to_have_text("1")
    page.mouse.wheel(0, -4000)
    expect(bar).to_be_hidden()
    browser_errors.assert_none(page)


def test_the_header_search_and_menu_open_without_javascript(nojs, browser_errors):
    page = nojs
    page.goto("/")
    assert_header_is_one_row(page)
    search = page.get_by_label("Search products")
    expect(search).to_be_hidden()
    page.get_by_label("Open search").click()
    search.fill("gold")
    search.press("Enter")
    expect(page).to_have_url(re.compile(r"/search\?q=gold"))
    page.get_by_label("Menu").click()
    page.locator(".nav-menu").get_by_role("link", name="Shop all").click()
    expect(page).to_have_url(re.compile(r"/products$"))
    browser_errors.assert_none(page)


def test_a_drop_counts_down_and_turns_live_in_place(phone, live_server, screenshot, browser_errors):
    slug = in_stock_product(live_server, "= 1")
    [variant_id] = live_server.scalars(
        "SELECT v.id FROM variants v JOIN products p ON p.id = v.product_id WHERE p.slug = :slug", slug=slug
    )
    starts = datetime.now(UTC) + timedelta(seconds=6)
    name = f"Look drop {slug}"
    live_server.execute(
        "INSERT INTO sales (name, starts_at, ends_at, per_customer_limit) VALUES (:name, :starts, :ends, 2)",
        name=name,
        starts=starts.replace(tzinfo=None),
        ends=(starts + timedelta(hours=1)).replace(tzinfo=None),
    )
    live_server.execute(
        "INSERT INTO sale_items (sale_id, variant_id, sale_price)"
        " SELECT id, :variant, 1.99 FROM sales WHERE name = :name",
        variant=variant_id,
        name=name,
    )
    page = phone
    try:
        page.goto(f"/products/{slug}")
        expect(page.get_by_role("timer")).to_have_text(re.compile(r"^\d+ s$"))
        expect(page.locator("#drop")).to_contain_text("Limit 2 per customer")
        screenshot(page, "drop-countdown-390", full_page=False)
        page.evaluate("() => { window.__marker = 1 }")
        expect(page.locator("#drop")).to_contain_text("Live now", timeout=15_000)
        expect(page.locator("#product-price ins")).to_have_text("$1.99")
        expect(page.locator("#add-to-cart .variant-price ins")).to_have_text("$1.99")
        assert page.evaluate("window.__marker") == 1, "the page reloaded instead of turning live in place"
        screenshot(page, "drop-live-390", full_page=False)
        page.get_by_role("button", name="Add to cart").click()  # the swapped-in form still adds in place
        expect(page.locator("#cart-badge .count")).not_to_have_text("0")
        browser_errors.assert_none(page)
    finally:
        live_server.execute("DELETE FROM sales WHERE name = :name", name=name)


def test_without_javascript_a_refresh_shows_the_countdown_then_the_live_drop(
    nojs, live_server, browser_errors
):
    slug = in_stock_product(live_server, "> 1")
    starts = datetime.now(UTC) + timedelta(seconds=4)
    name = f"Look nojs drop {slug}"
    live_server.execute(
        "INSERT INTO sales (name, starts_at, ends_at) VALUES (:name, :starts, :ends)",
        name=name,
        starts=starts.replace(tzinfo=None),
        ends=(starts + timedelta(hours=1)).replace(tzinfo=None),
    )
    live_server.execute(
        "INSERT INTO sale_items (sale_id, variant_id, sale_price) SELECT s.id, v.id, 2.49 FROM sales s, variants v"
        " JOIN products p ON p.id = v.product_id WHERE s.name = :name AND p.slug = :slug",
        name=name,
        slug=slug,
    )
    page = nojs
    try:
        page.goto(f"/products/{slug}")
        expect(page.get_by_role("timer")).to_be_visible()
        page.wait_for_timeout(int((starts - datetime.now(UTC)).total_seconds() * 1000) + 2500)
        page.reload()
        expect(page.locator("#drop")).to_contain_text("Live now")
        expect(page.locator("#product-price ins")).to_have_text("$2.49")
        browser_errors.assert_none(page)
    finally:
        live_server.execute("DELETE FROM sales WHERE name = :name", name=name)


SHOPPER_PAGES = {
    "home": "/",
    "all-products": "/products",
    "category": "/categories/rings",
    "search": "/search?q=gold",
    "drop-product": f"/products/{FLASH_SLUG}",
    "sign-in": "/login",
    "register": "/register",
    "reset-password": "/password/reset",
}


@pytest.mark.parametrize("size", ["390", "1280"])
def test_screenshots_of_every_shopper_page(new_page, live_server, size, screenshot, browser_errors):
    page = new_page(viewport=PHONE if size == "390" else DESKTOP)
    page.set_default_timeout(30_000)  # eleven full-page screenshots on a busy shared machine
    pages = dict(SHOPPER_PAGES, product=f"/products/{in_stock_product(live_server, '> 1')}")
    for name, path in pages.items():
        response = page.goto(path)
        assert response.status == 200, f"{path}: {response.status}"
        page.wait_for_load_state("load")
        screenshot(page, f"{name}-{size}")
    page.goto(pages["product"])
    page.get_by_role("button", name="Add to cart").click()
    expect(page.locator("#cart-badge .count")).not_to_have_text("0")
    for name, path in {"cart": "/cart", "checkout": "/checkout"}.items():
        page.goto(path)
        page.wait_for_load_state("load")
        screenshot(page, f"{name}-{size}")
    browser_errors.assert_none(page)


@pytest.mark.parametrize("path", ["/login", "/register"])
def test_more_pages_have_no_serious_accessibility_violations(axe, path):
    violations = axe(path)
    assert not violations, f"axe on {path}:\n{axe.report(violations)}"


def test_a_drop_page_has_no_serious_accessibility_violations(axe, live_server):
    slug = in_stock_product(live_server, "> 2")
    name = f"Look axe drop {slug}"
    starts = datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=2)
    live_server.execute(
        "INSERT INTO sales (name, starts_at, ends_at, per_customer_limit) VALUES (:name, :starts, :ends, 1)",
        name=name,
        starts=starts,
        ends=starts + timedelta(hours=1),
    )
    live_server.execute(
        "INSERT INTO sale_items (sale_id, variant_id, sale_price) SELECT s.id, v.id, 3.00 FROM sales s, variants v"
        " JOIN products p ON p.id = v.product_id WHERE s.name = :name AND p.slug = :slug",
        name=name,
        slug=slug,
    )
    try:
        violations = axe(f"/products/{slug}")
        assert not violations, f"axe on a drop's page:\n{axe.report(violations)}"
    finally:
        live_server.execute("DELETE FROM sales WHERE name = :name", name=name)


def _cart_with_one(page: Page, live_server) -> str:
    slug = in_stock_product(live_server)
    page.goto(f"/products/{slug}")
    page.get_by_label("Quantity").fill("2")
    page.get_by_role("button", name="Add to cart").click()
    expect(page.locator("#cart-badge .count")).to_have_text("2")  # the add (in place with HTMX) is done
    page.goto("/cart")
    return slug


def test_cart_steppers_change_the_quantity_in_place(phone, live_server, screenshot, browser_errors):
    page = phone
    _cart_with_one(page, live_server)
    field = page.locator("#cart-lines input[type=number]")
    expect(field).to_have_value("2")
    page.evaluate("() => { window.__marker = 1 }")
    page.get_by_role("button", name=re.compile(r"^Increase the quantity")).click()
    expect(field).to_have_value("3")
    expect(page.locator("#cart-badge .count")).to_have_text("3")
    page.get_by_role("button", name=re.compile(r"^Decrease the quantity")).click()
    expect(field).to_have_value("2")
    assert page.evaluate("window.__marker") == 1, "a stepper reloaded the page"
    for name in ["Increase", "Decrease", "Remove"]:
        target = page.get_by_role("button", name=re.compile(rf"^{name}")).bounding_box()
        assert min(target["width"], target["height"]) >= TARGET_MIN_PX, f"{name} is a small target: {target}"
    page.goto("/checkout")
    expect(page.locator("#order-summary img")).to_have_count(1)  # the summary shows the line's picture
    browser_errors.assert_none(page)


def test_without_javascript_a_stepper_posts_its_own_quantity(nojs, live_server, browser_errors):
    page = nojs
    _cart_with_one(page, live_server)
    page.get_by_role("button", name=re.compile(r"^Decrease the quantity")).click()
    expect(page.locator("#messages")).to_contain_text("Quantity updated.")
    expect(page.locator("#cart-lines input[type=number]")).to_have_value("1")
    expect(page.get_by_role("button", name=re.compile(r"^Decrease the quantity"))).to_be_disabled()  # never 0
    field = page.locator("#cart-lines input[type=number]")
    field.fill("4")
    field.press("Enter")  # Enter submits what was typed, not a stepper's value
    expect(page.locator("#cart-lines input[type=number]")).to_have_value("4")
    browser_errors.assert_none(page)
