"""Live stock: published on Redis after each commit, fanned out by each stream process to its open streams.

The publisher (a receiver of inventory's `stock_changed`, which is sent after commit) reads the stock of the
products whose variants changed, and in one Lua call numbers the change, keeps each product's state under a
key of its own (what a reconnecting stream reads) and publishes it. A stream process holds one subscription
(the hub) and hands each product's latest state to every open stream of that product, at most once per
LIVE_STOCK_COALESCE_SECONDS however fast it sells. Nothing personal travels: ids, variant names and counts.
"""

import json
import logging
import math
import os
import random
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import redis
from flask import Flask, current_app, has_app_context, render_template
from sqlalchemy import select
from sqlalchemy.orm import Session

from storefront.catalog import services as catalog
from storefront.catalog.models import Variant

log = logging.getLogger(__name__)

CHANNEL = "live:stock"
SEQUENCE_KEY = "live:stock:seq"
STATE_PREFIX = "live:stock:product:"
STATE_TTL = 7 * 24 * 3600  # a product's last state outlives any stream; older ones are read from the page
MAX_PRODUCTS = 100  # products one listing stream may follow
MAX_OPENING = 10_000  # products whose opening event a stream process keeps rendered

# KEYS: the sequence, then one state key per product. ARGV: channel, commit time, TTL, one body per product.
# One number per change, so every stream can tell old from new and a reconnect what it missed.
PUBLISH_LUA = """
local seq = redis.call('INCR', KEYS[1])
for i = 2, #KEYS do
  local body = '{"seq":' .. seq .. ',"at":' .. ARGV[2] .. ',' .. ARGV[i + 2]
  redis.call('SET', KEYS[i], body, 'EX', ARGV[3])
  redis.call('PUBLISH', ARGV[1], body)
end
return seq
"""


def state_key(product_id: int) -> str:
    return f"{STATE_PREFIX}{product_id}"


# --- publishing (web and worker processes) ------------------------------------------------------------------


def product_stock(session: Session, variant_ids: Iterable[int]) -> dict[int, list[tuple[int, str, int]]]:
    """Every variant of the products these variants belong to: {product id: [(variant id, name, available)]}."""
    products = select(Variant.product_id).where(Variant.id.in_(list(variant_ids)))
    rows = session.execute(
        select(Variant.product_id, Variant.id, Variant.name, Variant.on_hand - Variant.reserved)
        .where(Variant.product_id.in_(products))
        .order_by(Variant.product_id, Variant.position, Variant.id)
    )
    stock: dict[int, list[tuple[int, str, int]]] = defaultdict(list)
    for product_id, variant_id, name, available in rows:
        stock[product_id].append((variant_id, name, available))
    return dict(stock)


def publish(client: redis.Redis, stock: dict[int, list[tuple[int, str, int]]], at: float) -> int | None:
    """Number, keep and publish each product's state in one round trip; the sequence number, or None."""
    if not stock:
        return None
    keys = [SEQUENCE_KEY] + [state_key(product_id) for product_id in stock]
    bodies = [
        json.dumps({"product": product_id, "variants": variants}, separators=(",", ":"))[1:]
        for product_id, variants in stock.items()
    ]
    return int(client.eval(PUBLISH_LUA, len(keys), *keys, CHANNEL, repr(at), STATE_TTL, *bodies))


def live_stock_on() -> bool:
    """Whether live stock is served: the `live_stock` flag, and Redis to carry it (the embedded shop polls)."""
    from storefront.flags import services as flags

    return bool(current_app.config["REDIS_URL"]) and flags.flag_active("live_stock")


def publish_stock_change(sender=None, variant_ids: frozenset[int] = frozenset(), **_extra) -> int | None:
    """Receiver of `stock_changed` (sent after commit): publish the changed products' stock to the streams."""
    if not variant_ids or not has_app_context() or not live_stock_on():
        return None
    app = current_app._get_current_object()
    at = time.time()
    try:
        with app.extensions["db_sessionmaker"]() as session:
            stock = product_stock(session, variant_ids)
        return publish(app.extensions["redis"], stock, at)
    except (redis.RedisError, OSError) as error:
        # The sale goes on: pages keep the stock they were rendered with, and a refresh shows the truth.
        log.warning("live stock not published (%s)", error.__class__.__name__)
        return None


