"""Checkout in a real browser: Accept.js tokenizes the card, the RQ worker charges the loopback Authorize.Net,
the status page follows the payment live; declines, totals, double clicks, no JavaScript, and no card data kept.
"""

import base64
import contextlib
import json
import re
import uuid
import zlib
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from typing import NamedTuple
from urllib.parse import parse_qs, urlencode

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import text

from storefront import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

OUTPUT = ROOT / "test-output"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
TEST_CARD = "4111 1111 1111 1111"
TEST_CARD_DIGITS = TEST_CARD.replace(" ", "")
DECLINE_ZIP = "46282"  # the Authorize.Net sandbox declines any card whose billing ZIP is 46282
PAID_WAIT_MS = (
    20_000  # the status page polls every second; the worker charges the loopback in well under that
)
ORDER_URL = re.compile(r"/orders/([A-Za-z0-9-]+)$")
# What the checkout form may post: the address, the shipping choice, the form's own keys and the Accept.js token.
CHECKOUT_FIELDS = {
    "csrf_token",
    "idempotency_key",
    "email",
    "full_name",
    "line1",
    "line2",
    "city",
    "region",
    "postal_code",
    "country",
    "phone",
    "shipping_method",
    "dataDescriptor",
    "dataValue",
}


class Item(NamedTuple):
    slug: str
    name: str
    variant_id: int
    price: Decimal


def items(live_server, count: int, skip: int) -> list[Item]:
    """Single-option demo products with plenty of stock (orders reserve some); each test its own slice."""
    with live_server.engine().connect() as connection:
        found = connection.execute(
            text(
                """
                SELECT p.slug, p.name, v.id, v.price FROM products p JOIN variants v ON v.product_id = p.id
                WHERE p.is_active AND v.per_customer_limit IS NULL AND v.sku <> 'DEMO-FLASH'
                  AND v.on_hand - v.reserved >= 20
                  AND (SELECT count(*) FROM variants w WHERE w.product_id = p.id) = 1
                ORDER BY p.id DESC LIMIT :count OFFSET :skip
                """
            ),
            {"count": count, "skip": skip},
        ).all()
    assert len(found) == count, "the demo catalog should have enough single-option products in stock"
    return [Item(*row) for row in found]


def new_email(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}@example.com"


def money(amount: Decimal) -> str:
    return f"${amount:,.2f}"


def mark_page(page: Page) -> None:
    page.evaluate("() => { window.__marker = 1 }")


def assert_same_page(page: Page) -> None:
    assert page.evaluate("window.__marker") == 1, "the page was reloaded instead of swapped"


def add_to_cart(page: Page, item: Item) -> None:
    """Add one from the product page: swapped in with JavaScript, a full /cart page without."""
    page.goto(f"/products/{item.slug}")
    page.get_by_role("button", name="Add to cart").click()
    expect(page.locator("#cart-badge .count")).not_to_have_text("0")


def fill_address(page: Page, email: str, region: str = "IL", postal_code: str = "62701") -> None:
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Full name").fill("Ada Lovelace")
    page.get_by_label("Address", exact=True).fill("1 Main St")
    page.get_by_label("City").fill("Springfield")
    page.get_by_label("State / region").fill(region)
    page.get_by_label("Postal code").fill(postal_code)
    page.get_by_label("Country").select_option("US")


def fill_card(page: Page, zip_code: str = "62701", number: str = TEST_CARD) -> None:
    page.get_by_label("Card number").fill(number)
    page.get_by_label("Expiry (MM/YY)").fill("12/30")
    page.get_by_label("Security code").fill("123")
    page.get_by_label("Billing ZIP").fill(zip_code)


def order_number(page: Page) -> str:
    expect(page).to_have_url(ORDER_URL)
    return ORDER_URL.search(page.url).group(1)


def place_order(page: Page) -> str:
    """Click Place order and return the order number of the status page it lands on."""
    page.get_by_role("button", name="Place order").click()
    return order_number(page)


