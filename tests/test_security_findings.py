"""Issue 15's findings, each as the attack that worked before the fix: sign-out that signs out, no lock-out of
a whole network, hosts, caching, proxies, checkout limits keyed on the shopper, and quantity messages."""

import runpy

import pytest
from flask import Flask

from storefront import ROOT, create_app
from storefront.config import load_config
from tests.factories import make_product, make_user
from tests.helpers import csrf_token, login, staff_login

WRONG = "not the password"


def cookie(client, name: str) -> str | None:
    found = client.get_cookie(name)
    return found.value if found else None


def browser_with(app, **cookies):
    """A fresh browser holding only these cookies (a copied or stolen cookie jar)."""
    other = app.test_client()
    for name, value in cookies.items():
        other.set_cookie(name, value)
    return other


def sign_out(client):
    return client.post("/logout", data={"csrf_token": csrf_token(client, "/account")})


# --- 1 and 2: sign-out revokes ---------------------------------------------------------------------


def test_sign_out_clears_the_remember_cookie(client, session):
    make_user(session, "keep@example.com")
    login(client, "keep@example.com", remember="y")
    assert cookie(client, "remember_token")
    sign_out(client)
    assert cookie(client, "remember_token") is None
    assert client.get("/account").status_code == 303


def test_cookies_saved_before_sign_out_stop_working(app, client, session):
    make_user(session, "saved@example.com")
    login(client, "saved@example.com", remember="y")
    saved_session, saved_remember = cookie(client, "session"), cookie(client, "remember_token")
    assert browser_with(app, session=saved_session).get("/account").status_code == 200
    sign_out(client)
    assert browser_with(app, session=saved_session).get("/account").status_code == 303
    assert browser_with(app, remember_token=saved_remember).get("/account").status_code == 303


def test_sign_out_of_other_devices_keeps_this_one(app, client, session):
    make_user(session, "devices@example.com")
    login(client, "devices@example.com")
    phone = app.test_client()
    login(phone, "devices@example.com", remember="y")
    response = client.post(
        "/account/sign-out-everywhere", data={"csrf_token": csrf_token(client, "/account")}
    )
    assert response.status_code == 303
    assert client.get("/account").status_code == 200
    assert phone.get("/account").status_code == 303
    assert (
        browser_with(app, remember_token=cookie(phone, "remember_token") or "x").get("/account").status_code
        == 303
    )


def test_the_account_page_offers_to_sign_out_everywhere(client, session):
    make_user(session, "button@example.com")
    login(client, "button@example.com")
    assert 'action="/account/sign-out-everywhere"' in client.get("/account").get_data(as_text=True)


def test_staff_can_sign_a_customer_out_everywhere(app, client, session):
    shopper = make_user(session, "victim@example.com")
    browser = app.test_client()
    login(browser, shopper.email, remember="y")
    staff_login(client, session)
    page = client.get(f"/admin/customers/{shopper.id}").get_data(as_text=True)
    assert f'action="/admin/customers/{shopper.id}/sign-out"' in page
    response = client.post(
        f"/admin/customers/{shopper.id}/sign-out",
        data={"csrf_token": csrf_token(client, f"/admin/customers/{shopper.id}")},
    )
    assert response.status_code == 303
    assert browser.get("/account").status_code == 303
    assert client.get("/admin/").status_code == 200  # the staff member is still signed in


# --- 3: one address cannot lock everyone behind it out -----------------------------------------------


def test_failures_from_one_address_slow_it_down_but_never_lock_its_shoppers_out(
    app, client, session, now, monkeypatch
):
    monkeypatch.setitem(app.config, "LOCKOUT_IP_FAILURES", 8)
    victim = make_user(session, "office@example.com")
    codes = [login(client, f"user{n}@example.com", WRONG, ip="10.6.6.6").status_code for n in range(8)]
    assert codes[:7] == [422] * 7
    refused = login(client, victim.email, ip="10.6.6.6")
    assert refused.status_code == 429
    wait = int(refused.headers["Retry-After"])
    assert 0 < wait <= app.config["LOCKOUT_IP_MAX_DELAY"]
    now[0] += wait
    assert login(client, victim.email, ip="10.6.6.6").status_code == 303


def test_the_slowdown_grows_with_each_failure_up_to_its_ceiling(app, client, session, now, monkeypatch):
    monkeypatch.setitem(app.config, "LOCKOUT_IP_FAILURES", 3)
    monkeypatch.setitem(app.config, "LOCKOUT_IP_MAX_DELAY", 20)
    waits = []
    for n in range(10):
        response = login(client, f"spray{n}@example.com", WRONG, ip="10.7.7.7")
        if response.status_code == 429:
            waits.append(int(response.headers["Retry-After"]))
            now[0] += waits[-1]
    assert waits == sorted(waits) and waits[0] < waits[-1] == 20


def test_the_account_and_address_pair_still_locks_for_the_cool_off(app, client, session, now):
    make_user(session, "pair@example.com")
    for _ in range(5):
        login(client, "pair@example.com", WRONG, ip="10.8.8.8")
    locked = login(client, "pair@example.com", ip="10.8.8.8")
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 60


