"""The staff admin in a real browser (desktop, JavaScript on): two-step sign-in and enrolment, products, stock,
a partial refund through the worker and the loopback gateway, unlocking a shopper, scheduling a drop, and
accessibility scans of the main admin pages.
"""

import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ACTION_TIMEOUT_MS, DESKTOP, Axe
from tests.browser.test_checkout_browser import fill_address, fill_card, items, place_order

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

WAIT_MS = 15_000  # the machine is loaded: generous, but bounded
GATEWAY_WAIT_MS = 45_000  # the worker answers a queued refund; the panel polls every 2 s
PASSWORD = "Admin-Pass-1234-xyz"
SHOPPER_PASSWORD = "Shopper-Pass-1234-xyz"
STEP = 30  # seconds per TOTP code
# The time steps whose code each secret has used: the app refuses a replayed code.
_USED_STEPS: dict[str, set[int]] = {}


@pytest.fixture(autouse=True)
def _patient_expect() -> Iterator[None]:
    expect.set_options(timeout=WAIT_MS)
    yield
    expect.set_options(timeout=ACTION_TIMEOUT_MS)


def new_email(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}@example.com"


def fresh_code(secret: str) -> str:
    """The current code of a time step this secret has not used yet (waiting for the next step if needed)."""
    used = _USED_STEPS.setdefault(secret, set())
    deadline = time.monotonic() + 3 * STEP
    while True:
        step = int(time.time() // STEP)
        if step not in used:
            break
        assert time.monotonic() < deadline, "no fresh TOTP step came"
        time.sleep(STEP - time.time() % STEP + 0.3)
    used.add(step)
    return pyotp.TOTP(secret).at(step * STEP)


def create_staff(live_server, role: str = "admin", secret: str | None = None) -> str:
    """A verified staff account made in the database, its second factor already on when a secret is given."""
    email = new_email(role)
    user_id = live_server.create_user(email, PASSWORD)
    live_server.execute(
        "UPDATE users SET role = :role, totp_secret = :secret,"
        " totp_enabled_at = CASE WHEN :secret IS NULL THEN NULL ELSE now() END WHERE id = :id",
        role=role,
        secret=secret,
        id=user_id,
    )
    return email


def submit_password(page: Page, email: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()


def give_code(page: Page, secret: str) -> None:
    expect(page).to_have_url(re.compile(r"/login/verify$"))
    expect(page.locator("h1")).to_have_text("Two-step sign-in")
    page.get_by_label("Code from your authenticator app").fill(fresh_code(secret))
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(re.compile(r"/admin/$"))


def expect_dashboard(page: Page) -> None:
    expect(page.locator("h1")).to_have_text("Dashboard")
    expect(page.locator("svg.chart")).to_be_visible()


@pytest.fixture(scope="module")
def admin_state(browser, live_server) -> dict:
    """One admin (second factor on) signed in once; later pages reuse the session's cookies, so each test
    does not wait for a fresh 30-second code."""
    secret = pyotp.random_base32()
    email = create_staff(live_server, "admin", secret)
    context = browser.new_context(base_url=live_server.url, viewport=DESKTOP)
    context.set_default_timeout(WAIT_MS)
    try:
        page = context.new_page()
        submit_password(page, email, PASSWORD)
        give_code(page, secret)
        expect_dashboard(page)
        return context.storage_state()
    finally:
        context.close()


@pytest.fixture
def open_page(new_page):
    def open_(**options) -> Page:
        page = new_page(viewport=DESKTOP, **options)
        page.set_default_timeout(WAIT_MS)
        page.set_default_navigation_timeout(WAIT_MS)
        return page

    return open_


@pytest.fixture
def admin(open_page, admin_state) -> Page:
    """A desktop page signed in as the admin."""
    return open_page(storage_state=admin_state)


@pytest.fixture
def clear_lockouts(live_server) -> Iterator[None]:
    """Lift every lockout (and failure count) the test left, so 127.0.0.1 is not locked for later tests."""
    yield
    client = live_server.redis()
    try:
        keys = list(client.scan_iter(match="lockout:*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def create_product(page: Page, live_server, price: str = "20.00", stock: int = 3) -> dict:
    """Create a product with one variant through /admin/products/new; its name, slug, SKU and variant id."""
    tag = uuid.uuid4().hex[:8]
    name, slug, sku = f"Admin Lamp {tag}", f"admin-lamp-{tag}", f"ADM-{tag.upper()}"
    [category] = live_server.scalars("SELECT name FROM categories ORDER BY position, name LIMIT 1")
    page.goto("/admin/products/new")
    expect(page.locator("h1")).to_have_text("New product")
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Slug (web address)").fill(slug)
    page.get_by_label("Category").select_option(label=category)
    page.get_by_label("Description").fill("A lamp made in a browser test.")
    page.get_by_label("SKU").fill(sku)
    page.get_by_label("Variant name").fill("Brass")
    page.get_by_label("Price").fill(price)
    page.get_by_label("Initial stock").fill(str(stock))
    page.get_by_role("button", name="Create product").click()
    expect(page).to_have_url(re.compile(r"/admin/products/\d+$"))
    expect(page.locator("#messages")).to_contain_text(f"Created {name}.")
    [variant_id] = live_server.scalars("SELECT id FROM variants WHERE sku = :sku", sku=sku)
    return {"name": name, "slug": slug, "sku": sku, "variant_id": variant_id, "category": category}


def wait_for(check, timeout: float, what: str):
    """Poll check() (bounded) until it returns something truthy; return it."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout}s"
        time.sleep(0.25)


def place_paid_order(page: Page, live_server) -> str:
    """A guest buys one item through the shop with the test card; wait until the worker has it paid."""
    [item] = items(live_server, 1, skip=20)
    page.goto(f"/products/{item.slug}")
    page.get_by_role("button", name="Add to cart").click()
    expect(page.locator("#cart-badge .count")).not_to_have_text("0")
    page.goto("/cart")
    page.locator("#cart-summary").get_by_role("button", name="Checkout").click()
    expect(page).to_have_url(re.compile(r"/checkout$"))
    fill_address(page, new_email("buyer"))
    fill_card(page)
    number = place_order(page)
    wait_for(
        lambda: live_server.scalars("SELECT status FROM orders WHERE number = :n", n=number) == ["paid"],
        30,
        f"order {number} paid",
    )
    return number


# -- 1. two-step sign-in ------------------------------------------------------------------------------


def test_an_admin_enrols_a_second_factor_then_signs_in_with_a_fresh_code(
    open_page, live_server, screenshot, browser_errors
):
    page = open_page()
    email = create_staff(live_server, "admin")
    submit_password(page, email, PASSWORD)
    page.goto("/admin/")
    expect(page).to_have_url(re.compile(r"/admin/security/two-factor$"))
    expect(page.locator(".notice-warning")).to_contain_text("Admins must turn on two-step sign-in")
    expect(page.locator(".qr svg")).to_be_visible()
    secret = page.locator("code.secret").inner_text().strip()
    assert re.fullmatch(r"[A-Z2-7]{16,}", secret), secret

    page.get_by_label("6-digit code from the app").fill(fresh_code(secret))
    page.get_by_role("button", name="Turn on two-step sign-in").click()
    expect(page.locator("h1")).to_have_text("Your recovery codes")
    codes = page.locator("ul.recovery-codes li code")
    expect(codes).to_have_count(10)
    assert all(re.fullmatch(r"[0-9a-f]{6}-[0-9a-f]{6}", c) for c in codes.all_inner_texts())
    assert live_server.scalars("SELECT totp_secret FROM users WHERE email = :e", e=email) == [secret]

    page.get_by_role("button", name="Go to the dashboard").click()
    expect(page).to_have_url(re.compile(r"/admin/$"))
    expect_dashboard(page)
    screenshot(page, "dashboard-1280")

    page.goto("/account")
    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(page.locator("#messages")).to_contain_text("You are signed out.")
    page.goto("/admin/")
    expect(page).to_have_url(re.compile(r"/login"))

    submit_password(page, email, PASSWORD)
    give_code(page, secret)  # waits for the next 30-second step if the enrolment's code is still current
    expect_dashboard(page)
    outcomes = live_server.scalars("SELECT outcome FROM login_attempts WHERE email = :e ORDER BY id", e=email)
    assert outcomes[-2:] == ["password_ok", "success"]
    browser_errors.assert_none(page)


# -- 2. products --------------------------------------------------------------------------------------


def test_a_new_product_with_its_variant_is_on_the_shop(admin, open_page, live_server, browser_errors):
    product = create_product(admin, live_server, price="24.50", stock=3)
    expect(admin.locator("main")).to_contain_text(product["sku"])

    shopper = open_page()
    shopper.goto(f"/products/{product['slug']}")
    expect(shopper.locator("h1")).to_have_text(product["name"])
    expect(shopper.locator("p.price")).to_have_text("$24.50")
    expect(shopper.locator("nav[aria-label=breadcrumb]")).to_contain_text(product["category"])
    expect(shopper.locator(f"#stock-{product['variant_id']}")).to_have_text("Only 3 left")
    expect(shopper.locator("#add-to-cart")).to_contain_text("Brass")
    browser_errors.assert_none(admin)
    browser_errors.assert_none(shopper)


# -- 3. stock -----------------------------------------------------------------------------------------


def test_received_units_show_in_the_ledger_and_on_the_product_page(
    admin, open_page, live_server, browser_errors
):
    product = create_product(admin, live_server, stock=3)
    shopper = open_page()
    shopper.goto(f"/products/{product['slug']}")
    stock = shopper.locator(f"#stock-{product['variant_id']}")
    expect(stock).to_have_text("Only 3 left")

    admin.goto(f"/admin/stock/{product['variant_id']}")
    expect(admin.locator("h1")).to_have_text(f"Stock of {product['sku']}")
    admin.evaluate("() => { window.__marker = 1 }")
    admin.get_by_label("Reason").select_option("received")
    admin.get_by_label("Quantity").fill("5")
    admin.get_by_label("Note").fill("delivery 42")
    admin.get_by_role("button", name="Adjust stock").click()
    panel = admin.locator("#stock-panel")
    expect(panel.get_by_role("status")).to_have_text(f"{product['sku']}: on hand 3 → 8.")
    assert admin.evaluate("window.__marker") == 1, "the panel should be swapped in place"
    first = panel.locator("tbody tr").first
    expect(first.locator("td").nth(1)).to_have_text("received")
    expect(first.locator("td").nth(2)).to_have_text("+5")
    expect(first.locator("td").nth(3)).to_have_text("8")
    expect(first.locator("td").nth(4)).to_have_text("delivery 42")
    expect(panel.locator(".stat-cards article").nth(0).locator(".stat")).to_have_text("8")
    assert live_server.scalars("SELECT on_hand FROM variants WHERE id = :v", v=product["variant_id"]) == [8]

    shopper.reload()
    expect(stock).to_have_text("Only 8 left")
    browser_errors.assert_none(admin)
    browser_errors.assert_none(shopper)


# -- 4. refunds ---------------------------------------------------------------------------------------


def test_part_of_a_settled_order_is_refunded_through_the_worker(
    admin, open_page, live_server, screenshot, browser_errors
):
    shopper = open_page()
    number = place_paid_order(shopper, live_server)
    [charge] = [
        t
        for t in live_server.loopback_transactions()
        if t["invoice_number"] == number and t["transaction_type"] == "authCaptureTransaction"
    ]
    live_server.loopback_control("settle", {})

    admin.goto(f"/admin/orders/{number}")
    panel = admin.locator("#order-panel")
    expect(panel).to_contain_text("Paid")
    admin.get_by_label("Amount to refund ($)").fill("1.00")
    admin.get_by_role("button", name="Refund", exact=True).click()
    expect(panel.get_by_role("status").first).to_contain_text("Refund of $1.00")
    # The panel asks for itself every 2 s while the worker talks to the gateway, then stops.
    expect(panel.locator("[aria-busy=true]")).to_have_count(0, timeout=GATEWAY_WAIT_MS)
    refunded = panel.locator("dl.order-money dt", has_text="Refunded").locator(
        "xpath=following-sibling::dd[1]"
    )
    expect(refunded).to_have_text("$1.00")
    expect(panel.locator("tbody tr", has_text="refund")).to_contain_text("$1.00")

    refunds = wait_for(
        lambda: [
            t
            for t in live_server.loopback_transactions()
            if t["transaction_type"] == "refundTransaction" and t["ref_trans_id"] == charge["trans_id"]
        ],
        15,
        "the loopback's refund",
    )
    assert len(refunds) == 1 and refunds[0]["settle_amount"] == "1.00", refunds
    screenshot(admin, "order-detail-1280")
    browser_errors.assert_none(admin)
    browser_errors.assert_none(shopper)


# -- 5. lockouts --------------------------------------------------------------------------------------


def test_an_admin_unlocks_a_locked_out_shopper(admin, open_page, live_server, clear_lockouts, browser_errors):
    browser_errors.expect(r"status of (422|429)")
    email = new_email("locked")
    live_server.create_user(email, SHOPPER_PASSWORD)
    shopper = open_page()
    for attempt in range(1, 6):
        submit_password(shopper, email, f"Wrong-Guess-{attempt}-xyz")
        expect(shopper.locator("main")).to_be_visible()
    expect(shopper.locator("h1")).to_have_text("Slow down a moment")

    admin.goto("/admin/lockouts")
    row = admin.locator("#lockouts tbody tr", has_text=email)
    expect(row).to_have_count(1)
    row.get_by_role("button", name=f"Unlock {email}").click()
    expect(admin.locator("#lockouts").get_by_role("status")).to_have_text("Lifted 1 lockout.")
    expect(admin.locator("#lockouts tbody tr", has_text=email)).to_have_count(0)

    submit_password(shopper, email, SHOPPER_PASSWORD)
    expect(shopper).to_have_url(re.compile(r"/account$"))
    browser_errors.assert_none(admin)


# -- 6. sales -----------------------------------------------------------------------------------------


def test_a_scheduled_drop_shows_its_sale_price_on_the_product_page(
    admin, open_page, live_server, browser_errors
):
    # Under 20 units, so the checkout tests (which pick products with 20 or more) never buy it at a sale price.
    product = create_product(admin, live_server, price="20.00", stock=15)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    admin.goto("/admin/sales/new")
    expect(admin.locator("h1")).to_have_text("Schedule a drop")
    admin.get_by_label("Name").fill(f"Drop {product['sku']}")
    admin.get_by_label("Starts (UTC)").fill((now - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M"))
    admin.get_by_label("Ends (UTC)").fill((now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    admin.get_by_label("Variants").fill(f"{product['sku']}, 7.99")
    try:
        admin.get_by_role("button", name="Schedule").click()
        expect(admin).to_have_url(re.compile(r"/admin/sales$"))
        expect(admin.locator("#messages")).to_contain_text(f"Sale “Drop {product['sku']}” is scheduled.")

        shopper = open_page()
        shopper.goto(f"/products/{product['slug']}")
        price = shopper.locator("#add-to-cart .variant-price")
        expect(price.locator("del")).to_have_text("$20.00")
        expect(price.locator("ins")).to_have_text("$7.99")
        expect(price).to_contain_text(f"Drop {product['sku']} until")
        browser_errors.assert_none(admin)
        browser_errors.assert_none(shopper)
    finally:
        # A running sale takes over the home page's hero: end it so later tests see the usual shop.
        live_server.execute("DELETE FROM sales WHERE name = :name", name=f"Drop {product['sku']}")


# -- 7. accessibility ---------------------------------------------------------------------------------


def test_admin_pages_have_no_serious_accessibility_violations(
    axe: Axe, admin_state, open_page, live_server, screenshot, browser_errors
):
    axe.page.context.add_cookies(admin_state["cookies"])
    axe.page.set_default_timeout(WAIT_MS)
    orders = live_server.scalars("SELECT number FROM orders WHERE status = 'paid' ORDER BY id DESC LIMIT 1")
    number = orders[0] if orders else place_paid_order(open_page(), live_server)

    for path, heading in (
        ("/admin/", "Dashboard"),
        ("/admin/products", "Products"),
        ("/admin/staff", "Staff accounts"),
        ("/admin/settings", "Settings"),
        (f"/admin/orders/{number}", None),
    ):
        axe.page.goto(path)
        if heading:
            expect(axe.page.locator("h1")).to_have_text(heading)
        else:
            expect(axe.page.locator("#order-panel")).to_be_visible()
        violations = axe.scan()
        assert not violations, f"{path}:\n" + Axe.report(violations)
    screenshot(axe.page, "order-detail-1280")
    axe.page.goto("/admin/")
    expect_dashboard(axe.page)
    screenshot(axe.page, "dashboard-1280")
    browser_errors.assert_none(axe.page)


# -- 8. the live sale dashboard -----------------------------------------------------------------------


def test_the_live_sale_dashboard_follows_a_small_drop(
    axe: Axe, admin_state, open_page, live_server, screenshot, browser_errors
):
    from tests import live

    product = create_product(open_page(storage_state=admin_state), live_server, price="20.00", stock=12)
    [variant_id] = live_server.scalars("SELECT id FROM variants WHERE sku = :sku", sku=product["sku"])
    name = f"Dashboard drop {product['sku']}"
    now = datetime.now(UTC)
    live_server.execute(
        "INSERT INTO sales (name, starts_at, ends_at) VALUES (:name, :start, :end)",
        name=name,
        start=now - timedelta(minutes=1),
        end=now + timedelta(hours=1),
    )
    live_server.execute(
        "INSERT INTO sale_items (sale_id, variant_id, sale_price) SELECT id, :variant, 9.00 FROM sales WHERE name = :name",
        variant=variant_id,
        name=name,
    )
    try:

        def buy_one():
            bought = live.buy(live_server.url, [(product["slug"], variant_id)], time.time() + 60, 20)
            assert bought.outcome == "ordered", bought.__dict__

        for _ in range(3):
            buy_one()
        page = axe.page
        page.context.add_cookies(admin_state["cookies"])
        page.set_default_timeout(WAIT_MS)
        page.goto("/admin/live")
        expect(page.locator("h1")).to_have_text("Live sale")
        units = page.locator("#chart-units_left .stat")
        expect(units).to_have_text("9 units")
        expect(page.locator("#chart-orders svg desc")).to_contain_text("peak")
        violations = axe.scan()
        assert not violations, Axe.report(violations)
        screenshot(page, "live-sale-1280")
        # One more order: the charts swap themselves in (HTMX every 5 s), no reload.
        page.evaluate("window.__no_reload = true")
        buy_one()
        expect(units).to_have_text("8 units", timeout=20_000)
        assert page.evaluate("window.__no_reload === true")
        screenshot(page, "live-sale-after-1280")
        page.set_viewport_size({"width": 390, "height": 844})
        page.reload()
        expect(units).to_have_text("8 units")
        screenshot(page, "live-sale-390")
        browser_errors.assert_none(page)
    finally:
        live_server.execute("DELETE FROM sales WHERE name = :name", name=name)
