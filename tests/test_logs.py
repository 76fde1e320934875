"""Request logs: one JSON line per request with its request id, method, path, status, duration and user; the
id comes from X-Request-ID when sane and goes back in the response; health checks stay out at info level;
no line holds a password, card number, token or full e-mail address."""

import io
import json
import logging

import pytest

from storefront import logs
from tests.factories import make_user
from tests.helpers import csrf_token, login


@pytest.fixture
def lines():
    """The JSON lines the app logs while the test runs (the handler production installs, on a buffer)."""
    buffer = io.StringIO()
    handler = logs.make_handler("json", stream=buffer)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)

    def read() -> list[dict]:
        return [json.loads(line) for line in buffer.getvalue().splitlines()]

    yield read
    root.removeHandler(handler)
    root.setLevel(previous)


def request_lines(found: list[dict]) -> list[dict]:
    return [line for line in found if line["name"] == "storefront.request"]


def test_a_request_logs_one_json_line_with_the_incoming_request_id(client, lines):
    response = client.get("/", headers={"X-Request-ID": "nginx-abc-123"})
    assert response.headers["X-Request-ID"] == "nginx-abc-123"
    [line] = request_lines(lines())
    assert line["request_id"] == "nginx-abc-123"
    assert (line["method"], line["path"], line["status"], line["level"]) == ("GET", "/", 200, "INFO")
    assert isinstance(line["duration_ms"], float) and line["user_id"] is None
    assert {"time", "process"} <= line.keys()


@pytest.mark.parametrize("incoming", ["", "has spaces", "x" * 200, 'quote"inject'])
def test_a_missing_or_odd_request_id_is_replaced_by_a_new_one(client, lines, incoming):
    response = client.get("/", headers={"X-Request-ID": incoming} if incoming else {})
    made = response.headers["X-Request-ID"]
    assert made != incoming and len(made) == 32
    assert request_lines(lines())[0]["request_id"] == made


def test_health_checks_are_not_logged_at_info(client, lines):
    client.get("/healthz")
    client.get("/readyz")
    assert request_lines(lines()) == []


def test_the_signed_in_account_is_on_the_line_and_no_secret_is(client, session, lines):
    user = make_user(session, "ada.lovelace@example.com")
    login(client, user.email)
    client.get("/account?token=sk_live_abcdef123456")
    client.post(
        "/password/reset",
        data={"email": "ada.lovelace@example.com", "csrf_token": csrf_token(client)},
    )
    found = lines()
    assert any(line.get("user_id") == user.id for line in request_lines(found))
    assert all(line["path"] in ("/login", "/account", "/password/reset") for line in request_lines(found))
    text = json.dumps(found)
    for secret in ("correct horse battery", "ada.lovelace@example.com", "sk_live_abcdef123456"):
        assert secret not in text


def test_a_log_call_with_secrets_in_it_comes_out_scrubbed(lines):
    logging.getLogger("storefront.test").warning(
        "charge for %s failed: card %s password=%s", "bob@example.com", "4242 4242 4242 4242", "pw123456"
    )
    [line] = lines()
    assert line["message"] == "charge for b***@example.com failed: card [Filtered] password=[Filtered]"
