"""Catalog reads go to the replica (DATABASE_REPLICA_URL), everything else to the primary; a database that
is unreachable or read-only (a failover in progress) gets a 503 "try again", never a 500."""

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from storefront import create_app
from tests import services
from tests.conftest import migrate
from tests.factories import make_product


@pytest.fixture(scope="module")
def databases():
    """Two migrated databases standing in for a primary and its replica; a product exists only on the replica."""
    names = {role: f"storefront_{role}_{services.run_suffix()}" for role in ("primary", "replica")}
    urls = {role: services.fresh_database(name) for role, name in names.items()}
    for url in urls.values():
        migrate(url)
    engine = create_engine(urls["replica"])
    with Session(engine) as session:
        product = make_product(session, slug="only-on-the-replica")
        session.commit()
        variant_id = product.variants[0].id
    engine.dispose()
    yield urls, variant_id
    for name in names.values():
        services.drop_database(name)


def shop(database_url: str, replica_url: str | None = None, **extra):
    config = {
        "TESTING": True,
        "SECRET_KEY": "test",
        "DATABASE_URL": database_url,
        "DATABASE_REPLICA_URL": replica_url,
        "CATALOG_CACHE_SECONDS": 0,
        "RATELIMIT_STORAGE_URI": "memory://",
        "WTF_CSRF_ENABLED": False,
    }
    return create_app(config | extra)


def test_product_pages_and_listings_read_from_the_replica(databases):
    urls, _ = databases
    client = shop(urls["primary"], urls["replica"]).test_client()
    assert client.get("/products/only-on-the-replica").status_code == 200
    assert "only-on-the-replica" in client.get("/products").get_data(as_text=True)


def test_live_stock_reads_the_primary_even_with_a_replica(databases):
    urls, _ = databases
    client = shop(urls["primary"], urls["replica"]).test_client()
    assert client.get("/products/only-on-the-replica/stock").status_code == 404


def test_without_a_replica_catalog_reads_use_the_primary(databases):
    urls, _ = databases
    client = shop(urls["primary"]).test_client()
    assert client.get("/products/only-on-the-replica").status_code == 404


def test_an_unreachable_database_gets_503_with_retry_after():
    app = shop("postgresql+psycopg2://postgres@127.0.0.1:1/nothing?connect_timeout=2")
    response = app.test_client().get("/products/anything")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "3"


def test_a_write_to_a_read_only_database_gets_503_and_writes_nothing(databases):
    urls, variant_id = databases
    # A database that refuses writes, as a standby does while a failover is under way.
    engine = create_engine(urls["replica"], isolation_level="AUTOCOMMIT")
    database = engine.url.database
    with engine.connect() as connection:
        connection.execute(text(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on'))
    try:
        client = shop(urls["replica"]).test_client()
        response = client.post("/cart/add", data={"variant_id": variant_id, "quantity": 1})
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "3"
    finally:
        with engine.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{database}" RESET default_transaction_read_only'))
            assert connection.execute(text("SELECT count(*) FROM cart_lines")).scalar() == 0
        engine.dispose()


def test_ending_a_request_whose_connection_died_mid_transaction_does_not_raise(databases):
    from storefront.db import close_session, get_session

    urls, _ = databases
    app = shop(urls["primary"])
    admin = create_engine(urls["primary"], isolation_level="AUTOCOMMIT")
    with app.app_context():
        session = get_session()
        pid = session.execute(text("SELECT pg_backend_pid()")).scalar()  # a transaction is now open
        with admin.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        close_session()  # the failover case: the rollback finds the server gone
    admin.dispose()
    with app.app_context():
        assert get_session().execute(text("SELECT 1")).scalar() == 1  # the pool gives a live connection
