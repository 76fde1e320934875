"""The staff admin: who may enter, two-step sign-in, the audit log and the dashboard."""

import re

import pyotp
import pytest
from sqlalchemy import select

from storefront.accounts import services as accounts
from storefront.accounts.models import User
from storefront.audit import services as audit
from storefront.audit.models import AuditEntry
from tests.factories import make_order, make_product, make_user
from tests.helpers import csrf_token, enable_totp, login, staff_login


def admin_urls(app) -> list[tuple[str, str]]:
    """Every admin URL rule, built with placeholder ids, and its methods."""
    urls = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("admin."):
            values = {name: 1 for name in rule.arguments}
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                urls.append((method, rule.build(values)[1]))
    return urls


def test_the_walk_finds_the_admin_routes(app):
    urls = admin_urls(app)
    assert ("GET", "/admin/") in urls and ("GET", "/admin/audit") in urls


def test_every_admin_url_sends_anonymous_visitors_to_sign_in(app, client):
    for method, url in admin_urls(app):
        data = {"csrf_token": csrf_token(client)} if method != "GET" else None
        response = client.open(url, method=method, data=data)
        assert response.status_code in (302, 303), (method, url)
        assert response.headers["Location"].startswith("/login"), (method, url)


def test_every_admin_url_is_hidden_from_shoppers(app, client, session):
    login(client, make_user(session).email)
    for method, url in admin_urls(app):
        data = {"csrf_token": csrf_token(client)} if method != "GET" else None
        assert client.open(url, method=method, data=data).status_code == 404, (method, url)


def test_staff_reach_every_admin_page(app, client, session):
    staff_login(client, session, role="admin")
    for method, url in admin_urls(app):
        if method == "GET" and "/1" not in url:
            assert client.get(url).status_code == 200, url


def test_an_admin_must_enrol_a_second_factor_first(client, session):
    admin = make_user(session, "boss@example.com", role="admin")
    login(client, admin.email)
    response = client.get("/admin/")
    assert response.status_code == 303 and response.headers["Location"] == "/admin/security/two-factor"
    page = client.get("/admin/security/two-factor").get_data(as_text=True)
    assert "<svg" in page
    secret = re.search(r'<code class="secret">([A-Z2-7]+)</code>', page).group(1)
    wrong = client.post(
        "/admin/security/two-factor",
        data={"code": "000000", "csrf_token": csrf_token(client, "/admin/security/two-factor")},
    )
    assert wrong.status_code == 422
    enrolment_code = pyotp.TOTP(secret).now()
    done = client.post(
        "/admin/security/two-factor",
        data={
            "code": enrolment_code,
            "csrf_token": csrf_token(client, "/admin/security/two-factor"),
        },
    )
    codes = re.findall(r"<code>([0-9a-f]{6}-[0-9a-f]{6})</code>", done.get_data(as_text=True))
    assert len(codes) == 10
    assert client.get("/admin/").status_code == 200
    session.refresh(admin)
    assert admin.totp_secret == secret and admin.totp_enabled_at is not None
    client.post("/logout", data={"csrf_token": csrf_token(client)})
    login(client, admin.email)
    replay = client.post(
        "/login/verify", data={"code": enrolment_code, "csrf_token": csrf_token(client, "/login/verify")}
    )
    assert replay.status_code == 422  # the code that proved the enrolment is spent


def test_a_staff_member_without_a_second_factor_may_enter(client, session):
    user = make_user(session, role="staff")
    login(client, user.email)
    assert client.get("/admin/").status_code == 200


def test_staff_sign_in_needs_the_code_and_refuses_a_replay(client, session):
    user = make_user(session, "two@example.com", role="staff")
    secret = enable_totp(session, user)
    assert login(client, user.email).headers["Location"] == "/login/verify"
    assert client.get("/account").status_code == 303  # not signed in yet
    code = pyotp.TOTP(secret).now()
    token = csrf_token(client, "/login/verify")
    bad = client.post("/login/verify", data={"code": "123456", "csrf_token": token})
    assert bad.status_code == 422
    good = client.post("/login/verify", data={"code": code, "csrf_token": token})
    assert good.status_code == 303 and good.headers["Location"] == "/admin/"
    client.post("/logout", data={"csrf_token": csrf_token(client)})
    login(client, user.email)
    replay = client.post(
        "/login/verify", data={"code": code, "csrf_token": csrf_token(client, "/login/verify")}
    )
    assert replay.status_code == 422  # the same code a second time


