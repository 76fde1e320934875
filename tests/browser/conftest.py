"""Real-browser fixtures: a real gunicorn on a seeded PostgreSQL, Debian's Chromium driven by Playwright.

The live server is the whole shop: gunicorn, an RQ worker (e-mails, payments) and a loopback Authorize.Net,
all on 127.0.0.1, with e-mails written as .eml files to an outbox folder the tests read.

Every test under tests/browser is marked `browser` and put in the xdist group "browser", so with
`pytest -n 2 --dist loadgroup` they all run on one worker against one live server.
"""

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
import redis
from playwright.sync_api import expect, sync_playwright
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from storefront import ROOT
from storefront.accounts.services import hash_password
from tests import services
from tests.helpers import migrate

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps trying to reach the internet (see BROWSER-TESTS.md).
CHROME_ARGS = [
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-gpu",
]
OUTPUT = ROOT / "test-output"
SCREENSHOTS = OUTPUT / "screenshots"
AXE_JS = ROOT / "node_modules" / "axe-core" / "axe.min.js"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
HERE = Path(__file__).resolve().parent
START_TIMEOUT = 20  # seconds for gunicorn (and the loopback gateway, and the RQ worker) to be ready
STOP_TIMEOUT = 10  # seconds between SIGTERM and SIGKILL
MAIL_TIMEOUT = 15  # seconds for the worker to write an e-mail
# The loopback Authorize.Net accepts these (tools/anet_loopback.py DEFAULT_LOGIN and DEFAULT_KEY).
AUTHNET_LOGIN = "storefront-test"
AUTHNET_KEY = "storefront-key"
ACTION_TIMEOUT_MS = 10_000
# Every request must stay on the live server: anything else (a CDN, an analytics beacon) is blocked and reported.
OUTSIDE = re.compile(r"^(?!http://127\.0\.0\.1[:/])[a-z]+://")