def order_row(live_server, number: str) -> dict:
    with live_server.engine().connect() as connection:
        row = connection.execute(
            text("SELECT id, status, total, email FROM orders WHERE number = :n"), {"n": number}
        ).one()
    return row._asdict()


def charges(live_server, number: str) -> list[dict]:
    return [t for t in live_server.loopback_transactions() if t["invoice_number"] == number]


def nonce_claims(data_value: str) -> dict:
    """What accept-test.js put in its nonce: base64url JSON after the prefix."""
    prefix, _, payload = data_value.partition(".")
    assert prefix == "local-accept"
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@pytest.fixture
def slow_gateway(live_server):
    """The loopback answers each charge after 1.5 s, so the status page is seen waiting before it is paid."""
    live_server.loopback_control("latency", {"seconds": 1.5})
    yield
    live_server.loopback_control("latency", {"seconds": 0})


# -- the happy path -----------------------------------------------------------------------------------


def test_checkout_pays_through_the_worker_and_the_status_page_follows_live(
    phone, live_server, slow_gateway, screenshot, browser_errors
):
    page = phone
    [item] = items(live_server, 1, skip=0)
    email = new_email("buyer")
    page.goto(f"/products/{item.slug}")
    page.get_by_role("button", name="Add to cart").click()
    page.locator("#cart-status").get_by_role("link", name="View cart").click()
    expect(page).to_have_url(re.compile(r"/cart$"))
    page.locator("#cart-summary").get_by_role("button", name="Checkout").click()
    expect(page).to_have_url(re.compile(r"/checkout$"))
    expect(page.locator("h1")).to_have_text("Checkout")

    fill_address(page, email)
    fill_card(page)
    for card_input in ("#card-number", "#card-expiry", "#card-code", "#card-zip"):
        assert page.locator(card_input).get_attribute("name") is None, f"{card_input} must never be posted"
    page.evaluate("window.scrollTo(0, 0)")  # the summary is sticky: a scrolled page pins it far down the shot
    screenshot(page, "checkout-390")
    page.set_viewport_size(DESKTOP)
    screenshot(page, "checkout-1280")
    page.set_viewport_size(PHONE)

    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/checkout")) as caught:
        page.get_by_role("button", name="Place order").click()
    number = order_number(page)

    body = caught.value.post_data
    form = parse_qs(body, keep_blank_values=True)
    assert set(form) == CHECKOUT_FIELDS, f"unexpected fields posted: {set(form) ^ CHECKOUT_FIELDS}"
    assert form["dataDescriptor"] == ["COMMON.ACCEPT.INAPP.PAYMENT"]
    [data_value] = form["dataValue"]
    assert TEST_CARD_DIGITS not in data_value
    claims = nonce_claims(data_value)
    assert claims["last4"] == "1111" and TEST_CARD_DIGITS not in json.dumps(claims)
    for spelling in (TEST_CARD_DIGITS, TEST_CARD, TEST_CARD.replace(" ", "+"), TEST_CARD.replace(" ", "%20")):
        assert spelling not in body, "the card number was posted to the shop"
    assert "12%2F30" not in body and "12/30" not in body, "the expiry was posted to the shop"

    status = page.locator("#order-status")
    expect(status).to_contain_text("Confirming your payment")
    mark_page(page)
    expect(status).to_contain_text("Your order is paid", timeout=PAID_WAIT_MS)
    assert_same_page(page)
    expect(status).to_contain_text(f"A receipt is on its way to {email}.")
    expect(status).not_to_have_attribute("hx-get", re.compile(".*"))  # polling stops once final
    expect(page.locator("h1")).to_have_text(f"Order {number}")
    expect(page.locator(".order-lines")).to_contain_text(item.name)

    order = order_row(live_server, number)
    assert order["status"] == "paid" and order["email"] == email
    [charge] = charges(live_server, number)
    assert charge["status"] == "capturedPendingSettlement"
    assert Decimal(charge["auth_amount"]) == order["total"]
    assert charge["account_number"] == "XXXX1111"
    mail = live_server.wait_for_mail(email)
    assert f"Subject: Your Storefront order {number}" in mail
    assert re.search(rf"http://127\.0\.0\.1:\d+/orders/{number}\?key=\S+", mail)

    screenshot(page, "paid-390")
    page.set_viewport_size(DESKTOP)
    screenshot(page, "paid-1280")
    browser_errors.assert_none(page)


