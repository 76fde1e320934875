"""Live tests: the shop as production runs it, processes and all, driven over real HTTP from several processes.

One PostgreSQL database and one set of processes for the module: the loopback Authorize.Net, gunicorn with
3 sync workers and 2 `rq worker` processes (SimpleWorker, with the scheduler), all sharing Redis db 4, which
one run at a time claims (RQ's queue names are fixed: two runs on one db would run each other's jobs). Tests
that need other settings (a Redis that dies, a tight login limit) start their own gunicorn beside it.
Logs of every process: test-output/live/<run>/.

All tests are in the xdist group "live", so `pytest -n 2 --dist loadgroup` runs them on one worker, in order.
"""

import itertools
import json
import re
import shutil
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from email import policy
from email.parser import BytesParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
import requests

from tests import live, services
from tests.factories import make_product, make_user
from tests.helpers import migrate

pytestmark = [pytest.mark.live, pytest.mark.xdist_group("live")]

REDIS_DB = 4
WEB_WORKERS = 3
RQ_WORKERS = 2
SETTLE_TIMEOUT = 90.0  # seconds for the rq workers to finish every order of a test
SOLD_OUT = re.compile(r"sold out|left", re.IGNORECASE)
TEST_CARD = "4111111111111111"
_numbers = itertools.count(1)


@dataclass(frozen=True)
class Item:
    slug: str
    variant_id: int
    sku: str


@dataclass
class Shop:
    """The module's running shop and what it is made of."""

    db: live.ShopDb
    redis: redis.Redis
    env: dict
    logs: Path
    outbox: Path
    loopback: live.Loopback
    web: live.Gunicorn
    workers: list[live.Proc]

    def new_item(self, on_hand: int, name: str = "Drop") -> Item:
        """A product with one variant of `on_hand` units, nothing reserved, at 20.00."""
        n = next(_numbers)
        tag = uuid.uuid4().hex[:6]
        with self.db.session() as session:
            product = make_product(
                session,
                slug=f"live-{n}-{tag}",
                name=f"{name} {n}",
                variants=[{"sku": f"LIVE-{n}-{tag}", "on_hand": on_hand, "price": Decimal("20.00")}],
            )
            session.commit()
            variant = product.variants[0]
            return Item(product.slug, variant.id, variant.sku)

    def top_up_workers(self, count: int = RQ_WORKERS) -> None:
        """Forget dead workers and start fresh ones until `count` are running."""
        self.workers[:] = [worker for worker in self.workers if worker.alive()]
        while len(self.workers) < count:
            self.workers.append(live.start_worker(self.env, log_dir=self.logs))

    def sweep(self) -> str:
        """`flask --app wsgi sweep`: every periodic sweep once, as the clock process would run them."""
        return live.run_flask(self.env, "sweep", log_dir=self.logs)

    def shopper(self) -> live.Shopper:
        return live.Shopper(self.web.url)


def _redis_or_skip(url: str) -> redis.Redis:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        client.ping()
    except redis.RedisError as error:
        services.unavailable("Redis", error)
    return client


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """PostgreSQL (fresh, migrated), Redis db 4 (claimed, emptied), the loopback, gunicorn, two rq workers."""
    redis_url = f"{services.REDIS_BASE_URL}/{REDIS_DB}"
    client = _redis_or_skip(redis_url)
    claim = live.RedisDbClaim(client)
    claim.acquire()  # another live run on this machine would share db 4's queues
    claim.flush()
    name = f"storefront_live_{services.run_suffix()}"
    database_url = db = shop = None
    started: list[live.Proc] = []
    try:
        database_url = services.fresh_database(name)
        migrate(database_url)
        logs = live.run_log_dir(services.run_suffix())
        tmp = tmp_path_factory.mktemp("live")
        db = live.ShopDb(database_url)
        loopback = live.start_loopback(log_dir=logs)
        started.append(loopback)
        env = live.shop_env(database_url, redis_url, loopback.url, tmp_dir=tmp)
        web = live.start_gunicorn(env, workers=WEB_WORKERS, log_dir=logs)
        started.append(web)
        shop = Shop(db, client, env, logs, Path(env["MAIL_OUTBOX"]), loopback, web, [])
        shop.top_up_workers()
        yield shop
    finally:
        live.stop_all([*(shop.workers if shop else []), *started])
        if db is not None:
            db.dispose()
        if database_url is not None:
            services.drop_database(name)
        claim.flush()
        claim.release()
        client.close()


