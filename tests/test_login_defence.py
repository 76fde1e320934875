"""Login defence: django-axes-style lockout in Redis, and flask-limiter limits per IP and per account."""

import json

import pytest
from sqlalchemy import select

from storefront import create_app
from storefront.accounts.models import LoginAttempt
from storefront.extensions import clock
from tests import services
from tests.factories import make_user
from tests.helpers import csrf_token, login

WRONG = "not the password"


@pytest.fixture
def now(monkeypatch):
    """A clock the test moves by hand."""
    current = [1_000_000.0]
    monkeypatch.setattr(clock, "now", lambda: current[0])
    return current


def fail(client, email, times, ip="10.0.0.1"):
    return [login(client, email, WRONG, ip=ip).status_code for _ in range(times)]


def test_five_failures_lock_the_account_and_ip_pair(client, session, now):
    make_user(session, "target@example.com")
    assert fail(client, "target@example.com", 4) == [422] * 4
    locked = login(client, "target@example.com", WRONG, ip="10.0.0.1")
    assert locked.status_code == 429
    assert 0 < int(locked.headers["Retry-After"]) <= 15 * 60
    assert "sign-in is paused" in locked.get_data(as_text=True)


def test_the_right_password_is_refused_during_a_lockout(client, session, now):
    make_user(session, "target@example.com")
    fail(client, "target@example.com", 5)
    response = login(client, "target@example.com", ip="10.0.0.1")
    assert response.status_code == 429
    assert client.get("/account").status_code == 303  # still signed out
    outcomes = session.scalars(select(LoginAttempt.outcome).order_by(LoginAttempt.id)).all()
    assert outcomes[-1] == "locked"


def test_another_ip_is_not_affected_by_a_lockout(client, session, now):
    make_user(session, "target@example.com")
    fail(client, "target@example.com", 5, ip="10.0.0.1")
    assert login(client, "target@example.com", ip="10.0.0.2").status_code == 303


def test_the_lock_ends_after_the_cool_off(app, client, session, now):
    make_user(session, "target@example.com")
    fail(client, "target@example.com", 5)
    now[0] += app.config["LOCKOUT_COOLOFF"] - 1
    assert login(client, "target@example.com", ip="10.0.0.1").status_code == 429
    now[0] += 2
    assert login(client, "target@example.com", ip="10.0.0.1").status_code == 303


def test_failures_outside_the_window_do_not_count(app, client, session, now):
    make_user(session, "target@example.com")
    fail(client, "target@example.com", 4)
    now[0] += app.config["LOCKOUT_WINDOW"] + 1
    assert fail(client, "target@example.com", 4) == [422] * 4
    assert login(client, "target@example.com", ip="10.0.0.1").status_code == 303


def test_a_success_resets_the_failure_count(client, session, now):
    make_user(session, "target@example.com")
    fail(client, "target@example.com", 4)
    assert login(client, "target@example.com", ip="10.0.0.1").status_code == 303
    client.post("/logout", data={"csrf_token": csrf_token(client)})
    assert fail(client, "target@example.com", 4) == [422] * 4


def test_unknown_accounts_lock_the_same_way(client, session, now):
    assert fail(client, "nobody@example.com", 5)[-1] == 429


def test_many_accounts_from_one_ip_lock_the_ip(app, client, session, monkeypatch, now):
    monkeypatch.setitem(app.config, "LOCKOUT_IP_FAILURES", 8)
    victim = make_user(session, "victim@example.com")
    codes = [login(client, f"user{n}@example.com", WRONG, ip="10.6.6.6").status_code for n in range(8)]
    assert codes[:7] == [422] * 7 and codes[7] == 429
    assert login(client, victim.email, ip="10.6.6.6").status_code == 429
    assert login(client, victim.email, ip="10.0.0.9").status_code == 303


def test_lockouts_command_lists_and_unlock_clears(app, client, session, now):
    make_user(session, "target@example.com")
    fail(client, "target@example.com", 5)
    runner = app.test_cli_runner()
    listed = [json.loads(line) for line in runner.invoke(args=["lockouts"]).output.splitlines()]
    assert listed == [{"email": "target@example.com", "ip": "10.0.0.1", "seconds_left": 900}]
    assert "lifted 1 lockout" in runner.invoke(args=["unlock", "Target@Example.com"]).output
    assert runner.invoke(args=["lockouts"]).output == ""
    assert login(client, "target@example.com", ip="10.0.0.1").status_code == 303


def test_login_is_rate_limited_per_account_across_ips(app, client, session, monkeypatch):
    monkeypatch.setitem(app.config, "LOGIN_LIMIT_PER_ACCOUNT", "3/minute")
    monkeypatch.setitem(app.config, "LOCKOUT_FAILURES", 100)
    codes = [login(client, "target@example.com", WRONG, ip=f"10.1.0.{n}").status_code for n in range(5)]
    assert codes == [422, 422, 422, 429, 429]
    response = login(client, "TARGET@example.com", WRONG, ip="10.1.0.99")
    assert response.status_code == 429 and int(response.headers["Retry-After"]) > 0
    assert login(client, "other@example.com", WRONG, ip="10.1.0.99").status_code == 422


def test_login_is_rate_limited_per_ip(app, client, session, monkeypatch):
    monkeypatch.setitem(app.config, "LOGIN_LIMIT_PER_IP", "4/minute")
    monkeypatch.setitem(app.config, "LOCKOUT_IP_FAILURES", 100)
    codes = [login(client, f"user{n}@example.com", WRONG, ip="10.2.0.1").status_code for n in range(6)]
    assert codes == [422] * 4 + [429] * 2
    assert login(client, "user9@example.com", WRONG, ip="10.2.0.2").status_code == 422


def test_limited_htmx_request_gets_a_fragment(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "LOGIN_LIMIT_PER_IP", "1/minute")
    login(client, "a@example.com", WRONG)
    token = csrf_token(client)
    response = client.post(
        "/login",
        data={"email": "a@example.com", "password": WRONG, "csrf_token": token},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 429 and response.headers["HX-Retarget"] == "#messages"
    assert "<html" not in response.get_data(as_text=True) and "Retry-After" in response.headers


def test_lockout_state_lives_in_redis_and_survives_a_restart(database_url, media_folder, now):
    """Two app instances (two workers, or before and after a restart) share one Redis."""
    url = services.redis_url()
    config = {
        "SECRET_KEY": "x",
        "DATABASE_URL": database_url,
        "REDIS_URL": url,
        "MEDIA_FOLDER": str(media_folder),
        "RATELIMIT_STORAGE_URI": url,
    }
    first, second = create_app(config), create_app(config)
    with first.app_context():
        from storefront.accounts.views import lockout

        for _ in range(5):
            lock = lockout().register_failure("x@example.com", "10.0.0.1", now[0])
        assert lock is not None
    with second.app_context():
        assert lockout().current_lock("x@example.com", "10.0.0.1", now[0] + 1) is not None
        assert lockout().current_lock("x@example.com", "10.0.0.2", now[0] + 1) is None