# --- 4: hosts ----------------------------------------------------------------------------------------


def test_production_trusts_only_its_own_host(monkeypatch, tmp_path):
    monkeypatch.setenv("STOREFRONT_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "x" * 32)
    monkeypatch.setenv("BASE_URL", "https://shop.example")
    monkeypatch.delenv("TRUSTED_HOSTS", raising=False)
    assert load_config(str(tmp_path))["TRUSTED_HOSTS"] == ["shop.example"]
    monkeypatch.setenv("TRUSTED_HOSTS", "shop.example, www.shop.example")
    assert load_config(str(tmp_path))["TRUSTED_HOSTS"] == ["shop.example", "www.shop.example"]


def test_another_host_gets_400_and_no_redirect_to_it(database_url, media_folder):
    app: Flask = create_app(
        {
            "SECRET_KEY": "x",
            "DATABASE_URL": database_url,
            "MEDIA_FOLDER": str(media_folder),
            "TRUSTED_HOSTS": ["shop.example"],
        }
    )
    client = app.test_client()
    evil = client.get("/admin", headers={"Host": "evil.example"})
    assert evil.status_code == 400 and "evil.example" not in evil.headers.get("Location", "")
    assert client.get("/admin", headers={"Host": "shop.example"}).status_code == 308


# --- 5: personal pages are never cached ---------------------------------------------------------------


def plain_get_routes(app) -> list[str]:
    """Every GET route of the shop without arguments (from the URL map, not a hand list)."""
    return sorted(
        rule.rule
        for rule in app.url_map.iter_rules()
        if "GET" in rule.methods and not rule.arguments and not rule.rule.startswith(("/static", "/admin"))
    )


def test_every_page_a_signed_in_shopper_gets_says_no_store(app, client, session):
    make_user(session, "private@example.com")
    login(client, "private@example.com")
    for url in plain_get_routes(app):
        response = client.get(url)
        if response.status_code < 400:
            assert response.cache_control.no_store, url
    assert {"/account", "/account/addresses", "/account/password"} <= set(plain_get_routes(app))


def test_an_anonymous_shopper_with_a_cart_gets_no_store(client, session):
    product = make_product(session, variants=[{"on_hand": 5}])
    client.post(
        "/cart/add",
        data={"variant_id": product.variants[0].id, "quantity": 1, "csrf_token": csrf_token(client)},
    )
    assert client.get(f"/products/{product.slug}").cache_control.no_store


def test_a_public_page_for_a_stranger_may_be_cached(app, session):
    product = make_product(session, variants=[{"on_hand": 5}])
    assert not app.test_client().get(f"/products/{product.slug}").cache_control.no_store


# --- 6: one setting says which proxies are trusted -----------------------------------------------------


@pytest.mark.parametrize(("proxies", "allowed"), [("0", ""), ("1", "127.0.0.1")])
def test_gunicorn_trusts_forwarded_headers_only_with_trusted_proxies(monkeypatch, proxies, allowed):
    monkeypatch.setenv("TRUSTED_PROXIES", proxies)
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    assert runpy.run_path(str(ROOT / "gunicorn.conf.py"))["forwarded_allow_ips"] == allowed


# --- 7: checkout limits are the shopper's, not the address's -------------------------------------------


def test_many_shoppers_behind_one_address_may_all_try_to_check_out(app, session):
    codes = []
    for n in range(60):
        shopper = app.test_client()
        response = shopper.post(
            "/checkout",
            data={"csrf_token": csrf_token(shopper), "email": f"nat{n}@example.com"},
            environ_base={"REMOTE_ADDR": "198.51.100.7"},
        )
        codes.append(response.status_code)
    assert 429 not in codes


def test_one_shopper_is_limited_across_sessions_by_their_email(app, session, monkeypatch):
    monkeypatch.setitem(app.config, "CHECKOUT_LIMIT_PER_SHOPPER", "3/minute")
    codes = []
    for n in range(5):
        browser = app.test_client()
        response = browser.post(
            "/checkout",
            data={"csrf_token": csrf_token(browser), "email": "Same@Example.com "},
            environ_base={"REMOTE_ADDR": f"198.51.100.{n}"},
        )
        codes.append(response.status_code)
    assert codes[3:] == [429, 429] and 429 not in codes[:3]


# --- 8: quantity messages say what is allowed ----------------------------------------------------------


@pytest.mark.parametrize("quantity", [str(10**9), "-1", "0", "11", "99999999999999"])
def test_an_out_of_range_quantity_says_the_range(client, session, quantity):
    product = make_product(session, variants=[{"on_hand": 5}])
    response = client.post(
        "/cart/add",
        data={"variant_id": product.variants[0].id, "quantity": quantity, "csrf_token": csrf_token(client)},
    )
    assert response.status_code == 422
    assert "Enter a quantity from 1 to 10." in response.get_data(as_text=True)
