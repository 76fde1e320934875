"""Live stock streams: python -m bench.streams --streams N [--seconds S] [--sales R] [--workers W]

Starts the stream pool as the Procfile does (`gunicorn -c gunicorn_stream.conf.py wsgi_stream:app`), opens N
Server-Sent Event streams on one product (a bounded asyncio client on 127.0.0.1), and while they are open
publishes that product's stock R times a second for S seconds through the same Lua call the after-commit
publisher makes. It reports the streams held, the pool's memory per stream and CPU, and the fan-out delay
from each publication (the moment after commit when the publisher runs) to every stream receiving it
(p50/p99 over all deliveries, and per publication to the last stream). Everything it starts is stopped.
"""

import argparse
import asyncio
import json
import os
import re
import resource
import sys
import time
from pathlib import Path

import redis

from bench.stats import summarize
from tools.procs import HOST, Stack, free_port, group_cpu, group_pids, http_ok, pid_cpu, spawn, wait_for

ROOT = Path(__file__).resolve().parent.parent
LOGS = ROOT / "test-output" / "bench"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/2")
PRODUCT_ID = 900_001  # a product id of the benchmark's own: its state key and events touch nothing else
BATCH = 250  # streams opened at once (gunicorn's listen backlog is 2048)
OPEN_TIMEOUT = 180.0  # seconds for all streams to open (and for any one of them)
EVENT_ID = re.compile(rb"\nid: (\d+)\n")


