"""Notify me: a shopper asks for an e-mail when a sold-out option is back, confirms it by a signed link
(double opt-in), and is e-mailed once when stock comes back (the stock_changed signal enqueues the job)."""

import re

import pytest

from jobs import notify as notify_jobs
from storefront.catalog.models import Variant
from storefront.inventory import services as inventory
from storefront.notify.models import StockSubscription
from tests.factories import make_product
from tests.helpers import csrf_token, read_outbox


@pytest.fixture(autouse=True)
def roomy_limit(app, monkeypatch):
    monkeypatch.setitem(app.config, "NOTIFY_LIMIT", "1000/minute")
    with app.app_context():
        notify_jobs.watched().forget()  # no list read by an earlier test


@pytest.fixture
def earrings(session):
    return make_product(
        session,
        slug="drop-earrings",
        name="Drop Earrings",
        variants=[{"name": "Gold", "on_hand": 0}, {"name": "Silver", "on_hand": 4}],
    )


@pytest.fixture
def stock_changed():
    """Inventory's own signal; the app connected the receiver when it was made."""
    assert notify_jobs.on_stock_changed in [r() for r in inventory.stock_changed.receivers.values()]
    return inventory.stock_changed


def ask(client, variant, email="fan@example.com", ip="127.0.0.1"):
    token = csrf_token(client, "/products/drop-earrings")
    return client.post(
        "/notify",
        data={"variant_id": variant.id, "email": email, "csrf_token": token},
        environ_base={"REMOTE_ADDR": ip},
    )


def link(message, path: str) -> str:
    found = re.search(rf"http://[^\s]+{re.escape(path)}[^\s]+", message.get_content())
    return found.group(0).split("://", 1)[1].split("/", 1)[1]


def restock(app, session, stock_changed, variant, units=5):
    """Staff receive units: inventory writes them, and its signal follows the commit (in the app, as a
    request or a job commits)."""
    with app.app_context():
        inventory.adjust(session, variant, "received", units)
        session.commit()


def restock_mails(outbox):
    return [m for m in read_outbox(outbox) if "is back in stock" in m["Subject"]]


def test_a_sold_out_option_offers_notify_me_and_an_in_stock_one_does_not(client, session, earrings):
    body = client.get("/products/drop-earrings").get_data(as_text=True)
    assert 'action="/notify"' in body and "Sold out? Get an e-mail when it is back" in body
    assert f'name="variant_id" value="{earrings.variants[0].id}"' in body
    earrings.variants[0].on_hand = 3
    session.flush()
    assert 'action="/notify"' not in client.get("/products/drop-earrings").get_data(as_text=True)


def test_asking_sends_a_confirmation_and_nothing_else_until_it_is_followed(
    app, client, session, earrings, outbox, stock_changed
):
    gold = earrings.variants[0]
    response = ask(client, gold)
    assert response.status_code == 303 and response.headers["Location"].endswith("/notify/requested")
    [confirmation] = read_outbox(outbox)
    assert confirmation["To"] == "fan@example.com" and "Confirm" in confirmation["Subject"]
    restock(app, session, stock_changed, gold)
    assert restock_mails(outbox) == []  # an unconfirmed address is never written to again


def test_a_confirmed_request_is_e_mailed_once_when_stock_comes_back(
    app, client, session, earrings, outbox, stock_changed
):
    gold = earrings.variants[0]
    ask(client, gold)
    [confirmation] = read_outbox(outbox)
    page = client.get("/" + link(confirmation, "/notify/confirm/"))
    assert page.status_code == 200 and "your address is confirmed" in page.get_data(as_text=True)
    restock(app, session, stock_changed, gold)
    restock(app, session, stock_changed, gold)  # the signal again, and the job again: still one e-mail
    with app.app_context():
        assert notify_jobs.send_restock_notices([gold.id]) == 0
    [notice] = restock_mails(outbox)
    assert (
        "/products/drop-earrings" in notice.get_content() and "/notify/unsubscribe/" in notice.get_content()
    )


