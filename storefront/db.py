"""SQLAlchemy 2.0 wiring: the declarative base, one engine per app, one session per app context."""

from datetime import datetime
from decimal import Decimal

from flask import Flask, current_app, g
from sqlalchemy import DateTime, MetaData, Numeric, create_engine, event
from sqlalchemy.engine import Engine
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


def make_engine(url: str, pool_size: int = 5, isolation_level: str | None = None) -> Engine:
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
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, **options)


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
        single = make_engine(url, pool_size=2, isolation_level="AUTOCOMMIT")
        app.extensions["db_autocommit_engine"] = single
        app.extensions["db_autocommit_sessionmaker"] = sessionmaker(bind=single, expire_on_commit=False)
    app.teardown_appcontext(close_session)


def engines(app: Flask) -> list[Engine]:
    return [app.extensions[name] for name in ("db_engine", "db_autocommit_engine") if name in app.extensions]


def get_session() -> Session:
    """The current app context's session, opened on first use."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["db_sessionmaker"]()
    return g.db_session


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
    session = g.pop("db_session", None)
    if session is not None:
        session.close()