# -- a decline, then another card ---------------------------------------------------------------------


def wait_until_final(page: Page) -> None:
    """Wait until the status page stops polling: the payment is paid, failed or held."""
    expect(page.locator("#order-status")).not_to_have_attribute(
        "hx-get", re.compile(".*"), timeout=PAID_WAIT_MS
    )


def pay_with_another_card(page: Page, live_server, number: str) -> None:
    """From a declined order's status page: the pay page, the approve card, and the order is paid."""
    status = page.locator("#order-status")
    status.get_by_role("button", name="Pay with another card").click()
    expect(page).to_have_url(re.compile(rf"/orders/{number}/pay$"))
    expect(page.locator("h1")).to_have_text(f"Pay for order {number}")
    fill_card(page, zip_code="62701")
    with page.expect_request(
        lambda r: r.method == "POST" and r.url.endswith(f"/orders/{number}/pay")
    ) as caught:
        page.get_by_role("button", name=re.compile(r"^Pay \$")).click()
    form = parse_qs(caught.value.post_data)
    assert set(form) == {"csrf_token", "dataDescriptor", "dataValue"}
    assert TEST_CARD_DIGITS not in caught.value.post_data
    expect(page).to_have_url(re.compile(rf"/orders/{number}$"))
    expect(page.locator("#order-status")).to_contain_text("Your order is paid", timeout=PAID_WAIT_MS)
    assert order_row(live_server, number)["status"] == "paid"
    assert [c["status"] for c in charges(live_server, number)] == ["declined", "capturedPendingSettlement"]


def test_a_card_declined_by_its_billing_zip_can_be_replaced_by_another(phone, live_server, browser_errors):
    page = phone
    [item] = items(live_server, 1, skip=1)
    add_to_cart(page, item)
    page.goto("/checkout")
    fill_address(page, new_email("declined"), postal_code="62701")
    fill_card(page, zip_code=DECLINE_ZIP)
    number = place_order(page)
    wait_until_final(page)

    status = page.locator("#order-status")
    expect(status.get_by_role("alert")).to_contain_text("Your card was declined.", timeout=1000)
    expect(status.get_by_role("button", name="Pay with another card")).to_be_visible()
    assert order_row(live_server, number)["status"] == "payment_failed"
    assert [c["status"] for c in charges(live_server, number)] == ["declined"]
    pay_with_another_card(page, live_server, number)
    browser_errors.assert_none(page)


def test_after_a_decline_another_card_pays_the_same_order(phone, live_server, browser_errors):
    """The retry path on its own: the sandbox's reusable test-decline token stands for the declined card."""
    page = phone
    [item] = items(live_server, 1, skip=7)
    add_to_cart(page, item)
    page.goto("/checkout")
    fill_address(page, new_email("retry"))
    fill_card(page)

    def declined_card(route):
        if route.request.method != "POST":
            route.continue_()
            return
        form = parse_qs(route.request.post_data, keep_blank_values=True)
        assert form["dataValue"][0].startswith("local-accept.")
        form["dataValue"] = ["test-decline"]
        route.continue_(post_data=urlencode(form, doseq=True))

    page.route(f"{live_server.url}/checkout", declined_card)
    number = place_order(page)
    page.unroute(f"{live_server.url}/checkout")
    wait_until_final(page)

    status = page.locator("#order-status")
    expect(status.get_by_role("alert")).to_contain_text("Your card was declined.", timeout=1000)
    expect(status).to_contain_text("Your items are reserved until")
    assert order_row(live_server, number)["status"] == "payment_failed"
    assert [c["status"] for c in charges(live_server, number)] == ["declined"]
    pay_with_another_card(page, live_server, number)
    browser_errors.assert_none(page)


