"""Sentry and logs: the real SDK sends real envelopes to a local endpoint, from a view and from a job in a
real `rq worker`, with nothing secret in them; log lines carry request ids into jobs and hold no secret."""

import json
import time
import uuid

import pytest
import sentry_sdk
from flask import request
from rq import Queue

from storefront import create_app, observability
from storefront import queues as shop_queues
from tests import live, services
from tests.ops_jobs import CARD
from tests.sink import Sink

SECRETS = [
    "4111111111111111",
    "4111 1111 1111 1111",
    "hunter2hunter2",
    "sk_live_abcdef123456",
    "ada.lovelace@example.com",
    "nonce-eyJzZWNyZXQ",
    "session-cookie-value",
    "Bearer-abc.def",
]


def assert_no_secret(text: str) -> None:
    found = [secret for secret in SECRETS if secret in text]
    assert found == [], f"secrets leaked: {found}"


def wait_until(check, timeout: float = 15.0):
    return live.wait_for(check, timeout, "the sink to receive it", interval=0.05)


# --- the scrubber -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, kept",
    [
        ("card 4111 1111 1111 1111 declined", "card [Filtered] declined"),
        ("card 4111-1111-1111-1111", "card [Filtered]"),
        ("pan=5555555555554444&x=1", "pan=[Filtered]&x=1"),
        ("password=hunter2 next", "password=[Filtered] next"),
        ('{"csrf_token": "abc123"}', '{"csrf_token": "[Filtered]"}'),
        ("sent Bearer abc.def.ghi", "sent Bearer [Filtered]"),
        ("mail ada.lovelace@example.com now", "mail a***@example.com now"),
        ("order SF-123 for 2 units at 20.00", "order SF-123 for 2 units at 20.00"),
    ],
)
def test_the_scrubber_masks_secrets_in_text_and_leaves_the_rest(text, kept):
    assert observability.scrub_text(text) == kept


def test_the_scrubber_masks_secret_keys_at_any_depth_and_header_pairs():
    event = {
        "request": {
            "data": {"email": "bob@example.com", "password": "x", "dataValue": "nonce", "qty": 2},
            "headers": [["Cookie", "session=abc"], ["Accept", "text/html"], ["X-CSRFToken", "t"]],
            "cookies": {"session": "abc"},
        },
        "extra": {"deep": [{"api_key": "k", "note": "card 4242424242424242"}]},
    }
    scrubbed = observability.scrub(event)
    assert scrubbed["request"]["data"] == {
        "email": "b***@example.com",
        "password": "[Filtered]",
        "dataValue": "[Filtered]",
        "qty": 2,
    }
    assert scrubbed["request"]["headers"] == [
        ["Cookie", "[Filtered]"],
        ["Accept", "text/html"],
        ["X-CSRFToken", "[Filtered]"],
    ]
    assert scrubbed["request"]["cookies"] == "[Filtered]"
    assert scrubbed["extra"]["deep"] == [{"api_key": "[Filtered]", "note": "card [Filtered]"}]


def test_without_a_dsn_sentry_stays_off(app):
    assert app.config["SENTRY_DSN"] is None
    assert not observability.init_sentry(app)


# --- Sentry, for real -------------------------------------------------------------------------------------


@pytest.fixture
def sink():
    endpoint = Sink()
    yield endpoint
    endpoint.close()


@pytest.fixture
def sentry_app(database_url, sink):
    app = create_app(
        {
            "TESTING": True,
            "PROPAGATE_EXCEPTIONS": False,
            "SECRET_KEY": "test-secret",
            "DATABASE_URL": database_url,
            "WTF_CSRF_ENABLED": False,
            "SENTRY_DSN": sink.dsn,
            "SENTRY_ENVIRONMENT": "test-env",
            "SENTRY_RELEASE": "release-1",
        }
    )

    @app.post("/explode")
    def explode():
        """A view that fails with the request's secrets around it."""
        card = request.form["card"]
        raise RuntimeError(f"charge failed for {card} with token=sk_live_abcdef123456")

    yield app
    sentry_sdk.get_client().flush(timeout=5)
    sentry_sdk.init()  # no DSN: the rest of this process sends nothing


def test_an_exception_in_a_view_reaches_sentry_scrubbed(sentry_app, sink):
    response = sentry_app.test_client().post(
        "/explode?token=sk_live_abcdef123456",
        data={
            "card": CARD,
            "password": "hunter2hunter2",
            "email": "ada.lovelace@example.com",
            "dataValue": "nonce-eyJzZWNyZXQ",
        },
        headers={
            "Cookie": "session=session-cookie-value",
            "Authorization": "Bearer Bearer-abc.def",
            "X-Request-ID": "req-view-1",
        },
    )
    assert response.status_code == 500
    sentry_sdk.get_client().flush(timeout=5)
    envelope = wait_until(lambda: [r for r in sink.received if r.events()])[0]
    assert envelope.path == "/api/42/envelope/"
    [event] = envelope.events()
    assert event["exception"]["values"][-1]["type"] == "RuntimeError"
    assert (event["release"], event["environment"]) == ("release-1", "test-env")
    assert event["request"]["url"].endswith("/explode")
    assert_no_secret(envelope.text())


@pytest.fixture
def worker_env(database_url, sink, tmp_path):
    redis_url = services.redis_url()
    env = live.base_env() | {
        "SECRET_KEY": "test-secret",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SENTRY_DSN": sink.dsn,
        "SENTRY_RELEASE": "release-2",
        "LOG_FORMAT": "json",
        "MAIL_OUTBOX": str(tmp_path / "outbox"),
        "MEDIA_FOLDER": str(tmp_path / "media"),
    }
    worker = live.start_worker(env, log_dir=tmp_path)
    yield env, worker
    worker.stop()


def test_a_failing_job_in_a_real_worker_reaches_sentry_and_its_log_lines_carry_the_request_id(
    worker_env, sink, database_url
):
    env, worker = worker_env
    app = create_app(
        {"TESTING": True, "SECRET_KEY": "t", "DATABASE_URL": database_url, "REDIS_URL": env["REDIS_URL"]}
    )
    marker = uuid.uuid4().hex[:8]
    from tests.ops_jobs import explode

    with app.test_request_context(headers={"X-Request-ID": f"req-{marker}"}):
        app.preprocess_request()  # what a request does first: take the request id
        job = shop_queues.enqueue(explode, marker)
    assert job.meta == {"request_id": f"req-{marker}"}
    queue = Queue("default", connection=app.extensions["redis"])
    events = wait_until(lambda: [e for r in sink.received for e in r.events() if marker in json.dumps(e)])
    assert events[0]["exception"]["values"][-1]["type"] == "RuntimeError"
    assert events[0]["release"] == "release-2"
    assert_no_secret(json.dumps(events))
    assert_no_secret("".join(r.text() for r in sink.received))
    wait_until(lambda: queue.failed_job_registry.count >= 1)
    lines = [json.loads(line) for line in worker.log_text().splitlines() if line.startswith("{")]
    ours = [line for line in lines if line.get("request_id") == f"req-{marker}"]
    assert {line["name"] for line in ours} >= {"tests.ops_jobs", "storefront.jobs"}
    done = next(line for line in ours if line["name"] == "storefront.jobs")
    assert (done["job"], done["outcome"]) == ("tests.ops_jobs.explode", "failed")
    assert_no_secret(worker.log_text())
    time.sleep(0)  # (the worker is stopped by the fixture)
