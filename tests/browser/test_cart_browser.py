"""The cart in a real browser: add with HTMX, quantities and removal in place, merge at login, and without JS."""

import re
import uuid
from decimal import Decimal
from typing import NamedTuple
from urllib.parse import parse_qs

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import text

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

PASSWORD = "Quartz-Lantern-8421"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


class Item(NamedTuple):
    slug: str
    name: str
    variant_id: int
    variant: str
    price: Decimal

    @property
    def label(self) -> str:
        return f"{self.name} ({self.variant})"


def items(live_server, count: int, skip: int) -> list[Item]:
    """Single-option demo products with plenty of stock; each test takes its own slice (skip) of them."""
    with live_server.engine().connect() as connection:
        found = connection.execute(
            text(
                """
                SELECT p.slug, p.name, v.id, v.name, v.price FROM products p JOIN variants v ON v.product_id = p.id
                WHERE p.is_active AND v.per_customer_limit IS NULL AND v.sku <> 'DEMO-FLASH'
                  AND v.on_hand - v.reserved >= 20
                  AND (SELECT count(*) FROM variants w WHERE w.product_id = p.id) = 1
                ORDER BY p.id LIMIT :count OFFSET :skip
                """
            ),
            {"count": count, "skip": skip},
        ).all()
    assert len(found) == count, "the demo catalog should have enough single-option products in stock"
    return [Item(*row) for row in found]


def money(amount: Decimal) -> str:
    return f"${amount:,.2f}"


def mark_page(page: Page) -> None:
    """A marker in the window: a full page load would erase it."""
    page.evaluate("() => { window.__marker = 1 }")


def assert_same_page(page: Page) -> None:
    assert page.evaluate("window.__marker") == 1, "the page was reloaded instead of swapped"


def watch_documents(page: Page) -> list[str]:
    """Every document (full page) request from now on."""
    documents: list[str] = []
    page.on("request", lambda r: documents.append(r.url) if r.resource_type == "document" else None)
    return documents


def badge(page: Page):
    return page.locator("#cart-badge .count")


def add_with_htmx(page: Page, item: Item, quantity: int = 1) -> None:
    """Add from the product page with JavaScript, waiting for the status region to confirm it."""
    page.goto(f"/products/{item.slug}")
    status = page.locator("#cart-status")
    if quantity != 1:
        page.get_by_label("Quantity").fill(str(quantity))
    with page.expect_response(lambda r: r.url.endswith("/cart/add")) as caught:
        page.get_by_role("button", name="Add to cart").click()
    assert caught.value.status == 200, caught.value.text()
    expect(status).to_contain_text("Added to your cart")


def cart_line(page: Page, item: Item):
    return page.locator("#cart-lines > li.cart-line", has_text=item.name)


# -- adding from the product page ---------------------------------------------------------------------


def test_add_to_cart_swaps_the_badge_and_status_in_place(phone, live_server, browser_errors):
    page = phone
    [item] = items(live_server, 1, skip=0)
    page.goto(f"/products/{item.slug}")
    expect(badge(page)).to_have_text("0")
    status = page.locator("#cart-status")
    expect(status).to_have_attribute("role", "status")
    expect(status).to_be_empty()
    token = page.evaluate("JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRFToken']")
    assert token
    url = page.url
    mark_page(page)
    documents = watch_documents(page)

    with page.expect_request(lambda r: r.url.endswith("/cart/add") and r.method == "POST") as caught:
        page.get_by_role("button", name="Add to cart").click()

    expect(badge(page)).to_have_text("1")
    expect(page.locator("#cart-badge .count")).to_have_attribute("aria-label", "1 item")
    expect(status).to_contain_text("Added to your cart (1 item).")
    expect(status.get_by_role("link", name="View cart")).to_have_attribute("href", "/cart")
    request = caught.value
    headers = request.all_headers()
    assert headers.get("hx-request") == "true"
    assert headers.get("x-csrftoken") == token, "HTMX posts must carry the CSRF header from <body>"
    assert request.resource_type in {"xhr", "fetch"}
    form = parse_qs(request.post_data)
    assert form["variant_id"] == [str(item.variant_id)] and form["quantity"] == ["1"]
    assert page.url == url
    assert_same_page(page)
    assert documents == []

    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.get_by_role("button", name="Add to cart").dblclick()
    expect(status).to_contain_text("Added to your cart (2 items).")
    page.wait_for_timeout(500)  # a second POST would have been sent by now
    assert len(posts) == 1, f"a double click sent {len(posts)} POSTs: {posts}"
    expect(badge(page)).to_have_text("2")
    expect(page.get_by_role("button", name="Add to cart")).to_be_enabled()
    assert_same_page(page)
    assert documents == []
    browser_errors.assert_none(page)


