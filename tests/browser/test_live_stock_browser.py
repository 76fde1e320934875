"""Live stock in a real browser: a drop's product page follows the stream (no reload, no polling) while another
client buys, the listing's badges follow too, and without JavaScript a refresh shows the new stock.

The pages come from a web gunicorn of this module's own whose pages point at a gevent stream pool on another
port (STREAM_URL; nginx puts both on one origin in production), both on the live server's database and Redis.
"""

import os
import re
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis
from playwright.sync_api import expect
from sqlalchemy.orm import Session

from storefront import ROOT
from storefront.live import services as live
from tests.live import Shopper
from tools import procs

FLASH_SLUG = "aurora-crystal-drop-necklace"
FLASH_SKU = "DEMO-FLASH"
EVENT_WAIT_MS = 5_000  # a bound for one change to reach the page; the poll it replaces waits 5 s or more
FLAGS_CHANNEL = "flags:changed"


def _set_live_stock(live_server, on: bool) -> None:
    live_server.execute("UPDATE flags SET everyone = :on WHERE name = 'live_stock'", on=on)
    client = live_server.redis()
    try:
        client.publish(FLAGS_CHANNEL, "1")  # every process drops its cached flags
    finally:
        client.close()


@pytest.fixture(scope="module")
def live_stock(live_server):
    """The flag on, a stream pool, and a web server whose pages join it; the flag off again afterwards."""
    stream_port, web_port = procs.free_port(), procs.free_port()
    web_url = f"http://127.0.0.1:{web_port}"
    env = {
        **os.environ,
        "DATABASE_URL": live_server.database_url,
        "REDIS_URL": live_server.redis_url,
        "MEDIA_FOLDER": str(live_server.media_folder),
        "MAIL_OUTBOX": str(live_server.outbox),
        "SECRET_KEY": "browser-test",
        "BASE_URL": web_url,
        "STREAM_URL": f"http://127.0.0.1:{stream_port}",
        "CATALOG_CACHE_SECONDS": "0",  # a refresh without JavaScript shows the stock of that moment
        "FLAGS_CACHE_SECONDS": "0",
        "PYTHONUNBUFFERED": "1",
    }
    logs = ROOT / "test-output" / "live-stock"
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    stack = procs.Stack()
    _set_live_stock(live_server, True)
    try:
        stack.add(
            procs.spawn(
                "stream",
                [
                    gunicorn,
                    "-c",
                    "gunicorn_stream.conf.py",
                    "wsgi_stream:app",
                    "--bind",
                    f"127.0.0.1:{stream_port}",
                ],
                env | {"STREAM_CONCURRENCY": "1"},
                logs / "browser-stream.log",
                ROOT,
                stream_port,
            )
        )
        web = stack.add(
            procs.spawn(
                "web",
                [gunicorn, "-c", "gunicorn.conf.py", "wsgi:app"],
                env | {"BIND": f"127.0.0.1:{web_port}", "WEB_CONCURRENCY": "1", "ACCESS_LOG": "-"},
                logs / "browser-web.log",
                ROOT,
                web_port,
            )
        )
        procs.wait_for(lambda: procs.http_ok(web_port, "/healthz"), 60, f"web: {web.log_tail()}")
        procs.wait_for(lambda: procs.http_ok(stream_port, "/stream/badges?products=1"), 60, "the stream pool")
        yield web_url
    finally:
        stack.stop()
        _set_live_stock(live_server, False)


