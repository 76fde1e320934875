"""A harness for the live tests: the real processes, started the way production starts them.

gunicorn (`-c gunicorn.conf.py wsgi:app`), `rq worker` (SimpleWorker, with the scheduler), the loopback
Authorize.Net (`python -m tools.anet_loopback`) and, for outage tests, a private `redis-server`. Each runs in
its own process group with its own log file under test-output/live/. Around them: the environment production
would give them, a small HTTP shopper, buyers spread over several OS processes, and helpers that read stock
and orders straight from PostgreSQL.

Plain functions and classes (no pytest fixtures); tests/test_live.py wires them up. Everything listens on and
talks to 127.0.0.1 only, and every wait here is bounded in time and in count.
"""

import contextlib
import json
import multiprocessing
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import requests
from sqlalchemy.orm import Session

from tools.procs import (  # noqa: F401  (the live tests use them through this module)
    START_TIMEOUT,
    STOP_TIMEOUT,
    Proc,
    StartError,
    free_port,
    spawn,
    stop_all,
    wait_for,
)
from tools.sqldb import SqlDb

ROOT = Path(__file__).resolve().parent.parent
LOG_ROOT = ROOT / "test-output" / "live"
_VENV_BIN = ROOT / ".venv" / "bin"
BIN = _VENV_BIN if (_VENV_BIN / "gunicorn").exists() else Path(sys.executable).parent
HOST = "127.0.0.1"
REQUEST_TIMEOUT = 20.0  # seconds for one HTTP request of a shopper
RAISED_LIMIT = "100000/minute"
RAISED_LIMITS = (
    "CHECKOUT_LIMIT_PER_IP",
    "CHECKOUT_LIMIT_PER_SHOPPER",
    "ADD_TO_CART_LIMIT",
    "LOGIN_LIMIT_PER_IP",
    "LOGIN_LIMIT_PER_ACCOUNT",
    "REGISTER_LIMIT",
)
NONCE_DESCRIPTOR = "COMMON.ACCEPT.INAPP.PAYMENT"
ADDRESS = {
    "full_name": "Ada Lovelace",
    "line1": "1 Main St",
    "line2": "",
    "city": "Springfield",
    "region": "",
    "postal_code": "62701",
    "country": "US",
    "phone": "",
    "shipping_method": "standard",
}


def run_log_dir(run: str) -> Path:
    """This run's folder under test-output/live/, emptied; folders of runs over an hour old are removed."""
    LOG_ROOT.mkdir(parents=True, exist_ok=True)
    for old in LOG_ROOT.iterdir():
        if old.is_dir() and time.time() - old.stat().st_mtime > 3600:
            _remove_tree(old)
    folder = LOG_ROOT / run
    _remove_tree(folder)
    folder.mkdir(parents=True)
    return folder