def test_adding_more_than_is_left_says_how_many_are_left(phone, live_server, browser_errors):
    page = phone
    browser_errors.expect(r"status of 422")
    [item] = items(live_server, 1, skip=1)
    [reserved] = live_server.scalars("SELECT reserved FROM variants WHERE id = :v", v=item.variant_id)
    live_server.execute("UPDATE variants SET reserved = on_hand - 2 WHERE id = :v", v=item.variant_id)
    try:
        page.goto(f"/products/{item.slug}")
        mark_page(page)
        page.get_by_label("Quantity").fill("3")
        with page.expect_response(lambda r: r.url.endswith("/cart/add")) as caught:
            page.get_by_role("button", name="Add to cart").click()
        assert caught.value.status == 422

        status = page.locator("#cart-status")
        expect(status).to_contain_text(f"Only 2 left of {item.label}.")
        expect(status.locator(".status-error")).to_have_count(1)
        expect(status.get_by_role("link", name="View cart")).to_have_count(0)
        expect(badge(page)).to_have_text("0")
        expect(page.get_by_label("Quantity")).to_have_value("3")  # what the shopper typed stays
        assert_same_page(page)
    finally:
        live_server.execute("UPDATE variants SET reserved = :r WHERE id = :v", r=reserved, v=item.variant_id)
    browser_errors.assert_none(page)


# -- the cart page ------------------------------------------------------------------------------------


def test_cart_quantity_and_remove_update_in_place(phone, live_server, screenshot, browser_errors):
    page = phone
    first, second = items(live_server, 2, skip=2)
    add_with_htmx(page, first)
    add_with_htmx(page, second)
    page.goto("/cart")
    expect(page.locator("#cart-lines > li")).to_have_count(2)
    summary = page.locator("#cart-summary")
    expect(summary).to_contain_text(f"Subtotal (2 items): {money(first.price + second.price)}")
    screenshot(page, "cart-390")
    page.set_viewport_size(DESKTOP)
    screenshot(page, "cart-1280")
    page.set_viewport_size(PHONE)

    url = page.url
    mark_page(page)
    documents = watch_documents(page)
    status = page.locator("#cart-status")

    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    quantity = cart_line(page, first).locator("input[name=quantity]")
    quantity.fill("3")
    quantity.press("Enter")
    expect(cart_line(page, first).locator(".cart-line-total")).to_have_text(money(first.price * 3))
    expect(cart_line(page, first).locator("input[name=quantity]")).to_have_value("3")
    expect(summary).to_contain_text(f"Subtotal (4 items): {money(first.price * 3 + second.price)}")
    expect(badge(page)).to_have_text("4")
    expect(status).to_contain_text("Quantity updated.")
    page.wait_for_timeout(500)  # past the 300 ms change delay: Enter is a change and a submit, yet one POST
    assert len(posts) == 1 and "/cart/lines/" in posts[0], posts

    quantity = cart_line(page, second).locator("input[name=quantity]")
    quantity.fill("2")
    quantity.press("Tab")  # leaving the field is a change too
    expect(cart_line(page, second).locator(".cart-line-total")).to_have_text(money(second.price * 2))
    expect(summary).to_contain_text(f"Subtotal (5 items): {money(first.price * 3 + second.price * 2)}")
    expect(badge(page)).to_have_text("5")

    cart_line(page, first).get_by_role("button", name=f"Remove {first.label}").click()
    expect(cart_line(page, first)).to_have_count(0)
    expect(status).to_contain_text(f"Removed {first.label}.")
    expect(summary).to_contain_text(f"Subtotal (2 items): {money(second.price * 2)}")
    expect(badge(page)).to_have_text("2")

    cart_line(page, second).get_by_role("button", name=f"Remove {second.label}").click()
    expect(page.locator("#cart-lines > li")).to_have_count(0)
    expect(summary).to_contain_text("Your cart is empty.")
    expect(summary.get_by_role("button", name="Continue shopping")).to_be_visible()
    expect(badge(page)).to_have_text("0")
    expect(status).to_contain_text(f"Removed {second.label}.")
    assert page.url == url
    assert_same_page(page)
    assert documents == []
    browser_errors.assert_none(page)


