"""The waiting-room stage: python -m bench.waitingroom [--quick] [--shoppers N] [--wr-rate R] [--wr-cap C]

The drop's variant is put in a sale in drop mode (admit rate R a second, at most C shoppers in checkout at
once), and whole visits are played at 1x, 4x and 16x the shoppers: product page, add to cart, checkout,
which sends a shopper to the waiting page when the line is long; the shopper reloads it every --wr-poll
seconds until it sends them on to checkout, then places the order. Reported per multiple: the admitted
shoppers' place-order p99 against the 1x figure, the waits, and the ETA error (the estimate on the first view
of the waiting page against the wait that followed). The drop's exact-count checks run on every window, as in
`bench.run`, and the run's final checks at the end. Alone it skips the other stages; `python -m bench.run
--waiting-room` adds it to a full run.
"""

import asyncio
import re
import sys
from dataclasses import dataclass, field

import redis

from bench import load, sut
from bench.http import HttpError, now
from bench.shopper import (
    IDEMPOTENCY_INPUT,
    Browser,
    add_to_cart,
    checkout_form,
    follow_status,
    open_checkout,
    place_order,
)
from bench.stats import Recorder, summarize

ETA = re.compile(rb'data-position="(\d+)"\s+data-eta-seconds="([0-9.]*)"')
POLL = re.compile(rb'hx-trigger="every (\d+)s"')
MULTIPLES = (1, 4, 16)
OTHER_STAGES = "census,ceilings,pages,checkout,sweep,drop"
SALE_NAME = "Bench waiting room"


@dataclass
class Line(load.Drop):
    """A drop's outcome plus what the waiting room did: (estimated, actual) waits, and waits cut short."""

    waits: list[tuple[float, float]] = field(default_factory=list)
    unestimated: int = 0  # waited, and let in before the page could show an estimate
    cut_short: int = 0  # still waiting when the window closed


class Visits:
    """A load for Bench.drop: the same visit as load.drop, through the waiting room when it is long."""

    def __init__(self, poll: float, wait_max: float):
        self.poll = poll
        self.wait_max = wait_max
        self.line: Line | None = None

    async def __call__(
        self,
        port: int,
        slug: str,
        variant_id: int,
        shoppers: int,
        duration: float,
        max_visits: int,
        poll: float,
        watch_max: float,
        browse_share: float = 0.0,
    ) -> tuple[Line, list[asyncio.Task]]:
        line = self.line = Line(Recorder())
        line.recorder.start()
        watchers: list[asyncio.Task] = []
        deadline = now() + duration
        line.first_visit = now()
        streets = iter(range(1, 10_000_000))

        async def watch(browser: Browser, number: str) -> None:
            status, seconds = await follow_status(browser, number, poll, watch_max)
            line.observed.append((number, status, seconds))

        async def wait_turn(browser: Browser) -> bool:
            """Reload the waiting page until it sends the shopper on; False if the window closed first. The
            estimate judged is the first one the page showed, against the wait from that view on."""
            started = now()
            estimate = shown_at = None
            views = 0
            while now() < deadline + self.wait_max and now() - started < self.wait_max:
                asked = now()
                page = await browser.get("/waiting-room", "waiting_page")
                if page.status == 303:
                    break
                if page.status != 200:
                    raise HttpError(f"waiting page {page.status}")
                found = ETA.search(page.body)
                if found is None:  # no line any more
                    break
                views += 1
                if estimate is None and found.group(2):
                    estimate, shown_at = float(found.group(2)), asked
                # As the page itself would: every few seconds near the front, less often far back.
                told = POLL.search(page.body)
                await asyncio.sleep(float(told.group(1)) if told else self.poll)
            else:
                line.cut_short += 1
                return False
            if views == 0:
                return True  # let in on the first view: no wait to estimate
            if estimate is None:
                line.unestimated += 1
            else:
                line.waits.append((estimate, now() - shown_at))
            return True

        async def visit() -> str:
            browser = Browser(load.HOST, port, line.recorder)
            try:
                page = await browser.get(f"/products/{slug}", "product_page")
                if page.status != 200:
                    return "error"
                added = await add_to_cart(browser, variant_id)
                if added != "added":
                    return "sold out" if added == "refused" else "error"
                gate = await browser.get("/checkout", "checkout_page")
                key = IDEMPOTENCY_INPUT.search(gate.body) if gate.status == 200 else None
                if key is not None:  # no wait: the checkout page itself
                    hidden = {"csrf_token": browser.csrf, "idempotency_key": key.group(1).decode()}
                elif gate.status == 303 and (gate.header("location") or "").endswith("/waiting-room"):
                    if not await wait_turn(browser):
                        return "gave up"
                    hidden = await open_checkout(browser)
                else:
                    return "error"
                if hidden is None:
                    return "error"
                # One place per shipping address: every bench shopper lives at a street of their own.
                form = checkout_form(browser, hidden) | {"line1": f"{next(streets)} Main St"}
                outcome, number = await place_order(browser, form)
            finally:
                browser.close()
            if outcome == "accepted":
                line.accepted.append((number, now()))
                watchers.append(asyncio.create_task(watch(browser.clone(), number)))
                return "accepted"
            return "sold out" if outcome == "refused" else "error"

        await load.run_visits(line, shoppers, deadline, max_visits, visit)
        return line, watchers