# -- markers ------------------------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Mark every test in this folder (and any journey file added later) as a browser test of one group."""
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.browser)
            if item.get_closest_marker("xdist_group") is None:
                item.add_marker(pytest.mark.xdist_group("browser"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item, so page fixtures can screenshot a failed test."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


# -- the live server ----------------------------------------------------------------------------------


@dataclass
class LiveServer:
    url: str
    database_url: str
    redis_url: str
    media_folder: Path
    log_path: Path
    outbox: Path
    loopback_url: str
    worker_log_path: Path
    _engine: Engine | None = field(default=None, repr=False)
    _mail_seen: set[Path] = field(default_factory=set, repr=False)

    def engine(self) -> Engine:
        """An engine on the live server's database, for tests that change data behind the browser's back."""
        if self._engine is None:
            self._engine = create_engine(self.database_url, pool_size=1, max_overflow=0)
        return self._engine

    def execute(self, sql: str, **params) -> int:
        """Run one statement in its own committed transaction; return the affected row count."""
        with self.engine().begin() as connection:
            return connection.execute(text(sql), params).rowcount

    def scalars(self, sql: str, **params) -> list:
        with self.engine().connect() as connection:
            return list(connection.execute(text(sql), params).scalars())

    def log_tail(self, lines: int = 60, path: Path | None = None) -> str:
        try:
            return "\n".join((path or self.log_path).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def redis(self) -> redis.Redis:
        """A client on the live server's Redis database (close it after use)."""
        return redis.Redis.from_url(self.redis_url, socket_connect_timeout=2, socket_timeout=5)

    def wait_for_mail(self, to: str, timeout: float = MAIL_TIMEOUT) -> str:
        """Wait (bounded) for an e-mail to this address that no earlier call returned; return its text.

        The text is the From, To and Subject headers, a blank line, then the decoded body, so links are whole.
        A file is read once its size has held still for one round, so a half-written one is never taken.
        """
        deadline = time.monotonic() + timeout
        wanted = to.strip().lower()
        sizes: dict[Path, int] = {}
        while True:
            for path in sorted(self.outbox.glob("*.eml")):
                if path in self._mail_seen:
                    continue
                try:
                    size, previous = path.stat().st_size, sizes.get(path)
                    sizes[path] = size
                    if size == 0 or size != previous:
                        continue
                    message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
                except OSError:
                    continue
                if str(message["To"]).strip().lower() != wanted:
                    continue
                self._mail_seen.add(path)
                headers = "".join(f"{name}: {message[name]}\n" for name in ("From", "To", "Subject"))
                return f"{headers}\n{message.get_content()}"
            if time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        sent = sorted(p.name for p in self.outbox.glob("*.eml")) if self.outbox.exists() else []
        pytest.fail(
            f"no new e-mail to {to} within {timeout}s (outbox: {sent}); the worker's log:\n"
            + self.log_tail(40, self.worker_log_path),
            pytrace=False,
        )

    def loopback_transactions(self) -> list[dict]:
        """The loopback gateway's books (GET /_control/transactions)."""
        with urllib.request.urlopen(self.loopback_url + "/_control/transactions", timeout=5) as response:
            return json.loads(response.read())

    def loopback_control(self, path: str, payload: dict) -> dict:
        """POST to the loopback's control API, e.g. ("latency", {"seconds": 2})."""
        request = urllib.request.Request(
            f"{self.loopback_url}/_control/{path}",
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def create_user(self, email: str, password: str, verified: bool = True) -> int:
        """An account made straight in the database (e-mail confirmed unless told otherwise); its id."""
        with self.engine().begin() as connection:
            return connection.execute(
                text(
                    "INSERT INTO users (email, password_hash, role, is_disabled, email_verified_at, session_token)"
                    " VALUES (:email, :hash, 'customer', false, CASE WHEN :verified THEN now() END, :token)"
                    " RETURNING id"
                ),
                {
                    "email": email,
                    "hash": hash_password(password),
                    "verified": verified,
                    "token": secrets.token_urlsafe(16),
                },
            ).scalar_one()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _redis_db() -> int:
    """Redis databases 5..9, one per xdist worker (the unit tests use 10..15)."""
    worker = services.worker_suffix()
    if worker == "main":
        return 5
    number = int(re.sub(r"\D", "", worker) or 0)
    return 6 + min(number, 3)


def _fresh_redis(url: str) -> None:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        client.flushdb()
        client.close()
    except redis.RedisError as error:
        services.unavailable("Redis", error)


def _wait_until_up(process: subprocess.Popen, url: str, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(url + "/", timeout=2) as response:  # 127.0.0.1 only
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError) as error:
            last_error = error
        time.sleep(0.2)
    log = log_path.read_text(errors="replace") if log_path.exists() else "(no log)"
    pytest.fail(
        f"gunicorn did not answer at {url} within {START_TIMEOUT}s "
        f"(exit code {process.returncode}, last error {last_error!r}); its log:\n{log[-4000:]}",
        pytrace=False,
    )


def _wait_for_line(process: subprocess.Popen, log_path: Path, pattern: str, what: str) -> re.Match:
    """Wait (bounded) until a subprocess writes a line matching pattern to its log; fail with the log if not."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace") if log_path.exists() else ""
        match = re.search(pattern, text)
        if match:
            return match
        if process.poll() is not None:
            break
        time.sleep(0.1)
    log = log_path.read_text(errors="replace") if log_path.exists() else "(no log)"
    pytest.fail(
        f"{what} was not ready within {START_TIMEOUT}s (exit code {process.poll()}); its log:\n{log[-4000:]}",
        pytrace=False,
    )


def _start(command: list[str], env: dict, log_path: Path) -> subprocess.Popen:
    """Start a server in a process group of its own, so its children (gunicorn's workers, rq's scheduler)
    can be stopped with it."""
    with log_path.open("w") as log:
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT; then SIGKILL whatever of its process group is left."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # only this server's own group: a child it left behind


@pytest.fixture(scope="session")
def live_server(tmp_path_factory) -> Iterator[LiveServer]:
    """The real shop on a fresh, migrated, demo-seeded PostgreSQL database: gunicorn (2 sync workers), an RQ
    worker for the e-mail and payment jobs, and a loopback Authorize.Net the payments go to."""
    worker = services.worker_suffix()
    # Unique to this run: other runs on the machine (other worktrees) make browser databases of their own.
    database_name = f"storefront_browser_{services.run_suffix()}"
    database_url = services.fresh_database(database_name)
    redis_url = f"{services.REDIS_BASE_URL}/{_redis_db()}"
    _fresh_redis(redis_url)
    migrate(database_url)

    media = tmp_path_factory.mktemp("browser-media")
    outbox = media.parent / f"{media.name}-outbox"  # e-mails stay out of instance/
    outbox.mkdir()
    OUTPUT.mkdir(exist_ok=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "MEDIA_FOLDER": str(media),
        "SECRET_KEY": "browser-test",
        "REDIS_URL": redis_url,
        "MAIL_OUTBOX": str(outbox),
        "BASE_URL": url,  # the links in e-mails lead back to this server
        "PYTHONUNBUFFERED": "1",
    }
    bin_dir = Path(sys.executable).parent
    seed = subprocess.run(
        [str(bin_dir / "flask"), "--app", "wsgi", "seed-demo", "--products", "120", "--flash-stock", "100"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if seed.returncode != 0:
        pytest.fail(f"seed-demo failed ({seed.returncode}):\n{seed.stdout}\n{seed.stderr}", pytrace=False)

    processes: list[subprocess.Popen] = []
    server: LiveServer | None = None
    try:
        loopback_log = OUTPUT / f"anet-loopback-browser-{worker}.log"
        loopback = _start(
            [sys.executable, "-m", "tools.anet_loopback", "--port", str(_free_port())], env, loopback_log
        )
        processes.append(loopback)
        loopback_url = _wait_for_line(
            loopback, loopback_log, r"listening on (http://127\.0\.0\.1:\d+)", "the loopback Authorize.Net"
        ).group(1)
        env |= {
            "PAYMENT_GATEWAY": "authorizenet",
            "AUTHNET_API_LOGIN_ID": AUTHNET_LOGIN,
            "AUTHNET_TRANSACTION_KEY": AUTHNET_KEY,
            "AUTHNET_ENDPOINT": f"{loopback_url}/xml/v1/request.api",
            "AUTHNET_READ_TIMEOUT": "5",
            "ACCEPT_JS_URL": "",  # the page uses the local stand-in, /static/js/accept-test.js
        }

        worker_log = OUTPUT / f"rq-worker-browser-{worker}.log"
        rq_worker = _start(
            [
                str(bin_dir / "rq"),
                "worker",
                "--url",
                redis_url,
                "--worker-class",
                "rq.worker.SimpleWorker",
                "--with-scheduler",
                "--path",
                str(ROOT),
                "payments",
                "default",
            ],
            env,
            worker_log,
        )
        processes.append(rq_worker)

        log_path = OUTPUT / f"gunicorn-browser-{worker}.log"
        gunicorn = _start(
            [str(bin_dir / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
            env | {"BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "2", "ACCESS_LOG": "-"},
            log_path,
        )
        processes.append(gunicorn)
        server = LiveServer(url, database_url, redis_url, media, log_path, outbox, loopback_url, worker_log)
        _wait_for_line(rq_worker, worker_log, r"Listening on .*payments", "the RQ worker")
        _wait_until_up(gunicorn, url, log_path)
        yield server
    finally:
        for process in reversed(processes):
            _stop(process)
        if server is not None and server._engine is not None:
            server._engine.dispose()
        services.drop_database(database_name)


# -- the browser --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def playwright_driver():
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing (apt-get install chromium)"
        if services.in_ci():
            pytest.fail(f"{message}; CI=true requires it", pytrace=False)
        pytest.skip(message)
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright_driver):
    """Debian's Chromium, headless; Playwright never downloads a browser here."""
    expect.set_options(timeout=ACTION_TIMEOUT_MS)
    browser = playwright_driver.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS)
    yield browser
    browser.close()


@dataclass
class PageLog:
    """What went wrong inside one page: console errors (a CSP violation is one) and uncaught exceptions."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    outside_requests: list[str] = field(default_factory=list)

    def all(self) -> list[str]:
        return (
            [f"console: {m}" for m in self.console_errors]
            + [f"pageerror: {m}" for m in self.page_errors]
            + [f"blocked request off 127.0.0.1: {m}" for m in self.outside_requests]
        )


class BrowserErrors:
    """Console and page errors of every page a test opened, checked explicitly and again at teardown."""

    def __init__(self):
        self.logs: dict[int, tuple[object, PageLog]] = {}
        self.allowed: list[re.Pattern] = []

    def watch(self, page) -> None:
        log = PageLog()
        self.logs[id(page)] = (page, log)

        def on_console(message):
            if message.type == "error":
                location = message.location or {}
                log.console_errors.append(f"{message.text} ({location.get('url', '')})")

        page.on("console", on_console)
        page.on("pageerror", lambda error: log.page_errors.append(str(error)))

        def block_outside(route):
            log.outside_requests.append(route.request.url)
            route.abort("blockedbyclient")

        page.route(OUTSIDE, block_outside)

    def of(self, page) -> list[str]:
        """The errors seen in this page so far, minus those the test said it expects."""
        _, log = self.logs[id(page)]
        return [m for m in log.all() if not any(p.search(m) for p in self.allowed)]

    def expect(self, pattern: str) -> None:
        """Accept errors matching this regex in this test (e.g. the console's note about a 404 page)."""
        self.allowed.append(re.compile(pattern))

    def assert_none(self, page) -> None:
        errors = self.of(page)
        assert not errors, f"errors in the browser on {page.url}:\n" + "\n".join(errors)

    def unexpected(self) -> list[str]:
        return [f"{page.url}: {m}" for page, _ in self.logs.values() for m in self.of(page)]


@pytest.fixture
def browser_errors() -> BrowserErrors:
    return BrowserErrors()


def _file_name(node_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", node_name).strip("-")


@pytest.fixture
def screenshot(request) -> Callable[..., Path]:
    """Save a screenshot as test-output/screenshots/<test>-<label>.png; full page by default."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, label: str, full_page: bool = True) -> Path:
        path = SCREENSHOTS / f"{_file_name(request.node.name)}-{_file_name(label)}.png"
        # caret="initial": hiding the caret leaves style="" on every input, which htmx then copies while
        # settling a swap, and the CSP rightly blocks that inline style.
        page.screenshot(path=str(path), full_page=full_page, animations="disabled", caret="initial")
        return path

    return take


@pytest.fixture
def new_page(request, browser, live_server, browser_errors):
    """Open a page in a new context on the live server; extra keyword arguments go to new_context().

    Every page is watched for console and page errors; a test that passes with unexpected errors
    still fails at teardown, and a failed test leaves a screenshot of each of its pages.
    """
    contexts = []
    for stale in SCREENSHOTS.glob(f"{_file_name(request.node.name)}-FAILED-*.png"):
        stale.unlink()

    def open_page(**options):
        context = browser.new_context(base_url=live_server.url, **options)
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        context.set_default_navigation_timeout(ACTION_TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        browser_errors.watch(page)
        return page

    yield open_page

    report = getattr(request.node, "rep_call", None)
    failed = report is not None and report.failed
    if failed:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for n, (page, _) in enumerate(browser_errors.logs.values()):
            try:
                page.screenshot(path=str(SCREENSHOTS / f"{_file_name(request.node.name)}-FAILED-{n}.png"))
            except Exception as error:  # a closed page cannot be captured; the failure itself matters more
                print(f"no failure screenshot of {page.url}: {error}")
    unexpected = browser_errors.unexpected()
    for context in contexts:
        context.close()
    if not failed and unexpected:
        pytest.fail("errors in the browser:\n" + "\n".join(unexpected), pytrace=False)


@pytest.fixture
def phone(new_page):
    """A phone-sized page with JavaScript: the HTMX flows, phone first."""
    return new_page(viewport=PHONE)


@pytest.fixture
def sign_in() -> Callable[..., None]:
    """Sign in through the login form of a page; lands on /account unless a next page is given."""

    def submit(page, email: str, password: str, landing: str = r"/account$") -> None:
        page.goto("/login")
        page.get_by_label("E-mail").fill(email)
        page.get_by_label("Password", exact=True).fill(password)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(re.compile(landing))

    return submit


@pytest.fixture
def desktop(new_page):
    return new_page(viewport=DESKTOP)


@pytest.fixture
def nojs(new_page):
    """A page with JavaScript off: the plain-HTML path every HTMX action must still have."""
    return new_page(viewport=PHONE, java_script_enabled=False)


class Axe:
    """axe-core in a page whose context bypasses the CSP (so the script can be injected inline)."""

    IMPACTS = ("serious", "critical")

    def __init__(self, page):
        self.page = page

    def __call__(self, path: str) -> list[dict]:
        """Open a path and return its serious and critical violations."""
        self.page.goto(path)
        return self.scan()

    def scan(self) -> list[dict]:
        """Scan the page as it is now (for example after an HTMX swap)."""
        if not self.page.evaluate("typeof window.axe !== 'undefined'"):
            self.page.add_script_tag(path=str(AXE_JS))
        result = self.page.evaluate("async () => await axe.run(document)")
        return [v for v in result["violations"] if v.get("impact") in self.IMPACTS]

    @staticmethod
    def report(violations: list[dict]) -> str:
        lines = []
        for v in violations:
            lines.append(f"[{v['impact']}] {v['id']}: {v['help']} ({v['helpUrl']})")
            for node in v["nodes"][:5]:
                lines.append(f"    {json.dumps(node['target'])}: {node.get('failureSummary', '')!r}")
        return "\n".join(lines)


@pytest.fixture
def axe(new_page) -> Axe:
    if not AXE_JS.exists():
        message = f"{AXE_JS} is missing (npm ci)"
        if services.in_ci():
            pytest.fail(f"{message}; CI=true requires it", pytrace=False)
        pytest.skip(message)
    return Axe(new_page(viewport=DESKTOP, bypass_csp=True))
