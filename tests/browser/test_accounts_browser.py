"""Accounts in a real browser: sign-up with the e-mailed link, sign in and out, lockout, reset, address book."""

import re
import uuid

import pytest
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

PASSWORD = "Quartz-Lantern-8421"
NEW_PASSWORD = "Mossy-Violin-Harbor-77"
WRONG_MESSAGE = "The e-mail or password is not right."
LINK = r"http://127\.0\.0\.1:\d+/\S+"


def new_email(label: str) -> str:
    """An address no other test (or earlier run against this database) uses, so limits never leak across."""
    return f"{label}-{uuid.uuid4().hex[:10]}@example.com"


def link_in(mail: str, path: str) -> str:
    links = [link for link in re.findall(LINK, mail) if path in link]
    assert len(links) == 1, f"expected one {path} link in:\n{mail}"
    return links[0]


def register(page: Page, email: str, password: str = PASSWORD) -> None:
    page.goto("/register")
    expect(page.locator("h1")).to_have_text("Create an account")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("New password").fill(password)
    page.get_by_label("Repeat the password").fill(password)
    page.get_by_role("button", name="Create account").click()


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(page.locator("#messages")).to_contain_text("You are signed out.")
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()


def try_login(page: Page, email: str, password: str) -> None:
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()


@pytest.fixture
def clear_lockouts(live_server):
    """Lift every lockout (and failure count) this test left, so 127.0.0.1 is not locked for later tests."""
    yield
    client = live_server.redis()
    try:
        keys = list(client.scan_iter(match="lockout:*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


# -- sign-up, sign in, sign out -----------------------------------------------------------------------


def register_confirm_and_sign_in_again(page: Page, live_server, screenshot=None) -> None:
    """The whole sign-up journey; with JavaScript or without, the pages and links are the same."""
    email = new_email("joiner")
    register(page, email)
    expect(page).to_have_url(re.compile(r"/register/done$"))
    expect(page.locator("h1")).to_have_text("Check your e-mail")
    assert live_server.scalars("SELECT email_verified_at FROM users WHERE email = :e", e=email) == [None]

    mail = live_server.wait_for_mail(email)
    assert "Subject: Confirm your Storefront account" in mail
    page.goto(link_in(mail, "/register/verify/"))
    expect(page).to_have_url(re.compile(r"/account$"))
    expect(page.locator("#messages")).to_contain_text("Your e-mail address is confirmed. Welcome!")
    expect(page.locator("main")).to_contain_text(f"Signed in as {email}.")
    expect(page.get_by_role("link", name="Account")).to_be_visible()
    assert live_server.scalars(
        "SELECT email_verified_at IS NOT NULL FROM users WHERE email = :e", e=email
    ) == [True]
    if screenshot:
        screenshot(page, "account")

    sign_out(page)
    expect(page).to_have_url(f"{live_server.url}/")
    page.goto("/account")  # signed out for real: the account page sends us to sign in
    expect(page).to_have_url(re.compile(r"/login\?next=/account"))
    if screenshot:
        screenshot(page, "login")

    try_login(page, email, PASSWORD)
    expect(page).to_have_url(re.compile(r"/account\??$"))  # the next= page
    expect(page.locator("main")).to_contain_text(f"Signed in as {email}.")


def test_register_confirm_by_email_sign_out_and_sign_in_again(phone, live_server, screenshot, browser_errors):
    page = phone
    page.goto("/register")
    screenshot(page, "register")
    register_confirm_and_sign_in_again(page, live_server, screenshot)
    browser_errors.assert_none(page)


def test_without_javascript_register_confirm_and_sign_in(nojs, live_server, browser_errors):
    register_confirm_and_sign_in_again(nojs, live_server)
    browser_errors.assert_none(nojs)


def test_register_form_errors_are_shown_beside_the_fields(phone, browser_errors):
    page = phone
    browser_errors.expect(r"status of 422")
    register(page, new_email("short"), "too-short")
    expect(page).to_have_url(re.compile(r"/register$"))
    password = page.get_by_label("New password")
    expect(password).to_have_attribute("aria-invalid", "true")
    error = page.locator(f"#{password.get_attribute('aria-describedby')}")
    expect(error).to_have_text("Use at least 10 characters.")
    expect(page.get_by_label("E-mail")).to_have_value(re.compile(r"^short-.*@example\.com$"))
    browser_errors.assert_none(page)


# -- wrong passwords and the lockout ------------------------------------------------------------------


def test_a_wrong_password_gets_the_same_message_as_an_unknown_email(phone, live_server, browser_errors):
    page = phone
    browser_errors.expect(r"status of 422")
    email = new_email("wrong")
    live_server.create_user(email, PASSWORD)

    page.goto("/login")
    try_login(page, email, "Not-The-Password-42")
    expect(page.locator("main")).to_contain_text(WRONG_MESSAGE)
    expect(page.get_by_label("E-mail")).to_have_value(email)
    expect(page.get_by_label("Password", exact=True)).to_have_value("")  # never echoed back

    known = page.locator(".field-error").all_inner_texts()

    page.goto("/login")  # an address with no account: the very same answer
    try_login(page, new_email("nobody"), "Not-The-Password-42")
    expect(page.locator("main")).to_contain_text(WRONG_MESSAGE)
    assert page.locator(".field-error").all_inner_texts() == known == [WRONG_MESSAGE]
    expect(page.get_by_label("E-mail")).not_to_have_attribute("aria-invalid", "true")
    browser_errors.assert_none(page)


def test_five_failures_lock_the_account_out(phone, live_server, clear_lockouts, browser_errors):
    page = phone
    browser_errors.expect(r"status of (422|429)")
    email = new_email("locked")
    live_server.create_user(email, PASSWORD)
    page.goto("/login")

    for attempt in range(1, 5):
        try_login(page, email, f"Wrong-Guess-{attempt}-xyz")
        expect(page.locator("main")).to_contain_text(WRONG_MESSAGE)

    with page.expect_response(lambda r: r.url.endswith("/login") and r.request.method == "POST") as caught:
        try_login(page, email, "Wrong-Guess-5-xyz")
    assert caught.value.status == 429
    assert caught.value.headers.get("retry-after"), "a 429 should say when to retry"
    expect(page.locator("h1")).to_have_text("Slow down a moment")
    expect(page.locator("main")).to_contain_text(
        "Too many failed sign-ins. For your security, sign-in is paused for about 15 minutes."
    )
    expect(page.locator("main")).to_contain_text("You can also reset your password.")

    page.goto("/login")  # even the right password waits out the lock
    with page.expect_response(lambda r: r.url.endswith("/login") and r.request.method == "POST") as caught:
        try_login(page, email, PASSWORD)
    assert caught.value.status == 429
    expect(page.locator("h1")).to_have_text("Slow down a moment")
    outcomes = live_server.scalars("SELECT outcome FROM login_attempts WHERE email = :e ORDER BY id", e=email)
    assert outcomes == ["failed"] * 5 + ["locked"]
    browser_errors.assert_none(page)


# -- password reset -----------------------------------------------------------------------------------


def test_password_reset_through_the_emailed_link(phone, live_server, browser_errors):
    page = phone
    browser_errors.expect(r"status of (400|422)")
    email = new_email("forgetful")
    live_server.create_user(email, PASSWORD)

    page.goto("/login")
    page.get_by_role("link", name="Forgot your password?").click()
    expect(page.locator("h1")).to_have_text("Reset your password")
    page.get_by_label("E-mail").fill(email)
    page.get_by_role("button", name="Send the link").click()
    expect(page.locator("h1")).to_have_text("Check your e-mail")
    expect(page.locator("main")).to_contain_text("expires in 1 hour.")

    mail = live_server.wait_for_mail(email)
    assert "Subject: Reset your Storefront password" in mail
    link = link_in(mail, "/password/reset/")
    page.goto(link)
    expect(page.locator("h1")).to_have_text("Choose a new password")
    page.get_by_label("New password").fill(NEW_PASSWORD)
    page.get_by_label("Repeat the password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Save the new password").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.locator("#messages")).to_contain_text("Your password is changed. Sign in with the new one.")

    try_login(page, email, PASSWORD)  # the old password no longer works
    expect(page.locator("main")).to_contain_text(WRONG_MESSAGE)
    try_login(page, email, NEW_PASSWORD)
    expect(page).to_have_url(re.compile(r"/account$"))
    expect(page.locator("main")).to_contain_text(f"Signed in as {email}.")

    response = page.goto(link)  # the link works once
    assert response.status == 400
    expect(page.locator("main")).to_contain_text("This reset link has expired or was already used.")
    browser_errors.assert_none(page)


# -- the address book ---------------------------------------------------------------------------------


def fill_address(page: Page, name: str, line1: str, city: str, region: str, postal: str) -> None:
    page.get_by_label("Full name").fill(name)
    page.get_by_label("Address", exact=True).fill(line1)
    page.get_by_label("City").fill(city)
    page.get_by_label("State / region").fill(region)
    page.get_by_label("Postal code").fill(postal)
    page.get_by_label("Country").select_option("US")
    page.get_by_label("Phone (for the courier)").fill("+1 217 555 0100")
    page.get_by_role("button", name="Save address").click()
    expect(page).to_have_url(re.compile(r"/account/addresses$"))


def address_cards(page: Page):
    return page.locator(".address-list > li article")


def test_address_book_add_make_default_and_delete(phone, live_server, sign_in, browser_errors):
    page = phone
    email = new_email("addresses")
    user_id = live_server.create_user(email, PASSWORD)
    sign_in(page, email, PASSWORD)
    page.get_by_role("link", name="Manage addresses").click()
    expect(page.locator("h1")).to_have_text("Your addresses")
    expect(page.locator(".address-list")).to_contain_text("No saved addresses yet.")

    page.get_by_role("button", name="Add an address").click()
    expect(page.locator("h1")).to_have_text("New address")
    fill_address(page, "Ada Lovelace", "1 Main St", "Springfield", "IL", "62701")
    expect(page.locator("#messages")).to_contain_text("Address saved.")
    expect(address_cards(page)).to_have_count(1)
    expect(address_cards(page).first).to_contain_text("Ada Lovelace")
    expect(address_cards(page).first.locator(".badge")).to_have_text(
        "Default"
    )  # the first one is the default

    page.get_by_role("button", name="Add an address").click()
    fill_address(page, "Grace Hopper", "2 Harbor Rd", "Arlington", "VA", "22201")
    cards = address_cards(page)
    expect(cards).to_have_count(2)
    grace = cards.filter(has_text="Grace Hopper")
    expect(grace.locator(".badge")).to_have_count(0)

    grace.get_by_role("button", name="Make default").click()
    expect(page.locator("#messages")).to_contain_text("Default address changed.")
    expect(cards.first).to_contain_text("Grace Hopper")  # the default comes first
    expect(cards.filter(has_text="Grace Hopper").locator(".badge")).to_have_text("Default")
    expect(cards.filter(has_text="Ada Lovelace").get_by_role("button", name="Make default")).to_be_visible()

    cards.filter(has_text="Ada Lovelace").get_by_role("button", name="Delete").click()
    expect(page.locator("#messages")).to_contain_text("Address deleted.")
    expect(cards).to_have_count(1)
    expect(cards.first).to_contain_text("Grace Hopper")
    rows = live_server.scalars(
        "SELECT full_name || ':' || is_default FROM addresses WHERE user_id = :u ORDER BY id", u=user_id
    )
    assert rows == ["Grace Hopper:true"]
    browser_errors.assert_none(page)


# -- accessibility ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/login", "/register"])
def test_sign_in_pages_have_no_serious_accessibility_violations(axe, path):
    violations = axe(path)
    assert not violations, f"axe on {path}:\n{axe.report(violations)}"


def test_account_pages_have_no_serious_accessibility_violations(axe, live_server, sign_in):
    email = new_email("axe")
    user_id = live_server.create_user(email, PASSWORD)
    live_server.execute(
        "INSERT INTO addresses (user_id, full_name, line1, line2, city, region, postal_code, country, phone,"
        " is_default) VALUES (:u, 'Ada Lovelace', '1 Main St', '', 'Springfield', 'IL', '62701', 'US', '', true)",
        u=user_id,
    )
    sign_in(axe.page, email, PASSWORD)
    for path in ("/account", "/account/addresses"):
        violations = axe(path)
        assert not violations, f"axe on {path}:\n{axe.report(violations)}"
