"""Alembic migrations and the models describe the same schema, on PostgreSQL and on SQLite."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from storefront.db import Base
from tests.conftest import migrate


def differences(connection) -> list:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return compare_metadata(context, Base.metadata)


def test_postgres_migrations_match_the_models(database_url):
    engine = create_engine(database_url)
    with engine.connect() as connection:
        assert differences(connection) == []
    engine.dispose()


@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index")
def test_sqlite_migrations_match_the_models(tmp_path):
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    migrate(url)
    engine = create_engine(url)
    with engine.connect() as connection:
        assert differences(connection) == []
    engine.dispose()


def test_search_index_is_a_gin_index_on_postgres(database_url):
    engine = create_engine(database_url)
    indexes = {index["name"]: index for index in inspect(engine).get_indexes("products")}
    engine.dispose()
    assert indexes["ix_products_search"]["dialect_options"]["postgresql_using"] == "gin"


def test_stock_check_constraint_exists(database_url):
    engine = create_engine(database_url)
    checks = {c["name"]: c["sqltext"] for c in inspect(engine).get_check_constraints("variants")}
    engine.dispose()
    assert "reserved <= on_hand" in checks["ck_variants_stock_bounds"]
