"""Fixtures: one app on a real PostgreSQL database, each test inside a transaction rolled back at the end."""

from pathlib import Path

import pytest
from alembic.config import Config
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from alembic import command
from storefront import ROOT, create_app
from tests import services


def alembic_config(connection=None) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["connection"] = connection
    return config


def migrate(url: str) -> None:
    """Build the schema the way production does: alembic upgrade head."""
    engine = create_engine(url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "head")
    engine.dispose()


@pytest.fixture(scope="session")
def database_url() -> str:
    url = services.fresh_database(f"storefront_test_{services.worker_suffix()}")
    migrate(url)
    return url


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
        }
    )


@pytest.fixture
def connection(app):
    """A connection in an open transaction that every session of the test joins, then rolled back."""
    engine = app.extensions["db_engine"]
    with engine.connect() as connection:
        transaction = connection.begin()
        original = app.extensions["db_sessionmaker"]
        # Commits inside the app release a savepoint; the outer transaction still rolls everything back.
        app.extensions["db_sessionmaker"] = sessionmaker(
            bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
        try:
            yield connection
        finally:
            app.extensions["db_sessionmaker"] = original
            transaction.rollback()


@pytest.fixture
def session(connection) -> Session:
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        yield session


@pytest.fixture
def client(app, connection):
    return app.test_client()


@pytest.fixture
def htmx(client):
    """A test client whose requests look like HTMX swaps."""

    class HtmxClient:
        def get(self, url, **kwargs):
            return client.get(url, headers={"HX-Request": "true", **kwargs.pop("headers", {})}, **kwargs)

    return HtmxClient()
