"""XSS in a real browser (Playwright driving Debian's Chromium): payloads in the text a shopper sets (an
address, a search, the `next` link) and the text staff set (product, variant and category names and
descriptions) are shown on every page that shows them, and no script runs and no CSP violation is reported."""

import re
from urllib.parse import quote

import pytest

from tests.browser import conftest as browser_suite

# The browser suite's fixtures, used here by name.
playwright_driver, browser, live_server = (
    browser_suite.playwright_driver,
    browser_suite.browser,
    browser_suite.live_server,
)
browser_errors, new_page, desktop, sign_in = (
    browser_suite.browser_errors,
    browser_suite.new_page,
    browser_suite.desktop,
    browser_suite.sign_in,
)

MARK = "__xss"
PAYLOADS = [
    f'"><script>window.{MARK}=1</script>',
    f"<img src=x onerror=window.{MARK}=1>",
    f"'><svg onload=window.{MARK}=1>",
    f"javascript:window.{MARK}=1//",
]
PAYLOAD = "".join(PAYLOADS)[:115]  # one value that fits the shortest field (120 characters)


def assert_inert(page, errors, url: str) -> None:
    """The page at `url` shows the payload as text, runs none of it, and reports no error or CSP violation."""
    page.goto(url)
    assert page.evaluate(f"typeof window.{MARK}") == "undefined", url
    errors.assert_none(page)


@pytest.fixture
def planted(live_server):
    """Staff text (a product, its variant, its category) holding the payload, straight in the database."""
    product_id, slug = (
        live_server.scalars("SELECT id FROM products WHERE is_active ORDER BY id LIMIT 1")[0],
        None,
    )
    live_server.execute(
        "UPDATE products SET name = :p, description = :p WHERE id = :id", p=PAYLOAD, id=product_id
    )
    live_server.execute(
        "UPDATE variants SET name = :p WHERE product_id = :id", p=PAYLOAD[:110], id=product_id
    )
    live_server.execute(
        "UPDATE categories SET name = :p, description = :p"
        " WHERE id = (SELECT category_id FROM products WHERE id = :id)",
        p=PAYLOAD,
        id=product_id,
    )
    slug = live_server.scalars("SELECT slug FROM products WHERE id = :id", id=product_id)[0]
    category = live_server.scalars(
        "SELECT c.slug FROM categories c JOIN products p ON p.category_id = c.id WHERE p.id = :id",
        id=product_id,
    )
    return {"product": slug, "category": category[0] if category else None, "product_id": product_id}


def test_shopper_and_staff_text_never_runs_as_script(live_server, desktop, browser_errors, sign_in, planted):
    email, password = "xss-shopper@example.com", "Xss horse battery 9"
    user_id = live_server.create_user(email, password)
    sign_in(desktop, email, password)
    desktop.goto("/account/addresses/new")
    for label in ("Full name", "Address", "Apartment, suite, etc.", "City", "State / region"):
        desktop.get_by_label(label, exact=True).fill(PAYLOAD)
    desktop.get_by_label("Postal code").fill("12345")
    desktop.get_by_role("button", name=re.compile("Save", re.I)).click()
    desktop.wait_for_url(re.compile(r"/account/addresses$"))
    pages = [
        "/",
        "/account/addresses",
        f"/products/{planted['product']}",
        *(f"/search?q={quote(payload)}" for payload in PAYLOADS),
        *(f"/login?next={quote(payload)}" for payload in PAYLOADS),
        "/cart",
    ]
    if planted["category"]:
        pages.append(f"/categories/{planted['category']}")
    for url in pages:
        assert_inert(desktop, browser_errors, url)
    live_server.execute(
        "UPDATE users SET role = 'staff' WHERE id = :id", id=user_id
    )  # staff, no second factor
    for url in (
        f"/admin/customers/{user_id}",
        f"/admin/products/{planted['product_id']}",
        "/admin/products",
        *(f"/admin/customers?q={quote(payload)}" for payload in PAYLOADS),
    ):
        assert_inert(desktop, browser_errors, url)
    fields = 5 + 2 + 5 + 1  # address; search and next; product, variant and category text; staff search
    shown = len(pages) + 3 + len(PAYLOADS)
    print(
        f"\nXSS: {len(PAYLOADS)} payloads in {fields} fields, {shown} pages: no script ran, no CSP violation"
    )
