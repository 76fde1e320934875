"""The system under test, started the way production starts it, plus the reads the checks need.

Databases (a fresh `storefront_bench`, migrated with Alembic and seeded with `flask seed-demo`), the loopback
Authorize.Net (`python -m tools.anet_loopback`), gunicorn (`-c gunicorn.conf.py wsgi:app`) and `rq worker`
processes (SimpleWorker, with the scheduler, on every queue, as the Procfile runs them), all on 127.0.0.1.
"""

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from tools.procs import HOST, Proc, Stack, free_port, http_ok, spawn, wait_for
from tools.sqldb import SqlDb

ROOT = Path(__file__).resolve().parent.parent
_VENV_BIN = ROOT / ".venv" / "bin"
BIN = _VENV_BIN if (_VENV_BIN / "gunicorn").exists() else Path(sys.executable).parent
PG_BASE = os.environ.get("BENCH_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/2")
MAIN_DB = "storefront_bench"
RAISED_LIMIT = "1000000/minute"
RAISED_LIMITS = ("CHECKOUT_LIMIT_PER_IP", "CHECKOUT_LIMIT_PER_SHOPPER", "ADD_TO_CART_LIMIT")
FLASH_SKU = "DEMO-FLASH"
HOLDING_STOCK = ("pending_payment", "payment_review", "payment_failed", "paid")
START_TIMEOUT = 60.0  # seconds for a process to come up on a busy 2-core box
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def db_url(name: str) -> str:
    return f"{PG_BASE}/{name}"


def _admin() -> Engine:
    return create_engine(db_url("postgres"), isolation_level="AUTOCOMMIT", pool_size=1, max_overflow=0)


def drop_database(name: str) -> None:
    """Drop one of the bench's own databases (never anything else), ending its sessions first."""
    assert name.startswith("storefront_bench"), name
    engine = _admin()
    try:
        with engine.connect() as connection:
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    finally:
        engine.dispose()


def create_database(name: str, template: str | None = None) -> None:
    """A fresh database (dropped first if it exists), optionally a copy of `template`."""
    drop_database(name)
    engine = _admin()
    try:
        with engine.connect() as connection:
            if template:
                connection.execute(
                    text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                    {"name": template},
                )
            suffix = f' TEMPLATE "{template}"' if template else ""
            connection.execute(text(f'CREATE DATABASE "{name}"{suffix}'))
    finally:
        engine.dispose()