def connect_publisher(signal) -> None:
    """Publish after every stock change the signal reports (a strong reference: module-level receiver)."""
    signal.connect(publish_stock_change, weak=False)


# --- the stream side (one hub per stream worker process) ----------------------------------------------------


@dataclass(frozen=True)
class ProductState:
    """One product's stock as published, numbered by `seq`, committed at `at` (epoch seconds)."""

    seq: int
    at: float
    product_id: int
    variants: tuple[tuple[int, str, int], ...]

    @property
    def in_stock(self) -> bool:
        return any(available > 0 for _id, _name, available in self.variants)

    @classmethod
    def parse(cls, raw: bytes | str) -> "ProductState":
        data = json.loads(raw)
        variants = tuple((int(v), str(n), int(a)) for v, n, a in data["variants"])
        return cls(int(data["seq"]), float(data["at"]), int(data["product"]), variants)


@dataclass(frozen=True)
class Event:
    """What the hub hands to streams: a product's state and its two renderings."""

    state: ProductState
    stock_html: str  # the variants' labels (out-of-band swaps) and, on a threshold, the announcement
    badge_html: str  # the listing card's sold-out badge

    @property
    def seq(self) -> int:
        return self.state.seq


def announcement(before: ProductState | None, after: ProductState, low_threshold: int) -> str:
    """What the live region says: only crossings (low stock, sold out, back in stock), never every unit."""
    previous = {variant_id: available for variant_id, _name, available in before.variants} if before else {}
    news = []
    for variant_id, name, available in after.variants:
        if variant_id not in previous:
            continue
        old = catalog.stock_state(previous[variant_id], low_threshold).level
        new = catalog.stock_state(available, low_threshold).level
        if old == new:
            continue
        if new == "sold_out":
            news.append(f"{name}: sold out.")
        elif old == "sold_out":
            news.append(
                f"{name}: back in stock, {available} left." if new == "low" else f"{name}: back in stock."
            )
        elif new == "low":
            news.append(f"{name}: only {available} left.")
    return " ".join(news)


def render_event(state: ProductState, before: ProductState | None) -> Event:
    """Render a state once for every stream of this process (the same fragments the pages include)."""
    threshold = current_app.config["LOW_STOCK_THRESHOLD"]
    variants = [catalog.StockFigure(variant_id, available) for variant_id, _name, available in state.variants]
    stock_html = render_template(
        "catalog/_stock.html", variants=variants, news=announcement(before, state, threshold)
    )
    badge_html = render_template(
        "catalog/_badge.html", product_id=state.product_id, in_stock=state.in_stock, oob=True
    )
    return Event(state, _one_line(stock_html), _one_line(badge_html))


def _one_line(html: str) -> str:
    # An SSE data field ends at a newline; the fragments' newlines are only between tags.
    return " ".join(line.strip() for line in html.splitlines() if line.strip())


class Stream:
    """One open stream: the products it follows and the events waiting to be written to it."""

    __slots__ = ("products", "waiting", "wake", "written")

    def __init__(self, products: tuple[int, ...]) -> None:
        self.products = products
        self.waiting: dict[int, Event] = {}
        self.wake = threading.Event()
        self.written: dict[int, int] = {}  # product id: the number of the state last written to this stream

    def put(self, event: Event) -> None:
        self.waiting[event.state.product_id] = event  # a newer state replaces one not yet written
        self.wake.set()

    def take(self) -> list[Event]:
        self.wake.clear()
        waiting, self.waiting = self.waiting, {}
        return sorted(waiting.values(), key=lambda event: event.seq)


