"""Cross-cutting behaviour: error pages, security headers, media files, configuration."""

import ast
from types import SimpleNamespace

import pytest

from storefront import create_app
from storefront.config import ConfigError


def test_unknown_url_gets_a_friendly_404_page(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    body = response.get_data(as_text=True)
    assert "<html" in body and "Page not found" in body and "Back to the shop" in body


def test_htmx_error_is_a_fragment_retargeted_to_the_message_area(client):
    response = client.get("/no/such/page", headers={"HX-Request": "true"})
    assert response.status_code == 404
    assert "<html" not in response.get_data(as_text=True)
    assert response.headers["HX-Retarget"] == "#messages"
    assert 'role="alert"' in response.get_data(as_text=True)


def test_wrong_method_is_405_with_allow_header(client):
    response = client.put("/products")
    assert response.status_code == 405
    assert "GET" in response.headers["Allow"]
    assert "That action isn" in response.get_data(as_text=True)


def test_every_page_carries_strict_security_headers(client):
    response = client.get("/")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"


def test_pages_have_no_inline_scripts_or_styles(client):
    body = client.get("/").get_data(as_text=True)
    assert "<script>" not in body and "style=" not in body and "<style" not in body
    assert "htmx-2.0.11.min.js" in body
    assert 'hx-headers=\'{"X-CSRFToken": "' in body


def test_unexpected_exception_is_a_500_page_without_traceback(database_url, media_folder):
    app = create_app(
        {"TESTING": False, "SECRET_KEY": "x", "DATABASE_URL": database_url, "MEDIA_FOLDER": str(media_folder)}
    )

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    response = app.test_client().get("/boom")
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert "Something went wrong on our side" in body and "secret internals" not in body


def limited_app(database_url, media_folder):
    return create_app(
        {
            "SECRET_KEY": "x",
            "DATABASE_URL": database_url,
            "MEDIA_FOLDER": str(media_folder),
            "RATELIMIT_STORAGE_URI": "memory://",
        }
    )


def test_rate_limited_request_gets_429_with_retry_after(database_url, media_folder):
    from storefront.extensions import check_limits, limiter

    app = limited_app(database_url, media_folder)

    @app.get("/limited")
    @check_limits
    @limiter.limit("1/minute")
    def limited():
        return "ok"

    client = app.test_client()
    assert client.get("/limited").status_code == 200
    response = client.get("/limited")
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert "Slow down" in response.get_data(as_text=True)


def test_stacked_limits_count_each_request_once(database_url, media_folder):
    from storefront.extensions import check_limits, limiter

    app = limited_app(database_url, media_folder)

    @app.get("/twice-limited")
    @check_limits
    @limiter.limit("3/minute", scope="first")
    @limiter.limit("3/minute", scope="second")
    def twice_limited():
        return "ok"

    client = app.test_client()
    assert [client.get("/twice-limited").status_code for _ in range(4)] == [200, 200, 200, 429]


@pytest.mark.parametrize("setting", ["RATELIMIT_DEFAULT", "RATELIMIT_APPLICATION"])
def test_limits_that_no_view_decorator_would_check_refuse_to_start(database_url, media_folder, setting):
    """Only per-view limits are checked (storefront.extensions.check_limits), so a default or application-wide
    limit must stop the app rather than silently not apply."""
    config = {"SECRET_KEY": "x", "DATABASE_URL": database_url, "MEDIA_FOLDER": str(media_folder)}
    with pytest.raises(RuntimeError, match="per-view"):
        create_app({**config, "RATELIMIT_STORAGE_URI": "memory://", setting: "1/minute"})


def test_session_cookies_are_the_ones_flask_signs(app):
    """SignedCookieSessions derives its keys ahead of time; the cookies must stay Flask's, both ways."""
    from flask.sessions import SecureCookieSessionInterface

    app.config["SECRET_KEY_FALLBACKS"] = ["an-older-secret"]
    flask_signer = SecureCookieSessionInterface().get_signing_serializer(app)
    ours = app.session_interface.get_signing_serializer(app)
    data = {"csrf_token": "abc", "cart_id": 7}
    assert ours.loads(flask_signer.dumps(data)) == data
    assert flask_signer.loads(ours.dumps(data)) == data
    older = SimpleNamespace(secret_key="an-older-secret", config={"SECRET_KEY_FALLBACKS": None})
    assert ours.loads(SecureCookieSessionInterface().get_signing_serializer(older).dumps(data)) == data


def test_a_one_statement_request_runs_outside_a_transaction_unless_one_has_begun(database_url, media_folder):
    from sqlalchemy import text

    from storefront.db import autocommit_session, get_session

    app = create_app({"SECRET_KEY": "x", "DATABASE_URL": database_url, "MEDIA_FOLDER": str(media_folder)})
    with app.test_request_context("/"):
        single = autocommit_session()
        assert single.connection().connection.dbapi_connection.autocommit
        assert get_session() is single  # the rest of the request uses it too
    with app.test_request_context("/"):
        get_session().execute(text("SELECT 1"))  # e.g. loading the signed-in shopper
        assert autocommit_session() is get_session()
        assert not get_session().connection().connection.dbapi_connection.autocommit
    for engine in (app.extensions["db_engine"], app.extensions["db_autocommit_engine"]):
        engine.dispose()


def _opened(app, cookie):
    with app.test_request_context("/", headers={"Cookie": f"session={cookie}"}) as context:
        return app.session_interface.open_session(app, context.request)


def test_a_session_cookie_is_verified_once_per_process_and_its_data_never_shared(app, monkeypatch):
    serializer = app.session_interface.get_signing_serializer(app)
    cookie = serializer.dumps({"_flashes": [("success", "Added.")], "cart_id": 7})
    first = _opened(app, cookie)
    first["_flashes"].append(("info", "changed in place by a view"))
    monkeypatch.setattr(type(serializer), "loads", lambda *_a, **_k: pytest.fail("verified again"))
    again = _opened(app, cookie)
    assert again == {"_flashes": [("success", "Added.")], "cart_id": 7}


def test_a_kept_session_cookie_still_expires_and_a_forged_one_is_never_kept(app, monkeypatch):
    import time

    serializer = app.session_interface.get_signing_serializer(app)
    cookie = serializer.dumps({"cart_id": 7})
    assert _opened(app, cookie) == {"cart_id": 7}
    lifetime = app.permanent_session_lifetime.total_seconds()
    later = time.time() + lifetime + 5
    monkeypatch.setattr(time, "time", lambda: later)
    assert _opened(app, cookie) == {}
    forged = cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB")
    assert _opened(app, forged) == {}
    assert all(kept != forged for _keys, kept in app.session_interface._opened)


def test_media_files_are_served_with_a_long_cache(app, client, media_folder):
    (media_folder / "demo").mkdir(exist_ok=True)
    (media_folder / "demo" / "x.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    response = client.get("/media/demo/x.svg")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("image/svg+xml")
    assert "max-age=31536000" in response.headers["Cache-Control"]
    assert client.get("/media/../secret_key").status_code == 404


def test_production_refuses_to_start_without_a_secret_key(monkeypatch):
    monkeypatch.setenv("STOREFRONT_ENV", "production")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(ConfigError):
        create_app()


def test_production_cookies_are_secure(monkeypatch, database_url):
    monkeypatch.setenv("STOREFRONT_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "k")
    monkeypatch.setenv("DATABASE_URL", database_url)
    app = create_app()
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    response = app.test_client().get("/")
    assert "max-age=31536000" in response.headers["Strict-Transport-Security"]


def test_forged_forwarded_for_is_ignored_without_trusted_proxies(app, client):
    seen = []

    from flask import request

    with app.test_request_context(
        "/", headers={"X-Forwarded-For": "6.6.6.6"}, environ_base={"REMOTE_ADDR": "10.0.0.1"}
    ):
        seen.append(request.remote_addr)
    assert seen == ["10.0.0.1"]


def test_one_trusted_proxy_takes_only_the_last_hop(database_url):
    app = create_app({"SECRET_KEY": "x", "DATABASE_URL": database_url, "TRUSTED_PROXIES": 1})

    @app.get("/ip")
    def ip():
        from flask import request

        return request.remote_addr

    client = app.test_client()
    response = client.get(
        "/ip", headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.7"}, environ_base={"REMOTE_ADDR": "127.0.0.1"}
    )
    assert response.get_data(as_text=True) == "203.0.113.7"


def test_every_view_that_declares_a_limit_checks_it():
    """The limiter's auto_check is off, so a `@limiter.limit` without `@check_limits` above it limits nothing."""
    from storefront import ROOT

    unchecked = []
    for path in (ROOT / "storefront").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef):
                continue
            names = [ast.unparse(d.func if isinstance(d, ast.Call) else d) for d in node.decorator_list]
            declares = any(name in ("limiter.limit", "limit") or name.endswith("_limit") for name in names)
            if declares and "check_limits" not in names:
                unchecked.append(f"{path.relative_to(ROOT)}:{node.name}")
    assert unchecked == []
