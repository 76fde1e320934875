"""Readiness checks: can this process reach its database and Redis, and is the schema the code's?"""

import functools
import logging

import redis
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from storefront import ROOT

log = logging.getLogger(__name__)


@functools.cache
def code_heads() -> frozenset[str]:
    """The migration heads this code was written for (read from alembic/versions once per process)."""
    return frozenset(ScriptDirectory.from_config(Config(str(ROOT / "alembic.ini"))).get_heads())


def database_problem(engine: Engine) -> tuple[str | None, str | None]:
    """(what is wrong with the database, what is wrong with its migrations), each None when fine."""
    try:
        with engine.connect() as connection:
            versions = set(connection.scalars(text("SELECT version_num FROM alembic_version")))
    except SQLAlchemyError as error:
        log.warning("readiness: database check failed (%s)", error.__class__.__name__)
        return "unreachable or not migrated", None
    heads = code_heads()
    if versions != heads:
        return None, f"at {', '.join(sorted(versions)) or 'nothing'}, code expects {', '.join(sorted(heads))}"
    return None, None


def redis_problem(client) -> str | None:
    """What is wrong with Redis, or None."""
    try:
        client.ping()
    except (redis.RedisError, OSError) as error:
        log.warning("readiness: Redis check failed (%s)", error.__class__.__name__)
        return "unreachable"
    return None


def readiness(engine: Engine, redis_client) -> dict[str, str]:
    """Each check's answer: "ok" or what failed."""
    database, migrations = database_problem(engine)
    return {
        "database": database or "ok",
        "migrations": "unknown (database down)" if database else (migrations or "ok"),
        "redis": redis_problem(redis_client) or "ok",
    }
