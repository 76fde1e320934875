"""Staff customers: search, detail, disable and enable (signs out everywhere), and lifting lockouts."""

import pytest
from sqlalchemy import select

from storefront.accounts import services as accounts
from storefront.accounts.models import Address
from storefront.accounts.views import lockout
from storefront.audit.models import AuditEntry
from storefront.extensions import clock
from tests.factories import make_order, make_user
from tests.helpers import csrf_token, login

IP = "203.0.113.9"


def lock_out(app, email: str, ip: str = IP) -> None:
    """Fail sign-in often enough to lock the (account, IP) pair, as the login view counts them."""
    with app.test_request_context():
        guard = lockout()
        for _ in range(app.config["LOCKOUT_FAILURES"]):
            guard.register_failure(email, ip, clock.now())


def current_locks(app) -> list:
    with app.test_request_context():
        return lockout().active_locks(clock.now())


def post(client, url: str, htmx: bool = False, **data):
    return client.post(
        url, data={"csrf_token": csrf_token(client), **data}, headers={"HX-Request": "true"} if htmx else {}
    )


def test_customers_are_found_by_email(client, session, staff):
    make_user(session, "alpha.one@example.com")
    make_user(session, "beta.two@example.com")
    page = client.get("/admin/customers?q=ALPHA").get_data(as_text=True)
    assert "alpha.one@example.com" in page and "beta.two@example.com" not in page
    fragment = client.get("/admin/customers?q=beta", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert (
        fragment.lstrip().startswith('<section id="customer-results"') and "beta.two@example.com" in fragment
    )
    assert "alpha" not in client.get("/admin/customers?q=_").get_data(as_text=True)  # no wildcards
    assert client.get("/admin/customers?page=0").status_code == 422


def test_customer_detail_shows_orders_addresses_attempts_and_lockouts(app, client, session, staff):
    user = make_user(session, "detail@example.com")
    order = make_order(session, user=user)
    guest = make_order(session, email="detail@example.com")  # placed as a guest with the same address
    session.add(
        Address(
            user_id=user.id,
            full_name="Ada Lovelace",
            line1="12 Analytical Way",
            city="London",
            postal_code="N1 1AA",
            country="GB",
            is_default=True,
        )
    )
    accounts.record_attempt(session, user.email, IP, "TestBrowser/1.0", "failed")
    session.flush()
    lock_out(app, user.email)
    page = client.get(f"/admin/customers/{user.id}").get_data(as_text=True)
    assert order.number in page and guest.number in page and "12 Analytical Way" in page
    assert "TestBrowser/1.0" in page and "failed" in page
    assert IP in page and "Unlock" in page and "Disable account" in page


def test_a_missing_customer_is_404(client, staff):
    assert client.get("/admin/customers/987654321").status_code == 404
    assert post(client, "/admin/customers/987654321/disable").status_code == 404


def test_disabling_signs_the_customer_out_everywhere_and_blocks_sign_in(app, client, session, staff):
    user = make_user(session, "gone@example.com")
    shopper = app.test_client()
    assert login(shopper, user.email).status_code == 303
    assert shopper.get("/account").status_code == 200
    response = post(client, f"/admin/customers/{user.id}/disable", htmx=True)
    fragment = response.get_data(as_text=True)
    assert response.status_code == 200 and fragment.lstrip().startswith('<section id="customer-account"')
    assert "signed out everywhere" in fragment and "Enable account" in fragment
    assert shopper.get("/account").status_code == 303  # the old session no longer signs anyone in
    again = login(shopper, user.email)
    assert again.status_code == 422 and "disabled" in again.get_data(as_text=True)
    [entry] = session.scalars(select(AuditEntry).where(AuditEntry.action == "customer.disable")).all()
    assert (entry.entity, entry.entity_id, entry.user_email) == ("user", str(user.id), staff.email)
    assert (entry.before, entry.after) == ({"is_disabled": False}, {"is_disabled": True})


def test_enabling_lets_the_customer_sign_in_again(app, client, session, staff):
    user = make_user(session, "back@example.com", is_disabled=True)
    response = post(client, f"/admin/customers/{user.id}/enable")
    assert response.status_code == 303 and response.headers["Location"] == f"/admin/customers/{user.id}"
    session.refresh(user)
    assert not user.is_disabled
    assert login(app.test_client(), user.email).status_code == 303
    [entry] = session.scalars(select(AuditEntry).where(AuditEntry.action == "customer.enable")).all()
    assert (entry.before, entry.after) == ({"is_disabled": True}, {"is_disabled": False})
    twice = post(client, f"/admin/customers/{user.id}/enable")
    assert twice.status_code == 409 and "already enabled" in twice.get_data(as_text=True)


def test_staff_cannot_disable_themselves_or_other_staff(client, session, staff):
    assert post(client, f"/admin/customers/{staff.id}/disable").status_code == 409
    admin = make_user(session, "boss2@example.com", role="admin")
    assert post(client, f"/admin/customers/{admin.id}/disable").status_code == 403
    session.refresh(admin)
    assert not admin.is_disabled


def test_unlocking_from_the_lockouts_page(app, client, session, staff):
    user = make_user(session, "locked@example.com")
    lock_out(app, user.email)
    lock_out(app, user.email, "198.51.100.7")
    lock_out(app, "nobody@example.com")
    assert login(app.test_client(), user.email, ip=IP).status_code == 429
    page = client.get("/admin/lockouts").get_data(as_text=True)
    assert "locked@example.com" in page and "nobody@example.com" in page and "(no account)" in page
    response = post(client, "/admin/lockouts/unlock", htmx=True, email=user.email, ip=IP)
    table = response.get_data(as_text=True)
    assert response.status_code == 200 and table.lstrip().startswith('<section id="lockouts"')
    assert (
        "Lifted 2 lockouts" in table and "locked@example.com" not in table and "nobody@example.com" in table
    )
    assert {lock.email for lock in current_locks(app)} == {"nobody@example.com"}
    assert login(app.test_client(), user.email, ip=IP).status_code == 303
    [entry] = session.scalars(select(AuditEntry).where(AuditEntry.action == "customer.unlock")).all()
    assert entry.entity_id == str(user.id) and entry.before["locked_ips"] == f"198.51.100.7, {IP}"
    assert entry.after["locked_ips"] == ""


def test_an_ip_locked_across_accounts_can_be_unlocked(app, client, session, staff):
    with app.test_request_context():
        guard = lockout()
        for n in range(app.config["LOCKOUT_IP_FAILURES"]):
            guard.register_failure(f"guess{n}@example.com", IP, clock.now())
    assert [lock.email for lock in current_locks(app)] == [accounts.ANY_ACCOUNT]
    assert "every account" in client.get("/admin/lockouts").get_data(as_text=True)
    response = post(client, "/admin/lockouts/unlock", email=accounts.ANY_ACCOUNT, ip=IP)
    assert response.status_code == 303 and current_locks(app) == []
    assert post(client, "/admin/lockouts/unlock", email=accounts.ANY_ACCOUNT).status_code == 422


def test_unlocking_from_the_customer_page(app, client, session, staff):
    user = make_user(session, "stuck@example.com")
    lock_out(app, user.email)
    response = post(client, f"/admin/customers/{user.id}/unlock", htmx=True)
    fragment = response.get_data(as_text=True)
    assert fragment.lstrip().startswith('<section id="customer-locks"') and "Lifted 1 lockout." in fragment
    assert current_locks(app) == []


@pytest.mark.parametrize("value", ["x" * 5000, "\x00", "<script>alert(1)</script>", "' OR 1=1 --", "9" * 40])
def test_hostile_input_gets_a_4xx_never_a_500(client, session, staff, value):
    assert client.get("/admin/customers", query_string={"q": value}).status_code in (200, 400, 422)
    assert client.get("/admin/customers", query_string={"page": value}).status_code in (200, 400, 422)
    assert post(client, "/admin/lockouts/unlock", email=value, ip=value).status_code in (303, 400, 422)