@dataclass
class Hub:
    """This process's one subscription, and every open stream it feeds, by product."""

    app: Flask
    coalesce: float
    streams: dict[int, set[Stream]] = field(default_factory=lambda: defaultdict(set))
    shown: dict[int, ProductState] = field(default_factory=dict)  # last state handed to the streams
    sent_at: dict[int, float] = field(default_factory=dict)
    pending: dict[int, ProductState] = field(default_factory=dict)  # waiting for its coalescing slot
    opening: dict[int, Event] = field(default_factory=dict)  # what a new stream of a product is sent first
    last_seq: int = 0
    subscribed: threading.Event = field(default_factory=threading.Event)
    _pid: int | None = None
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # -- streams come and go
    def open(self, products: tuple[int, ...]) -> Stream:
        self.start()
        stream = Stream(products)
        with self._lock:
            for product_id in products:
                self.streams[product_id].add(stream)
        return stream

    def close(self, stream: Stream) -> None:
        with self._lock:
            for product_id in stream.products:
                followers = self.streams.get(product_id)
                if followers is not None:
                    followers.discard(stream)
                    if not followers:
                        del self.streams[product_id]

    def open_streams(self) -> int:
        with self._lock:
            return len({stream for followers in self.streams.values() for stream in followers})

    def watermark(self, stream: Stream) -> int:
        """The id to give a stream: every state of its products numbered up to it has been written to it."""
        with self._lock:
            held = [self.pending[p].seq for p in stream.products if p in self.pending]
            held += [event.seq for event in stream.waiting.values()]
            # Pub/sub delivers in publishing order, so nothing numbered below what we have heard is still coming;
            # what was read from Redis at connect is each product's latest, so it covers everything before it.
            known = max(self.last_seq, max(stream.written.values(), default=0))
            return min(min(held) - 1, known) if held else known

    # -- what is published
    def receive(self, state: ProductState) -> None:
        """A published state: hand it on now, or when its product's coalescing slot opens."""
        with self._lock:
            self.last_seq = max(self.last_seq, state.seq)
            product_id = state.product_id
            newest = self.pending.get(product_id) or self.shown.get(product_id)
            if newest is not None and newest.seq >= state.seq:
                return
            if product_id in self.pending:
                self.pending[product_id] = state  # its flush is already scheduled
                return
            wait = self.sent_at.get(product_id, -math.inf) + self.coalesce - time.monotonic()
            if wait <= 0:
                self._deliver(state)
                return
            self.pending[product_id] = state
        timer = threading.Timer(wait, self._flush, (product_id,))
        timer.daemon = True
        timer.start()

    def _flush(self, product_id: int) -> None:
        with self._lock:
            state = self.pending.pop(product_id, None)
            if state is not None:
                self._deliver(state)

    def _deliver(self, state: ProductState) -> None:
        before = self.shown.get(state.product_id)
        if before is None and state.product_id in self.opening:
            before = self.opening[state.product_id].state  # what this process's streams were last shown
        with self.app.app_context():
            event = render_event(state, before)
        self.shown[state.product_id] = state
        self.sent_at[state.product_id] = time.monotonic()
        for stream in tuple(self.streams.get(state.product_id, ())):
            stream.put(event)

    def current(self, products: tuple[int, ...]) -> list[Event]:
        """Each product's last published state, read from Redis (for a stream that has just connected)."""
        raw = self.app.extensions["redis"].mget([state_key(product_id) for product_id in products])
        events = []
        for value in raw:
            if not value:
                continue
            state = ProductState.parse(value)
            # Rendered once per state for every stream that connects after it (thousands at a drop's start).
            cached = self.opening.get(state.product_id)
            if cached is None or cached.seq != state.seq:
                with self.app.app_context():
                    # No announcement: the shopper was not watching when it changed.
                    cached = render_event(state, None)
                if len(self.opening) >= MAX_OPENING:
                    self.opening.clear()
                self.opening[state.product_id] = cached
            events.append(cached)
        return events

    # -- the subscription
    def start(self) -> None:
        """Subscribe in this process (once; a forked worker does not inherit its parent's thread)."""
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            threading.Thread(target=self._listen, name="live-stock-hub", daemon=True).start()

    def _listen(self) -> None:
        url = self.app.config["REDIS_URL"]
        while True:
            try:
                # No read timeout: a quiet channel is normal; the health check pings it every 30 s.
                client = redis.Redis.from_url(url, socket_connect_timeout=2, health_check_interval=30)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(CHANNEL)
                self.subscribed.set()
                for message in pubsub.listen():
                    try:
                        self.receive(ProductState.parse(message["data"]))
                    except (ValueError, KeyError, TypeError):
                        log.warning("live stock: a message that is not a product state was ignored")
            except (redis.RedisError, OSError) as error:
                self.subscribed.clear()
                log.warning("live stock hub lost Redis (%s); retrying", error.__class__.__name__)
                time.sleep(1 + random.random())