@pytest.fixture
def gateway(shop) -> live.Loopback:
    """The loopback with empty books and no fault; two live rq workers."""
    shop.loopback.reset()
    shop.loopback.latency(0)
    shop.top_up_workers()
    yield shop.loopback
    shop.loopback.fault("none")


def _describe(purchases: list[live.Purchase], limit: int = 5) -> str:
    return live.dump([p.__dict__ for p in purchases[:limit]])


def _check_purchases(purchases: list[live.Purchase], buyers: int) -> list[live.Purchase]:
    """Every buyer got an answer, none a 5xx, and every refusal says what is left; return the winners."""
    assert len(purchases) == buyers
    failed = [p for p in purchases if p.outcome == "failed"]
    assert not failed, f"{len(failed)} buyers failed: {_describe(failed)}"
    server_errors = [p for p in purchases if any(status >= 500 for status in p.statuses)]
    assert not server_errors, f"5xx answers: {_describe(server_errors)}"
    refused = [p for p in purchases if p.outcome in ("add_refused", "checkout_refused")]
    for purchase in refused:
        last_status = purchase.statuses[-1]
        assert last_status == (422 if purchase.outcome == "add_refused" else 409), _describe([purchase])
        assert SOLD_OUT.search(purchase.message), _describe([purchase])
    return [p for p in purchases if p.outcome == "ordered"]


# -- 1. the drop: each unit sold exactly once ------------------------------------------------------------


@pytest.mark.parametrize(
    ("units", "together"),
    [
        pytest.param(1, True, id="K1-all-carts-then-all-orders"),
        pytest.param(5, True, id="K5-all-carts-then-all-orders"),
        # Straight through: late buyers are already refused at add-to-cart (and it costs a third of the time).
        pytest.param(50, False, id="K50-rush"),
    ],
)
def test_a_drop_sells_every_unit_exactly_once(shop, gateway, units, together):
    item = shop.new_item(units)
    buyers = 20 * units
    plans = [[(item.slug, item.variant_id)]] * buyers
    with live.Sampler(lambda: shop.db.stock(item.variant_id)["available"]) as available:
        purchases = live.run_buyers(shop.web.url, plans, processes=3, threads=5, together=together)
        winners = _check_purchases(purchases, buyers)
        orders = [o["id"] for o in shop.db.orders_with(item.variant_id)]
        shop.db.wait_until_settled(orders, timeout=SETTLE_TIMEOUT)

    outcomes = Counter(p.outcome for p in purchases)
    assert outcomes["ordered"] == units, outcomes
    if together:  # everyone had the item in the cart before the first order: the orders raced for the units
        assert outcomes == {"ordered": units, "checkout_refused": buyers - units}
    else:  # add-to-cart checks availability: once sold out, buyers are turned away before checkout
        assert outcomes["add_refused"] > 0, outcomes
    orders = shop.db.orders_with(item.variant_id)
    assert Counter(o["status"] for o in orders) == {"paid": units}
    assert {o["number"] for o in orders} == {p.number for p in winners}
    assert shop.db.stock(item.variant_id) == {"on_hand": units, "reserved": units, "available": 0}
    assert available.values and min(available.values) >= 0, available.errors
    stock = json.loads(live.run_flask(shop.env, "stock", item.sku, log_dir=shop.logs))
    assert (stock["sold"], stock["reserved"], stock["available"]) == (units, units, 0)

    charges = gateway.charges()
    assert len(charges) == units
    assert Counter(c["invoice_number"] for c in charges) == {o["number"]: 1 for o in orders}
    assert {c["status"] for c in charges} == {"capturedPendingSettlement"}


# -- 2. two hot variants taken in opposite orders -----------------------------------------------------