def _remove_tree(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


# -- processes ----------------------------------------------------------------------------------------

P = TypeVar("P", bound=Proc)


def _start_on_free_port(
    cls: type[P],
    name: str,
    build: Callable[[int], tuple[list[str], dict]],
    ready: Callable[[P], None],
    log_dir: Path,
) -> P:
    """Start on a free port; a port taken between the check and the bind gets one more try elsewhere."""
    last: Exception | None = None
    for _ in range(3):
        port = free_port()
        command, env = build(port)
        log_path = log_dir / f"{name}-{port}.log"
        proc = spawn(name, command, env, log_path, ROOT, port, cls=cls)
        try:
            ready(proc)
            return proc
        except StartError as error:
            proc.stop(timeout=3)
            last = error
            if "in use" not in proc.log_text().lower():
                break
    raise last or StartError(f"{name} did not start")


def base_env() -> dict:
    """The test process's environment, minus what must not leak into the servers."""
    env = dict(os.environ)
    for name in ("STOREFRONT_ENV", "http_proxy", "https_proxy"):
        env.pop(name, None)
    local = "127.0.0.1,localhost"
    for name in ("NO_PROXY", "no_proxy"):
        env[name] = f"{env[name]},{local}" if env.get(name) else local
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Loopback(Proc):
    """The loopback Authorize.Net in its own process, with its JSON control API."""

    @property
    def endpoint(self) -> str:
        return self.url + "/xml/v1/request.api"

    def _control(self, method: str, path: str, body: dict | None = None):
        response = requests.request(
            method, f"{self.url}/_control/{path}", json=body, timeout=5, proxies={"http": "", "https": ""}
        )
        response.raise_for_status()
        return response.json()

    def fault(self, mode: str, count: int = 1, hang_seconds: float = 30.0) -> dict:
        return self._control("POST", "fault", {"mode": mode, "count": count, "hang_seconds": hang_seconds})

    def latency(self, seconds: float) -> dict:
        return self._control("POST", "latency", {"seconds": seconds})

    def reset(self) -> None:
        self._control("POST", "reset", {})

    def transactions(self) -> list[dict]:
        return self._control("GET", "transactions")

    def peak_in_flight(self) -> int:
        """The most createTransaction calls answered at once since the last reset."""
        return self._control("GET", "stats")["peak_in_flight"]

    def charges(self, invoice_number: str | None = None) -> list[dict]:
        """Booked auth/auth-capture transactions (approved or declined), optionally for one invoice."""
        return [
            t
            for t in self.transactions()
            if t["transaction_type"] in ("authCaptureTransaction", "authOnlyTransaction")
            and (invoice_number is None or t["invoice_number"] == invoice_number)
        ]


def start_loopback(latency: float = 0.0, log_dir: Path = LOG_ROOT) -> Loopback:
    """`python -m tools.anet_loopback --port <free>`, ready once it printed its "listening on" line."""

    def build(port):
        command = [str(BIN / "python"), "-m", "tools.anet_loopback", "--host", HOST, "--port", str(port)]
        return [*command, "--latency", str(latency)], base_env()

    def ready(proc):
        proc.wait_for_log(rf"listening on http://127\.0\.0\.1:{proc.port}\b")

    return _start_on_free_port(Loopback, "loopback", build, ready, log_dir)


class Gunicorn(Proc):
    """gunicorn's master; its workers are its children."""

    @property
    def access_log_path(self) -> Path:
        return self.log_path.with_name(f"gunicorn-{self.port}-access.log")

    def worker_pids(self) -> list[int]:
        return self.children()

    def access_lines(self) -> list[str]:
        try:
            return self.access_log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []


def start_gunicorn(env: dict, workers: int = 2, log_dir: Path = LOG_ROOT) -> Gunicorn:
    """`gunicorn -c gunicorn.conf.py wsgi:app` on a free port, ready once GET / answers 200 (at most ~20 s)."""

    def build(port):
        access_log = log_dir / f"gunicorn-{port}-access.log"
        return [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"], env | {
            "BIND": f"{HOST}:{port}",
            "WEB_CONCURRENCY": str(workers),
            "ACCESS_LOG": str(access_log),
        }

    def ready(proc):
        def answers():
            if not proc.alive():
                raise StartError(f"gunicorn exited ({proc.popen.returncode}); log:\n{proc.log_tail()}")
            try:
                return http_get(proc.url + "/", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        try:
            wait_for(answers, START_TIMEOUT, f"gunicorn at {proc.url}", interval=0.2)
        except TimeoutError as error:
            raise StartError(f"{error}; log:\n{proc.log_tail()}") from None

    return _start_on_free_port(Gunicorn, "gunicorn", build, ready, log_dir)


_worker_numbers = iter(range(1, 10_000))


def start_worker(env: dict, log_dir: Path = LOG_ROOT) -> Proc:
    """`rq worker` as the Procfile runs it: SimpleWorker, with the scheduler, on payments and default."""
    number = next(_worker_numbers)
    command = [
        str(BIN / "rq"),
        "worker",
        "--url",
        env["REDIS_URL"],
        "--worker-class",
        "rq.worker.SimpleWorker",
        "--with-scheduler",
        "--path",
        str(ROOT),
        "payments",
        "default",
    ]
    log_path = log_dir / f"rq-worker-{number}.log"
    proc = spawn(f"rq-worker-{number}", command, env, log_path, ROOT)
    try:
        proc.wait_for_log(r"\*\*\* Listening on")
    except StartError:
        proc.stop(timeout=3)
        raise
    return proc


def start_redis(log_dir: Path = LOG_ROOT) -> Proc:
    """A private, throw-away redis-server on a free port (no persistence), for outage tests."""
    work_dir = Path(tempfile.mkdtemp(prefix="storefront-live-redis-"))

    def build(port):
        command = ["redis-server", "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"]
        return [*command, "--dir", str(work_dir)], base_env()

    def ready(proc):
        proc.wait_for_log(r"Ready to accept connections")

    proc = _start_on_free_port(Proc, "redis", build, ready, log_dir)
    proc.url = f"redis://{HOST}:{proc.port}/0"
    return proc


def run_flask(env: dict, *args: str, log_dir: Path = LOG_ROOT, timeout: float = 60) -> str:
    """`flask --app wsgi <args>` with the shop's environment; its output is kept under the logs too."""
    result = subprocess.run(
        [str(BIN / "flask"), "--app", "wsgi", *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    with (log_dir / f"flask-{args[0]}.log").open("a") as log:
        log.write(f"$ flask --app wsgi {' '.join(args)}  (exit {result.returncode})\n")
        log.write(result.stdout + result.stderr)
    if result.returncode != 0:
        raise RuntimeError(f"flask {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result.stdout


def shop_env(
    database_url: str, redis_url: str, loopback_url: str, tmp_dir: Path | None = None, **overrides: str
) -> dict:
    """The environment of every shop process: Authorize.Net on the loopback, limits raised for load."""
    tmp = Path(tmp_dir) if tmp_dir else Path(tempfile.mkdtemp(prefix="storefront-live-"))
    env = base_env() | {
        "SECRET_KEY": "live-test",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "PAYMENT_GATEWAY": "authorizenet",
        "AUTHNET_API_LOGIN_ID": "storefront-test",  # tools.anet_loopback.DEFAULT_LOGIN
        "AUTHNET_TRANSACTION_KEY": "storefront-key",  # tools.anet_loopback.DEFAULT_KEY
        "AUTHNET_ENDPOINT": f"{loopback_url}/xml/v1/request.api",
        "AUTHNET_READ_TIMEOUT": "3",
        "AUTHNET_CONNECT_TIMEOUT": "2",
        "MAIL_OUTBOX": str(tmp / "outbox"),
        "MEDIA_FOLDER": str(tmp / "media"),
    }
    env |= dict.fromkeys(RAISED_LIMITS, RAISED_LIMIT)
    return env | {name: str(value) for name, value in overrides.items()}


# -- HTTP ---------------------------------------------------------------------------------------------

_NO_PROXY = {"http": "", "https": ""}
CSRF_BODY = re.compile(r"""hx-headers='\{"X-CSRFToken": "([^"]+)"\}'""")
CSRF_INPUT = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')
IDEMPOTENCY_INPUT = re.compile(
    r'name="idempotency_key"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="idempotency_key"'
)
ADD_ERROR = re.compile(r'class="status-error">([^<]*)<')
CHECKOUT_ERROR = re.compile(r'role="alert"><p>([^<]*)</p>')
ORDER_LOCATION = re.compile(r"/orders/(SF-[A-Z0-9]+)$")


def http_get(url: str, timeout: float = 5) -> requests.Response:
    """One GET without a session (and without any proxy)."""
    return requests.get(url, timeout=timeout, allow_redirects=False, proxies=_NO_PROXY)


def _first(match: re.Match | None) -> str | None:
    return next((group for group in match.groups() if group), None) if match else None


class DeadlinePassed(RuntimeError):
    """The buyer's overall deadline passed before this request."""


class Shopper:
    """One browser without JavaScript: a cookie jar, the CSRF token of the last page, plain form posts."""

    def __init__(self, base_url: str, timeout: float = REQUEST_TIMEOUT, deadline: float | None = None):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.deadline = deadline  # time.time() after which no new request starts
        self.http = requests.Session()
        self.http.trust_env = False  # no proxy, no .netrc: 127.0.0.1 directly
        self.csrf = ""
        self.email = f"buyer-{uuid.uuid4().hex[:12]}@example.com"

    def close(self) -> None:
        self.http.close()

    def _check_deadline(self) -> None:
        if self.deadline is not None and time.time() > self.deadline:
            raise DeadlinePassed("the buyers' deadline passed")

    def get(self, path: str, **kwargs) -> requests.Response:
        self._check_deadline()
        response = self.http.get(self.base_url + path, timeout=self.timeout, allow_redirects=False, **kwargs)
        self._remember_csrf(response)
        return response

    def post(self, path: str, data: dict, **kwargs) -> requests.Response:
        self._check_deadline()
        return self.http.post(
            self.base_url + path, data=data, timeout=self.timeout, allow_redirects=False, **kwargs
        )

    def _remember_csrf(self, response: requests.Response) -> None:
        if "html" not in response.headers.get("Content-Type", ""):
            return
        token = _first(CSRF_BODY.search(response.text)) or _first(CSRF_INPUT.search(response.text))
        if token:
            self.csrf = token

    def open(self, path: str) -> requests.Response:
        """GET a page and keep its CSRF token."""
        return self.get(path)

    def open_product(self, slug: str) -> requests.Response:
        return self.open(f"/products/{slug}")

    def add(self, variant_id: int, quantity: int = 1) -> requests.Response:
        """Add to cart the no-JS way: 303 to /cart, or 422 with the reason on the product page."""
        if not self.csrf:
            self.open("/")
        return self.post(
            "/cart/add", {"variant_id": variant_id, "quantity": quantity, "csrf_token": self.csrf}
        )

    def open_checkout(self) -> dict:
        """GET /checkout and return the hidden fields to post back: csrf_token and idempotency_key."""
        page = self.open("/checkout")
        key = _first(IDEMPOTENCY_INPUT.search(page.text)) if page.status_code == 200 else None
        if key is None:
            raise AssertionError(f"no checkout form: GET /checkout answered {page.status_code}")
        return {"csrf_token": self.csrf, "idempotency_key": key}

    def checkout_data(self, form: dict, nonce: str = "test-approve", **extra: str) -> dict:
        return {
            **form,
            **ADDRESS,
            "email": self.email,
            "dataDescriptor": NONCE_DESCRIPTOR,
            "dataValue": nonce,
            **extra,
        }

    def place_order(
        self, form: dict | None = None, nonce: str = "test-approve", **extra
    ) -> requests.Response:
        """POST /checkout with a test nonce: 303 to the order's status page, or 409/422/503 with the reason."""
        form = form or self.open_checkout()
        return self.post("/checkout", self.checkout_data(form, nonce, **extra))

    def order_status(self, number: str) -> requests.Response:
        return self.get(f"/orders/{number}")


def order_number(response: requests.Response) -> str | None:
    """The order number a 303 after checkout points to."""
    return _first(ORDER_LOCATION.search(response.headers.get("Location", "")))


# -- many buyers, from several OS processes -----------------------------------------------------------


@dataclass
class Purchase:
    """One buyer's visit: what each request answered, and how it ended."""

    plan: list[tuple[str, int]]  # (product slug, variant id) to add, in this order
    steps: list[tuple[str, int, float]] = field(default_factory=list)  # (what, HTTP status, seconds)
    outcome: str = (
        ""  # ready (cart and form, not posted yet) | ordered | add_refused | checkout_refused | failed
    )
    number: str | None = None
    message: str = ""
    error: str = ""
    cookies: dict = field(default_factory=dict, repr=False)  # the browser's session, between the two phases
    form: dict = field(default_factory=dict, repr=False)  # the checkout form's hidden fields
    email: str = ""

    @property
    def statuses(self) -> list[int]:
        return [status for _, status, _ in self.steps]


def _step(purchase: Purchase, what: str, call: Callable[[], requests.Response]) -> requests.Response:
    started = time.monotonic()
    response = call()
    purchase.steps.append((what, response.status_code, round(time.monotonic() - started, 3)))
    return response


def _guarded(purchase: Purchase, visit: Callable[[], None]) -> Purchase:
    try:
        visit()
    except (requests.RequestException, DeadlinePassed) as error:
        purchase.outcome, purchase.error = "failed", f"{error.__class__.__name__}: {error}"
    return purchase


def fill_cart(base_url: str, plan: list[tuple[str, int]], deadline: float, timeout: float) -> Purchase:
    """Open each product and add one unit of its variant, in order, then open the checkout form."""
    purchase = Purchase(plan=plan)
    shopper = Shopper(base_url, timeout=timeout, deadline=deadline)

    def visit():
        for slug, variant_id in plan:
            page = _step(purchase, f"product {slug}", lambda slug=slug: shopper.open_product(slug))
            if page.status_code != 200:
                purchase.outcome = "failed"
                return
            added = _step(purchase, f"add {variant_id}", lambda v=variant_id: shopper.add(v))
            if added.status_code == 422:
                purchase.outcome = "add_refused"
                purchase.message = _first(ADD_ERROR.search(added.text)) or added.text[-300:]
                return
            if added.status_code != 303:
                purchase.outcome = "failed"
                return
        form_page = _step(purchase, "checkout page", lambda: shopper.open("/checkout"))
        key = _first(IDEMPOTENCY_INPUT.search(form_page.text))
        if form_page.status_code != 200 or key is None:
            purchase.outcome = "failed"
            return
        purchase.form = {"csrf_token": shopper.csrf, "idempotency_key": key}
        purchase.cookies = requests.utils.dict_from_cookiejar(shopper.http.cookies)
        purchase.email = shopper.email
        purchase.outcome = "ready"

    try:
        return _guarded(purchase, visit)
    finally:
        shopper.close()


def place(base_url: str, purchase: Purchase, deadline: float, timeout: float) -> Purchase:
    """Post the checkout form of a filled cart with `test-approve`: ordered, or refused with the reason."""
    shopper = Shopper(base_url, timeout=timeout, deadline=deadline)
    shopper.http.cookies.update(purchase.cookies)
    shopper.email = purchase.email or shopper.email

    def visit():
        placed = _step(purchase, "place order", lambda: shopper.place_order(purchase.form))
        if placed.status_code == 303 and order_number(placed):
            purchase.outcome, purchase.number = "ordered", order_number(placed)
        elif placed.status_code == 409:
            purchase.outcome = "checkout_refused"
            purchase.message = _first(CHECKOUT_ERROR.search(placed.text)) or placed.text[-300:]
        else:
            purchase.outcome = "failed"

    try:
        return _guarded(purchase, visit)
    finally:
        shopper.close()


def buy(base_url: str, plan: list[tuple[str, int]], deadline: float, timeout: float) -> Purchase:
    """The whole visit in one go: products, cart, checkout form, order."""
    purchase = fill_cart(base_url, plan, deadline, timeout)
    return place(base_url, purchase, deadline, timeout) if purchase.outcome == "ready" else purchase


def _in_threads(task: Callable, base_url: str, items: list, threads: int, deadline: float, timeout: float):
    """One buyer process: `threads` buyers at a time."""
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(lambda item: task(base_url, item, deadline, timeout), items))


def _fan_out(pool, task, base_url, items, processes, threads, deadline, timeout) -> list:
    chunks = [items[i::processes] for i in range(processes)]
    futures = [
        pool.submit(_in_threads, task, base_url, chunk, threads, deadline, timeout) for chunk in chunks
    ]
    results = []
    for future in futures:
        results.extend(future.result(timeout=max(1.0, deadline - time.time() + timeout + 30)))
    return results


def run_buyers(
    base_url: str,
    plans: list[list[tuple[str, int]]],
    processes: int = 3,
    threads: int = 5,
    timeout: float = REQUEST_TIMEOUT,
    budget: float = 150.0,
    together: bool = True,
) -> list[Purchase]:
    """Every plan is one buyer; buyers run in `processes` OS processes with `threads` threads each.

    together=True is the drop: every buyer first fills a cart and opens the checkout form while the stock
    lasts, then all of them place their orders at once, so the orders race for the last units. With
    together=False each buyer goes straight through, and late ones are already refused at add-to-cart.
    A buyer starts no request after `budget` seconds and each request has its own timeout, so this ends.
    """
    deadline = time.time() + budget
    context = multiprocessing.get_context("spawn")  # no fork of a process that has threads and sockets
    with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
        args = (processes, threads, deadline, timeout)
        try:
            if not together:
                return _fan_out(pool, buy, base_url, plans, *args)
            purchases = _fan_out(pool, fill_cart, base_url, plans, *args)
            ready = [p for p in purchases if p.outcome == "ready"]
            placed = iter(_fan_out(pool, place, base_url, ready, *args))
            return [next(placed) if p.outcome == "ready" else p for p in purchases]
        except FutureTimeout:
            for process in list(getattr(pool, "_processes", {}).values()):
                process.kill()
            raise


# -- the database -------------------------------------------------------------------------------------


class ShopDb(SqlDb):
    """Straight reads (and a few writes) on the live shop's PostgreSQL database."""

    def __init__(self, url: str):
        super().__init__(url, max_overflow=4)

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def stock(self, variant_id: int) -> dict:
        [row] = self.rows(
            "SELECT on_hand, reserved, on_hand - reserved AS available FROM variants WHERE id = :id",
            id=variant_id,
        )
        return row

    def orders_with(self, variant_id: int) -> list[dict]:
        """Orders with a line of this variant: id, number, status."""
        return self.rows(
            "SELECT DISTINCT o.id, o.number, o.status FROM orders o JOIN order_lines l ON l.order_id = o.id "
            "WHERE l.variant_id = :variant ORDER BY o.id",
            variant=variant_id,
        )

    def order(self, number: str) -> dict | None:
        found = self.rows(
            "SELECT id, number, status, idempotency_key FROM orders WHERE number = :n", n=number
        )
        return found[0] if found else None

    def attempts(self, number: str) -> list[dict]:
        return self.rows(
            "SELECT a.id, a.status, a.tries, a.invoice_number, a.trans_id, a.updated_at, now() AS db_now "
            "FROM payment_attempts a JOIN orders o ON o.id = a.order_id "
            "WHERE o.number = :n AND a.kind = 'charge' ORDER BY a.id",
            n=number,
        )

    def pending(self, order_ids: Iterable[int] | None = None) -> int:
        if order_ids is None:
            return self.scalar("SELECT count(*) FROM orders WHERE status = 'pending_payment'")
        return self.scalar(
            "SELECT count(*) FROM orders WHERE status = 'pending_payment' AND id = ANY(:ids)",
            ids=list(order_ids),
        )

    def wait_until_settled(self, order_ids: Iterable[int] | None = None, timeout: float = 60.0) -> None:
        """Wait (bounded) until none of these orders (or no order at all) is pending_payment."""
        ids = None if order_ids is None else list(order_ids)
        wait_for(lambda: self.pending(ids) == 0, timeout, "every order out of pending_payment", interval=0.2)

    def wait_for_status(self, number: str, statuses: tuple[str, ...], timeout: float = 30.0) -> dict:
        return wait_for(
            lambda: (order := self.order(number)) and order["status"] in statuses and order,
            timeout,
            f"order {number} in {statuses}",
            interval=0.1,
        )

    def text_columns(self) -> list[tuple[str, str]]:
        """(table, column) of every text, varchar, char and json column of the public schema."""
        found = self.rows(
            "SELECT c.table_name, c.column_name FROM information_schema.columns c "
            "JOIN information_schema.tables t ON t.table_name = c.table_name "
            "AND t.table_schema = c.table_schema AND t.table_type = 'BASE TABLE' "
            "WHERE c.table_schema = 'public' "
            "AND c.data_type IN ('text', 'character varying', 'character', 'json', 'jsonb') "
            "ORDER BY c.table_name, c.column_name"
        )
        return [(row["table_name"], row["column_name"]) for row in found]

    def text_values(self) -> Iterator[tuple[str, str]]:
        """(where, value) for every non-null value of every text-like column."""
        for table, column in self.text_columns():
            for row in self.rows(f'SELECT "{column}"::text AS v FROM "{table}" WHERE "{column}" IS NOT NULL'):
                yield f"{table}.{column}", row["v"]


# -- card numbers -------------------------------------------------------------------------------------

# 13 to 19 digits in a row, or in groups as cards are printed (4-4-4-4[-3], 4-6-4/5) with one kind of
# separator, not glued to letters or digits, so hex ids and UUIDs do not count as card numbers.
_EDGE_BEFORE = r"(?<![0-9A-Za-z])"
_EDGE_AFTER = r"(?![0-9A-Za-z])"
CARD_CANDIDATE = re.compile(
    _EDGE_BEFORE
    + r"(?:\d{13,19}"
    + r"|\d{4}(?P<s1>[ -])\d{4}(?P=s1)\d{4}(?P=s1)\d{1,4}(?:(?P=s1)\d{3})?"
    + r"|\d{4}(?P<s2>[ -])\d{6}(?P=s2)\d{4,5})"
    + _EDGE_AFTER
)


def luhn_ok(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def find_card_numbers(text_: str) -> list[str]:
    """Every 13 to 19 digit sequence (plain, or grouped with spaces or dashes) that passes the Luhn check and
    starts as a payment card does (2 to 6: Mastercard, Amex, Diners, JCB, Visa, Discover, UnionPay), so a
    PostgreSQL system identifier or a timestamp in nanoseconds is not taken for one."""
    found = []
    for match in CARD_CANDIDATE.finditer(text_):
        digits = re.sub(r"[ -]", "", match.group(0))
        if 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_ok(digits):
            found.append(match.group(0))
    return found


def redis_values(client) -> Iterator[tuple[str, str]]:
    """(key, text) for every key of the client's Redis db and everything it holds.

    RQ keeps a job's function and arguments as a zlib-compressed pickle: those are decompressed too.
    """

    def readable(value: bytes) -> str:
        with contextlib.suppress(zlib.error):
            value = zlib.decompress(value)
        return value.decode("latin-1")

    for raw_key in client.scan_iter(count=500):
        key = raw_key.decode("latin-1")
        kind = client.type(raw_key).decode()
        if kind == "string":
            values = [client.get(raw_key)]
        elif kind == "hash":
            values = [part for pair in client.hgetall(raw_key).items() for part in pair]
        elif kind == "list":
            values = client.lrange(raw_key, 0, -1)
        elif kind == "set":
            values = list(client.smembers(raw_key))
        elif kind == "zset":
            values = [member for member, _ in client.zrange(raw_key, 0, -1, withscores=True)]
        elif kind == "stream":
            values = [
                part
                for _, entry in client.xrange(raw_key, count=10_000)
                for pair in entry.items()
                for part in pair
            ]
        else:
            values = []
        yield key, key
        for value in values:
            if value is not None:
                yield key, readable(value if isinstance(value, bytes) else str(value).encode())


# -- small conveniences -------------------------------------------------------------------------------


class Sampler:
    """Read a value every `interval` seconds in a thread while a load runs (e.g. a variant's availability)."""

    def __init__(self, read: Callable[[], Any], interval: float = 0.05, limit: int = 20_000):
        self.read = read
        self.interval = interval
        self.limit = limit  # at most this many samples, however long the load runs
        self.values: list[Any] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set() and len(self.values) < self.limit:
            try:
                self.values.append(self.read())
            except Exception as error:  # a sample lost under load is not the point of the test
                self.errors.append(repr(error))
            self._stop.wait(self.interval)

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def dump(value: Any) -> str:
    """Compact JSON for assertion messages."""
    return json.dumps(value, default=str)[:4000]


def card_findings(sources: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """(where, what) for every card number in (where, text) pairs."""
    return [(where, card) for where, value in sources for card in find_card_numbers(value)]


def file_texts(folder: Path) -> Iterator[tuple[str, str]]:
    """(path, text) of every file under a folder, read as bytes so nothing is skipped as undecodable."""
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            yield str(path), path.read_bytes().decode("latin-1")


class RedisDbClaim:
    """One live test run at a time on a Redis db: RQ's queue names are fixed, so two runs sharing a db would
    run each other's jobs against the wrong database. The owner's host:pid sits in a key; a run waits
    (bounded) for a live owner to finish, and takes the claim over from an owner that is no longer running."""

    KEY = "storefront-live:owner"
    _TAKE_OVER = (
        "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('set', KEYS[1], ARGV[2]) end"
    )
    _RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"

    def __init__(self, client, wait: float = 600.0):
        self.client = client
        self.wait = wait
        self.me = f"{socket.gethostname()}:{os.getpid()}"

    def _owner_gone(self, owner: str) -> bool:
        host, _, pid = owner.rpartition(":")
        if host != socket.gethostname() or not pid.isdigit():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def _take(self) -> bool:
        if self.client.set(self.KEY, self.me, nx=True):
            return True
        owner = (self.client.get(self.KEY) or b"").decode()
        if owner == self.me:
            return True
        return bool(
            owner
            and self._owner_gone(owner)
            and self.client.eval(self._TAKE_OVER, 1, self.KEY, owner, self.me)
        )

    def acquire(self) -> None:
        wait_for(self._take, self.wait, "Redis db free of another live test run", interval=1.0)

    def release(self) -> None:
        self.client.eval(self._RELEASE, 1, self.KEY, self.me)

    def flush(self) -> None:
        """Empty the db (like FLUSHDB) but keep the claim."""
        for key in self.client.scan_iter(count=1000):
            if key != self.KEY.encode():
                self.client.delete(key)


def forget_dead_schedulers(client) -> int:
    """Drop RQ's scheduler locks; after a kill -9 they would keep new workers from scheduling for a minute."""
    keys = list(client.scan_iter(match="rq:scheduler-lock:*", count=100))
    return client.delete(*keys) if keys else 0
