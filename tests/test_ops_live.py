"""Operations on the real processes: gunicorn (2 workers) and `rq worker --with-scheduler` write Prometheus
multiprocess files that /metrics adds up; a lockout storm reaches the local Slack endpoint as one message and
one summary, sent by the worker and its scheduler; every log line is JSON and holds no secret."""

import json
import re
import time
import uuid
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests import live, services
from tests.helpers import migrate
from tests.sink import Sink

pytestmark = [pytest.mark.live, pytest.mark.xdist_group("ops-live")]
WINDOW = (
    30  # seconds of the alert storm window: far longer than the storm takes (15 slow sign-ins, a loaded box)
)


@pytest.fixture(scope="module")
def ops(tmp_path_factory):
    """A fresh database, this worker's Redis db, the Slack stand-in, gunicorn with 2 workers, one rq worker."""
    name = f"storefront_ops_{services.run_suffix()}"
    database_url = services.fresh_database(name)
    started, sink = [], Sink()
    try:
        migrate(database_url)
        tmp = tmp_path_factory.mktemp("ops")
        multiproc = tmp / "prometheus"
        multiproc.mkdir()
        env = live.shop_env(
            database_url,
            services.redis_url(),
            "http://127.0.0.1:9",
            tmp_dir=tmp,
            PAYMENT_GATEWAY="test",
            PROMETHEUS_MULTIPROC_DIR=str(multiproc),
            METRICS_ENABLED="true",
            SLACK_WEBHOOK_URL=sink.url + "/services/T/B/x",
            ALERT_WINDOW_SECONDS=str(WINDOW),
            LOG_FORMAT="json",
        )
        web = live.start_gunicorn(env, workers=2, log_dir=tmp)
        started.append(web)
        started.append(live.start_worker(env, log_dir=tmp))
        yield {"web": web, "worker": started[1], "sink": sink, "multiproc": multiproc, "env": env}
    finally:
        live.stop_all(started)
        sink.close()
        services.drop_database(name)


def scrape(url: str) -> dict[tuple, float]:
    response = live.http_get(url + "/metrics")
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def total(samples: dict, name: str, **labels) -> float:
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items() if n == name and wanted <= set(found))


def pids_writing(folder: Path) -> set[str]:
    return {re.sub(r"\D", "", path.stem.rsplit("_", 1)[-1]) for path in folder.glob("*.db")}


def test_metrics_add_up_every_gunicorn_worker_and_the_rq_worker(ops):
    web = ops["web"]
    before = scrape(web.url)
    for _ in range(40):
        assert live.http_get(web.url + "/").status_code == 200
    shopper = live.Shopper(web.url)
    shopper.open("/password/reset")
    assert (
        shopper.post(
            "/password/reset", {"email": "nobody@example.com", "csrf_token": shopper.csrf}
        ).status_code
        == 200
    )
    job = "jobs.emails.send_password_reset"
    live.wait_for(
        lambda: total(scrape(web.url), "storefront_job_duration_seconds_count", job=job) >= 1,
        20,
        "the job's duration",
    )
    after = scrape(web.url)
    home = "storefront_http_requests_total"
    assert (
        total(after, home, endpoint="catalog.home", status="200")
        - total(before, home, endpoint="catalog.home", status="200")
        == 40
    )
    worker_pids = {str(pid) for pid in web.worker_pids()}
    writers = pids_writing(ops["multiproc"])
    assert len(worker_pids & writers) == 2, (worker_pids, writers)  # both gunicorn workers counted
    assert str(ops["worker"].pid) in writers  # and the rq worker (SimpleWorker: jobs run in its own process)


def test_a_lockout_storm_is_one_message_and_one_summary(ops):
    web, sink = ops["web"], ops["sink"]
    already = len(sink.received)
    failures = int(ops["env"].get("LOCKOUT_FAILURES", "5"))
    for n in range(3):
        shopper = live.Shopper(web.url)
        email = f"storm-{n}-{uuid.uuid4().hex[:6]}@example.com"
        for _ in range(failures):
            shopper.open("/login")
            shopper.post(
                "/login", {"email": email, "password": "wrong wrong wrong", "csrf_token": shopper.csrf}
            )
    live.wait_for(
        lambda: len(sink.received) - already >= 2, WINDOW + 30, "the lockout message and its summary"
    )
    time.sleep(2)  # anything else the storm might (wrongly) have sent has had time to arrive
    texts = [json.loads(r.body)["text"] for r in sink.received[already:]]
    assert texts == ["Login lockout", "2 more login lockouts in the last 1 minute"]


def test_every_log_line_is_json_and_holds_no_secret(ops):
    web, worker = ops["web"], ops["worker"]
    shopper = live.Shopper(web.url)
    shopper.open("/login")
    shopper.post(
        "/login",
        {"email": "ada.lovelace@example.com", "password": "hunter2hunter2", "csrf_token": shopper.csrf},
        headers={"X-Request-ID": "live-scan-1"},
    )
    lines = [line for line in web.log_text().splitlines() if line.startswith("{")]
    ours = [json.loads(line) for line in lines]
    assert any(line.get("request_id") == "live-scan-1" and line.get("path") == "/login" for line in ours)
    text = web.log_text() + worker.log_text()
    for secret in ("hunter2hunter2", "ada.lovelace@example.com", "wrong wrong wrong", shopper.csrf):
        assert secret not in text
