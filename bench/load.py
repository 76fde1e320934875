"""The load patterns, all asyncio in this one process, all bounded in time and in count.

- `hammer`: N connections requesting one URL back to back (closed loop) for a warm-up, then a measured window;
- `add_to_cart_loop`: shoppers adding ordinary variants to fresh carts;
- `prepare` + `place`: shoppers whose cart and checkout form are ready, then only their place-order POSTs, so
  the order rate compares like for like with the checkout ceiling's POST;
- `drop`: the whole visit (product page, add to cart, checkout page, place order, then the status page
  followed every `poll` seconds until paid) by N shoppers at a time until the drop sells out.
"""

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode

from bench.http import Connection, HttpError, now
from bench.shopper import (
    ADDRESS,
    FORM_HEADERS,
    Browser,
    add_to_cart,
    checkout_form,
    follow_status,
    open_checkout,
    place_order,
)
from bench.stats import Recorder

HOST = "127.0.0.1"
ERROR_PAUSE = 0.05  # after a failed request, so a dead server is not spun on


async def _window(recorder: Recorder, warmup: float, duration: float, stop: asyncio.Event) -> None:
    await asyncio.sleep(warmup)
    recorder.start()
    await asyncio.sleep(duration)
    recorder.stop()
    stop.set()


async def _finish(tasks: list[asyncio.Task], timeout: float) -> None:
    """Wait for the virtual users to end their current request (bounded), then cancel any left."""
    _done, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=5)


async def hammer(
    port: int,
    paths: list[str],
    connections: int,
    duration: float,
    warmup: float,
    label: str,
    limit: int = 2_000_000,
) -> Recorder:
    """GET the paths (round robin per connection) as fast as `connections` browsers can, for `duration` s."""
    recorder = Recorder()
    stop = asyncio.Event()
    budget = [limit]

    async def user(offset: int) -> None:
        browser = Browser(HOST, port, recorder)
        turn = offset
        while not stop.is_set() and budget[0] > 0:
            budget[0] -= 1
            try:
                await browser.get(paths[turn % len(paths)], label)
            except HttpError:
                await asyncio.sleep(ERROR_PAUSE)
            turn += 1
        browser.close()

    tasks = [asyncio.create_task(user(n)) for n in range(connections)]
    await _window(recorder, warmup, duration, stop)
    await _finish(tasks, 35)
    return recorder


async def post_orders(
    port: int, pick_variant: Callable[[], int], connections: int, duration: float, warmup: float, label: str
) -> Recorder:
    """POST /order to the checkout ceiling with the checkout form's fields, back to back."""
    recorder = Recorder()
    stop = asyncio.Event()
    fields = {**ADDRESS, "email": "shopper@example.com", "dataDescriptor": "COMMON.ACCEPT.INAPP.PAYMENT"}

    async def user() -> None:
        connection = Connection(HOST, port)
        for _ in range(2_000_000):
            if stop.is_set():
                break
            body = urlencode(
                {
                    **fields,
                    "variant_id": pick_variant(),
                    "idempotency_key": str(uuid.uuid4()),
                    "dataValue": "test-approve",
                }
            ).encode()
            started = now()
            try:
                response = await connection.request("POST", "/order", FORM_HEADERS, body)
                recorder.add(label, response.status, now() - started)
            except HttpError as error:
                recorder.error(label, str(error))
                await asyncio.sleep(ERROR_PAUSE)
        connection.close()

    tasks = [asyncio.create_task(user()) for _ in range(connections)]
    await _window(recorder, warmup, duration, stop)
    await _finish(tasks, 35)
    return recorder


async def add_to_cart_loop(
    port: int,
    slug: str,
    variants: list[int],
    connections: int,
    duration: float,
    warmup: float,
    adds_per_cart: int = 10,
) -> Recorder:
    """Shoppers open a product page (for the session and its CSRF token), then add `adds_per_cart` different
    ordinary variants, one unit each, then leave; the next shopper starts with a new cart."""
    recorder = Recorder()
    stop = asyncio.Event()
    rng = random.Random(7)

    async def user() -> None:
        for _ in range(1_000_000):
            if stop.is_set():
                break
            browser = Browser(HOST, port, recorder)
            try:
                await browser.get(f"/products/{slug}", "add_to_cart_setup")
                for variant in rng.sample(variants, min(adds_per_cart, len(variants))):
                    if stop.is_set():
                        break
                    await add_to_cart(browser, variant)
            except HttpError:
                await asyncio.sleep(ERROR_PAUSE)
            browser.close()

    tasks = [asyncio.create_task(user()) for _ in range(connections)]
    await _window(recorder, warmup, duration, stop)
    await _finish(tasks, 35)
    return recorder


# -- checkout only: carts ready, then the place-order POSTs --------------------------------------------


@dataclass
class Ready:
    browser: Browser
    form: dict


async def prepare(
    port: int, slug: str, variants: list[int], count: int, connections: int, timeout: float
) -> list[Ready]:
    """`count` shoppers with one unit in the cart (variants taken in turn) and the checkout form open."""
    recorder = Recorder()
    recorder.start()
    ready: list[Ready] = []
    todo = iter(range(count))
    deadline = now() + timeout

    async def user() -> None:
        for n in todo:
            if now() > deadline:
                break
            browser = Browser(HOST, port, recorder)
            try:
                await browser.get(f"/products/{slug}", "prepare")
                if await add_to_cart(browser, variants[n % len(variants)], label="prepare") != "added":
                    continue
                hidden = await open_checkout(browser, label="prepare")
            except HttpError:
                await asyncio.sleep(ERROR_PAUSE)
                continue
            if hidden is not None:
                ready.append(Ready(browser, checkout_form(browser, hidden)))

    await asyncio.gather(*(user() for _ in range(connections)))
    return ready


