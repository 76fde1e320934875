"""Slack alerts: Block Kit messages from RQ jobs to a webhook (a local endpoint counts what arrives), one
message then a summary per storm, each event switchable, the call points (lockout, staff sign-in from a new
address, oversell) and the periodic checks (big order, decline rate, stuck queue, failed jobs)."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from rq import Queue
from sqlalchemy import select

from storefront import create_app
from storefront.alerts import services as alerts
from storefront.extensions import redis_client
from storefront.payments.models import PaymentAttempt
from tests import services
from tests.factories import make_order, make_product, make_user
from tests.helpers import login, staff_login
from tests.sink import Sink


@pytest.fixture
def slack(app, client):
    """The webhook pointed at a local endpoint for this test; the received messages as JSON."""
    sink = Sink()
    saved = {key: app.config[key] for key in ("SLACK_WEBHOOK_URL", "ALERTS_OFF", "ALERT_BIG_ORDER")}
    app.config.update(
        SLACK_WEBHOOK_URL=sink.url + "/services/T/B/x", ALERTS_OFF=frozenset(), ALERT_BIG_ORDER=Decimal("500")
    )
    sink.messages = lambda: [json.loads(r.body) for r in sink.received]
    yield sink
    app.config.update(saved)
    sink.close()


def titles(sink) -> list[str]:
    return [message["text"] for message in sink.messages()]


def test_an_event_becomes_one_block_kit_message_with_a_link_to_the_admin(app, slack):
    with app.test_request_context():
        assert alerts.notify(
            "backup_failed", target="nightly", password="hunter2", detail="card 4111 1111 1111 1111"
        )
    [message] = slack.messages()
    assert message["text"] == "Backup failed"
    kinds = [block["type"] for block in message["blocks"]]
    assert kinds == ["header", "section", "actions", "context"]
    button = message["blocks"][2]["elements"][0]
    assert button["url"] == "http://127.0.0.1:5000/admin"
    body = slack.received[0].text()
    assert "hunter2" not in body and "4111" not in body and "nightly" in body


def test_a_storm_sends_one_message_then_a_summary_of_the_rest(app, slack):
    with app.test_request_context():
        sent = [
            alerts.notify("login_lockout", account=f"user{n}@example.com", ip="198.51.100.7")
            for n in range(38)
        ]
        assert sent.count(True) == 1
        assert titles(slack) == ["Login lockout"]
        assert alerts.send_summary("login_lockout") == 37  # what the job enqueued for the window's end does
        assert alerts.send_summary("login_lockout") == 0  # taken: a second run sends nothing
    assert titles(slack) == ["Login lockout", "37 more login lockouts in the last 5 minutes"]


def test_each_event_can_be_switched_off_and_is_still_counted(app, slack):
    from storefront import metrics

    app.config["ALERTS_OFF"] = frozenset({"oversell_attempt"})
    counted = metrics.EVENTS.labels("oversell_attempt")._value.get()
    with app.test_request_context():
        assert not alerts.notify("oversell_attempt", refused="sold out")
        assert alerts.notify("big_order", order="SF-1")
    assert titles(slack) == ["Big order"]
    assert metrics.EVENTS.labels("oversell_attempt")._value.get() == counted + 1


def test_without_a_webhook_nothing_is_queued(app, client):
    assert app.config["SLACK_WEBHOOK_URL"] is None
    with app.test_request_context():
        assert not alerts.notify("backup_failed", target="x")
        assert redis_client().get("alerts:gate:backup_failed") is None


def test_an_unknown_event_is_refused_and_logged(app, slack, caplog):
    with app.test_request_context():
        assert not alerts.notify("made_up_event")
    assert slack.received == [] and "unknown alert event" in caplog.text


def test_slack_refusing_the_message_fails_the_job_so_rq_retries_it(app, slack):
    slack.status = 500
    with app.test_request_context(), pytest.raises(alerts.SendError):
        alerts.send_alert("backup_failed", {"target": "x"})


def test_a_login_lockout_sends_its_alert(app, client, session, slack):
    user = make_user(session, "locked@example.com")
    for _ in range(app.config["LOCKOUT_FAILURES"]):
        login(client, user.email, password="wrong password here", ip="198.51.100.20")
    [message] = slack.messages()
    assert message["text"] == "Login lockout"
    assert (
        "198.51.100.20" in slack.received[0].text() and "locked@example.com" not in slack.received[0].text()
    )


def test_a_staff_sign_in_from_a_new_address_is_alerted_once_per_address(app, client, session, slack):
    user = staff_login(client, session, role="staff")
    assert titles(slack) == ["Staff sign-in from a new address"]
    app.extensions["redis"].delete("alerts:gate:staff_new_address")  # as if the storm window had passed
    with app.test_request_context():
        alerts.staff_signed_in(user, "127.0.0.1")  # the address it just used: known
        assert titles(slack) == ["Staff sign-in from a new address"]
        alerts.staff_signed_in(user, "203.0.113.5")
    assert titles(slack) == ["Staff sign-in from a new address"] * 2
    assert "203.0.113.5" in slack.received[1].text()


def test_an_order_refused_for_stock_during_a_sale_is_an_oversell_alert(app, session, slack):
    from storefront.catalog.models import Sale
    from storefront.checkout.services import OutOfStock, Shortage

    refused = OutOfStock([Shortage("Ring", 2, 0)])
    with app.test_request_context():
        alerts.order_refused(refused, session)  # no sale running: a plain sold-out, no alert
        assert titles(slack) == []
        now = datetime.now(UTC)
        session.add(Sale(name="Drop", starts_at=now - timedelta(minutes=1), ends_at=now + timedelta(hours=1)))
        session.flush()
        alerts.order_refused(refused, session)
    assert titles(slack) == ["Order refused: not enough stock"]
    assert "Ring is sold out." in slack.received[0].text()


def test_the_checks_alert_a_big_order_once_and_a_high_decline_rate(app, client, session, slack):
    variant = make_product(session, variants=[{"on_hand": 100, "price": Decimal("300.00")}]).variants[0]
    big = make_order(session, variant, quantity=2)
    make_order(session, variant, quantity=1)  # 300.00: under the 500.00 threshold
    app.config.update(ALERT_DECLINE_MIN=4)
    for status in ("declined", "declined", "declined", "approved"):
        order = make_order(session, variant, status="payment_failed")
        session.scalar(select(PaymentAttempt).where(PaymentAttempt.order_id == order.id)).status = status
    session.flush()
    with app.test_request_context():
        first = alerts.run_checks(session)
        second = alerts.run_checks(session)
    assert first["big_orders"] == 1 and second["big_orders"] == 0
    assert first["decline_rate"] == 0.75
    big_message = next(m for m in slack.messages() if m["text"] == "Big order")
    assert big.number in str(big_message) and "$600.00" in str(big_message)
    assert "Card declines are high" in titles(slack)


def test_the_checks_find_a_stuck_queue_and_new_failed_jobs_in_real_redis(database_url, tmp_path):
    sink = Sink()
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "t",
            "DATABASE_URL": database_url,
            "REDIS_URL": services.redis_url(),
            "SLACK_WEBHOOK_URL": sink.url + "/hook",
        }
    )
    try:
        with app.app_context():
            connection = app.extensions["redis"]
            payments = Queue("payments", connection=connection)
            waiting = payments.enqueue("jobs.alerts.check")  # with no worker to take it
            assert alerts.check_queues(datetime.now(UTC)) == []
            minutes = app.config["ALERT_QUEUE_STUCK_MINUTES"] + 1
            waiting.enqueued_at = datetime.now(UTC) - timedelta(minutes=minutes)
            waiting.save()
            assert alerts.check_queues(datetime.now(UTC)) == ["payments"]
            assert [json.loads(r.body)["text"] for r in sink.received] == []  # queued for a worker, not sent
            assert alerts.check_failed_jobs() == 0  # the first look only notes how many there are
            failed = payments.enqueue("no.such.job")
            payments.failed_job_registry.add(failed, ttl=600, exc_string="boom")
            assert alerts.check_failed_jobs() == 1
            assert alerts.check_failed_jobs() == 0
    finally:
        sink.close()