def log(message: str) -> None:
    print(f"[streams {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def raise_open_files(streams: int) -> int:
    """Raise this process's soft limit on open files (its children inherit it) as far as the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = streams * 2 + 1000  # the client's sockets, and the pool's if it inherits the limit
    if soft < wanted:
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


class Client:
    """N streams on one path; when each received each event id."""

    def __init__(self, port: int, path: str) -> None:
        self.port = port
        self.request = f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nAccept: text/event-stream\r\n\r\n".encode()
        self.opened = 0
        self.failed = 0
        self.closed = 0
        self.receipts: list[list[tuple[int, float]]] = []  # per stream: (event id, monotonic time) in order

    async def stream(self) -> None:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, self.port), OPEN_TIMEOUT)
        except (OSError, TimeoutError):
            self.failed += 1
            return
        try:
            writer.write(self.request)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), OPEN_TIMEOUT)
            if b" 200 " not in head.split(b"\r\n", 1)[0]:
                self.failed += 1
                return
            self.opened += 1
            receipts: list[tuple[int, float]] = []
            self.receipts.append(receipts)
            tail = b""
            while True:  # until the run cancels it
                data = await reader.read(65536)
                if not data:
                    self.closed += 1  # the server ended it before the run did
                    return
                now = time.monotonic()
                text = tail + data
                for match in EVENT_ID.finditer(text):
                    receipts.append((int(match.group(1)), now))
                tail = text[-32:]
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            self.failed += 1
        finally:
            writer.close()


async def measure(
    port: int, pool_pgid: int, streams: int, seconds: float, sales: float, redis_url: str
) -> dict:
    """Open the streams, publish while they are open, and read what the pool and the streams saw."""
    from storefront.live import services as live

    client = Client(port, f"/stream/products/{PRODUCT_ID}")
    publisher = redis.Redis.from_url(redis_url)
    live.publish(publisher, {PRODUCT_ID: [(PRODUCT_ID, "Bench", 1_000_000)]}, time.time())
    pool_pids = group_pids(pool_pgid)
    rss_before = rss_bytes(pool_pids)
    tasks = []
    started = time.monotonic()
    deadline = started + OPEN_TIMEOUT
    for first in range(0, streams, BATCH):
        tasks += [asyncio.ensure_future(client.stream()) for _ in range(min(BATCH, streams - first))]
        # The next batch once most of this one is open: a busy pool is not buried under connects.
        while client.opened + client.failed < len(tasks) - BATCH // 5 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    while client.opened + client.failed < len(tasks) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    open_seconds = time.monotonic() - started
    await asyncio.sleep(1.0)  # the initial state reaches every stream
    log(f"{client.opened} of {streams} streams open in {open_seconds:.1f} s ({client.failed} failed)")
    rss_after = rss_bytes(group_pids(pool_pgid))

    published: dict[int, float] = {}
    cpu_before, own_before, wall_before = group_cpu(pool_pgid), pid_cpu(os.getpid()), time.monotonic()
    interval = 1.0 / sales
    for n in range(int(seconds * sales)):
        at = time.monotonic()
        seq = live.publish(publisher, {PRODUCT_ID: [(PRODUCT_ID, "Bench", 1_000_000 - n - 1)]}, time.time())
        published[seq] = at
        await asyncio.sleep(max(0.0, wall_before + (n + 1) * interval - time.monotonic()))
    await asyncio.sleep(2.0)  # the last publication's fan-out
    wall = time.monotonic() - wall_before
    pool_cpu = group_cpu(pool_pgid) - cpu_before
    own_cpu = pid_cpu(os.getpid()) - own_before
    held = sum(1 for task in tasks if not task.done())  # still open and reading
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    publisher.close()

    # A stream may skip a state when a newer one replaced it before it was written (coalescing): a stream has
    # a publication once it has received that state or a later one.
    deliveries, last_per_event, complete = [], [], 0
    for seq, at in published.items():
        delays = []
        for receipts in client.receipts:
            got = next((t for s, t in receipts if s >= seq), None)
            if got is not None:
                delays.append(got - at)
        deliveries += delays
        if delays:
            last_per_event.append(max(delays))
        complete += len(delays) >= held
    opened = max(client.opened, 1)
    return {
        "streams": streams,
        "opened": client.opened,
        "held_to_the_end": held,
        "failed": client.failed,
        "open_seconds": round(open_seconds, 1),
        "pool_rss_mb": round(rss_after / 2**20, 1),
        "pool_rss_before_mb": round(rss_before / 2**20, 1),
        "memory_per_stream_kb": round((rss_after - rss_before) / opened / 1024, 1),
        "pool_cpu_cores": round(pool_cpu / wall, 2),
        "client_cpu_cores": round(own_cpu / wall, 2),
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        "publications": len(published),
        "publications_reaching_every_stream": complete,
        "deliveries": len(deliveries),
        "fan_out_delay": summarize(deliveries),
        "fan_out_delay_to_last_stream": summarize(last_per_event),
    }


def start_pool(stack: Stack, run_dir: Path, redis_url: str, workers: int, streams: int):
    """The stream pool as the Procfile starts it, on a free port; its process and port once it answers."""
    port = free_port()
    env = dict(os.environ) | {
        "REDIS_URL": redis_url,
        "SECRET_KEY": os.environ.get("SECRET_KEY", "storefront-bench-secret"),
        "STREAM_CONCURRENCY": str(workers),
        "STREAM_WORKER_CONNECTIONS": str(streams + 100),  # connections need not spread evenly over workers
        "PYTHONUNBUFFERED": "1",
    }
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    command = [gunicorn, "-c", "gunicorn_stream.conf.py", "wsgi_stream:app", "--bind", f"{HOST}:{port}"]
    proc = stack.add(spawn("stream", command, env, run_dir / "stream.log", ROOT, port))
    wait_for(lambda: proc.log_text().count("Booting worker") >= workers, 60, "the stream workers")
    wait_for(lambda: http_ok(port, f"/stream/products/{PRODUCT_ID}"), 60, "the stream pool")
    time.sleep(3.0)  # every worker has loaded the app (they import it after forking)
    return proc, port


def run(counts: list[int], seconds: float, sales: float, workers: int, run_dir: Path, redis_url: str) -> list:
    """One fresh pool per stream count, measured in turn."""
    raise_open_files(max(counts))
    results = []
    for streams in counts:
        stack = Stack()
        try:
            proc, port = start_pool(stack, run_dir, redis_url, workers, streams)
            log(f"{streams} streams on the pool at port {port} ({workers} gevent workers)")
            results.append(asyncio.run(measure(port, proc.pid, streams, seconds, sales, redis_url)))
            log(json.dumps(results[-1]))
        finally:
            stack.stop()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.streams", description=__doc__.splitlines()[0])
    parser.add_argument("--streams", default="1000", help="open streams, or a comma list (default 1000)")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of publishing (default 20)")
    parser.add_argument(
        "--sales", type=float, default=2.0, help="publications a second (default 2, above the 250 ms window)"
    )
    parser.add_argument("--workers", type=int, default=2, help="gevent worker processes (default 2)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.streams.split(",") if n.strip()]
    if not counts or min(counts) < 1 or max(counts) > 20_000 or not 0 < args.seconds <= 300:
        parser.error("--streams 1..20000 each, --seconds up to 300")
    if not 0 < args.sales <= 50:
        parser.error("--sales must be in (0, 50]")
    run_dir = LOGS / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-streams"
    run_dir.mkdir(parents=True, exist_ok=True)
    results = run(counts, args.seconds, args.sales, args.workers, run_dir, REDIS_URL)
    text = json.dumps(
        {"command": "python -m bench.streams " + " ".join(argv or sys.argv[1:]), "runs": results}
    )
    if args.json:
        args.json.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