def base_env() -> dict:
    env = dict(os.environ)
    for name in ("STOREFRONT_ENV", "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        env.pop(name, None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def shop_env(database: str, loopback_port: int, scratch: Path, **extra: str) -> dict:
    """Every shop process's environment: production settings, Authorize.Net on the loopback, limits raised;
    e-mails (thousands of .eml files per run) and demo images go under `scratch`."""
    env = base_env() | {
        "STOREFRONT_ENV": "production",
        "SECRET_KEY": "storefront-bench-secret",
        "DATABASE_URL": db_url(database),
        "REDIS_URL": REDIS_URL,
        "PAYMENT_GATEWAY": "authorizenet",
        "AUTHNET_API_LOGIN_ID": "storefront-test",
        "AUTHNET_TRANSACTION_KEY": "storefront-key",
        "AUTHNET_ENDPOINT": f"http://{HOST}:{loopback_port}/xml/v1/request.api",
        "MAIL_OUTBOX": str(scratch / "outbox"),
        "MEDIA_FOLDER": str(scratch / "media"),
    }
    env |= dict.fromkeys(RAISED_LIMITS, RAISED_LIMIT)
    return env | extra


def run_tool(env: dict, command: list[str], log_path: Path, timeout: float) -> str:
    """A one-off command (alembic, flask) with the shop's environment; its output goes to the run's logs."""
    result = subprocess.run(  # noqa: S603  (alembic and flask from the venv, fixed arguments)
        command,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    with log_path.open("a") as log:
        log.write(f"$ {' '.join(command)}  (exit {result.returncode})\n{result.stdout}{result.stderr}\n")
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return result.stdout


def prepare_database(name: str, env: dict, run_dir: Path, products: int, flash_stock: int) -> dict:
    """Create, migrate (`alembic upgrade head`) and seed (`flask seed-demo`) a database."""
    create_database(name)
    env = env | {"DATABASE_URL": db_url(name)}
    log = run_dir / "setup.log"
    run_tool(env, [str(BIN / "alembic"), "upgrade", "head"], log, timeout=180)
    out = run_tool(
        env,
        [
            str(BIN / "flask"),
            "--app",
            "wsgi",
            "seed-demo",
            "--products",
            str(products),
            "--flash-stock",
            str(flash_stock),
        ],
        log,
        timeout=600,
    )
    return json.loads(out.strip().splitlines()[-1])


# -- processes ----------------------------------------------------------------------------------------


def start_loopback(stack: Stack, run_dir: Path, latency: float) -> Proc:
    port = free_port()
    command = [str(BIN / "python"), "-m", "tools.anet_loopback", "--host", HOST, "--port", str(port)]
    command += ["--latency", str(latency)]
    proc = stack.add(spawn("loopback", command, base_env(), run_dir / "loopback.log", ROOT, port))
    proc.wait_for_log(rf"listening on http://127\.0\.0\.1:{port}\b", START_TIMEOUT)
    return proc


def start_gunicorn(
    stack: Stack,
    run_dir: Path,
    env: dict,
    name: str = "gunicorn",
    app: str = "wsgi:app",
    config: str = "gunicorn.conf.py",
    ready_path: str = "/",
) -> Proc:
    """gunicorn with the given config on a free port, ready once `ready_path` answers."""
    port = free_port()
    proc_env = env | {"BIND": f"{HOST}:{port}"}
    command = [str(BIN / "gunicorn"), "-c", config, app]
    proc = stack.add(spawn(name, command, proc_env, run_dir / f"{name}.log", ROOT, port))

    def ready():
        if not proc.alive():
            raise RuntimeError(f"{name} exited ({proc.popen.returncode}):\n{proc.log_tail()}")
        return http_ok(port, ready_path)

    wait_for(ready, START_TIMEOUT, f"{name} on port {port}", interval=0.2)
    return proc


_worker_numbers = iter(range(1, 100_000))


def start_workers(stack: Stack, run_dir: Path, env: dict, count: int) -> list[Proc]:
    """`rq worker` processes as the Procfile runs them (SimpleWorker, with the scheduler, every queue)."""
    procs = []
    for _ in range(count):
        number = next(_worker_numbers)
        command = [str(BIN / "rq"), "worker", "--url", env["REDIS_URL"], "--worker-class"]
        command += ["rq.worker.SimpleWorker", "--with-scheduler", "payments", "default"]
        log = run_dir / "workers" / f"rq-worker-{number}.log"
        procs.append(stack.add(spawn(f"rq-worker-{number}", command, env, log, ROOT)))
    for proc in procs:
        proc.wait_for_log(r"\*\*\* Listening on", START_TIMEOUT)
    return procs


# -- the loopback gateway's control API ---------------------------------------------------------------


def _control(port: int, method: str, path: str, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"http://{HOST}:{port}/_control/{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with _NO_PROXY.open(request, timeout=30) as response:
        return json.loads(response.read())


def set_gateway_latency(port: int, seconds: float) -> None:
    _control(port, "POST", "latency", {"seconds": seconds})


def gateway_transactions(port: int) -> list[dict]:
    return _control(port, "GET", "transactions")


# -- reads on the shop's database and queues ----------------------------------------------------------


class ShopDb(SqlDb):
    """Straight reads (and stock top-ups) on the bench's PostgreSQL database."""

    def __init__(self, name: str):
        self.name = name
        super().__init__(db_url(name))

    def variant(self, sku: str) -> dict:
        [row] = self.rows(
            "SELECT v.id, v.on_hand, v.reserved, v.on_hand - v.reserved AS available, p.slug "
            "FROM variants v JOIN products p ON p.id = v.product_id WHERE v.sku = :sku",
            sku=sku,
        )
        return row

    def stock(self, variant_id: int) -> dict:
        [row] = self.rows(
            "SELECT on_hand, reserved, on_hand - reserved AS available FROM variants WHERE id = :id",
            id=variant_id,
        )
        return row

    def restock(self, variant_id: int, units: int) -> None:
        """Make exactly `units` available (what staff do before a drop), keeping every reservation."""
        self.execute(
            "UPDATE variants SET on_hand = reserved + :units WHERE id = :id", units=units, id=variant_id
        )

    def spread_variants(self, exclude: int, min_available: int = 20) -> list[int]:
        return [
            row["id"]
            for row in self.rows(
                "SELECT v.id FROM variants v JOIN products p ON p.id = v.product_id "
                "WHERE p.is_active AND v.id <> :exclude AND v.on_hand - v.reserved >= :low ORDER BY v.id",
                exclude=exclude,
                low=min_available,
            )
        ]

    def max_order_id(self) -> int:
        return self.scalar("SELECT coalesce(max(id), 0) FROM orders")

    def status_counts(self, after_id: int = 0) -> dict[str, int]:
        return {
            row["status"]: row["n"]
            for row in self.rows(
                "SELECT status, count(*) AS n FROM orders WHERE id > :after GROUP BY status", after=after_id
            )
        }

    def pending(self, after_id: int = 0) -> int:
        return self.scalar(
            "SELECT count(*) FROM orders WHERE id > :after AND status IN ('pending_payment', 'payment_review')",
            after=after_id,
        )

    def paid_since(self, after_id: int) -> int:
        return self.scalar(
            "SELECT count(*) FROM orders WHERE id > :after AND status = 'paid'", after=after_id
        )

    def order_times(self, after_id: int, up_to_id: int | None = None) -> list[dict]:
        """Per order: number, status, seconds from placed to paid (None if unpaid), epoch of placing and paying."""
        return self.rows(
            "SELECT number, status, extract(epoch FROM paid_at - created_at) AS to_paid, "
            "extract(epoch FROM created_at) AS placed, extract(epoch FROM paid_at) AS paid "
            "FROM orders WHERE id > :after AND id <= :upto ORDER BY id",
            after=after_id,
            upto=up_to_id if up_to_id is not None else 2**31 - 1,
        )

    def units_sold(self, variant_id: int, after_id: int) -> dict[str, int]:
        """Units of one variant in orders placed after `after_id`, by order status."""
        return {
            row["status"]: int(row["units"])
            for row in self.rows(
                "SELECT o.status, sum(l.quantity) AS units FROM orders o JOIN order_lines l ON l.order_id = o.id "
                "WHERE o.id > :after AND l.variant_id = :variant GROUP BY o.status",
                after=after_id,
                variant=variant_id,
            )
        }

    def stock_problems(self) -> list[dict]:
        """Variants whose reservation does not match the orders holding stock, or outside 0..on_hand."""
        holding = ", ".join(f"'{status}'" for status in HOLDING_STOCK)
        return self.rows(
            "SELECT v.id, v.sku, v.on_hand, v.reserved, coalesce(h.units, 0) AS held "  # noqa: S608  (constants)
            "FROM variants v LEFT JOIN ("
            "  SELECT l.variant_id, sum(l.quantity) AS units FROM order_lines l JOIN orders o ON o.id = l.order_id "
            f"  WHERE o.status IN ({holding}) GROUP BY l.variant_id"
            ") h ON h.variant_id = v.id "
            "WHERE v.reserved <> coalesce(h.units, 0) OR v.reserved < 0 OR v.reserved > v.on_hand"
        )

    def paid_orders(self) -> dict[str, str]:
        """number -> total (as text) of every paid order."""
        return {
            row["number"]: str(row["total"])
            for row in self.rows("SELECT number, total FROM orders WHERE status = 'paid'")
        }

    def approved_attempts_per_order(self) -> dict[int, int]:
        """How many approved charge attempts each order has (a histogram: attempts -> orders)."""
        return {
            row["attempts"]: row["orders"]
            for row in self.rows(
                "SELECT attempts, count(*) AS orders FROM ("
                "  SELECT o.id, count(a.id) FILTER (WHERE a.kind = 'charge' AND a.status = 'approved') AS attempts"
                "  FROM orders o LEFT JOIN payment_attempts a ON a.order_id = o.id WHERE o.status = 'paid'"
                "  GROUP BY o.id) per_order GROUP BY attempts"
            )
        }

    def backend_pids(self) -> list[int]:
        """PostgreSQL server processes serving this database (for CPU accounting)."""
        return [
            row["pid"]
            for row in self.rows("SELECT pid FROM pg_stat_activity WHERE datname = :name", name=self.name)
        ]


class Queues:
    """The RQ queues and registries in the bench's Redis db."""

    NAMES = ("payments", "default")

    def __init__(self, url: str = REDIS_URL):
        self.redis = redis.Redis.from_url(url)

    def flush(self) -> None:
        """Empty the bench's own Redis db (db 2): queues, limits and sessions of earlier runs."""
        self.redis.flushdb()

    def depth(self) -> int:
        return sum(self.redis.llen(f"rq:queue:{name}") for name in self.NAMES)

    def suspend_workers(self) -> None:
        """`rq suspend`: the workers finish the job in hand and take no other until resumed."""
        from rq.suspension import suspend

        suspend(self.redis)

    def resume_workers(self) -> None:
        from rq.suspension import resume

        resume(self.redis)

    def depths(self) -> dict[str, int]:
        """Jobs waiting per queue: {"payments_queued": n, "default_queued": n} (e-mails go to default)."""
        return {f"{name}_queued": self.redis.llen(f"rq:queue:{name}") for name in self.NAMES}

    def registries(self) -> dict[str, int]:
        from rq import Queue
        from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

        counts = {"queued": 0, "started": 0, "scheduled": 0, "failed": 0}
        for name in self.NAMES:
            queue = Queue(name, connection=self.redis)
            counts["queued"] += queue.count
            counts["started"] += StartedJobRegistry(queue=queue).count
            counts["scheduled"] += ScheduledJobRegistry(queue=queue).count
            counts["failed"] += FailedJobRegistry(queue=queue).count
        return counts

    def close(self) -> None:
        self.redis.close()
