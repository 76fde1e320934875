"""Plain helpers shared by the test modules: forms with their CSRF token, signing in, the outbox, the schema."""

import re
import time
from contextlib import contextmanager
from pathlib import Path

import pyotp
from alembic.config import Config
from sqlalchemy import create_engine, event
from sqlalchemy.orm import sessionmaker

from alembic import command
from storefront import ROOT
from storefront.accounts import services as accounts
from storefront.accounts.models import User
from tests.factories import make_user

# A shopper's checkout address, as the checkout form posts it.
ADDRESS = {
    "email": "buyer@example.com",
    "full_name": "Ada Lovelace",
    "line1": "1 Main St",
    "city": "Springfield",
    "region": "",
    "postal_code": "62701",
    "country": "US",
    "shipping_method": "standard",
}

# Values that break naive form handling: huge, bidi, combining, zero-width, markup, SQL, NULs, out of range.
ODD_VALUES = [
    "x" * 5000,
    "\u202eevil\u202c",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "e\u0301\u0301\u0301",
    "\u200b\ufeff",
    "💍" * 50,
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "%00%0d%0a",
    "\x00",
    "-1",
    "9" * 40,
]


def alembic_config(connection=None) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["connection"] = connection
    return config


def migrate(url: str) -> None:
    """Build the schema the way production does: alembic upgrade head."""
    engine = create_engine(url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "head")
    engine.dispose()


def csrf_token(client, url: str = "/password/reset") -> str:
    """The CSRF token a page renders for this client's session."""
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', client.get(url).get_data(as_text=True))
    assert match, f"no CSRF token on {url}"
    return match.group(1)


def login(client, email: str, password: str = "correct horse battery", ip: str = "127.0.0.1", **extra):
    token = csrf_token(client)
    return client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": token, **extra},
        environ_base={"REMOTE_ADDR": ip},
    )


def read_outbox(folder: Path) -> list:
    from email import policy
    from email.parser import BytesParser

    return [
        BytesParser(policy=policy.default).parse(path.open("rb")) for path in sorted(folder.glob("*.eml"))
    ]


def enable_totp(session, user) -> str:
    secret = accounts.new_totp_secret()
    accounts.enable_totp(session, user, secret)
    return secret


def post_form(client, url: str, htmx: bool = False, **data):
    """POST a form to the admin with this session's CSRF token, as a plain form or as HTMX."""
    return client.post(
        url, data={"csrf_token": csrf_token(client), **data}, headers={"HX-Request": "true"} if htmx else {}
    )


def staff_login(client, session, role="staff") -> User:
    """A staff member signed in with both factors."""
    user = make_user(session, f"{role}{time.monotonic_ns()}@example.com", role=role)
    secret = enable_totp(session, user)
    response = login(client, user.email)
    assert response.headers["Location"] == "/login/verify"
    done = client.post(
        "/login/verify",
        data={"code": pyotp.TOTP(secret).now(), "csrf_token": csrf_token(client, "/login/verify")},
    )
    assert done.status_code == 303, done.get_data(as_text=True)
    return user


def checkout_form(client) -> dict:
    page = client.get("/checkout").get_data(as_text=True)
    key = re.search(r'name="idempotency_key"[^>]*value="([^"]+)"', page) or re.search(
        r'value="([^"]+)"[^>]*name="idempotency_key"', page
    )
    return {"csrf_token": csrf_token(client, "/checkout"), "idempotency_key": key.group(1)}


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


SESSIONMAKERS = ("db_sessionmaker", "db_autocommit_sessionmaker")


@contextmanager
def rolled_back(app):
    """A connection in an open transaction that every session of `app` joins, rolled back at the end."""
    engine = app.extensions["db_engine"]
    with engine.connect() as connection:
        transaction = connection.begin()
        originals = {name: app.extensions.pop(name, None) for name in SESSIONMAKERS}
        # Commits inside the app release a savepoint; the outer transaction still rolls everything back.
        # Statements the app would run outside a transaction (db.autocommit_session) run inside this one.
        app.extensions["db_sessionmaker"] = sessionmaker(
            bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
        try:
            yield connection
        finally:
            app.extensions.update({name: made for name, made in originals.items() if made is not None})
            transaction.rollback()