def test_a_recovery_code_works_once(client, session):
    user = make_user(session, "lost@example.com", role="staff")
    codes = accounts.enable_totp(session, user, accounts.new_totp_secret())
    login(client, user.email)
    ok = client.post(
        "/login/verify", data={"code": codes[0], "csrf_token": csrf_token(client, "/login/verify")}
    )
    assert ok.status_code == 303
    client.post("/logout", data={"csrf_token": csrf_token(client)})
    login(client, user.email)
    again = client.post(
        "/login/verify", data={"code": codes[0], "csrf_token": csrf_token(client, "/login/verify")}
    )
    assert again.status_code == 422
    assert accounts.recovery_codes_left(session, user) == 9


def test_second_factor_failures_count_towards_the_lockout(client, session):
    user = make_user(session, "guess@example.com", role="staff")
    enable_totp(session, user)
    login(client, user.email)
    codes = [
        client.post(
            "/login/verify", data={"code": f"{n:06d}", "csrf_token": csrf_token(client, "/login/verify")}
        ).status_code
        for n in range(5)
    ]
    assert codes[-1] == 429


def test_a_remembered_staff_cookie_still_needs_the_second_factor_for_admin(app, client, session):
    staff_login(client, session)
    with client.session_transaction() as browser:
        browser.pop("second_factor")
    response = client.get("/admin/")
    assert response.status_code == 303 and response.headers["Location"].startswith("/login")


def test_create_staff_command(app, session):
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["create-staff", "Owner@Example.com", "--role", "admin"],
        input="lilac-tiger-admin-9\nlilac-tiger-admin-9\n",
    )
    assert result.exit_code == 0, result.output
    user = session.scalar(select(User).where(User.email == "owner@example.com"))
    assert user.role == "admin" and user.email_verified_at is not None
    weak = runner.invoke(args=["create-staff", "x@example.com"], input="password123\npassword123\n")
    assert weak.exit_code != 0 and "too common" in weak.output


def test_audit_log_records_and_filters(client, session):
    admin = staff_login(client, session, role="admin")
    audit.record(
        session, admin, "product.update", "product", 7, {"price": "9.99"}, {"price": "12.99"}, ip="10.0.0.1"
    )
    audit.record(session, admin, "stock.adjust", "variant", 3, {"on_hand": 5}, {"on_hand": 9})
    session.flush()
    page = client.get("/admin/audit?entity=product").get_data(as_text=True)
    assert "product.update" in page and "12.99" in page and "stock.adjust" not in page
    assert "stock.adjust" in client.get("/admin/audit?action=stock").get_data(as_text=True)
    assert client.get("/admin/audit?since=not-a-date").status_code == 422
    enabled = session.scalars(select(AuditEntry.action)).all()
    assert "staff.two_factor_enabled" not in enabled  # enrolled directly in this test, not through the page


def test_dashboard_shows_today_and_refreshes_itself(client, session):
    staff_login(client, session)
    variant = make_product(session, variants=[{"on_hand": 3, "sku": "LOW-1"}]).variants[0]
    make_order(session, variant=variant, status="paid")
    page = client.get("/admin/").get_data(as_text=True)
    assert "LOW-1" in page and 'hx-trigger="every 5s"' in page and "<svg" in page
    fragment = client.get("/admin/", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert fragment.lstrip().startswith('<section id="admin-stats"')


@pytest.mark.parametrize("role", ["staff", "admin"])
def test_staff_role_is_required_even_for_htmx(client, session, role):
    login(client, make_user(session).email)
    assert client.get("/admin/", headers={"HX-Request": "true"}).status_code == 404
