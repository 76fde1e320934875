"""Plain SQL on a PostgreSQL database, for the tests and the benchmark that look at the shop from outside."""

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine


class SqlDb:
    """A small pool and three ways to run a statement: rows as dicts, one value, or a write's row count."""

    def __init__(self, url: str, pool_size: int = 2, max_overflow: int = 2):
        self.url = url
        self.engine: Engine = create_engine(
            url, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True
        )

    def dispose(self) -> None:
        self.engine.dispose()

    def rows(self, sql: str, **params) -> list[dict]:
        with self.engine.connect() as connection:
            return [dict(row) for row in connection.execute(text(sql), params).mappings()]

    def scalar(self, sql: str, **params):
        with self.engine.connect() as connection:
            return connection.execute(text(sql), params).scalar()

    def execute(self, sql: str, **params) -> int:
        with self.engine.begin() as connection:
            return connection.execute(text(sql), params).rowcount
