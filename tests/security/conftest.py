"""The attack battery (`make security`): every test here carries the `security` marker, which `make test`
deselects so that the everyday run stays quick."""

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import requests
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from tests import live, services
from tests.factories import make_user
from tests.helpers import migrate

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.security)


def routes(app, *, with_arguments: bool | None = None):
    """(rule, method) for every route of the app from its URL map, HEAD and OPTIONS left out."""
    found = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule):
        if rule.endpoint == "static" or (
            with_arguments is not None and bool(rule.arguments) != with_arguments
        ):
            continue
        found += [(rule, method) for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return found


def build(rule, values: dict) -> str:
    """The rule's URL with these values, and a harmless placeholder for any argument not given."""
    placeholders = {name: values.get(name, "1" if "id" in name else "x") for name in rule.arguments}
    return rule.build(placeholders)[1]


# --- a live shop for the tools that speak HTTP (sqlmap, slowhttptest) -------------------------------------

REDIS_DB = int(os.environ.get("SECURITY_REDIS_DB", "3"))  # unit tests use 10-15, browser 5-9, live 4


@dataclass
class LiveShop:
    env: dict
    web: live.Gunicorn
    logs: Path
    database_url: str

    @property
    def url(self) -> str:
        return self.web.url


@pytest.fixture(scope="session")
def live_shop(tmp_path_factory):
    """PostgreSQL (fresh, migrated, a small demo catalog), a Redis db of its own, gunicorn with 2 workers.
    Limits and lockouts are raised: the tools send thousands of requests from one address."""
    redis_url = f"{services.REDIS_BASE_URL}/{REDIS_DB}"
    client = redis.Redis.from_url(redis_url)
    try:
        client.flushdb()
    except redis.RedisError as error:
        services.unavailable("Redis", error)
    name = f"storefront_security_{services.run_suffix()}"
    database_url = services.fresh_database(name)
    web = None
    try:
        migrate(database_url)
        logs = live.run_log_dir(f"security-{services.run_suffix()}")
        tmp = tmp_path_factory.mktemp("security")
        env = live.base_env() | {
            "SECRET_KEY": "security-battery",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "MAIL_OUTBOX": str(tmp / "outbox"),
            "MEDIA_FOLDER": str(tmp / "media"),
            "LOCKOUT_FAILURES": "100000",
            "LOCKOUT_IP_FAILURES": "100000",
            **dict.fromkeys((*live.RAISED_LIMITS, "RESET_LIMIT"), live.RAISED_LIMIT),
        }
        live.run_flask(env, "seed-demo", "--products", "12", "--flash-stock", "50", log_dir=logs)
        live.run_flask(
            env, "create-staff", STAFF_EMAIL, "--role", "staff", "--password", PASSWORD, log_dir=logs
        )
        engine = create_engine(database_url)
        with Session(engine) as session:
            make_user(session, SHOPPER_EMAIL, PASSWORD)
            session.commit()
        engine.dispose()
        web = live.start_gunicorn(env, workers=2, log_dir=logs)
        yield LiveShop(env, web, logs, database_url)
    finally:
        live.stop_all([web])
        services.drop_database(name)
        client.flushdb()
        client.close()


STAFF_EMAIL = "battery-staff@example.com"
SHOPPER_EMAIL = "battery-shopper@example.com"
PASSWORD = "Battery horse staple 7"


def signed_in(base_url: str, email: str, password: str = PASSWORD) -> requests.Session:
    """A requests session signed in (registering the shopper first when it is new)."""
    browser = requests.Session()
    browser.trust_env = False
    token = live.CSRF_INPUT.search(browser.get(f"{base_url}/login", timeout=10).text)
    response = browser.post(
        f"{base_url}/login",
        data={"email": email, "password": password, "csrf_token": token.group(1) or token.group(2)},
        timeout=10,
        allow_redirects=False,
    )
    assert response.status_code == 303, response.text[-500:]
    return browser
