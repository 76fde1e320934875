"""The flash-sale benchmark: python -m bench.run [--quick] [--units K] [--shoppers N] [--duration S] ...

Starts the shop as production runs it (gunicorn with gunicorn.conf.py, rq workers, PostgreSQL and Redis at
127.0.0.1, the loopback Authorize.Net with a 300 ms latency), measures the ceilings in the same run, plays a
drop, checks that every unit was sold exactly once and every card charged once, and writes the report to
stdout and bench/results/<time>-<mode>.json. Everything it starts is stopped at the end, whatever happens.
"""

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from bench import load, report, sut
from bench.ceilings import nginx, page, pgbench
from bench.stats import summarize
from tools.procs import Proc, Stack, group_cpu, machine_cpu, pid_cpu

RESULTS = Path(__file__).resolve().parent / "results"
LOGS = sut.ROOT / "test-output" / "bench"
CEILING_DB = "storefront_bench_ceiling"
CATALOG_DBS = ("storefront_bench_catalog_small", "storefront_bench_catalog_big")
CEILING_ROWS = 1000


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="a ~2-3 minute version: smaller drop, shorter windows, no sweep"
    )
    parser.add_argument(
        "--units", type=int, help="K, units of the hot variant in the drop (default 2000; quick 200)"
    )
    parser.add_argument("--shoppers", type=int, help="shoppers at a time in the drop (default 32; quick 16)")
    parser.add_argument(
        "--duration", type=float, help="seconds of each measured window (default 10; quick 4)"
    )
    parser.add_argument(
        "--latency", type=float, default=0.3, help="loopback gateway latency in seconds (default 0.3)"
    )
    parser.add_argument("--workers", type=int, default=2, help="rq worker processes (default 2)")
    parser.add_argument(
        "--scale", action="store_true", help="also measure 1x/4x/16x shoppers and 1,000 vs 100,000 products"
    )
    parser.add_argument(
        "--connections", type=int, default=16, help="connections of the page and ceiling loads (default 16)"
    )
    parser.add_argument(
        "--products", type=int, default=300, help="products in the bench catalog (default 300)"
    )
    parser.add_argument(
        "--mix", default="buy=100", help="visits of the drop: buy=W,browse=W (browse: product page + listing)"
    )
    parser.add_argument(
        "--poll", type=float, default=0.5, help="seconds between reloads of the order status page"
    )
    parser.add_argument(
        "--watch-max", type=float, default=30.0, help="a shopper follows the status page at most this long"
    )
    parser.add_argument(
        "--pace-wait",
        type=float,
        help="seconds to wait at the real latency after the last order "
        "before draining with latency 0 (default 30; quick 20)",
    )
    parser.add_argument(
        "--drop-max", type=float, help="upper bound of the drop's selling phase (default 180 s; quick 90)"
    )
    parser.add_argument(
        "--sweep", help="rq worker counts to measure payments with (default 1,2,4; quick: none)"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="repeat each fixed-window measurement, report the median"
    )
    parser.add_argument("--pgbench-clients", type=int, default=8)
    parser.add_argument(
        "--skip",
        default="",
        help="comma list of phases to leave out: census,ceilings,pages,checkout,sweep,drop",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the ceiling and catalog databases at the end"
    )
    parser.add_argument(
        "--json", type=Path, help="where to write the results (default bench/results/<time>-<mode>.json)"
    )
    args = parser.parse_args(argv)
    quick = args.quick
    args.units = args.units or (200 if quick else 2000)
    args.shoppers = args.shoppers or (16 if quick else 32)
    args.duration = args.duration or (4.0 if quick else 10.0)
    args.pace_wait = args.pace_wait if args.pace_wait is not None else (20.0 if quick else 30.0)
    args.drop_max = args.drop_max or (90.0 if quick else 180.0)
    sweep = args.sweep if args.sweep is not None else ("" if quick else "1,2,4")
    args.sweep = [int(n) for n in sweep.split(",") if n.strip()]
    args.skip = {name.strip() for name in args.skip.split(",") if name.strip()}
    weights = dict(part.split("=") for part in args.mix.split(","))
    args.browse_share = float(weights.get("browse", 0)) / max(
        1e-9, float(weights.get("buy", 0)) + float(weights.get("browse", 0))
    )
    for name in ("units", "shoppers", "workers", "connections", "repeat", "products"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


class Meter:
    """CPU seconds spent by each part of the stack (and by everything else on the machine) over a window.

    `web` are the gunicorn (or nginx) process groups serving the load, `dbs` the databases whose PostgreSQL
    backends count; by default the shop's gunicorn and database."""

    def __init__(self, bench: "Bench", web: list[Proc] | None = None, dbs: list[sut.ShopDb] | None = None):
        self.bench = bench
        self.web = web if web is not None else [p for p in [bench.gunicorn] if p is not None]
        self.dbs = dbs if dbs is not None else [db for db in [bench.db] if db is not None]

    def _read(self) -> dict:
        bench = self.bench
        busy, total = machine_cpu()
        db_pids = set()
        for db in self.dbs:
            with contextlib.suppress(Exception):  # a reading lost under load only blurs this one figure
                db_pids.update(db.backend_pids())
        return {
            "busy": busy,
            "total": total,
            "wall": time.perf_counter(),
            "bench": time.process_time(),
            "web": sum(group_cpu(p.pid) for p in self.web),
            "workers": sum(group_cpu(p.pid) for p in bench.workers),
            "loopback": group_cpu(bench.loopback.pid) if bench.loopback else 0.0,
            "postgres": {pid: pid_cpu(pid) for pid in db_pids},
        }

    def __enter__(self) -> "Meter":
        self.start = self._read()
        return self

    def __exit__(self, *exc) -> None:
        end = self._read()
        start = self.start
        postgres = sum(cpu - start["postgres"].get(pid, 0.0) for pid, cpu in end["postgres"].items())
        wall = end["wall"] - start["wall"]
        self.cpu = {
            key: round(end[key] - start[key], 3) for key in ("web", "workers", "loopback", "bench")
        } | {
            "postgres": round(postgres, 3),
            "wall": round(wall, 2),
        }
        ours = sum(self.cpu[key] for key in ("web", "workers", "loopback", "bench", "postgres"))
        self.cpu["machine_busy"] = round(end["busy"] - start["busy"], 3)
        self.cpu["other_cores"] = round(max(0.0, self.cpu["machine_busy"] - ours) / max(1e-9, wall), 2)
        self.bench.other_load.append((wall, self.cpu["other_cores"]))

    def per(self, count: int, *keys: str) -> float | None:
        """CPU milliseconds of the given parts per unit of work."""
        if not count:
            return None
        return round(sum(self.cpu[key] for key in keys) / count * 1000, 2)


class Sampler:
    """Reads stock, queue depth and order counts every `interval` s in a thread while a drop runs (bounded)."""

    def __init__(
        self, bench: "Bench", variant_id: int, after_id: int, interval: float = 0.5, limit: int = 4000
    ):
        self.db = sut.ShopDb(sut.MAIN_DB)
        self.queues = sut.Queues()
        self.variant_id = variant_id
        self.after_id = after_id
        self.interval = interval
        self.limit = limit
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self.t0 = time.perf_counter()

    def _run(self) -> None:
        while not self._stop.is_set() and len(self.samples) < self.limit:
            try:
                stock = self.db.stock(self.variant_id)
                counts = self.db.status_counts(self.after_id)
                self.samples.append(
                    {
                        "t": round(time.perf_counter() - self.t0, 2),
                        "available": stock["available"],
                        "queued": self.queues.depth(),
                        "pending": counts.get("pending_payment", 0) + counts.get("payment_review", 0),
                        "paid": counts.get("paid", 0),
                    }
                )
            except Exception as error:  # noqa: BLE001  a sample lost under load is not the point of the run
                self.samples.append(
                    {"t": round(time.perf_counter() - self.t0, 2), "error": repr(error)[:200]}
                )
            self._stop.wait(self.interval)

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.db.dispose()
        self.queues.close()


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.stack = Stack()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.stamp = stamp
        self.run_dir = LOGS / f"{stamp}-{'quick' if args.quick else 'full'}"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        _prune(LOGS, keep=5)
        self.scratch = Path(
            tempfile.mkdtemp(prefix="storefront-bench-")
        )  # e-mails and media, removed at the end
        self.loopback: Proc | None = None
        self.gunicorn: Proc | None = None
        self.workers: list[Proc] = []
        self.db: sut.ShopDb | None = None
        self.queues = sut.Queues()
        self.other_load: list[tuple[float, float]] = []
        self.accepted_numbers: set[str] = set()
        self.checks: dict[str, dict] = {}
        self.web_concurrency = int(os.environ.get("WEB_CONCURRENCY", "4"))
        self.results: dict = {
            "meta": {
                "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
                "mode": "quick" if args.quick else "full",
                "command": "python -m bench.run " + " ".join(sys.argv[1:]),
                "units": args.units,
                "shoppers": args.shoppers,
                "workers": args.workers,
                "latency": args.latency,
                "duration": args.duration,
                "repeat": args.repeat,
                "connections": args.connections,
                "web_concurrency": self.web_concurrency,
                "mix": args.mix,
                "cpus": os.cpu_count(),
                "loadavg_start": Path("/proc/loadavg").read_text().split()[:3],
                "git": _git_state(),
                "logs": str(self.run_dir),
            }
        }

    # -- set-up ---------------------------------------------------------------------------------------

    def setup(self) -> None:
        args = self.args
        log(f"logs in {self.run_dir}")
        busy = machine_cpu()[0]
        time.sleep(2.0)
        before = round((machine_cpu()[0] - busy) / 2.0, 2)
        self.results["meta"]["busy_cores_before_start"] = before
        if before > 0.3:
            log(f"note: other processes keep {before} of {os.cpu_count()} cores busy; figures will be noisy")
        self.queues.flush()
        self.loopback = sut.start_loopback(self.stack, self.run_dir, args.latency)
        self.env = sut.shop_env(sut.MAIN_DB, self.loopback.port, self.scratch)
        log(
            f"database {sut.MAIN_DB}: create, alembic upgrade head, seed-demo --products {args.products} --flash-stock {args.units}"
        )
        seeded = sut.prepare_database(sut.MAIN_DB, self.env, self.run_dir, args.products, args.units)
        self.results["meta"]["seed"] = seeded
        log(f"database {CEILING_DB}: a copy, plus {CEILING_ROWS} variants with unlimited stock")
        sut.create_database(CEILING_DB, template=sut.MAIN_DB)
        ceiling_db = sut.ShopDb(CEILING_DB)
        ceiling_db.execute(
            "INSERT INTO variants (product_id, sku, name, attributes, price, on_hand, reserved, position) "
            "SELECT (SELECT product_id FROM variants WHERE sku = :flash), 'CEILING-' || g, 'Ceiling ' || g, '{}', "
            "9.99, 1000000000, 0, g FROM generate_series(1, :rows) g",
            flash=sut.FLASH_SKU,
            rows=CEILING_ROWS,
        )
        low, high, count = ceiling_db.rows(
            "SELECT min(id) AS lo, max(id) AS hi, count(*) AS n FROM variants WHERE sku LIKE 'CEILING-%'"
        )[0].values()
        ceiling_db.dispose()
        assert high - low + 1 == count == CEILING_ROWS, (low, high, count)
        self.ceiling_rows = (low, high)
        self.db = sut.ShopDb(sut.MAIN_DB)
        self.hot = self.db.variant(sut.FLASH_SKU)
        self.spread = self.db.spread_variants(exclude=self.hot["id"])
        log(f"starting gunicorn (WEB_CONCURRENCY={self.web_concurrency}) and {args.workers} rq worker(s)")
        self.gunicorn = sut.start_gunicorn(self.stack, self.run_dir, self.env)
        self.set_workers(args.workers)
        product = asyncio.run(self._fetch(f"/products/{self.hot['slug']}"))
        self.product_page = product
        self.results["meta"]["product_page_bytes"] = len(product)
        log(f"the drop's product page is {len(product):,} bytes; {len(self.spread)} other variants in stock")

    def census(self) -> None:
        """Round trips and Python CPU per step of a visit, in a subprocess with the shop's environment."""
        env = self.env | {
            "BENCH_CENSUS_SLUG": self.hot["slug"],
            "BENCH_CENSUS_VARIANTS": ",".join(str(v) for v in self.spread[:10]),
        }
        out = sut.run_tool(
            env, [str(sut.BIN / "python"), "-m", "bench.census"], self.run_dir / "census.log", 300
        )
        self.results["census"] = json.loads(out.strip().splitlines()[-1])
        summary = ", ".join(
            f"{name} {step['pg_round_trips']:g}+{step['redis_round_trips']:g}"
            for name, step in self.results["census"].items()
        )
        log(f"round trips per request (PostgreSQL+Redis): {summary}")
        place = self.results["census"].get("place order", {}).get("detail", {})
        writes = {k.removeprefix("pg ") for k in place if k.split()[1] in ("INSERT", "UPDATE", "DELETE")}
        expected = {
            "INSERT orders",
            "INSERT order_lines",
            "INSERT order_events",
            "INSERT payment_attempts",
            "DELETE cart_lines",
            "UPDATE variants",
        }
        self.results["meta"]["ceiling_sql_matches_place_order"] = writes == expected
        if writes != expected:
            log(
                f"note: place order now writes {sorted(writes)}; the checkout ceiling (bench/ceilings/sql.py) "
                f"writes {sorted(expected)}: update the ceiling to compare like with like"
            )

    async def _fetch(self, path: str) -> bytes:
        from bench.shopper import Browser
        from bench.stats import Recorder

        browser = Browser("127.0.0.1", self.gunicorn.port, Recorder())
        response = await browser.get(path, "fetch")
        browser.close()
        if response.status != 200:
            raise RuntimeError(f"GET {path} answered {response.status}")
        return response.body

    # -- measuring helpers ----------------------------------------------------------------------------

    def measure_once(
        self, run, web: list[Proc], dbs: list[sut.ShopDb], count_label: str | None = None
    ) -> dict:
        """One fixed-window load: its figures for `count_label` (or its only label), with CPU per request."""
        with Meter(self, web, dbs) as meter:
            recorder = asyncio.run(run())
        label = count_label or next(iter(recorder.latencies), None)
        figures = recorder.label(label) if label else {"rps": 0.0, "count": 0}
        # The meter spans the warm-up and the tail too, so CPU is divided by every answer of the run, not only
        # those of the measured window (for add to cart: per add, with its share of the shopper's page loads).
        count = recorder.completed.get(label, 0) if label else 0
        figures["server_cpu_ms"] = meter.per(count, "web", "postgres")
        figures["web_cpu_ms"] = meter.per(count, "web")
        figures["db_cpu_ms"] = meter.per(count, "postgres")
        figures["client_cpu_us"] = recorder.client_cpu_us_per_request()
        figures["other_cores"] = meter.cpu["other_cores"]
        figures["errors"] = dict(recorder.errors.most_common(5))
        figures["other_labels"] = {k: len(v) for k, v in recorder.latencies.items() if k != label}
        return figures

    def median_of(self, name: str, runs: list[dict]) -> dict:
        """The run with the median rate (all rates kept when there were several)."""
        ordered = sorted(runs, key=lambda f: f["rps"])
        chosen = dict(ordered[len(ordered) // 2])
        if len(runs) > 1:
            chosen["runs_rps"] = [f["rps"] for f in runs]
        log(
            f"{name}: {chosen['rps']:,.0f}/s  p50 {chosen.get('p50_ms')} ms  p99 {chosen.get('p99_ms')} ms  "
            f"server CPU {chosen.get('server_cpu_ms')} ms/req  (other load {chosen['other_cores']} cores)"
        )
        return chosen

    # -- the shop's pages and their ceilings, measured in alternation ---------------------------------

    def pages_and_ceilings(self, ceilings: bool, pages: bool) -> None:
        """nginx first; then, `repeat` times, each ceiling page right before the shop page compared with it
        (so a change in the machine's other load hits both alike); then the checkout ceilings and pgbench."""
        args = self.args
        out_c: dict = {}
        out_p: dict = {}
        if ceilings:
            self.results["ceilings"] = out_c
        if pages:
            self.results["pages"] = out_p
        shop, db = [self.gunicorn], [self.db]
        if ceilings:
            proc = nginx.start(self.stack, self.run_dir / "nginx", self.product_page)
            runs = [
                self.measure_once(
                    lambda: load.hammer(
                        proc.port, ["/product.html"], args.connections, args.duration, 1.0, "nginx"
                    ),
                    [proc],
                    [],
                )
                for _ in range(args.repeat)
            ]
            out_c["nginx"] = self.median_of("nginx static page", runs)
            self.stack.remove(proc)
            ceiling = self._start_ceiling()
            ceiling_db = sut.ShopDb(CEILING_DB)
            cdb = [ceiling_db]
        slug = self.hot["slug"]
        plan = []
        if ceilings:
            plan.append(
                (
                    "c",
                    "template_page",
                    "minimal template page",
                    lambda: load.hammer(
                        ceiling.port, ["/page"], args.connections, args.duration, 1.0, "page"
                    ),
                    None,
                )
            )
        if pages:
            plan.append(
                (
                    "p",
                    "product_page",
                    "shop product page",
                    lambda: load.hammer(
                        self.gunicorn.port,
                        [f"/products/{slug}"],
                        args.connections,
                        args.duration,
                        1.0,
                        "product_page",
                    ),
                    None,
                )
            )
        if ceilings:
            plan.append(
                (
                    "c",
                    "one_row_page",
                    "minimal page + one row",
                    lambda: load.hammer(ceiling.port, ["/row"], args.connections, args.duration, 1.0, "row"),
                    None,
                )
            )
        if pages:
            plan.append(
                (
                    "p",
                    "listing",
                    "shop listing /products",
                    lambda: load.hammer(
                        self.gunicorn.port, ["/products"], args.connections, args.duration, 1.0, "listing"
                    ),
                    None,
                )
            )
            plan.append(
                (
                    "p",
                    "add_to_cart",
                    "shop add to cart",
                    lambda: load.add_to_cart_loop(
                        self.gunicorn.port, slug, self.spread, args.connections, args.duration, 1.0
                    ),
                    "add_to_cart",
                )
            )
        collected: dict[tuple[str, str], list[dict]] = {}
        try:
            for _ in range(args.repeat):
                for side, key, _name, run, label in plan:
                    web, dbs = ([ceiling], cdb) if side == "c" else (shop, db)
                    collected.setdefault((side, key), []).append(self.measure_once(run, web, dbs, label))
            for side, key, name, _run, _label in plan:
                (out_c if side == "c" else out_p)[key] = self.median_of(name, collected[(side, key)])
            if ceilings:
                hot = self.ceiling_rows[0]
                low, high = self.ceiling_rows
                rng = random.Random(11)
                for key, name, pick in (
                    ("checkout_hot", "minimal checkout POST, hot row", lambda: hot),
                    (
                        "checkout_spread",
                        f"minimal checkout POST, spread over {CEILING_ROWS} rows",
                        lambda: rng.randint(low, high),
                    ),
                ):
                    runs = [
                        self.measure_once(
                            lambda pick=pick: load.post_orders(
                                ceiling.port, pick, args.connections, args.duration, 1.0, "order"
                            ),
                            [ceiling],
                            cdb,
                        )
                        for _ in range(args.repeat)
                    ]
                    out_c[key] = self.median_of(name, runs)
        finally:
            if ceilings:
                self.stack.remove(ceiling)
                ceiling_db.dispose()
                self._forget_ceiling_jobs()
        if ceilings:
            for label, (low, high) in (("hot", (self.ceiling_rows[0],) * 2), ("spread", self.ceiling_rows)):
                result = pgbench.run(
                    CEILING_DB,
                    self.run_dir / "pgbench",
                    low,
                    high,
                    args.pgbench_clients,
                    args.duration,
                    label,
                )
                out_c[f"pgbench_{label}"] = result
                log(f"pgbench {label}: {result['tps']:,.0f} tps, {result['latency_avg_ms']} ms average")

    def _start_ceiling(self) -> Proc:
        templates = self.run_dir / "ceiling-templates"
        items = page.write_template(templates, len(self.product_page))
        env = sut.base_env() | {
            "BENCH_CEILING_TEMPLATES": str(templates),
            "BENCH_CEILING_ITEMS": str(items),
            "BENCH_CEILING_DATABASE_URL": sut.db_url(CEILING_DB),
            "BENCH_CEILING_REDIS_URL": sut.REDIS_URL,
            "BENCH_CEILING_ROW_ID": str(self.ceiling_rows[0]),
            "WEB_CONCURRENCY": str(self.web_concurrency),
        }
        ceiling = sut.start_gunicorn(
            self.stack,
            self.run_dir,
            env,
            name="gunicorn-ceiling",
            app="bench.ceilings.app:app",
            config="bench/ceilings/gunicorn.conf.py",
            ready_path="/page",
        )
        self.results["meta"]["ceiling_page_bytes"] = asyncio.run(self._size(ceiling.port, "/page"))
        return ceiling

    def _forget_ceiling_jobs(self) -> None:
        """The checkout ceiling's enqueued no-op jobs: nothing runs them; remove them from the bench's Redis db."""
        client = self.queues.redis
        for key in client.scan_iter(match="rq:*bench-ceiling*"):
            client.delete(key)
        for key in client.scan_iter(match="rq:job:*", count=1000):
            if client.hget(key, "origin") == b"bench-ceiling":
                client.delete(key)

    async def _size(self, port: int, path: str) -> int:
        from bench.http import Connection

        connection = Connection("127.0.0.1", port)
        response = await connection.request("GET", path)
        connection.close()
        return len(response.body)

    # -- orders placed with the cart ready (like for like with the checkout ceiling) ------------------

    def checkout(self) -> None:
        """Place orders whose cart and checkout form are ready: one pool on the hot variant, one spread over
        many variants, posted in alternating halves (hot, spread, hot, spread) so a change in the machine's
        other load hits both pools alike."""
        args = self.args
        out: dict = {}
        self.results["checkout"] = out
        count = min(args.units, 1000)
        prepare_cap = 20.0 if args.quick else 40.0  # seconds per pool: enough orders for a rate, not a drop
        before = self.db.max_order_id()
        self.db.restock(self.hot["id"], count)
        spread = list(self.spread)
        random.Random(5).shuffle(spread)
        pools = {}
        for key, variants in (("hot", [self.hot["id"]]), ("spread", spread)):
            started = time.perf_counter()
            pools[key] = asyncio.run(
                load.prepare(
                    self.gunicorn.port, self.hot["slug"], variants, count, args.connections, prepare_cap
                )
            )
            log(
                f"checkout {key}: {len(pools[key])} shoppers ready (cart filled, form open) in "
                f"{time.perf_counter() - started:.0f} s"
            )
        totals = {
            key: {"accepted": [], "refused": 0, "errors": 0, "seconds": 0.0, "cpu": {}} for key in pools
        }
        recorders = {key: load.Recorder() for key in pools}
        # The ceiling's POST enqueues a job nobody runs; so that both sides do the same work, the rq workers
        # sit out the posting (`rq suspend`) and pay the orders afterwards. The drop measures them together.
        self.queues.suspend_workers()
        try:
            self._place_pools(pools, totals, recorders)
        finally:
            self.queues.resume_workers()
        for key, total in totals.items():
            numbers = [number for number, _ in total["accepted"]]
            self.accepted_numbers.update(numbers)
            cpu = total["cpu"]
            n = len(numbers)
            figures = recorders[key].label("place_order")
            figures.pop("rps", None)  # the rate is orders_per_s, over the posting time only
            out[key] = {
                "offered": count,
                "prepared": len(pools[key]),
                "accepted": n,
                "refused": total["refused"],
                "errors": total["errors"],
                "orders_per_s": round(n / total["seconds"], 1) if total["seconds"] else None,
                "place_order": figures,
                "server_cpu_ms": round((cpu["web"] + cpu["postgres"]) / n * 1000, 2) if n else None,
                "web_cpu_ms": round(cpu["web"] / n * 1000, 2) if n else None,
                "db_cpu_ms": round(cpu["postgres"] / n * 1000, 2) if n else None,
                "other_cores": round(cpu["other_cores"] / 2, 2),
            }
            log(
                f"checkout {key}: {n} accepted, {total['refused']} refused, {total['errors']} errors, "
                f"{out[key]['orders_per_s']} orders/s, p99 {figures.get('p99_ms')} ms"
            )
        in_db = {row["number"] for row in self.db.order_times(before)}
        placed_numbers = {number for total in totals.values() for number, _ in total["accepted"]}
        self._check(
            "checkout only: every accepted order is in the database",
            placed_numbers <= in_db,
            f"{len(placed_numbers - in_db)} missing of {len(placed_numbers)}",
        )
        sold = sum(self.db.units_sold(self.hot["id"], before).values())
        self._check(
            "checkout only, hot: units sold <= units offered", sold <= count, f"{sold} sold of {count}"
        )

    def _place_pools(self, pools: dict, totals: dict, recorders: dict) -> None:
        """Post the prepared orders in alternating halves (hot, spread, hot, spread)."""
        args = self.args
        for half in (0, 1):
            for key, ready in pools.items():
                middle = len(ready) // 2
                part = ready[:middle] if half == 0 else ready[middle:]
                if not part:
                    continue
                with Meter(self) as meter:
                    placed = asyncio.run(load.place(part, args.connections, 120, recorder=recorders[key]))
                total = totals[key]
                total["accepted"] += placed.accepted
                total["refused"] += placed.refused
                total["errors"] += placed.errors
                if placed.accepted:
                    total["seconds"] += placed.accepted[-1][1] - placed.first_sent
                for name, value in meter.cpu.items():
                    total["cpu"][name] = total["cpu"].get(name, 0.0) + value

    # -- payments by worker count ---------------------------------------------------------------------

    def set_workers(self, count: int) -> list[Proc]:
        """Start or stop rq workers (a warm shutdown: a job in hand is finished) to have `count`; the new ones."""
        fresh = []
        if count > len(self.workers):
            fresh = sut.start_workers(self.stack, self.run_dir, self.env, count - len(self.workers))
            self.workers += fresh
            self._warm(fresh)
        while len(self.workers) > count:
            self.stack.remove(self.workers.pop(), timeout=30)
        return fresh

    def _warm(self, fresh: list[Proc], timeout: float = 60.0) -> None:
        """Give every new worker a job that does nothing (finalize_order of no order) and wait until each has
        finished one: the shop's app is built in a worker on its first job (jobs/__init__.py), a second or more
        of CPU that a long-running production worker has paid long before a drop."""
        from rq import Queue

        queue = Queue("payments", connection=self.queues.redis)
        for _ in fresh:
            queue.enqueue("jobs.payments.finalize_order", 0)
        deadline = time.perf_counter() + timeout
        for proc in fresh:
            with contextlib.suppress(Exception):
                proc.wait_for_log("Successfully completed", max(0.5, deadline - time.perf_counter()))

    def worker_sweep(self) -> None:
        args = self.args
        steps = []
        self.results["worker_sweep"] = {"steps": steps}
        window = 8.0
        for count in sorted(set(args.sweep)):
            pending = self.db.pending()
            if pending < 50:
                log(f"sweep: only {pending} orders left to pay; stopping the sweep")
                break
            log(f"sweep: {count} rq workers on {pending} pending orders")
            self.set_workers(count)
            paid_before = self.db.paid_since(0)
            ran_dry = False
            with Meter(self) as meter:
                deadline = time.perf_counter() + window
                while time.perf_counter() < deadline:
                    time.sleep(0.5)
                    if self.queues.depth() == 0:
                        ran_dry = True
            paid = self.db.paid_since(0) - paid_before
            rate = paid / meter.cpu["wall"]
            cpu = meter.per(paid, "workers", "loopback", "postgres")
            busy = sum(meter.cpu[k] for k in ("workers", "loopback", "postgres", "web")) / meter.cpu["wall"]
            steps.append(
                {
                    "workers": count,
                    "paid": paid,
                    "paid_per_s": round(rate, 1),
                    "per_worker_per_s": round(rate / count, 2),
                    "cpu_ms_per_payment": cpu,
                    "worker_cpu_ms_per_payment": meter.per(paid, "workers"),
                    "loopback_cpu_ms_per_payment": meter.per(paid, "loopback"),
                    "busy_cores": round(busy, 2),
                    "other_cores": meter.cpu["other_cores"],
                    "queue_ran_dry": ran_dry,
                }
            )
            log(
                f"sweep: {count} workers paid {rate:.1f} orders/s ({rate / count:.2f} per worker), "
                f"{cpu} ms CPU per payment, {busy:.2f} cores busy"
            )
        best = max(steps, key=lambda s: s["paid_per_s"], default=None)
        if best:
            per_worker = steps[0]["per_worker_per_s"]
            cpu = statistics.median(s["cpu_ms_per_payment"] for s in steps if s["cpu_ms_per_payment"])
            cores = os.cpu_count() or 2
            self.results["worker_sweep"]["cpu_bound_paid_per_s"] = round(cores * 1000 / cpu, 1)
            self.results["worker_sweep"]["needed"] = (
                f"one rq worker pays ~{per_worker:.1f} orders/s at {args.latency} s gateway latency (PAYMENT_BATCH "
                f"charges in flight at once); the best here was {best['paid_per_s']} paid/s with "
                f"{best['workers']} workers ({best['busy_cores']} cores busy). A payment costs ~{cpu:.0f} ms of CPU "
                f"(worker + loopback gateway + PostgreSQL), so {cores} cores can pay at most "
                f"~{cores * 1000 / cpu:.0f}/s with any number of processes. Paying a {args.units}-unit drop within "
                f"10 s of its last order needs ~{args.units / 10:.0f} paid/s sustained."
            )

    def drain(self, timeout: float = 600.0) -> float:
        """Pay every pending order: the gateway latency goes to 0 until nothing is pending, then back."""
        started = time.perf_counter()
        if self.db.pending() == 0 and self.queues.depth() == 0:
            return 0.0
        log(f"draining {self.db.pending()} pending orders with the gateway latency at 0")
        sut.set_gateway_latency(self.loopback.port, 0.0)
        try:
            sut_wait(lambda: self.db.pending() == 0 and self.queues.depth() == 0, timeout, "every order paid")
        finally:
            sut.set_gateway_latency(self.loopback.port, self.args.latency)
        return time.perf_counter() - started

    # -- the drop -------------------------------------------------------------------------------------

    def drop(
        self, shoppers: int, units: int, duration: float, label: str = "drop", pace_wait: float | None = None
    ) -> dict:
        """Sell `units` of the hot variant to whole visits of `shoppers` shoppers at a time (for at most
        `duration` seconds), follow the payments, and check the outcome."""
        args = self.args
        self.drain()
        self.set_workers(args.workers)
        self.db.restock(self.hot["id"], units)
        before = self.db.max_order_id()
        log(
            f"drop: {units} units, {shoppers} shoppers at a time, {len(self.workers)} rq workers, "
            f"gateway latency {args.latency} s"
        )
        with Sampler(self, self.hot["id"], before) as sampler, Meter(self) as meter:
            wait = args.pace_wait if pace_wait is None else pace_wait
            outcome = asyncio.run(self._drop(shoppers, units, before, duration, wait))
        drop, pace = outcome
        numbers = [number for number, _ in drop.accepted]
        self.accepted_numbers.update(numbers)
        cutoff_unpaid = pace["unpaid_at_cutoff"]
        if cutoff_unpaid:
            pace["drained_after_cutoff_s"] = round(self.drain(), 1)
        times = self.db.order_times(before)
        paid_times = [row for row in times if row["status"] == "paid"]
        in_time = [float(row["to_paid"]) for row in paid_times if row["paid"] <= pace["cutoff_epoch"]]
        to_paid = summarize(in_time)
        placed_epochs = [float(row["placed"]) for row in times]
        paid_epochs = [float(row["paid"]) for row in paid_times if row["paid"] <= pace["cutoff_epoch"]]
        paid_rate = (
            len(paid_epochs) / max(1e-9, max(paid_epochs) - min(placed_epochs))
            if len(paid_epochs) > 1
            else None
        )
        stock = self.db.stock(self.hot["id"])
        sold = self.db.units_sold(self.hot["id"], before)
        samples = [s for s in sampler.samples if "available" in s]
        observed = Counter(status for _, status, _ in drop.observed)
        result = {
            "units": units,
            "shoppers": shoppers,
            "workers": len(self.workers),
            "accepted": len(numbers),
            "paid": len(paid_times),
            "accepted_per_s": round(drop.accept_rate, 1) if drop.accept_rate else None,
            "paid_per_s": round(paid_rate, 1) if paid_rate else None,
            "place_to_paid": {
                "p50_s": _s(to_paid["p50_ms"]),
                "p90_s": _s(to_paid["p90_ms"]),
                "p99_s": _s(to_paid["p99_ms"]),
                "max_s": _s(to_paid["max_ms"]),
                "paid_before_cutoff": len(in_time),
                "unpaid_at_cutoff": cutoff_unpaid,
            },
            "ten_seconds_after_last_order": pace["ten_seconds_after"],
            "paid_all_after_s": pace["paid_all_after_s"],
            "pace_wait_s": wait,
            "requests": {label: drop.recorder.label(label) for label in drop.recorder.latencies},
            "visits": drop.visits,
            "sold_out_seen": drop.sold_out_seen,
            "browsed": drop.browsed,
            "errors": drop.errors,
            "client_errors": dict(drop.recorder.errors.most_common(8)),
            "status_page_seen": dict(observed),
            "min_available_sampled": min((s["available"] for s in samples), default=None),
            "available_at_end": stock["available"],
            "cpu_s": meter.cpu,
            "timeline": sampler.samples[:: max(1, len(sampler.samples) // 120)],
        }
        result["place_order"] = result["requests"].get("place_order")
        result["product_page"] = result["requests"].get("product_page")
        result["sold_out"] = stock["available"] == 0
        result["duration_cap_s"] = duration
        if True:
            paid_units = sold.get("paid", 0)
            held = sum(sold.values())
            db_numbers = {row["number"] for row in times}
            if result["sold_out"]:
                self._check(
                    f"{label} of {units}: paid units = K exactly",
                    paid_units == units and held == units,
                    f"paid {paid_units}, by status {sold}, available at end {stock['available']}",
                )
            else:
                self._check(
                    f"{label} of {units}: not sold out within {duration:.0f} s; units held = units paid",
                    paid_units == held <= units,
                    f"sold {held} of {units} (a time cap, not a correctness failure), paid {paid_units}",
                )
            self._check(
                f"{label} of {units}: stock never negative, never oversold",
                all(s["available"] >= 0 for s in samples)
                and 0 <= stock["reserved"] <= stock["on_hand"]
                and held <= units,
                f"min sampled {result['min_available_sampled']}, on hand {stock['on_hand']}, "
                f"reserved {stock['reserved']}, {len(samples)} samples",
            )
            self._check(
                f"{label} of {units}: no lost order",
                set(numbers) <= db_numbers,
                f"{len(set(numbers) - db_numbers)} accepted but missing; {len(db_numbers - set(numbers))} "
                "in the database without a 303 seen by the client",
            )
        return result

    async def _drop(self, shoppers: int, units: int, before: int, duration: float, pace_wait: float):
        args = self.args
        port = self.gunicorn.port
        drop, watchers = await load.drop(
            port,
            self.hot["slug"],
            self.hot["id"],
            shoppers,
            duration,
            max_visits=int((3 * units + 10 * shoppers) / max(0.05, 1 - args.browse_share)),
            poll=args.poll,
            watch_max=args.watch_max,
            browse_share=args.browse_share,
        )
        last = drop.accepted[-1][1] if drop.accepted else load.now()
        log(
            f"drop: {len(drop.accepted)} orders accepted ({drop.accept_rate or 0:.1f}/s), sold out seen "
            f"{drop.sold_out_seen} times, {drop.errors} errors; following payment"
        )
        ten = None
        paid_all = None
        for _ in range(int(pace_wait / 0.5) + 2):
            elapsed = load.now() - last
            pending = await asyncio.to_thread(self.db.pending, before)
            queued = await asyncio.to_thread(self.queues.depths)
            if ten is None and elapsed >= 10:
                ten = {**queued, "pending_orders": pending}
            if pending == 0 and paid_all is None:
                paid_all = round(elapsed, 1)
            if pending == 0 and not any(queued.values()):
                ten = ten or {**queued, "pending_orders": 0}
                break
            if elapsed >= pace_wait:
                break
            await asyncio.sleep(0.5)
        cutoff_epoch = time.time()
        unpaid = await asyncio.to_thread(self.db.pending, before)
        if ten is None:
            ten = {**await asyncio.to_thread(self.queues.depths), "pending_orders": unpaid}
        drop.watchers_left = sum(1 for task in watchers if not task.done())
        if pace_wait <= 0:  # only the order rate matters here: close the status tabs still polling
            for task in watchers:
                task.cancel()
        if watchers:
            await asyncio.wait(watchers, timeout=args.watch_max + 35)
        drop.recorder.stop()
        return drop, {
            "ten_seconds_after": ten,
            "paid_all_after_s": paid_all,
            "unpaid_at_cutoff": unpaid,
            "cutoff_epoch": cutoff_epoch,
        }

    # -- scale ----------------------------------------------------------------------------------------

    def scale_shoppers(self) -> None:
        """Whole visits at 1x, 4x and 16x the shoppers, each for a fixed window (or until `units` are sold)."""
        runs = []
        self.results["scale_shoppers"] = runs
        window = 10.0 if self.args.quick else 15.0
        units = 300 if self.args.quick else 1000
        for multiple in (1, 4, 16):
            shoppers = self.args.shoppers * multiple
            # No waiting on payment here (pace_wait 0): the figure is the order rate; the drain pays them.
            result = self.drop(shoppers, units, window, label=f"scale {multiple}x", pace_wait=0.0)
            runs.append(
                {
                    "multiple": multiple,
                    "shoppers": shoppers,
                    "window_s": window,
                    "units": units,
                    "accepted": result["accepted"],
                    "accepted_per_s": result["accepted_per_s"],
                    "sold_out": result["sold_out"],
                    "place_order": result["place_order"],
                    "product_page": result["product_page"],
                    "place_to_paid": result["place_to_paid"],
                    "errors": result["errors"],
                }
            )
            log(
                f"scale {multiple}x ({shoppers} shoppers): {result['accepted_per_s']} orders/s, place p99 "
                f"{get_ms(result['place_order'], 'p99_ms')} ms"
            )

    def scale_catalog(self) -> None:
        args = self.args
        small, big = CATALOG_DBS
        out: dict = {}
        self.results["scale_catalog"] = out
        log(
            f"catalog: {small} with 1,000 products (seed-demo), {big} with 100,000 (the same rows x100 in SQL)"
        )
        sut.prepare_database(small, self.env, self.run_dir, 1000, 10)
        sut.create_database(big, template=small)
        grow = sut.ShopDb(big)
        started = time.perf_counter()
        _grow_catalog(grow, 99)
        grow.dispose()
        log(f"catalog: grown to 100,000 products in {time.perf_counter() - started:.0f} s")
        window = max(3.0, args.duration / 2)
        for key, name in (("small", small), ("big", big)):
            db = sut.ShopDb(name)
            products = db.scalar("SELECT count(*) FROM products")
            slugs = [row["slug"] for row in db.rows("SELECT slug FROM products ORDER BY random() LIMIT 500")]
            category = db.scalar("SELECT slug FROM categories ORDER BY position LIMIT 1")
            # The snapshot cache off: what it costs to build each page from the database at this size (with
            # it on, nearly every request here would be a cache hit whatever the catalog's size).
            env = self.env | {"DATABASE_URL": sut.db_url(name), "CATALOG_CACHE_SECONDS": "0"}
            web = sut.start_gunicorn(self.stack, self.run_dir, env, name=f"gunicorn-{key}")
            try:
                figures = {"products": products}
                paths = {
                    "product_page": [f"/products/{slug}" for slug in slugs],
                    "listing": ["/products"],
                    "category": [f"/categories/{category}"],
                    "search": ["/search?q=gold", "/search?q=silver+ring", "/search?q=pearl"],
                }
                connections = min(4, args.connections)
                for page_name, urls in paths.items():
                    runs = [
                        self.measure_once(
                            lambda urls=urls, page_name=page_name, port=web.port, n=connections: load.hammer(
                                port, urls, n, window, 1.0, page_name
                            ),
                            [web],
                            [db],
                        )
                        for _ in range(args.repeat)
                    ]
                    figures[page_name] = self.median_of(f"catalog {key} {page_name}", runs)
                out[key] = figures
            finally:
                self.stack.remove(web)
                db.dispose()

    # -- correctness over everything ------------------------------------------------------------------

    def _check(self, name: str, ok: bool, detail: str = "") -> None:
        self.checks[name] = {"ok": bool(ok), "detail": detail}
        if not ok:
            log(f"CHECK FAILED: {name}: {detail}")

    def final_checks(self) -> None:
        self.drain()
        time.sleep(1.0)  # the confirmation e-mails queued by the last payments
        sut_wait(lambda: self.queues.depth() == 0, 60, "the e-mail jobs done")
        statuses = self.db.status_counts()
        self._check(
            "every order ended paid (all test-approve)",
            set(statuses) <= {"paid"},
            f"orders by status {statuses}",
        )
        paid = self.db.paid_orders()
        txns = sut.gateway_transactions(self.loopback.port)
        approved = [
            t
            for t in txns
            if t["transaction_type"] in ("authCaptureTransaction", "authOnlyTransaction")
            and t["response_code"] == "1"
        ]
        per_invoice = Counter(t["invoice_number"] for t in approved)
        doubles = {number: n for number, n in per_invoice.items() if n > 1}
        self._check(
            "one gateway charge per paid order (no double charge)",
            not doubles and set(per_invoice) == set(paid) and len(approved) == len(paid),
            f"{len(approved)} approved charges for {len(paid)} paid orders; {len(doubles)} charged twice; "
            f"{len(set(paid) - set(per_invoice))} paid without a charge; "
            f"{len(set(per_invoice) - set(paid))} charged but not paid",
        )
        wrong_amount = [
            t["invoice_number"]
            for t in approved
            if t["invoice_number"] in paid and t["auth_amount"] != paid[t["invoice_number"]]
        ]
        self._check("every charge is for the order's total", not wrong_amount, f"{len(wrong_amount)} differ")
        attempts = self.db.approved_attempts_per_order()
        self._check(
            "one approved charge attempt per paid order", set(attempts) <= {1}, f"histogram {attempts}"
        )
        problems = self.db.stock_problems()
        self._check(
            "stock: reserved = units held by orders, 0 <= reserved <= on hand, every variant",
            not problems,
            f"{len(problems)} variants off: {problems[:3]}",
        )
        lost = self.accepted_numbers - set(paid)
        self._check(
            "no lost order: every 303 the shoppers got is a paid order",
            not lost,
            f"{len(self.accepted_numbers)} accepted, {len(lost)} not paid",
        )
        registries = self.queues.registries()
        self._check(
            "RQ empty at the end (queued, started, scheduled, failed)",
            not any(registries.values()),
            str(registries),
        )

    # -- the whole run --------------------------------------------------------------------------------

    def run(self) -> dict:
        skip = self.args.skip
        self.setup()
        if "census" not in skip:
            self.census()
        if "ceilings" not in skip or "pages" not in skip:
            self.pages_and_ceilings("ceilings" not in skip, "pages" not in skip)
        if "checkout" not in skip:
            self.checkout()
            if self.args.sweep and "sweep" not in skip:
                self.worker_sweep()
        if "drop" not in skip:
            self.results["drop"] = self.drop(self.args.shoppers, self.args.units, self.args.drop_max)
        if self.args.scale:
            self.scale_shoppers()
            self.scale_catalog()
        self.final_checks()
        return self.results

    def close(self) -> None:
        self.stack.stop()
        shutil.rmtree(self.scratch, ignore_errors=True)
        for db in (self.db,):
            if db is not None:
                db.dispose()
        self.queues.close()
        if not self.args.keep:
            for name in (CEILING_DB, *CATALOG_DBS):
                with contextlib.suppress(Exception):
                    sut.drop_database(name)


def _grow_catalog(db: sut.ShopDb, copies: int) -> None:
    """Copy every product (with its variants and images) `copies` times, under new slugs and SKUs."""
    db.execute(
        "INSERT INTO products (slug, name, description, category_id, price_from, is_featured, is_active, created_at) "
        "SELECT p.slug || '-c' || g, p.name, p.description, p.category_id, p.price_from, false, p.is_active, "
        "p.created_at - make_interval(mins => g) FROM products p CROSS JOIN generate_series(1, :copies) g "
        "WHERE p.slug <> 'aurora-crystal-drop-necklace'",
        copies=copies,
    )
    db.execute(
        "INSERT INTO variants (product_id, sku, name, attributes, price, on_hand, reserved, position, per_customer_limit) "
        "SELECT n.id, v.sku || '-C' || g, v.name, v.attributes, v.price, v.on_hand, 0, v.position, v.per_customer_limit "
        "FROM products o JOIN variants v ON v.product_id = o.id CROSS JOIN generate_series(1, :copies) g "
        "JOIN products n ON n.slug = o.slug || '-c' || g",
        copies=copies,
    )
    db.execute(
        "INSERT INTO product_images (product_id, path, alt, width, height, position) "
        "SELECT n.id, i.path, i.alt, i.width, i.height, i.position "
        "FROM products o JOIN product_images i ON i.product_id = o.id CROSS JOIN generate_series(1, :copies) g "
        "JOIN products n ON n.slug = o.slug || '-c' || g",
        copies=copies,
    )
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE")


def _prune(folder: Path, keep: int) -> None:
    """Remove all but the newest `keep` run folders of earlier benches (their logs)."""
    runs = sorted((p for p in folder.glob("*-*") if p.is_dir()), key=lambda p: p.name)
    for old in runs[:-keep] if len(runs) > keep else []:
        shutil.rmtree(old, ignore_errors=True)


def _git_state() -> str:
    """The commit measured, and how many files differ from it (the working tree is what runs)."""
    import subprocess

    git = shutil.which("git")
    if git is None:
        return "unknown"
    try:
        head = subprocess.run(  # noqa: S603  (git, fixed arguments)
            [git, "rev-parse", "--short", "HEAD"],
            cwd=sut.ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(  # noqa: S603
            [git, "status", "--porcelain"],
            cwd=sut.ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head} (+{len(dirty)} changed files)" if dirty else head


def _s(ms):
    return None if ms is None else round(ms / 1000, 2)


def get_ms(figures: dict | None, key: str):
    return None if not figures else figures.get(key)


def sut_wait(check, timeout: float, what: str) -> None:
    from tools.procs import wait_for

    wait_for(check, timeout, what, interval=0.5)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args)

    def terminate(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
    started = time.perf_counter()
    failed = None
    try:
        bench.run()
    except KeyboardInterrupt:
        failed = "interrupted"
        log("interrupted: stopping everything")
    except Exception as error:
        failed = f"{error.__class__.__name__}: {error}"
        log(f"FAILED: {failed}")
        raise
    finally:
        bench.close()
        results = bench.results
        results["correctness"] = bench.checks
        weights = sum(w for w, _ in bench.other_load)
        results["meta"]["other_cores_avg"] = (
            round(sum(w * c for w, c in bench.other_load) / weights, 2) if weights else None
        )
        results["meta"]["elapsed_s"] = round(time.perf_counter() - started, 1)
        results["meta"]["failed"] = failed
        results["targets"] = report.evaluate(results)
        target = args.json or RESULTS / f"{bench.stamp}-{results['meta']['mode']}.json"
        report.write(results, target)
        text = report.render(results)
        (bench.run_dir / "report.txt").write_text(text + "\n")
        print(text)
        log(f"results in {target} (logs in {bench.run_dir}); {results['meta']['elapsed_s']:.0f} s")
    ok = failed is None and all(check["ok"] for check in bench.checks.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