def hub() -> Hub:
    return current_app.extensions["live_stock_hub"]


def sse(event: str | None = None, data: str | None = None, event_id: int | None = None) -> str:
    """One Server-Sent Event (data is one line)."""
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if event:
        lines.append(f"event: {event}")
    if data is not None:
        lines.append(f"data: {data}")
    return "\n".join(lines) + "\n\n"


def retry_ms(config) -> int:
    """How long a dropped client waits to reconnect: jittered, so a restart does not bring all back at once."""
    base = config["LIVE_STOCK_RETRY_MS"]
    return base + random.randrange(base + 1)


def event_stream(
    the_hub: Hub, products: tuple[int, ...], kind: str, last_event_id: int | None, config
) -> Iterator[str]:
    """The text of one stream: retry, what a (re)connecting client is missing, then changes and heartbeats."""
    heartbeat = config["LIVE_STOCK_HEARTBEAT_SECONDS"]
    ends = time.monotonic() + config["LIVE_STOCK_MAX_SECONDS"]
    stream = the_hub.open(products)
    try:
        yield f"retry: {retry_ms(config)}\n\n"
        # Subscribed first, read second: a change between the two reaches the stream twice, never zero times.
        the_hub.subscribed.wait(timeout=2)
        try:
            initial = the_hub.current(products)
        except (redis.RedisError, OSError) as error:
            log.warning("live stock: current state not read (%s)", error.__class__.__name__)
            initial = []
        fresh = [e for e in initial if last_event_id is None or e.seq > last_event_id]
        yield from _write(the_hub, stream, fresh, kind)
        while time.monotonic() < ends:
            if not stream.wake.wait(timeout=min(heartbeat, max(ends - time.monotonic(), 0))):
                yield ": heartbeat\n\n"
                continue
            yield from _write(the_hub, stream, stream.take(), kind)
    finally:
        the_hub.close(stream)


def _write(the_hub: Hub, stream: Stream, events: list[Event], kind: str) -> Iterator[str]:
    written = stream.written
    # Never an older state after a newer one (a reconnect's read and the hub can both bring one).
    events = [event for event in events if event.seq > written.get(event.state.product_id, 0)]
    for n, event in enumerate(events):
        written[event.state.product_id] = event.seq
        # The id promises "you have everything numbered up to here": not past an event still to be written.
        event_id = the_hub.watermark(stream)
        if n + 1 < len(events):
            event_id = min(event_id, events[n + 1].seq - 1)
        if kind == "badges":
            yield sse("badges", event.badge_html, event_id)
        else:
            yield sse("stock", event.stock_html, event_id)


def init_stream_app(app: Flask) -> None:
    """The process's hub (it subscribes on the first stream, after gunicorn has forked the worker)."""
    app.extensions["live_stock_hub"] = Hub(app, app.config["LIVE_STOCK_COALESCE_SECONDS"])
    app.add_template_filter(
        lambda v: catalog.stock_state(getattr(v, "available", v), app.config["LOW_STOCK_THRESHOLD"]),
        "stock_state",
    )