# -- totals, double clicks, no JavaScript -------------------------------------------------------------


def test_totals_follow_the_region_without_a_page_load(phone, live_server, browser_errors):
    page = phone
    [item] = items(live_server, 1, skip=2)
    add_to_cart(page, item)
    page.goto("/checkout")
    fill_address(page, new_email("totals"), region="IL")
    summary = page.locator("#order-summary")
    expect(summary).not_to_contain_text("sales tax")
    mark_page(page)
    documents: list[str] = []
    page.on("request", lambda r: documents.append(r.url) if r.resource_type == "document" else None)

    with page.expect_response(lambda r: "/checkout/summary" in r.url and "region=CA" in r.url) as caught:
        page.get_by_label("State / region").fill("CA")
        page.get_by_label("State / region").press("Tab")
    assert caught.value.request.all_headers().get("hx-request") == "true"

    [rate] = live_server.scalars("SELECT rate FROM tax_rates WHERE country = 'US' AND region = 'CA'")
    tax = (item.price * rate).quantize(Decimal("0.01"), ROUND_HALF_UP)
    expect(summary).to_contain_text("Tax (California sales tax)")
    expect(summary.locator("dd").nth(2)).to_have_text(money(tax))
    values = [Decimal(v.strip("$").replace(",", "")) for v in summary.locator("dd").all_inner_texts()]
    subtotal, shipping, tax_shown, total = values
    assert subtotal == item.price and tax_shown == tax and total == subtotal + shipping + tax
    assert_same_page(page)
    assert documents == []
    expect(page.get_by_label("State / region")).to_have_value("CA")  # the form was left alone
    browser_errors.assert_none(page)


def test_a_double_click_on_place_order_makes_one_order(phone, live_server, browser_errors):
    page = phone
    [item] = items(live_server, 1, skip=3)
    email = new_email("double")
    add_to_cart(page, item)
    page.goto("/checkout")
    fill_address(page, email)
    fill_card(page)
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)

    page.get_by_role("button", name="Place order").dblclick()
    number = order_number(page)
    expect(page.locator("#order-status")).to_contain_text("Your order is paid", timeout=PAID_WAIT_MS)

    assert posts == [f"{live_server.url}/checkout"], posts
    assert live_server.scalars("SELECT number FROM orders WHERE email = :e", e=email) == [number]
    attempts = live_server.scalars(
        "SELECT count(*) FROM payment_attempts a JOIN orders o ON o.id = a.order_id WHERE o.number = :n",
        n=number,
    )
    assert attempts == [1]
    assert len(charges(live_server, number)) == 1
    browser_errors.assert_none(page)


def test_without_javascript_checkout_explains_the_card_and_updates_totals(nojs, live_server, browser_errors):
    page = nojs
    browser_errors.expect(r"status of 422")
    [item] = items(live_server, 1, skip=4)
    email = new_email("nojs")
    add_to_cart(page, item)
    page.goto("/checkout")
    notice = page.locator("noscript .notice")  # get_by_text skips <noscript>, though Chromium shows it
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("Without JavaScript, pay on our payment provider's secure page")
    fill_address(page, email, region="CA")
    expect(page.locator("#order-summary")).not_to_contain_text("California")  # nothing happens by itself

    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Update shipping and totals").click()
    assert navigation.value.status == 200 and navigation.value.request.method == "POST"
    expect(page.locator("#order-summary")).to_contain_text("Tax (California sales tax)")
    expect(page.get_by_label("State / region")).to_have_value("CA")
    expect(page.get_by_label("E-mail")).to_have_value(email)

    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Place order").click()
    assert navigation.value.status == 422
    expect(page.locator("#card-errors")).to_have_text(
        "Enter your card details (card payments need JavaScript)."
    )
    assert live_server.scalars("SELECT count(*) FROM orders WHERE email = :e", e=email) == [0]
    browser_errors.assert_none(page)


