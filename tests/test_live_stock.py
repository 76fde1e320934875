"""Live stock: the publisher after commit, the hub's fan-out and coalescing, and the stream served by a real
gevent gunicorn (retry, heartbeat, Last-Event-ID), on a real Redis; the pages' SSE attributes and the fallback."""

import json
import os
import socket
import sys
import time
from decimal import Decimal
from pathlib import Path

import blinker
import pytest
import redis
from sqlalchemy import update

from storefront import ROOT, create_app, create_stream_app
from storefront.flags.models import Flag
from storefront.live import services as live
from storefront.security import content_security_policy
from tests import services
from tests.factories import make_product
from tests.helpers import ADDRESS, checkout_form, csrf_token, rolled_back
from tools import procs

WAIT = 10.0  # seconds any one expected event may take to arrive (a bound, not a measurement)


@pytest.fixture(scope="module")
def redis_url() -> str:
    return services.redis_url()


@pytest.fixture(scope="module")
def live_app(database_url, media_folder, redis_url):
    """The shop with Redis (live stock needs it); flags read afresh on every check."""
    return create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "DATABASE_URL": database_url,
            "MEDIA_FOLDER": str(media_folder),
            "REDIS_URL": redis_url,
            "RATELIMIT_STORAGE_URI": "memory://",
            "CATALOG_CACHE_SECONDS": 0,
            "FLAGS_CACHE_SECONDS": 0,
        }
    )


@pytest.fixture
def live_connection(live_app):
    """Every session of the test in one transaction, rolled back at the end."""
    with rolled_back(live_app) as connection:
        yield connection


@pytest.fixture
def live_session(live_app, live_connection):
    with live_app.extensions["db_sessionmaker"]() as session:
        yield session


def set_live_stock(session, on: bool) -> None:
    session.execute(update(Flag).where(Flag.name == "live_stock").values(everyone=on))
    session.flush()