def test_two_variants_bought_in_opposite_orders_never_deadlock(shop, gateway):
    units = 10
    a, b = shop.new_item(units, "Ring"), shop.new_item(units, "Chain")
    forward, backward = (
        [(a.slug, a.variant_id), (b.slug, b.variant_id)],
        [(b.slug, b.variant_id), (a.slug, a.variant_id)],
    )
    plans = [forward if n % 2 else backward for n in range(10 * units)]
    deadlocks_before = shop.db.scalar(
        "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
    )
    purchases = live.run_buyers(shop.web.url, plans, processes=3, threads=5, timeout=live.REQUEST_TIMEOUT)
    winners = _check_purchases(purchases, len(plans))
    assert Counter(p.outcome for p in purchases) == {"ordered": units, "checkout_refused": len(plans) - units}
    slowest = max(seconds for p in purchases for _, _, seconds in p.steps)
    assert slowest < live.REQUEST_TIMEOUT

    orders = shop.db.orders_with(a.variant_id)
    shop.db.wait_until_settled([o["id"] for o in orders], timeout=SETTLE_TIMEOUT)
    orders = shop.db.orders_with(a.variant_id)
    assert Counter(o["status"] for o in orders) == {"paid": units}
    assert {o["number"] for o in orders} == {p.number for p in winners}
    assert orders == shop.db.orders_with(b.variant_id)
    lines = shop.db.rows(
        "SELECT order_id, variant_id, quantity FROM order_lines WHERE order_id = ANY(:ids) ORDER BY 1, 2",
        ids=[o["id"] for o in orders],
    )
    assert Counter((line["variant_id"], line["quantity"]) for line in lines) == {
        (a.variant_id, 1): units,
        (b.variant_id, 1): units,
    }
    assert all(count == 2 for count in Counter(line["order_id"] for line in lines).values())
    for item in (a, b):
        assert shop.db.stock(item.variant_id) == {"on_hand": units, "reserved": units, "available": 0}
    # A deadlock would have been a 500 above; PostgreSQL's own count (which may lag a little) agrees.
    assert (
        shop.db.scalar("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        == deadlocks_before
    )
    assert len(gateway.charges()) == units


# -- 2b. payments keep pace: many charges in flight per worker process ---------------------------------


def test_each_worker_keeps_many_charges_in_flight_and_charges_each_order_once(shop, gateway):
    item = shop.new_item(24)
    gateway.latency(0.5)  # like the real gateway: the answer takes a while, the worker's CPU barely works
    try:
        plans = [[(item.slug, item.variant_id)]] * 24
        purchases = live.run_buyers(shop.web.url, plans, processes=2, threads=6, together=True)
        winners = _check_purchases(purchases, 24)
        assert len(winners) == 24
        orders = [o["id"] for o in shop.db.orders_with(item.variant_id)]
        shop.db.wait_until_settled(orders, timeout=SETTLE_TIMEOUT)
        peak = gateway.peak_in_flight()
    finally:
        gateway.latency(0)

    assert Counter(o["status"] for o in shop.db.orders_with(item.variant_id)) == {"paid": 24}
    # One charge at a time per process would never have more calls open than there are workers.
    assert peak > RQ_WORKERS, f"at most {peak} gateway calls were in flight with {RQ_WORKERS} workers"
    charges = gateway.charges()
    assert Counter(c["invoice_number"] for c in charges) == {p.number: 1 for p in winners}
    for number in (p.number for p in winners):
        assert len(shop.db.attempts(number)) == 1


# -- 3. the same form posted ten times at once --------------------------------------------------------


def test_ten_simultaneous_submits_of_one_form_make_one_order_and_one_charge(shop, gateway):
    item = shop.new_item(5)
    shopper = shop.shopper()
    shopper.open_product(item.slug)
    assert shopper.add(item.variant_id).status_code == 303
    data = shopper.checkout_data(shopper.open_checkout())
    start = threading.Barrier(10, timeout=10)

    def submit(_):
        with requests.Session() as browser:  # one tab each, the same cookies: the same session and form
            browser.trust_env = False
            browser.cookies.update(shopper.http.cookies)
            start.wait()
            return browser.post(
                shop.web.url + "/checkout", data=data, allow_redirects=False, timeout=live.REQUEST_TIMEOUT
            )

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(submit, range(10)))

    assert [a.status_code for a in answers] == [303] * 10, [
        a.text[-500:] for a in answers if a.status_code != 303
    ]
    numbers = {live.order_number(a) for a in answers}
    assert len(numbers) == 1 and None not in numbers
    [number] = numbers
    orders = shop.db.orders_with(item.variant_id)
    assert [o["number"] for o in orders] == [number]
    assert (
        shop.db.scalar(
            "SELECT count(*) FROM orders WHERE idempotency_key = :key", key=data["idempotency_key"]
        )
        == 1
    )
    assert shop.db.wait_for_status(number, ("paid",), timeout=SETTLE_TIMEOUT)
    assert len(shop.db.attempts(number)) == 1
    assert len(gateway.charges(number)) == 1 and len(gateway.charges()) == 1
    assert shop.db.stock(item.variant_id)["reserved"] == 1


