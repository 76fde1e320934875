"""Each catalog page runs a small fixed number of SQL statements, however many products it shows."""

from contextlib import contextmanager

import pytest
from sqlalchemy import event

from tests.factories import make_category, make_product


@contextmanager
def count_statements(connection):
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        if not statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK")):
            statements.append(statement)

    event.listen(connection, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(connection, "before_cursor_execute", record)


@pytest.fixture
def big_shop(session):
    category = make_category(session, slug="lots", name="Lots")
    products = [
        make_product(
            session, category, name=f"Gold thing {n}", images=3, is_featured=n < 10, variants=[{}, {}, {}]
        )
        for n in range(30)
    ]
    return products


@pytest.mark.parametrize(
    ("url", "limit"),
    [
        ("/", 5),  # products in a running sale, featured products, images of each, categories
        ("/products", 3),  # categories, one page of products, their images
        ("/categories/lots?sort=price_desc&in_stock=y", 4),  # + the category
        ("/search?q=gold", 3),
        ("/products/{slug}", 4),  # product with category, variants, images; running sale prices
        ("/products/{slug}/stock", 1),
    ],
)
def test_page_statement_count_is_fixed(client, connection, big_shop, url, limit):
    url = url.format(slug=big_shop[0].slug)
    with count_statements(connection) as statements:
        response = client.get(url)
    assert response.status_code == 200
    assert len(statements) <= limit, "\n\n".join(statements)