def test_without_javascript_a_shopper_pays_on_the_hosted_payment_form(
    nojs, live_server, browser_errors, screenshot
):
    """Accept Hosted end to end with JavaScript off: the loopback's hosted form declines one card, takes the
    next, sends the shopper back, and the worker finds the charge by the order's invoice number."""
    page = nojs
    [item] = items(live_server, 1, skip=5)
    email = new_email("hosted")
    add_to_cart(page, item)
    page.goto("/checkout")
    fill_address(page, email)
    with page.expect_navigation():
        page.get_by_role("button", name="Pay on the secure payment page instead").click()
    expect(page).to_have_url(re.compile(r"/orders/[A-Za-z0-9-]+/hosted$"))
    number = page.url.rsplit("/", 2)[-2]
    assert order_row(live_server, number)["status"] == "pending_payment"
    screenshot(page, "hosted-step")

    page.get_by_role("button", name="Continue to secure payment").click()
    expect(page).to_have_url(re.compile(re.escape(live_server.loopback_url) + "/payment/payment"))
    page.get_by_label("Card number").fill(TEST_CARD_DIGITS)
    page.get_by_label("Expiration (MM/YY)").fill("12/35")
    page.get_by_label("Card code").fill("900")
    page.get_by_label("ZIP code").fill(DECLINE_ZIP)
    page.get_by_role("button", name="Pay").click()
    expect(page.get_by_role("alert")).to_contain_text("declined")
    assert order_row(live_server, number)["status"] == "pending_payment"

    page.get_by_label("Card number").fill(TEST_CARD_DIGITS)
    page.get_by_label("Expiration (MM/YY)").fill("12/35")
    page.get_by_label("Card code").fill("900")
    page.get_by_label("ZIP code").fill("62701")
    page.get_by_role("button", name="Pay").click()
    expect(page).to_have_url(re.compile(rf"{re.escape(live_server.url)}/orders/{number}$"))
    for _ in range(PAID_WAIT_MS // 500):  # no JavaScript: the shopper refreshes
        if "Thank you" in page.content():
            break
        page.wait_for_timeout(500)
        page.reload()
    expect(page.get_by_text("Thank you! Your order is paid.")).to_be_visible()
    screenshot(page, "hosted-paid")
    [charge] = [c for c in charges(live_server, number) if c["status"] != "declined"]
    assert Decimal(charge["auth_amount"]) == Decimal(str(order_row(live_server, number)["total"]))
    browser_errors.assert_none(page)


SHIPPING_METHOD_GAPS = """() => [...document.querySelectorAll('#shipping-methods label')].map(label => {
    const range = document.createRange();
    range.setStartAfter(label.querySelector('input'));
    range.setEndBefore(label.querySelector('small'));
    const name = range.getBoundingClientRect(), description = label.querySelector('small').getBoundingClientRect();
    return [label.innerText.split('\\n')[0].trim(), Math.round(description.top - name.bottom)];
})"""


def test_shipping_method_descriptions_sit_below_their_names(phone, live_server, browser_errors):
    page = phone
    [item] = items(live_server, 1, skip=8)
    add_to_cart(page, item)
    page.goto("/checkout")
    for width in (PHONE, DESKTOP):
        page.set_viewport_size(width)
        gaps = page.evaluate(SHIPPING_METHOD_GAPS)
        assert len(gaps) >= 2
        overlapping = [(name, gap) for name, gap in gaps if gap < 0]
        assert not overlapping, f"at {width['width']}px the description overlaps (px): {overlapping}"
    browser_errors.assert_none(page)


# -- accessibility ------------------------------------------------------------------------------------


def test_checkout_and_order_status_have_no_serious_accessibility_violations(axe, live_server):
    page = axe.page
    [item] = items(live_server, 1, skip=5)
    add_to_cart(page, item)
    page.goto("/checkout")
    fill_address(page, new_email("axe"))
    fill_card(page)
    violations = axe.scan()
    assert not violations, f"axe on /checkout (filled):\n{axe.report(violations)}"

    place_order(page)
    expect(page.locator("#order-status")).to_contain_text("Your order is paid", timeout=PAID_WAIT_MS)
    violations = axe.scan()
    assert not violations, f"axe on the order status page:\n{axe.report(violations)}"


def test_the_hosted_payment_step_has_no_serious_accessibility_violations(axe, live_server):
    page = axe.page
    [item] = items(live_server, 1, skip=6)
    add_to_cart(page, item)
    page.goto("/checkout")
    fill_address(page, new_email("axe-hosted"))
    page.get_by_role("button", name="Pay on the secure payment page instead").click()
    expect(page.get_by_role("button", name="Continue to secure payment")).to_be_visible()
    violations = axe.scan()
    assert not violations, f"axe on the hosted payment step:\n{axe.report(violations)}"


# -- no card number is kept anywhere ------------------------------------------------------------------

# A digit run (digits, single spaces or dashes between them) not glued to letters or other digits.
DIGIT_RUN = re.compile(r"(?<![0-9A-Za-z])[0-9]+(?:[ -][0-9]+)*(?![0-9A-Za-z])")


def luhn_ok(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _card_shaped(groups: list[str]) -> bool:
    """Groups as people write card numbers: 4-4-4-4(-1..3) and the like, or Amex/Diners 4-6-5 and 4-6-4."""
    sizes = [len(g) for g in groups]
    if len(groups) == 1:
        return True
    if len(groups) == 3 and sizes[0] == 4 and sizes[1] == 6 and sizes[2] in (4, 5):
        return True
    return sizes[0] == 4 and all(size == 4 for size in sizes[1:-1]) and 1 <= sizes[-1] <= 4


def find_card_numbers(text_: str) -> list[str]:
    """Every Luhn-valid 13-19 digit card number in the text, written whole or in groups."""
    found = []
    for run in DIGIT_RUN.finditer(text_):
        groups = re.split(r"[ -]", run.group())
        # Any stretch of consecutive groups may be the card ("ref 12 4111 1111 1111 1111").
        for start in range(len(groups)):
            for end in range(start + 1, len(groups) + 1):
                digits = "".join(groups[start:end])
                # A card number starts 2 to 6 (the card networks); a PostgreSQL system identifier may not.
                card_like = digits[0] in "23456" and _card_shaped(groups[start:end])
                if 13 <= len(digits) <= 19 and card_like and luhn_ok(digits):
                    found.append(" ".join(groups[start:end]))
    return found


def test_the_card_finder_finds_card_numbers_and_little_else():
    sample = (
        "2026-11-28 14:54:26 order SF-1234 paid with 4111 1111 1111 1111, pid=24347 200 5123 123456us\n"
        '{"cardNumber": "5424000000000015"} amex 3782-822463-10005 job a1b2c3d40000000000000000e5f6'
    )
    assert find_card_numbers(sample) == ["4111 1111 1111 1111", "5424000000000015", "3782 822463 10005"]
    assert find_card_numbers("4111 1111 1111 1112 and 411111111111 and 2026-11-28T14:54:26.123456Z") == []
    assert find_card_numbers("card=4111111111111111&x=1") == ["4111111111111111"]
    assert find_card_numbers("database system identifier: 7716773798146743461") == []


def database_texts(live_server) -> Iterator[tuple[str, str]]:
    """(table.column, value) for every text-like column of every table of the live server's database."""
    with live_server.engine().connect() as connection:
        columns = connection.execute(
            text(
                "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"
                " AND data_type IN ('text', 'character varying', 'character', 'json', 'jsonb', 'ARRAY')"
                " ORDER BY table_name, ordinal_position"
            )
        ).all()
        assert columns, "no text columns found: wrong database?"
        for table, column in columns:
            query = f'SELECT "{column}"::text FROM "{table}" WHERE "{column}" IS NOT NULL'
            for (value,) in connection.execute(text(query)):
                yield f"{table}.{column}", value


def _readable(value: bytes) -> str:
    """Bytes as text, plus their zlib-inflated form (RQ stores job data compressed)."""
    readable = value.decode("latin-1")
    with contextlib.suppress(zlib.error):
        readable += "\n" + zlib.decompress(value).decode("latin-1")
    return readable


def redis_texts(live_server) -> Iterator[tuple[str, str]]:
    """(key, value) for every key of the live server's Redis database, whatever its type."""
    client = live_server.redis()
    try:
        for key in client.scan_iter(count=500):
            kind = client.type(key).decode()
            if kind == "string":
                values = [client.get(key) or b""]
            elif kind == "hash":
                values = [b"%s=%s" % pair for pair in client.hgetall(key).items()]
            elif kind == "list":
                values = client.lrange(key, 0, -1)
            elif kind == "set":
                values = list(client.smembers(key))
            elif kind == "zset":
                values = [member for member, _ in client.zrange(key, 0, -1, withscores=True)]
            elif kind == "stream":
                values = [b"%s=%s" % pair for _, fields in client.xrange(key) for pair in fields.items()]
            else:
                values = []
            yield key.decode("latin-1"), key.decode("latin-1")
            for value in values:
                yield key.decode("latin-1"), _readable(value)
    finally:
        client.close()


def log_texts(live_server) -> Iterator[tuple[str, str]]:
    # Every test run's logs; not the benchmark's, whose made-up shoppers are not this shop's customers.
    logs = sorted(p for p in OUTPUT.rglob("*.log") if p.relative_to(OUTPUT).parts[0] != "bench")
    assert any(p.name.startswith("rq-worker") for p in logs) and any(
        p.name.startswith("gunicorn") for p in logs
    )
    for path in logs:
        yield str(path.relative_to(OUTPUT)), path.read_text(errors="replace")
    for path in sorted(live_server.outbox.glob("*.eml")):
        yield f"outbox/{path.name}", path.read_text(errors="replace")


def test_no_card_number_is_kept_in_the_database_redis_or_logs(phone, live_server, browser_errors):
    """Run last in this file, after the journeys above typed the test card; one more order if none was paid."""
    if not live_server.scalars("SELECT count(*) FROM orders WHERE status = 'paid'")[0]:
        page = phone
        add_to_cart(page, items(live_server, 1, skip=6)[0])
        page.goto("/checkout")
        fill_address(page, new_email("scan"))
        fill_card(page)
        place_order(page)
        expect(page.locator("#order-status")).to_contain_text("Your order is paid", timeout=PAID_WAIT_MS)
    assert live_server.scalars("SELECT count(*) FROM orders WHERE status = 'paid'")[0] > 0

    findings = []
    scanned = {}
    for where, sources in (
        ("database", database_texts(live_server)),
        ("redis", redis_texts(live_server)),
        ("logs", log_texts(live_server)),
    ):
        scanned[where] = 0
        for name, value in sources:
            scanned[where] += 1
            findings += [f"{where} {name}: {number}" for number in find_card_numbers(value)]
    print(f"scanned for card numbers: {scanned}")
    assert all(count > 0 for count in scanned.values()), f"nothing scanned somewhere: {scanned}"
    assert not findings, "card numbers were kept:\n" + "\n".join(findings)