class Buyer:
    """Another client: buys over HTTP (the shop publishes after its commit), or sets the stock up beforehand
    the way a staff restock would (a committed change, then the publisher's call)."""

    def __init__(self, live_server) -> None:
        self.live_server = live_server
        with live_server.engine().connect() as connection:
            self.variant_id, self.product_id = connection.exec_driver_sql(
                f"SELECT id, product_id FROM variants WHERE sku = '{FLASH_SKU}'"
            ).one()

    def leave(self, available: int) -> None:
        """Reserve all but `available` units (committed), then publish as the receiver of stock_changed does."""
        self.live_server.execute(
            "UPDATE variants SET reserved = on_hand - :available WHERE id = :id",
            available=available,
            id=self.variant_id,
        )
        client = redis.Redis.from_url(self.live_server.redis_url)
        try:
            with Session(self.live_server.engine()) as session:
                live.publish(client, live.product_stock(session, {self.variant_id}), time.time())
        finally:
            client.close()

    def buy(self, web_url: str, quantity: int) -> None:
        """A purchase over HTTP by a client of its own: add to cart, then place the order (no JavaScript)."""
        shopper = Shopper(web_url)
        try:
            shopper.open_product(FLASH_SLUG)
            added = shopper.add(self.variant_id, quantity)
            assert added.status_code == 303, added.text[:500]
            placed = shopper.place_order(line1=f"{uuid.uuid4().hex[:6]} Main St")
            assert placed.status_code == 303, placed.text[:500]
        finally:
            shopper.close()

    def restore(self) -> None:
        self.live_server.execute("UPDATE variants SET reserved = 0 WHERE id = :id", id=self.variant_id)


@pytest.fixture
def buyer(live_server):
    buyer = Buyer(live_server)
    yield buyer
    buyer.restore()


def test_the_product_page_shows_the_stock_change_and_sold_out_without_a_reload(
    desktop, live_stock, buyer, browser_errors
):
    page = desktop
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    buyer.leave(12)
    page.goto(f"{live_stock}/products/{FLASH_SLUG}")
    label = page.locator(f"#stock-{buyer.variant_id}")
    expect(label).to_have_text("In stock")
    page.wait_for_function("() => document.querySelector('[sse-connect]') !== null")
    page.evaluate("() => { window.__marker = 1 }")
    news = page.locator("#stock-news")

    buyer.buy(live_stock, 4)  # 12 -> 8: below the low-stock threshold, which the live region announces
    expect(label).to_have_text("Only 8 left", timeout=EVENT_WAIT_MS)
    expect(news).to_contain_text("only 8 left")
    buyer.buy(live_stock, 8)
    expect(label).to_have_text("Sold out", timeout=EVENT_WAIT_MS)
    expect(label).to_have_class(re.compile(r"\bstock-sold_out\b"))
    expect(news).to_contain_text("sold out")

    assert page.evaluate("window.__marker") == 1, "the page was reloaded"
    assert not [url for url in requests if url.endswith("/stock")], "the page polled instead of streaming"
    assert [url for url in requests if "/stream/products/" in url]
    browser_errors.assert_none(page)


def test_the_listing_badge_appears_when_the_product_sells_out(desktop, live_stock, buyer, browser_errors):
    page = desktop
    buyer.leave(5)
    page.goto(f"{live_stock}/search?q=Aurora+Crystal+Drop")
    badge = page.locator(f"#badge-{buyer.product_id}")
    expect(badge).to_have_count(1)
    expect(badge).to_have_text("")
    page.wait_for_function("() => document.querySelector('[sse-connect]') !== null")
    buyer.leave(0)
    expect(badge).to_have_text("Sold out", timeout=EVENT_WAIT_MS)
    buyer.leave(3)
    expect(badge).to_have_text("", timeout=EVENT_WAIT_MS)
    browser_errors.assert_none(page)


def test_without_javascript_the_product_page_shows_the_stock_and_a_refresh_updates_it(
    nojs, live_stock, buyer
):
    page = nojs
    buyer.leave(6)
    page.goto(f"{live_stock}/products/{FLASH_SLUG}")
    label = page.locator(f"#stock-{buyer.variant_id}")
    expect(label).to_have_text("Only 6 left")
    buyer.leave(0)
    expect(label).to_have_text("Only 6 left")  # no script, no stream: the page is what it was
    page.reload()
    expect(label).to_have_text("Sold out")
