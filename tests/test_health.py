"""/healthz and /readyz: the process answers; ready means database, Redis and migrations at head, and a 503
names whichever is not."""

from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from alembic import command
from storefront import create_app
from storefront.health import services as health
from tests import services
from tests.helpers import alembic_config

CLOSED_PORT = "127.0.0.1:9"  # discard: nothing listens there on a test machine


def make_app(database_url, **config):
    return create_app({"TESTING": True, "SECRET_KEY": "test-secret", "DATABASE_URL": database_url, **config})


def test_healthz_answers_without_touching_anything(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json == {"status": "ok"}
    assert "Set-Cookie" not in response.headers


def test_readyz_is_ok_when_database_redis_and_migrations_are(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "checks": {"database": "ok", "migrations": "ok", "redis": "ok"}}
    assert response.headers["Cache-Control"] == "no-store"


def test_readyz_checks_a_real_redis_and_names_it_when_it_is_away(database_url):
    assert (
        make_app(database_url, REDIS_URL=services.redis_url()).test_client().get("/readyz").status_code == 200
    )
    response = make_app(database_url, REDIS_URL=f"redis://{CLOSED_PORT}/0").test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"] == {"database": "ok", "migrations": "ok", "redis": "unreachable"}


def test_readyz_names_the_database_when_it_is_away():
    app = make_app(f"postgresql+psycopg2://nobody@{CLOSED_PORT}/shop")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["database"] == "unreachable or not migrated"
    assert response.json["checks"]["redis"] == "ok"


def test_readyz_names_migrations_that_are_behind_the_code():
    name = f"storefront_behind_{services.run_suffix()}"
    url = services.fresh_database(name)
    try:
        engine = create_engine(url)
        with engine.begin() as connection:
            head = ScriptDirectory.from_config(alembic_config()).get_current_head()
            parent = ScriptDirectory.from_config(alembic_config()).get_revision(head).down_revision
            # One step short of head (a merge revision has several parents: stop at the first one's).
            command.upgrade(alembic_config(connection), parent[0] if isinstance(parent, tuple) else parent)
        engine.dispose()
        response = make_app(url).test_client().get("/readyz")
        assert response.status_code == 503
        problem = response.json["checks"]["migrations"]
        assert "code expects" in problem and sorted(health.code_heads())[0] in problem
        assert response.json["checks"]["database"] == "ok"
    finally:
        services.drop_database(name)


def test_the_stream_pool_answers_health_checks_on_redis_alone():
    from storefront import create_stream_app

    stream = create_stream_app({"SECRET_KEY": "x", "TESTING": True, "REDIS_URL": services.redis_url()})
    client = stream.test_client()
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["checks"] == {"redis": "ok"}