# -- 4. a worker killed after the gateway approved, before the shop recorded it ------------------------


def test_a_worker_killed_mid_charge_is_reconciled_without_a_second_charge(shop, gateway):
    item = shop.new_item(5)
    gateway.fault("slow_after_charge", count=1, hang_seconds=8)
    shopper = shop.shopper()
    shopper.open_product(item.slug)
    shopper.add(item.variant_id)
    placed = shopper.place_order()
    number = live.order_number(placed)
    assert placed.status_code == 303 and number

    try:
        # The loopback has booked the charge and is sitting on its answer: kill every worker right now.
        live.wait_for(lambda: gateway.charges(number), 10, f"a charge for {number}", interval=0.02)
        for worker in shop.workers:
            worker.kill9()
        order = shop.db.order(number)
        [attempt] = shop.db.attempts(number)
        assert (order["status"], attempt["status"]) == ("pending_payment", "sending")

        live.forget_dead_schedulers(shop.redis)
        shop.top_up_workers(1)  # a fresh worker: it must leave the silent attempt alone until it is stale
        # The attempt counts as abandoned 2 * AUTHNET_READ_TIMEOUT + 5 = 11 s after it was claimed.
        stale_in = 11 + 0.5 - (attempt["db_now"] - attempt["updated_at"]).total_seconds()
        time.sleep(max(0.0, min(stale_in, 12)))
        assert [a["status"] for a in shop.db.attempts(number)] == ["sending"]
        for _ in range(3):
            shop.sweep()
            try:
                shop.db.wait_for_status(number, ("paid",), timeout=10)
                break
            except TimeoutError:
                continue
        order = shop.db.order(number)
        assert order["status"] == "paid", (order, shop.db.attempts(number))
        [attempt] = shop.db.attempts(number)
        assert (
            attempt["status"] == "approved" and attempt["trans_id"] == gateway.charges(number)[0]["trans_id"]
        )
        assert len(gateway.charges(number)) == 1 and len(gateway.charges()) == 1
        assert shop.db.stock(item.variant_id)["reserved"] == 1
    finally:
        shop.top_up_workers()


# -- 5. Redis gone between the checkout page and the order -------------------------------------------


def test_checkout_without_redis_answers_503_and_changes_nothing(shop):
    if shutil.which("redis-server") is None:
        services.unavailable("redis-server", FileNotFoundError("redis-server is not on PATH"))
    private = live.start_redis(log_dir=shop.logs)
    web = None
    try:
        web = live.start_gunicorn(shop.env | {"REDIS_URL": private.url}, workers=1, log_dir=shop.logs)
        item = shop.new_item(5)
        shopper = live.Shopper(web.url)
        shopper.open_product(item.slug)
        assert shopper.add(item.variant_id).status_code == 303
        form = shopper.open_checkout()
        orders_before = shop.db.scalar("SELECT count(*) FROM orders")
        stock_before = shop.db.stock(item.variant_id)

        private.kill9()
        answer = shopper.place_order(form)

        assert answer.status_code == 503, answer.text[-1000:]
        assert int(answer.headers["Retry-After"]) > 0
        assert "briefly unavailable" in answer.text and "try again" in answer.text
        assert "Traceback" not in answer.text
        assert shop.db.scalar("SELECT count(*) FROM orders") == orders_before
        assert shop.db.stock(item.variant_id) == stock_before
        assert shop.db.rows("SELECT quantity FROM cart_lines WHERE variant_id = :v", v=item.variant_id) == [
            {"quantity": 1}
        ]
    finally:
        if web is not None:
            web.stop()
        private.stop()


# -- 6. the login limit is one limit across gunicorn workers ------------------------------------------


