"""Finding the real PostgreSQL and Redis for tests: skip where absent, fail in CI."""

import os

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
REDIS_BASE_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(what: str, error: Exception):
    """Skip a test whose service is missing, except in CI, where that is a failure."""
    message = f"{what} is not reachable ({error.__class__.__name__}: {error})"
    if in_ci():
        pytest.fail(f"{message}; CI=true requires it", pytrace=False)
    pytest.skip(message)


def worker_suffix() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def run_suffix() -> str:
    """Unique to this test run and worker, so two runs on one machine never share a database."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID") or str(os.getpid())
    return f"{worker_suffix()}_{run[:8]}"


def drop_database(name: str) -> None:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def fresh_database(name: str) -> str:
    """Drop and create a PostgreSQL database for this test run; return its URL."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:
        unavailable("PostgreSQL", error)
    finally:
        admin.dispose()
    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def redis_url() -> str:
    """A Redis database of this test worker's own, emptied."""
    numbers = {"main": 15, "gw0": 14, "gw1": 13, "gw2": 12, "gw3": 11}
    url = f"{REDIS_BASE_URL}/{numbers.get(worker_suffix(), 10)}"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        client.flushdb()
        client.close()
    except redis.RedisError as error:
        unavailable("Redis", error)
    return url