@dataclass
class Placed:
    recorder: Recorder
    accepted: list[tuple[str, float]] = field(default_factory=list)  # (order number, perf_counter at 303)
    refused: int = 0
    errors: int = 0
    first_sent: float = 0.0
    last_done: float = 0.0

    @property
    def rate(self) -> float | None:
        """Orders accepted per second, from the first POST sent to the last accepted answer."""
        if len(self.accepted) < 2:
            return None
        return len(self.accepted) / max(1e-9, self.accepted[-1][1] - self.first_sent)


async def place(
    ready: list[Ready],
    connections: int,
    timeout: float,
    label: str = "place_order",
    recorder: Recorder | None = None,
) -> Placed:
    """Every prepared shopper posts its order once, `connections` at a time (bounded by `timeout`)."""
    placed = Placed(recorder or Recorder())
    placed.recorder.recording = True
    if not placed.recorder.started:
        placed.recorder.start()
    queue = iter(ready)
    deadline = now() + timeout
    placed.first_sent = now()

    async def user() -> None:
        for shopper in queue:
            if now() > deadline:
                break
            shopper.browser.recorder = placed.recorder
            try:
                outcome, number = await place_order(shopper.browser, shopper.form, label)
            except HttpError:
                placed.errors += 1
                continue
            finally:
                shopper.browser.close()
            if outcome == "accepted":
                placed.accepted.append((number, now()))
            elif outcome == "refused":
                placed.refused += 1
            else:
                placed.errors += 1

    await asyncio.gather(*(user() for _ in range(connections)))
    placed.last_done = now()
    return placed


# -- the whole visit, until sold out -------------------------------------------------------------------


@dataclass
class Drop:
    recorder: Recorder
    accepted: list[tuple[str, float]] = field(default_factory=list)  # (order number, perf_counter at the 303)
    sold_out_seen: int = 0  # visits that ended on "sold out" (add to cart 422, or place order 409)
    browsed: int = 0  # visits that only looked
    errors: int = 0
    visits: int = 0
    first_visit: float = 0.0
    sold_out_at: float | None = None
    observed: list[tuple[str, str, float]] = field(default_factory=list)  # (number, last status, seconds)
    watchers_left: int = 0

    @property
    def accept_rate(self) -> float | None:
        if len(self.accepted) < 2:
            return None
        return len(self.accepted) / max(1e-9, self.accepted[-1][1] - self.first_visit)


async def drop(
    port: int,
    slug: str,
    variant_id: int,
    shoppers: int,
    duration: float,
    max_visits: int,
    poll: float,
    watch_max: float,
    browse_share: float = 0.0,
) -> tuple[Drop, list[asyncio.Task]]:
    """`shoppers` visitors at a time, each a new browser, until the drop sells out, `duration` seconds pass or
    `max_visits` visits were made. A `browse_share` of the visits only look (product page, then the listing).
    Every accepted order leaves a tab open on its status page, which reloads
    every `poll` seconds until paid (at most `watch_max` seconds): those watcher tasks are returned still
    running, so the caller can wait for payment while they poll."""
    result = Drop(Recorder())
    result.recorder.start()
    watchers: list[asyncio.Task] = []
    deadline = now() + duration
    result.first_visit = now()
    rng = random.Random(13)

    async def watch(browser: Browser, number: str) -> None:
        status, seconds = await follow_status(browser, number, poll, watch_max)
        result.observed.append((number, status, seconds))

    async def visit() -> str:
        browser = Browser(HOST, port, result.recorder)
        try:
            page = await browser.get(f"/products/{slug}", "product_page")
            if page.status != 200:
                return "error"
            if browse_share and rng.random() < browse_share:
                listing = await browser.get("/products", "listing")
                return "browsed" if listing.status == 200 else "error"
            added = await add_to_cart(browser, variant_id)
            if added != "added":
                return "sold out" if added == "refused" else "error"
            hidden = await open_checkout(browser)
            if hidden is None:
                return "error"
            outcome, number = await place_order(browser, checkout_form(browser, hidden))
        finally:
            browser.close()
        if outcome == "accepted":
            result.accepted.append((number, now()))
            watchers.append(asyncio.create_task(watch(browser.clone(), number)))
            return "accepted"
        return "sold out" if outcome == "refused" else "error"

    await run_visits(result, shoppers, deadline, max_visits, visit)
    return result, watchers


async def run_visits(
    result: Drop, shoppers: int, deadline: float, max_visits: int, visit: Callable[[], Awaitable[str]]
) -> None:
    """`shoppers` users, each making one visit after another until the drop sells out, `deadline` passes or
    `max_visits` visits were made; `visit` answers "accepted", "sold out", "browsed", "error" or another word."""
    budget = [max_visits]
    sold_out = asyncio.Event()

    async def user() -> None:
        while not sold_out.is_set() and now() < deadline and budget[0] > 0:
            budget[0] -= 1
            result.visits += 1
            try:
                outcome = await visit()
            except HttpError:
                outcome = "error"
            if outcome == "sold out":
                result.sold_out_seen += 1
                if result.sold_out_at is None:
                    result.sold_out_at = now()
                sold_out.set()  # shoppers who see "sold out" tell the others (the page would show it)
            elif outcome == "browsed":
                result.browsed += 1
            elif outcome == "error":
                result.errors += 1
                await asyncio.sleep(ERROR_PAUSE)

    await asyncio.gather(*(user() for _ in range(shoppers)))
