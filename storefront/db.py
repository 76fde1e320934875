"""SQLAlchemy 2.0 wiring: the declarative base, one engine per app, one session per app context."""

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from flask import Flask, current_app, g
from sqlalchemy import DateTime, MetaData, Numeric, create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        Decimal: Numeric(12, 2),
        datetime: DateTime(timezone=True),
    }


def make_engine(
    url: str, pool_size: int = 5, isolation_level: str | None = None, pre_ping: bool = True
) -> Engine:
    """Build an engine for PostgreSQL or the embedded SQLite file."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 15})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        return engine
    options = {"isolation_level": isolation_level} if isolation_level else {}
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=pre_ping, **options)


def init_app(app: Flask) -> None:
    """Create the engines and session factories and close the session after each app context."""
    url = app.config["DATABASE_URL"]
    engine = make_engine(url, app.config["DATABASE_POOL_SIZE"])
    app.extensions["db_engine"] = engine
    app.extensions["db_sessionmaker"] = sessionmaker(bind=engine, expire_on_commit=False)
    if engine.dialect.name == "postgresql":
        # For requests whose whole write is one statement (add to cart): connections kept in autocommit mode
        # need no BEGIN and COMMIT round trips, and, being a pool of their own, no switching of a pooled
        # connection's mode and back on every request (~0.3 ms of SQLAlchemy's work each time).
        # No ping before lending a connection (a round trip, a fifth of an add to cart): Prepared.execute
        # runs its statement again, once, on a new connection if the lent one turns out dead.
        single = make_engine(url, pool_size=2, isolation_level="AUTOCOMMIT", pre_ping=False)
        event.listen(single, "connect", _prepare_statements)
        app.extensions["db_autocommit_engine"] = single
        app.extensions["db_autocommit_sessionmaker"] = sessionmaker(bind=single, expire_on_commit=False)
    if app.config.get("DATABASE_REPLICA_URL"):
        replica = make_engine(app.config["DATABASE_REPLICA_URL"], app.config["DATABASE_POOL_SIZE"])
        app.extensions["db_replica_engine"] = replica
        app.extensions["db_replica_sessionmaker"] = sessionmaker(bind=replica, expire_on_commit=False)
    app.teardown_appcontext(close_session)


@dataclass(frozen=True)
class Prepared:
    """A statement PostgreSQL plans once per connection (PREPARE) instead of on every run.

    `sql` names its parameters (:name); `parameters` gives their order and SQL types. Prepared on every new
    connection of the autocommit pool (see init_app), where `execute` runs it; on any other connection (a
    test's, SQLite never has one) it runs as plain SQL, planned each time."""

    name: str
    sql: str
    parameters: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        PREPARED[self.name] = self

    def execute(self, session: Session, params: dict):
        """Run it; should the connection turn out dead as the statement is sent (PostgreSQL restarted while it
        sat in the pool, which is not pinged), the pool drops its connections and it runs once more on a new
        one. Only for statements that are a whole transaction on their own."""
        try:
            return self._run(session, params)
        except DBAPIError as error:
            if not error.connection_invalidated:
                raise
            session.rollback()
            return self._run(session, params)

    def _run(self, session: Session, params: dict):
        names = [name for name, _type in self.parameters]
        if self.name in session.connection().info.get("prepared", ()):
            call = f"EXECUTE {self.name}({', '.join(':' + name for name in names)})"
            return session.execute(text(call), params)
        return session.execute(text(self.sql), params)

    def prepare_sql(self) -> str:
        """The PREPARE command: parameters by position ($1...) and typed."""
        position = {name: n for n, (name, _type) in enumerate(self.parameters, start=1)}
        body = re.sub(r"(?<!:):(\w+)", lambda found: f"${position[found[1]]}", self.sql)
        types = ", ".join(sql_type for _name, sql_type in self.parameters)
        return f"PREPARE {self.name} ({types}) AS {body}"


PREPARED: dict[str, Prepared] = {}


def _prepare_statements(dbapi_connection, connection_record) -> None:
    cursor = dbapi_connection.cursor()
    # Plans made once and kept: what preparing is for (a generic plan is as good for these key lookups).
    cursor.execute("SET plan_cache_mode = force_generic_plan")
    for statement in PREPARED.values():
        cursor.execute(statement.prepare_sql())
    cursor.close()
    dbapi_connection.commit()  # a rollback must not undo the SET (nothing to commit in autocommit mode)
    connection_record.info["prepared"] = set(PREPARED)


def engines(app: Flask) -> list[Engine]:
    names = ("db_engine", "db_autocommit_engine", "db_replica_engine")
    return [app.extensions[name] for name in names if name in app.extensions]


def get_session() -> Session:
    """The current app context's session, opened on first use."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["db_sessionmaker"]()
    return g.db_session


def read_session() -> Session:
    """A session for reads that tolerate a replica's lag (catalog pages and listings): on the replica when
    DATABASE_REPLICA_URL is set, otherwise the request's own session. Never for a write or an exact figure."""
    factory = current_app.extensions.get("db_replica_sessionmaker")
    if factory is None:
        return get_session()
    if "db_replica_session" not in g:
        g.db_replica_session = factory()
    return g.db_replica_session


def autocommit_session() -> Session:
    """The request's session, from here on outside any transaction (each statement committed on its own), if
    nothing has begun yet and the database allows it; otherwise the request's ordinary session. For a request
    whose whole write is one statement: it needs no BEGIN and COMMIT round trips."""
    factory = current_app.extensions.get("db_autocommit_sessionmaker")
    current = g.get("db_session")
    if factory is None or (current is not None and current.in_transaction()):
        return get_session()
    if current is not None:
        current.close()
    g.db_session = factory()
    return g.db_session


def close_session(_exc: BaseException | None = None) -> None:
    for name in ("db_session", "db_replica_session"):
        session = g.pop(name, None)
        if session is None:
            continue
        try:
            session.close()
        except DBAPIError:
            # The rollback found its connection dead (the database restarted or failed over mid-request):
            # nothing to undo there; drop the connection instead of failing a response already made.
            session.invalidate()