def test_asking_twice_makes_one_request(client, session, earrings):
    ask(client, earrings.variants[0])
    ask(client, earrings.variants[0], email="FAN@example.com")
    session.expire_all()
    rows = session.query(StockSubscription).filter_by(variant_id=earrings.variants[0].id).all()
    assert len(rows) == 1


def test_an_unsubscribed_request_is_never_notified(app, client, session, earrings, outbox, stock_changed):
    gold = earrings.variants[0]
    ask(client, gold)
    [confirmation] = read_outbox(outbox)
    client.get("/" + link(confirmation, "/notify/confirm/"))
    unsubscribe = "/" + link(confirmation, "/notify/unsubscribe/")
    page = client.get(unsubscribe)
    assert page.status_code == 200 and "Stop the back-in-stock e-mail" in page.get_data(as_text=True)
    done = client.post(unsubscribe, data={"csrf_token": csrf_token(client, unsubscribe)})
    assert done.status_code == 200 and "we will not e-mail you" in done.get_data(as_text=True)
    restock(app, session, stock_changed, gold)
    assert restock_mails(outbox) == []


def test_forged_links_are_404(client):
    assert client.get("/notify/confirm/forged").status_code == 404
    assert client.get("/notify/unsubscribe/forged").status_code == 404


def test_an_in_stock_option_or_a_bad_address_is_refused_with_a_message(client, session, earrings):
    refused = ask(client, earrings.variants[1])
    assert refused.status_code == 422 and "in stock" in refused.get_data(as_text=True)
    bad = ask(client, earrings.variants[0], email="not-an-address")
    assert bad.status_code == 422
    assert session.query(StockSubscription).count() == 0


def test_the_form_needs_its_csrf_token(client, earrings):
    assert (
        client.post(
            "/notify", data={"variant_id": earrings.variants[0].id, "email": "a@example.com"}
        ).status_code
        == 400
    )


def test_notify_me_is_rate_limited_per_ip(app, client, earrings, monkeypatch):
    monkeypatch.setitem(app.config, "NOTIFY_LIMIT", "2/minute")
    gold = earrings.variants[0]
    assert [ask(client, gold, email=f"n{i}@example.com", ip="10.9.8.7").status_code for i in range(3)] == [
        303,
        303,
        429,
    ]


def test_a_stock_change_nobody_waits_for_enqueues_nothing(app, session, earrings, stock_changed, monkeypatch):
    enqueued = []
    monkeypatch.setattr(notify_jobs.queues, "enqueue", lambda func, *args, **kw: enqueued.append(func))
    with app.app_context():
        stock_changed.send(None, variant_ids=[v.id for v in earrings.variants])
    assert enqueued == []
    assert isinstance(session.get(Variant, earrings.variants[0].id), Variant)


def test_a_request_confirmed_after_the_restock_is_told_at_once(app, client, session, earrings, outbox):
    gold = earrings.variants[0]
    ask(client, gold)
    [confirmation] = read_outbox(outbox)
    restock(app, session, None, gold, 2)
    client.get("/" + link(confirmation, "/notify/confirm/"))
    assert len(restock_mails(outbox)) == 1


def test_the_sweep_tells_a_restock_the_signal_missed(app, client, session, earrings, outbox, monkeypatch):
    gold = earrings.variants[0]
    ask(client, gold)
    [confirmation] = read_outbox(outbox)
    client.get("/" + link(confirmation, "/notify/confirm/"))
    monkeypatch.setitem(app.config, "NOTIFY_WATCH_SECONDS", 3600)
    with app.app_context():
        watched = notify_jobs.watched()
        monkeypatch.setattr(watched, "ids", lambda: frozenset())  # a process whose list is stale
        restock(app, session, None, gold)
        assert restock_mails(outbox) == []
        assert notify_jobs.notify_restocked() == 1
        assert notify_jobs.notify_restocked() == 0
    assert len(restock_mails(outbox)) == 1
