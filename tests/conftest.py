"""Fixtures: one app on a real PostgreSQL database, each test inside a transaction rolled back at the end."""

from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from storefront import create_app
from storefront.accounts.models import User
from storefront.extensions import clock, limiter
from storefront.payments.gateway import AuthorizeNetGateway
from tests import services
from tests.helpers import migrate, rolled_back, staff_login
from tools import anet_loopback


@pytest.fixture(scope="session")
def database_url():
    name = f"storefront_test_{services.run_suffix()}"
    url = services.fresh_database(name)
    migrate(url)
    yield url
    services.drop_database(name)


@pytest.fixture(scope="session")
def media_folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def app(database_url, media_folder):
    return create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "DATABASE_URL": database_url,
            "MEDIA_FOLDER": str(media_folder),
            "WTF_CSRF_ENABLED": True,
            "RATELIMIT_STORAGE_URI": "memory://",
            "MAIL_OUTBOX": str(media_folder.parent / "outbox"),
            # Tests change the catalog between requests; the cache tests in test_catalog.py turn it on.
            "CATALOG_CACHE_SECONDS": 0,
            # Flags are read afresh on every check, inside each test's transaction; test_flags.py caches.
            "FLAGS_CACHE_SECONDS": 0,
            # Counted in every test, so the request hooks run everywhere; test_metrics.py reads them.
            "METRICS_ENABLED": True,
            "METRICS_TOKEN": "test-metrics-token",
        }
    )


@pytest.fixture
def connection(app):
    """A connection in an open transaction that every session of the test joins, then rolled back."""
    with rolled_back(app) as connection:
        yield connection


@pytest.fixture
def session(connection) -> Session:
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        yield session


@pytest.fixture
def client(app, connection):
    """A browser-like client; rate-limit counters and the in-process Redis start empty each test."""
    limiter.reset()
    app.extensions["redis"].flushall()
    return app.test_client()


@pytest.fixture
def now(monkeypatch):
    """A clock the test moves by hand."""
    current = [1_000_000.0]
    monkeypatch.setattr(clock, "now", lambda: current[0])
    return current


@pytest.fixture
def outbox(app) -> Path:
    """The e-mails the app wrote, newest last."""
    folder = Path(app.config["MAIL_OUTBOX"])
    for old in folder.glob("*.eml"):
        old.unlink()
    return folder


@pytest.fixture
def htmx(client):
    """A test client whose requests look like HTMX swaps."""

    class HtmxClient:
        def get(self, url, **kwargs):
            return client.get(url, headers={"HX-Request": "true", **kwargs.pop("headers", {})}, **kwargs)

    return HtmxClient()


@pytest.fixture
def staff(client, session) -> User:
    """A staff member signed in on `client` with both factors."""
    return staff_login(client, session)


@pytest.fixture
def admin(client, session) -> User:
    """An admin signed in on `client` with both factors."""
    return staff_login(client, session, role="admin")


@pytest.fixture(scope="session")
def loopback():
    """The loopback Authorize.Net (the official XSD checks every request), one per test process."""
    server = anet_loopback.start()
    yield server
    server.stop()


@pytest.fixture
def gateway(loopback, monkeypatch):
    """The real SDK, over real HTTP, to the loopback, reset for this test."""
    monkeypatch.delenv("http_proxy", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    loopback.reset()
    return AuthorizeNetGateway(
        anet_loopback.DEFAULT_LOGIN, anet_loopback.DEFAULT_KEY, loopback.endpoint, timeout=(2, 2)
    )