def test_an_anonymous_cart_merges_into_the_account_cart_at_login(phone, live_server, sign_in, browser_errors):
    page = phone
    anonymous_item, saved_item = items(live_server, 2, skip=4)
    email = f"merger-{uuid.uuid4().hex[:10]}@example.com"
    user_id = live_server.create_user(email, PASSWORD)
    with live_server.engine().begin() as connection:
        cart_id = connection.execute(
            text("INSERT INTO carts (user_id) VALUES (:u) RETURNING id"), {"u": user_id}
        ).scalar_one()
        connection.execute(
            text("INSERT INTO cart_lines (cart_id, variant_id, quantity) VALUES (:c, :v, 1)"),
            {"c": cart_id, "v": saved_item.variant_id},
        )

    add_with_htmx(page, anonymous_item, quantity=2)
    expect(badge(page)).to_have_text("2")
    anonymous_carts = live_server.scalars(
        "SELECT c.id FROM carts c JOIN cart_lines l ON l.cart_id = c.id"
        " WHERE c.user_id IS NULL AND l.variant_id = :v",
        v=anonymous_item.variant_id,
    )
    assert len(anonymous_carts) == 1

    sign_in(page, email, PASSWORD)
    expect(badge(page)).to_have_text("3")
    page.goto("/cart")
    expect(page.locator("#cart-lines > li")).to_have_count(2)
    expect(cart_line(page, anonymous_item).locator("input[name=quantity]")).to_have_value("2")
    expect(cart_line(page, saved_item).locator("input[name=quantity]")).to_have_value("1")
    expect(page.locator("#cart-summary")).to_contain_text(
        f"Subtotal (3 items): {money(anonymous_item.price * 2 + saved_item.price)}"
    )
    assert live_server.scalars("SELECT count(*) FROM carts WHERE id = :c", c=anonymous_carts[0]) == [0]
    lines = live_server.scalars(
        "SELECT l.variant_id || 'x' || l.quantity FROM cart_lines l JOIN carts c ON c.id = l.cart_id"
        " WHERE c.user_id = :u ORDER BY l.variant_id",
        u=user_id,
    )
    assert sorted(lines) == sorted([f"{anonymous_item.variant_id}x2", f"{saved_item.variant_id}x1"]), (
        "the account keeps one cart with both lines"
    )
    browser_errors.assert_none(page)


# -- without JavaScript -------------------------------------------------------------------------------


def post_and_follow(page: Page, button) -> None:
    """Click a form button without JavaScript: a POST answered 303, then a GET of a full page."""
    with page.expect_navigation() as navigation:
        button.click()
    landing = navigation.value
    assert landing.status == 200 and landing.request.method == "GET"
    post = landing.request.redirected_from
    assert post is not None and post.method == "POST", "the form should POST and be redirected"
    assert post.response().status == 303
    assert "hx-request" not in post.headers
    expect(page).to_have_url(re.compile(r"/cart$"))


def test_without_javascript_add_update_and_remove_post_full_pages(nojs, live_server, browser_errors):
    page = nojs
    [item] = items(live_server, 1, skip=6)
    page.goto(f"/products/{item.slug}")
    post_and_follow(page, page.get_by_role("button", name="Add to cart"))
    expect(page.locator("h1")).to_have_text("Your cart")
    expect(page.locator("#messages")).to_contain_text("Added to your cart (1 item).")
    expect(badge(page)).to_have_text("1")

    line = cart_line(page, item)
    line.locator("input[name=quantity]").fill("2")
    post_and_follow(page, line.get_by_role("button", name="Update"))
    expect(page.locator("#messages")).to_contain_text("Quantity updated.")
    expect(cart_line(page, item).locator(".cart-line-total")).to_have_text(money(item.price * 2))
    expect(page.locator("#cart-summary")).to_contain_text(f"Subtotal (2 items): {money(item.price * 2)}")
    expect(badge(page)).to_have_text("2")

    post_and_follow(page, cart_line(page, item).get_by_role("button", name=f"Remove {item.label}"))
    expect(page.locator("#messages")).to_contain_text(f"Removed {item.label}.")
    expect(page.locator("#cart-lines > li")).to_have_count(0)
    expect(page.locator("#cart-summary")).to_contain_text("Your cart is empty.")
    expect(badge(page)).to_have_text("0")
    browser_errors.assert_none(page)


# -- accessibility ------------------------------------------------------------------------------------


def test_product_page_after_an_add_and_the_cart_have_no_serious_accessibility_violations(axe, live_server):
    page = axe.page
    first, second = items(live_server, 2, skip=7)
    add_with_htmx(page, first)
    violations = axe.scan()
    assert not violations, f"axe on the product page after an add:\n{axe.report(violations)}"

    add_with_htmx(page, second)
    violations = axe("/cart")
    assert not violations, f"axe on /cart:\n{axe.report(violations)}"

    quantity = cart_line(page, first).locator("input[name=quantity]")
    quantity.fill("2")
    quantity.press("Enter")
    expect(page.locator("#cart-status")).to_contain_text("Quantity updated.")
    violations = axe.scan()
    assert not violations, f"axe on /cart after a quantity swap:\n{axe.report(violations)}"
