"""Alembic migrations and the models describe the same schema, on PostgreSQL and on SQLite."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from storefront.db import Base
from storefront.models import include_object
from tests.helpers import migrate


def differences(connection) -> list:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_object": include_object}
    )
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


def test_search_uses_a_stored_vector_with_a_gin_index_on_postgres(database_url):
    engine = create_engine(database_url)
    indexes = {index["name"]: index for index in inspect(engine).get_indexes("products")}
    columns = {column["name"]: column for column in inspect(engine).get_columns("products")}
    engine.dispose()
    assert indexes["ix_products_search_vector"]["dialect_options"]["postgresql_using"] == "gin"
    assert "to_tsvector" in columns["search_vector"]["computed"]["sqltext"]
    assert "ix_products_search" not in indexes  # the expression index it replaced


def test_only_the_search_vector_is_left_out_of_the_comparison(database_url):
    """The filter must not hide anything else: drop another index and the comparison sees it."""
    engine = create_engine(database_url)
    with engine.connect() as connection:
        transaction = connection.begin()
        connection.exec_driver_sql("DROP INDEX ix_products_price_from")
        assert [d[0] for d in differences(connection)] == ["add_index"]
        transaction.rollback()
    engine.dispose()


def test_stock_check_constraint_exists(database_url):
    engine = create_engine(database_url)
    checks = {c["name"]: c["sqltext"] for c in inspect(engine).get_check_constraints("variants")}
    engine.dispose()
    assert "reserved <= on_hand" in checks["ck_variants_stock_bounds"]