def test_the_login_limit_per_ip_holds_across_two_gunicorn_workers(shop):
    for key in shop.redis.scan_iter(match="*login_limit*", count=500):
        shop.redis.delete(key)
    email = f"limited-{uuid.uuid4().hex[:8]}@example.com"
    with shop.db.session() as session:
        make_user(session, email)
        session.commit()
    settings = {"LOGIN_LIMIT_PER_IP": "5/minute", "LOCKOUT_FAILURES": "1000", "LOCKOUT_IP_FAILURES": "1000"}
    web = live.start_gunicorn(shop.env | settings, workers=2, log_dir=shop.logs)
    try:
        shoppers = [live.Shopper(web.url) for _ in range(12)]
        for shopper in shoppers:
            assert shopper.open("/login").status_code == 200 and shopper.csrf

        def attempt(shopper):
            return shopper.post(
                "/login", {"csrf_token": shopper.csrf, "email": email, "password": "not the password 1"}
            )

        # Six at a time, so both sync workers are busy at once and each serves some of them.
        with ThreadPoolExecutor(max_workers=6) as pool:
            answers = list(pool.map(attempt, shoppers))

        assert Counter(a.status_code for a in answers) == {422: 5, 429: 7}
        assert all(int(a.headers["Retry-After"]) > 0 for a in answers if a.status_code == 429)
        assert all("not right" in a.text for a in answers if a.status_code == 422)
        served = {
            int(match.group(1))
            for line in web.access_lines()
            if '"POST /login ' in line and (match := re.search(r"pid=<?(\d+)>?", line))
        }
        assert len(served) == 2, web.access_lines()
        assert served == set(web.worker_pids())
    finally:
        web.stop()


# -- 7. e-mail through a real worker -----------------------------------------------------------------


def _mails_to(outbox: Path, address: str) -> list:
    parser = BytesParser(policy=policy.default)
    mails = [parser.parse(path.open("rb")) for path in sorted(outbox.glob("*.eml"))]
    return [mail for mail in mails if mail["To"] == address]


def test_registration_mails_a_link_that_verifies_the_account(shop):
    shopper = shop.shopper()
    assert shopper.open("/register").status_code == 200
    email = f"new-{uuid.uuid4().hex[:8]}@example.com"
    password = "a quiet harbour at dawn 42"
    answer = shopper.post(
        "/register", {"csrf_token": shopper.csrf, "email": email, "password": password, "confirm": password}
    )
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/register/done"), answer.text[
        -500:
    ]

    [mail] = live.wait_for(lambda: _mails_to(shop.outbox, email), 20, f"a verification e-mail to {email}")
    link = re.search(r"https?://\S+/register/verify/\S+", mail.get_content()).group(0)
    verified = shopper.get(urlsplit(link).path)
    assert verified.status_code == 303 and urlsplit(verified.headers["Location"]).path == "/account"
    account = shopper.get("/account")
    assert account.status_code == 200 and email in account.text
    assert shop.db.scalar("SELECT email_verified_at IS NOT NULL FROM users WHERE email = :e", e=email)


# -- 8. gateway faults through the real worker ------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "booked"),
    [
        ("http500", 0),  # the gateway failed before booking anything
        ("hang", 0),  # no answer within AUTHNET_READ_TIMEOUT (3 s), nothing booked
        ("lost_after_charge", 1),  # the gateway booked the charge, then the answer was lost
    ],
)
def test_an_unanswered_charge_is_unknown_then_reconciled_and_paid_once(shop, gateway, fault, booked):
    item = shop.new_item(5)
    gateway.fault(fault, count=1, hang_seconds=5)
    shopper = shop.shopper()
    shopper.open_product(item.slug)
    shopper.add(item.variant_id)
    number = live.order_number(shopper.place_order())
    assert number

    live.wait_for(
        lambda: [a["status"] for a in shop.db.attempts(number)] == ["unknown"],
        10,
        f"the charge of {number} recorded as unknown",
        interval=0.05,
    )
    assert shop.db.order(number)["status"] == "pending_payment"
    assert len(gateway.charges(number)) == booked
    # The worker scheduled a reconciliation 5 s out: rq's scheduler (--with-scheduler) must run it.
    shop.db.wait_for_status(number, ("paid",), timeout=20)
    [attempt] = shop.db.attempts(number)
    assert attempt["status"] == "approved" and attempt["tries"] == 2
    assert attempt["trans_id"] == gateway.charges(number)[0]["trans_id"]
    assert len(gateway.charges(number)) == 1 and len(gateway.charges()) == 1