class Subscriber:
    """A pub/sub subscription on the live stock channel, read by the test."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(live.CHANNEL)
        self.pubsub.get_message(timeout=1)  # the subscribe confirmation

    def next(self, timeout: float = WAIT, product: int | None = None) -> dict | None:
        """The next publication (about `product`, when named: pub/sub channels span every Redis database, so
        another test worker's publications arrive here too)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.pubsub.get_message(timeout=0.2)
            if message:
                data = json.loads(message["data"])
                if product is None or data.get("product") == product:
                    return data
        return None

    def close(self) -> None:
        self.pubsub.close()
        self.client.close()


# --- publishing ---------------------------------------------------------------------------------------------


def test_a_stock_change_publishes_every_variant_of_its_product_and_no_personal_data(live_app, live_session):
    product = make_product(
        live_session, variants=[{"on_hand": 5, "reserved": 2}, {"on_hand": 3, "reserved": 3, "name": "Large"}]
    )
    set_live_stock(live_session, True)
    small, large = product.variants
    stock_changed = blinker.Signal()
    live.connect_publisher(stock_changed)
    subscriber = Subscriber(live_app.config["REDIS_URL"])
    try:
        with live_app.app_context():
            stock_changed.send(live_app, variant_ids=frozenset({small.id}))
        message = subscriber.next(product=product.id)
    finally:
        subscriber.close()
    assert message is not None
    assert message["product"] == product.id
    assert message["variants"] == [[small.id, small.name, 3], [large.id, "Large", 0]]
    assert set(message) == {"seq", "at", "product", "variants"}
    stored = live_app.extensions["redis"].get(live.state_key(product.id))
    assert json.loads(stored) == message  # what a reconnecting stream reads


def test_a_real_purchase_publishes_the_stock_it_left_after_the_commit(live_app, live_session):
    product = make_product(live_session, variants=[{"on_hand": 5, "price": Decimal("20.00")}])
    [variant] = product.variants
    set_live_stock(live_session, True)
    live_session.commit()
    client = live_app.test_client()
    subscriber = Subscriber(live_app.config["REDIS_URL"])
    try:
        added = client.post(
            "/cart/add", data={"variant_id": variant.id, "quantity": 2, "csrf_token": csrf_token(client)}
        )
        assert added.status_code == 303
        placed = client.post(
            "/checkout",
            data=checkout_form(client)
            | ADDRESS
            | {"dataDescriptor": "COMMON.ACCEPT.INAPP.PAYMENT", "dataValue": "test-approve"},
        )
        assert placed.status_code == 303 and "/orders/" in placed.headers["Location"]
        message = subscriber.next(product=product.id)
    finally:
        subscriber.close()
    assert message is not None and message["product"] == product.id
    assert message["variants"] == [[variant.id, variant.name, 3]]


def test_nothing_is_published_while_the_live_stock_flag_is_off(live_app, live_session):
    product = make_product(live_session)
    set_live_stock(live_session, False)
    subscriber = Subscriber(live_app.config["REDIS_URL"])
    try:
        with live_app.app_context():
            assert live.publish_stock_change(variant_ids=frozenset({product.variants[0].id})) is None
        assert subscriber.next(timeout=0.5, product=product.id) is None
    finally:
        subscriber.close()


def test_each_publication_gets_a_higher_number(live_app):
    client = live_app.extensions["redis"]
    first = live.publish(client, {999_001: [(1, "One", 1)]}, time.time())
    second = live.publish(client, {999_001: [(1, "One", 0)]}, time.time())
    assert second > first


# --- the hub (in this process) ------------------------------------------------------------------------------


def state(seq: int, available: int, product_id: int = 1, name: str = "Ring") -> live.ProductState:
    return live.ProductState(seq, time.time(), product_id, ((10 * product_id, name, available),))


@pytest.fixture
def stream_app(redis_url):
    return create_stream_app(
        {"REDIS_URL": redis_url, "SECRET_KEY": "test", "LIVE_STOCK_COALESCE_SECONDS": 0.25}
    )


def test_a_burst_of_changes_reaches_each_stream_as_at_most_two_events_ending_with_the_latest(stream_app):
    hub = live.Hub(stream_app, coalesce=0.25)
    streams = [live.Stream((1,)) for _ in range(3)]
    for stream in streams:
        for product_id in stream.products:
            hub.streams[product_id].add(stream)
    written = {id(stream): [] for stream in streams}
    for seq in range(1, 51):  # far faster than one per 250 ms
        hub.receive(state(seq, 100 - seq))
        for stream in streams:
            written[id(stream)] += stream.take()
    procs.wait_for(lambda: 1 not in hub.pending, WAIT, "the coalesced flush")
    for stream in streams:
        events = written[id(stream)] + stream.take()
        assert 1 <= len(events) <= 2
        assert events[0].seq == 1  # the first change goes out at once
        assert events[-1].seq == 50  # and the last one is never lost
        assert "Only" not in events[0].stock_html and "In stock" in events[0].stock_html


def test_an_old_or_repeated_state_is_not_handed_on(stream_app):
    hub = live.Hub(stream_app, coalesce=0)
    stream = live.Stream((1,))
    hub.streams[1].add(stream)
    hub.receive(state(5, 3))
    hub.receive(state(4, 9))
    hub.receive(state(5, 3))
    assert [event.seq for event in stream.take()] == [5]


def test_the_live_region_announces_only_thresholds_sold_out_and_back_in_stock():
    def announce(before: int, after: int) -> str:
        return live.announcement(state(1, before), state(2, after), low_threshold=10)

    assert announce(30, 29) == ""
    assert announce(11, 10) == "Ring: only 10 left."
    assert announce(9, 8) == ""
    assert announce(1, 0) == "Ring: sold out."
    assert announce(0, 4) == "Ring: back in stock, 4 left."
    assert announce(0, 40) == "Ring: back in stock."
    assert live.announcement(None, state(2, 0), low_threshold=10) == ""


# --- the stream, served the way production serves it --------------------------------------------------------


class SSEClient:
    """A raw HTTP/1.1 client reading one event stream: events and comments as they arrive."""

    def __init__(self, port: int, path: str, last_event_id: int | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        headers = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
        if last_event_id is not None:
            headers += f"Last-Event-ID: {last_event_id}\r\n"
        self.sock.sendall((headers + "\r\n").encode())
        self.buffer = b""
        head = self._until(b"\r\n\r\n")
        self.status = int(head.split(b" ", 2)[1])
        self.headers = head.decode("latin-1").lower()
        self.chunked = "transfer-encoding: chunked" in self.headers

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the stream closed")
            self.buffer += data
        found, self.buffer = self.buffer.split(marker, 1)
        return found

    def blocks(self):
        """Each SSE block (event or comment), as a dict of its fields ('comment' for a comment)."""
        text = ""
        while True:
            if self.chunked:
                size = int(self._until(b"\r\n").split(b";")[0], 16)
                while len(self.buffer) < size + 2:
                    data = self.sock.recv(65536)
                    if not data:
                        raise ConnectionError("the stream closed")
                    self.buffer += data
                text += self.buffer[:size].decode()
                self.buffer = self.buffer[size + 2 :]
            else:
                text += self.sock.recv(65536).decode()
            while "\n\n" in text:
                block, text = text.split("\n\n", 1)
                fields: dict[str, str] = {}
                for line in block.split("\n"):
                    name, _, value = line.partition(":")
                    fields[name or "comment"] = value.strip()
                yield fields

    def next_event(self, skip_comments: bool = True) -> dict:
        for block in self.blocks():
            if skip_comments and set(block) == {"comment"}:
                continue
            if set(block) == {"retry"}:
                continue
            return block
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def stream_server(redis_url, tmp_path_factory):
    """The stream pool as the Procfile starts it (gevent gunicorn), with a short heartbeat for the test."""
    port = procs.free_port()
    log = ROOT / "test-output" / "live-stock" / f"stream-{services.worker_suffix()}.log"
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "SECRET_KEY": "stream-test",
        "STREAM_CONCURRENCY": "2",
        "LIVE_STOCK_HEARTBEAT_SECONDS": "0.5",
        "LIVE_STOCK_RETRY_MS": "1000",
        "PYTHONUNBUFFERED": "1",
    }
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    command = [gunicorn, "-c", "gunicorn_stream.conf.py", "wsgi_stream:app", "--bind", f"127.0.0.1:{port}"]
    proc = procs.spawn("stream", command, env, log, ROOT, port)
    try:
        proc.wait_for_log(r"Booting worker", timeout=procs.START_TIMEOUT)
        # Both workers must have loaded the app (a first stream would otherwise wait for the slower one).
        procs.wait_for(lambda: proc.log_text().count("Booting worker") >= 2, 30, "both stream workers")
        procs.wait_for(lambda: _stream_answers(port), 60, "the stream pool")
        yield port
    finally:
        proc.stop(group=True)


def _stream_answers(port: int) -> bool:
    try:
        client = SSEClient(port, "/stream/badges?products=1")
    except OSError:
        return False
    try:
        return client.status == 200
    finally:
        client.close()


def publish(redis_url: str, product_id: int, available: int, name: str = "Ring") -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        return live.publish(client, {product_id: [(product_id * 10, name, available)]}, time.time())
    finally:
        client.close()


def test_a_stream_opens_with_a_jittered_retry_and_the_current_stock(stream_server, redis_url):
    seq = publish(redis_url, 501, 7)
    client = SSEClient(stream_server, "/stream/products/501")
    try:
        assert client.status == 200
        assert "content-type: text/event-stream" in client.headers
        assert "x-accel-buffering: no" in client.headers
        first = next(client.blocks())
        assert 1000 <= int(first["retry"]) <= 2000
        event = client.next_event()
        assert event["event"] == "stock"
        assert int(event["id"]) >= seq
        assert 'id="stock-5010"' in event["data"] and "Only 7 left" in event["data"]
    finally:
        client.close()


def test_a_change_reaches_every_open_stream_of_the_product(stream_server, redis_url):
    publish(redis_url, 502, 40)
    clients = [SSEClient(stream_server, "/stream/products/502") for _ in range(6)]  # over both workers
    try:
        for client in clients:
            assert "In stock" in client.next_event()["data"]
        seq = publish(redis_url, 502, 0)
        for client in clients:
            event = client.next_event()
            assert "Sold out" in event["data"]
            assert "sold out" in event["data"]  # the announcement: a threshold was crossed
            assert int(event["id"]) >= seq
    finally:
        for client in clients:
            client.close()


def test_a_reconnect_with_the_last_event_id_gets_only_what_it_missed(stream_server, redis_url):
    seq = publish(redis_url, 503, 12)
    up_to_date = SSEClient(stream_server, "/stream/products/503", last_event_id=seq)
    behind = SSEClient(stream_server, "/stream/products/503", last_event_id=seq - 1)
    try:
        # Up to date: nothing but heartbeats until the next change.
        assert set(up_to_date.next_event(skip_comments=False)) == {"comment"}
        missed = behind.next_event()
        assert "Only" not in missed["data"] and int(missed["id"]) >= seq
        publish(redis_url, 503, 3)
        assert "Only 3 left" in up_to_date.next_event()["data"]
    finally:
        up_to_date.close()
        behind.close()


def test_a_quiet_stream_gets_heartbeat_comments(stream_server):
    client = SSEClient(stream_server, "/stream/products/504")
    try:
        blocks = client.blocks()
        assert "retry" in next(blocks)
        assert next(blocks) == {"comment": "heartbeat"}
        assert next(blocks) == {"comment": "heartbeat"}
    finally:
        client.close()


def test_a_burst_of_sales_reaches_a_stream_coalesced_and_ending_with_the_latest(stream_server, redis_url):
    publish(redis_url, 505, 100)
    client = SSEClient(stream_server, "/stream/products/505")
    try:
        assert "In stock" in client.next_event()["data"]
        last = 0
        for available in range(99, 49, -1):  # 50 sales published as fast as Redis takes them
            last = publish(redis_url, 505, available)
        received = []
        while not received or int(received[-1]["id"]) < last:
            received.append(client.next_event())
        # Unthrottled, this would be 50 events; the first goes out at once, the rest wait for the window.
        assert len(received) < 10
        assert "In stock" in received[-1]["data"]
        assert int(received[-1]["id"]) == last
    finally:
        client.close()


def test_a_listing_stream_sends_the_badges_of_its_products(stream_server, redis_url):
    publish(redis_url, 506, 2)
    client = SSEClient(stream_server, "/stream/badges?products=506,507")
    try:
        assert '<span id="badge-506"' in client.next_event()["data"]
        publish(redis_url, 507, 0)
        event = client.next_event()
        assert event["event"] == "badges"
        assert 'id="badge-507" class="badge badge-sold-out"' in event["data"]
    finally:
        client.close()


@pytest.mark.parametrize("query", ["", "products=", "products=1,x", "products=" + ",".join(["1"] * 101)])
def test_a_listing_stream_with_bad_product_ids_is_a_400(stream_server, query):
    client = SSEClient(stream_server, f"/stream/badges?{query}")
    try:
        assert client.status == 400
    finally:
        client.close()


# --- the pages ----------------------------------------------------------------------------------------------


def test_with_live_stock_on_the_product_page_joins_its_stream_instead_of_polling(live_app, live_session):
    product = make_product(live_session)
    set_live_stock(live_session, True)
    live_session.commit()
    html = live_app.test_client().get(f"/products/{product.slug}").get_data(as_text=True)
    assert f'sse-connect="/stream/products/{product.id}"' in html
    assert 'sse-swap="stock"' in html and "every " not in html
    assert "htmx-ext-sse-2.2.4.min.js" in html
    assert 'id="stock-news" class="visually-hidden" aria-live="polite"' in html


def test_with_live_stock_off_the_product_page_polls(live_app, live_session):
    product = make_product(live_session)
    set_live_stock(live_session, False)
    live_session.commit()
    html = live_app.test_client().get(f"/products/{product.slug}").get_data(as_text=True)
    assert "sse-connect" not in html and "htmx-ext-sse" not in html
    assert f'hx-get="/products/{product.slug}/stock"' in html


def test_the_embedded_shop_without_redis_polls_even_with_the_flag_on(app, session, client):
    product = make_product(session)
    set_live_stock(session, True)
    html = client.get(f"/products/{product.slug}").get_data(as_text=True)
    assert "sse-connect" not in html
    assert f'hx-get="/products/{product.slug}/stock"' in html


def test_a_listing_joins_the_badge_stream_of_the_products_it_shows(live_app, live_session):
    sold_out = make_product(live_session, variants=[{"on_hand": 0}])
    set_live_stock(live_session, True)
    live_session.commit()
    html = live_app.test_client().get("/products").get_data(as_text=True)
    assert 'sse-connect="/stream/badges?products=' in html
    assert f'id="badge-{sold_out.id}" class="badge badge-sold-out"' in html


def test_a_stream_on_another_origin_is_allowed_by_the_content_security_policy():
    policy = content_security_policy("", "http://127.0.0.1:5001")
    assert "connect-src 'self' http://127.0.0.1:5001" in policy
    assert "script-src 'self';" in policy


def test_a_closed_stream_is_fed_no_more(stream_app):
    hub = live.Hub(stream_app, coalesce=0)
    hub.start = lambda: None  # no subscription needed: the test hands the hub its states
    stream = hub.open((9,))
    hub.close(stream)
    hub.receive(state(1, 5, product_id=9))
    assert hub.open_streams() == 0
    assert stream.take() == []
