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


def make_engine(url: str, pool_size: int = 5) -> Engine:
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
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def init_app(app: Flask) -> None:
    """Create the engine and session factory and close the session after each app context."""
    engine = make_engine(app.config["DATABASE_URL"], app.config["DATABASE_POOL_SIZE"])
    app.extensions["db_engine"] = engine
    app.extensions["db_sessionmaker"] = sessionmaker(bind=engine, expire_on_commit=False)
    app.teardown_appcontext(close_session)


def get_session() -> Session:
    """The current app context's session, opened on first use."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["db_sessionmaker"]()
    return g.db_session


def autocommit(session: Session) -> bool:
    """Run the session's statements outside a transaction, each committed on its own, when nothing has begun
    yet and the session has its own connection to set up (a test lends it one inside the test's transaction).
    For a request whose whole write is one statement: it then needs no BEGIN and COMMIT round trips."""
    if session.in_transaction() or not isinstance(session.get_bind(), Engine):
        return False
    session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    return True


def close_session(_exc: BaseException | None = None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()