def test_a_declined_card_fails_the_order_and_keeps_the_reservation(shop, gateway):
    item = shop.new_item(5)
    shopper = shop.shopper()
    shopper.open_product(item.slug)
    shopper.add(item.variant_id)
    number = live.order_number(shopper.place_order(nonce="test-decline"))
    assert number

    shop.db.wait_for_status(number, ("payment_failed",), timeout=20)
    assert [a["status"] for a in shop.db.attempts(number)] == ["declined"]
    assert shop.db.stock(item.variant_id) == {"on_hand": 5, "reserved": 1, "available": 4}
    assert [c["status"] for c in gateway.charges(number)] == ["declined"]
    page = shopper.order_status(number)
    assert page.status_code == 200 and "declined" in page.text


# -- the servers' own logs ------------------------------------------------------------------------


def test_no_web_or_worker_process_logged_a_traceback_or_a_timeout(shop):
    """Whatever the tests above did to them, gunicorn and the rq workers never hit an unhandled error."""
    problems = [
        f"{Path(path).name}: {line}"
        for path, text in live.file_texts(shop.logs)
        if Path(path).name.startswith(("gunicorn-", "rq-worker-"))
        for line in text.splitlines()
        if re.search(r"Traceback|unhandled error|WORKER TIMEOUT", line)
    ]
    assert problems == []


# -- 9. no card number anywhere ---------------------------------------------------------------------


def test_the_card_finder_finds_test_cards_and_ignores_ids(tmp_path):
    sample = (
        "INFO paid with 4111 1111 1111 1111 at 2026-11-28 14:56:09,805 order SF-YP7RX5TJQX txn 60000000001"
    )
    assert live.find_card_numbers(sample) == ["4111 1111 1111 1111"]
    assert live.find_card_numbers("card_number=4111111111111111&cvv=123") == ["4111111111111111"]
    assert live.find_card_numbers('{"pan": "4111-1111-1111-1111"}') == ["4111-1111-1111-1111"]
    assert live.find_card_numbers("amex 3782 822463 10005.") == ["3782 822463 10005"]
    for harmless in (
        "4111 1111 1111 1112",  # fails the Luhn check
        "25f91cf9-f36e-4dcf-8637-90c10101f881",  # a UUID
        "nonce_hash 9f86d081884c7d659a2feaa0c55ad0153790123456789012345678",  # hex
        "[28/Nov/2026:14:56:08 +0000] 127013us pid=<25961>",
        "20261128T145609869993-0786ba80.eml",
    ):
        assert live.find_card_numbers(harmless) == [], harmless
    log = tmp_path / "worker.log"
    log.write_text("12:00:01 charge for card 4111 1111 1111 1111 approved\n")
    assert live.card_findings(live.file_texts(tmp_path)) == [(str(log), "4111 1111 1111 1111")]


def test_no_card_number_reaches_the_database_redis_or_any_log(shop, gateway):
    item = shop.new_item(5)
    shopper = shop.shopper()
    shopper.open_product(item.slug)
    shopper.add(item.variant_id)
    form = shopper.open_checkout()
    typed = {
        "card_number": TEST_CARD,
        "cardNumber": "4111 1111 1111 1111",
        "card_code": "123",
        "expiry": "12/30",
    }
    rejected = shopper.place_order(form, postal_code="!", **typed)  # a form error renders the page again
    assert rejected.status_code == 422 and TEST_CARD not in rejected.text
    number = live.order_number(shopper.place_order(form, **typed))
    assert number
    shop.db.wait_for_status(number, ("paid",), timeout=SETTLE_TIMEOUT)
    live.wait_for(lambda: _mails_to(shop.outbox, shopper.email), 20, "the order confirmation e-mail")
    shop.db.wait_until_settled(timeout=SETTLE_TIMEOUT)

    database = list(shop.db.text_values())
    in_redis = list(live.redis_values(shop.redis))
    logs = list(live.file_texts(shop.logs))
    mails = list(live.file_texts(shop.outbox))
    assert len({where for where, _ in database}) > 20 and in_redis and len(logs) >= 4  # the scan saw things
    findings = live.card_findings(database + in_redis + logs + mails)
    assert findings == []