def _seconds(figures: dict) -> dict:
    """summarize()'s milliseconds as seconds, the count as it is."""
    return {
        key.replace("_ms", "_s"): round(value / 1000, 2)
        if key.endswith("_ms") and value is not None
        else value
        for key, value in figures.items()
    }


def eta_error(waits: list[tuple[float, float]]) -> dict:
    """How far the estimate shown was from the wait that followed: |actual - estimate| p50/p99, and the
    signed median (positive: waited longer than told)."""
    if not waits:
        return {"count": 0}
    errors = [actual - estimate for estimate, actual in waits]
    signed = sorted(errors)
    return {
        "count": len(waits),
        "abs_error": _seconds(summarize([abs(e) for e in errors])),
        "signed_median_s": round(signed[len(signed) // 2], 2),
        "actual_wait": _seconds(summarize([actual for _, actual in waits])),
        "estimate": _seconds(summarize([estimate for estimate, _ in waits])),
    }


def _start_sale(db: sut.ShopDb, variant_id: int, rate: float, cap: int) -> int:
    """A running sale of the drop's variant at its own price, in drop mode (one statement, one commit)."""
    db.execute(
        "WITH sale AS (INSERT INTO sales (name, starts_at, ends_at, created_at) VALUES "
        "(:name, now() - interval '1 minute', now() + interval '2 hours', now()) RETURNING id), "
        "item AS (INSERT INTO sale_items (sale_id, variant_id, sale_price) "
        "SELECT sale.id, variants.id, variants.price FROM sale, variants WHERE variants.id = :variant) "
        "INSERT INTO drop_modes (sale_id, admit_rate, checkout_cap, checkout_limit, flags) "
        """SELECT id, :rate, :cap, '', '["waiting_room"]' FROM sale""",
        name=SALE_NAME,
        variant=variant_id,
        rate=rate,
        cap=cap,
    )
    return db.scalar("SELECT max(id) FROM sales WHERE name = :name", name=SALE_NAME)


def _end_sale(db: sut.ShopDb, sale_id: int) -> None:
    db.execute("DELETE FROM sales WHERE id = :sale", sale=sale_id)


def _clear_line() -> dict:
    """Empty the line between windows (the settings stay); returns the last window's counters."""
    client = redis.Redis.from_url(sut.REDIS_URL)
    try:
        admitted = int(client.get("wr:total") or 0)
        keys = [key for key in client.scan_iter(match="wr:*", count=1000) if key != b"wr:config"]
        if keys:
            client.delete(*keys)
        return {"admitted_by_the_room": admitted}
    finally:
        client.close()


def stage(bench) -> None:
    """The waiting room at 1x, 4x and 16x the shoppers, each for a fixed window (or until sold out)."""
    args = bench.args
    from bench.run import log  # here: bench.run imports this module when it runs the stage

    base = args.shoppers
    cap = args.wr_cap or base
    window = 10.0 if args.quick else 15.0
    units = 300 if args.quick else 1000
    runs: list[dict] = []
    bench.results["waiting_room"] = {"rate": args.wr_rate, "cap": cap, "poll_s": args.wr_poll, "runs": runs}
    _clear_line()
    sale_id = _start_sale(bench.db, bench.hot["id"], args.wr_rate, cap)
    try:
        # Every web process reads the switch again within WAITING_ROOM_CACHE_SECONDS (2 s by default).
        asyncio.run(asyncio.sleep(2.5))
        for multiple in MULTIPLES:
            shoppers = base * multiple
            visits = Visits(args.wr_poll, wait_max=window + 30)
            label = f"waiting room {multiple}x"
            result = bench.drop(shoppers, units, window, label=label, pace_wait=0.0, visits=visits)
            line = visits.line
            room = _clear_line()
            kept = ("accepted", "accepted_per_s", "sold_out", "place_order", "errors", "client_errors")
            run = {"multiple": multiple, "shoppers": shoppers, "window_s": window, "units": units}
            run |= {key: result[key] for key in kept} | {
                "waiting_page": result["requests"].get("waiting_page"),
                "checkout_page": result["requests"].get("checkout_page"),
                "waited": len(line.waits) + line.unestimated,
                "unestimated": line.unestimated,
                "cut_short": line.cut_short,
                "eta": eta_error(line.waits),
                **room,
            }
            first = runs[0]["place_order"] if runs else result["place_order"]
            p99, p99_1x = (result["place_order"] or {}).get("p99_ms"), (first or {}).get("p99_ms")
            run["place_p99_vs_1x"] = round(p99 / p99_1x, 2) if p99 and p99_1x else None
            runs.append(run)
            eta = run["eta"]
            log(
                f"{label} ({shoppers} shoppers): {result['accepted_per_s']} orders/s, place p99 {p99} ms "
                f"({run['place_p99_vs_1x']}x the 1x figure), {run['waited']} waited, ETA |error| p50/p99 "
                f"{eta.get('abs_error', {}).get('p50_s')}/{eta.get('abs_error', {}).get('p99_s')} s"
            )
    finally:
        _end_sale(bench.db, sale_id)
        _clear_line()


def main(argv: list[str] | None = None) -> int:
    from bench import run

    argv = list(sys.argv[1:] if argv is None else argv)
    return run.main(["--waiting-room", "--skip", OTHER_STAGES, *argv])


if __name__ == "__main__":
    sys.exit(main())
