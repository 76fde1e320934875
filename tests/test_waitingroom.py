"""The waiting room in front of a drop's checkout, on a real Redis: fair order, one place a shopper,
admissions that expire and pass on, place order refused without one, the sale switch, Redis down."""

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import redis
from sqlalchemy import func, select

from storefront.audit.models import AuditEntry
from storefront.catalog.models import Sale, SaleItem
from storefront.extensions import clock
from storefront.orders.models import Order
from storefront.waitingroom import services as room
from storefront.waitingroom.models import DropMode
from tests import live, services
from tests.factories import make_product, make_user
from tests.helpers import ADDRESS, csrf_token, login, staff_login

T0 = time.time()


@pytest.fixture
def now(monkeypatch):
    """The shop's clock, moved by the test: `now[0] += 10` is ten seconds later."""
    moment = [T0]
    monkeypatch.setattr(clock, "now", lambda: moment[0])
    return moment


@pytest.fixture
def real_redis(app, client):
    """The app's Redis is a real server (this test worker's own database), emptied."""
    original = app.extensions["redis"]
    server = redis.Redis.from_url(services.redis_url(), socket_timeout=5)
    app.extensions["redis"] = server
    app.extensions["waitingroom_cache"].forget()
    yield server
    app.extensions["redis"] = original
    app.extensions["waitingroom_cache"].forget()
    server.flushdb()
    server.close()


@pytest.fixture
def necklace(session):
    return make_product(session, name="Drop Necklace", variants=[{"price": Decimal("20.00"), "on_hand": 50}])


def drop(session, variant, rate="1", cap=1, start=-60.0, end=3600.0, limit=None, checkout_limit=""):
    """A sale of `variant` in drop mode from T0+start to T0+end (seconds)."""
    sale = Sale(
        name="Midnight drop",
        starts_at=datetime.fromtimestamp(T0 + start, UTC),
        ends_at=datetime.fromtimestamp(T0 + end, UTC),
        per_customer_limit=limit,
    )
    sale.items = [SaleItem(variant_id=variant.id, sale_price=Decimal("15.00"))]
    session.add(sale)
    session.flush()
    session.add(
        DropMode(
            sale_id=sale.id,
            admit_rate=Decimal(rate),
            checkout_cap=cap,
            checkout_limit=checkout_limit,
            flags=["live_stock", "waiting_room"],
        )
    )
    session.flush()
    return sale


def shopper(app, variant):
    """A new browser with the variant in its cart."""
    browser = app.test_client()
    response = browser.post(
        "/cart/add", data={"variant_id": variant.id, "quantity": 1, "csrf_token": csrf_token(browser)}
    )
    assert response.status_code == 303, response.get_data(as_text=True)
    return browser


def position(browser) -> int | None:
    page = browser.get("/waiting-room")
    if page.status_code == 303:
        return None  # admitted: sent on to checkout
    assert page.status_code == 200, page.get_data(as_text=True)
    text = page.get_data(as_text=True)
    return int(text.split("You are number ", 1)[1].split(" ", 1)[0])


def place(browser, **overrides):
    page = browser.get("/checkout").get_data(as_text=True)
    key = page.split('name="idempotency_key"', 1)[1].split('value="', 1)[1].split('"', 1)[0]
    data = (
        {"csrf_token": csrf_token(browser, "/cart"), "idempotency_key": key}
        | ADDRESS
        | {"dataDescriptor": "COMMON.ACCEPT.INAPP.PAYMENT", "dataValue": "test-approve"}
        | overrides
    )
    return browser.post("/checkout", data=data)


def post_order(browser, **overrides):
    """Place order straight away, as a bot would, without loading the checkout page."""
    data = (
        {"csrf_token": csrf_token(browser, "/cart"), "idempotency_key": "bot-" + "k" * 20}
        | ADDRESS
        | {"dataDescriptor": "COMMON.ACCEPT.INAPP.PAYMENT", "dataValue": "test-approve"}
        | overrides
    )
    return browser.post("/checkout", data=data)


def orders_count(session) -> int:
    session.expire_all()
    return session.scalar(select(func.count(Order.id)))


# --- fair order ----------------------------------------------------------------------------------


def test_concurrent_arrivals_get_distinct_places_and_are_let_in_in_arrival_order(real_redis):
    state = room.DropState(on=True, rate=Decimal("5"), cap=1000)
    places: dict[str, room.Place] = {}
    lock = threading.Lock()

    def arrive(name: str, barrier: threading.Barrier, at: float) -> None:
        barrier.wait()  # each thread on a connection of its own from the pool, all at once
        place = room.visit(real_redis, at, state, [room.session_identity(name)], 300, 600)
        with lock:
            places[name] = place

    def wave(names: list[str], at: float) -> None:
        barrier = threading.Barrier(len(names))
        threads = [threading.Thread(target=arrive, args=(name, barrier, at)) for name in names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

    # Rate 5 with a full bucket of 5 at once: the first five in are admitted, the rest wait.
    early = [f"early-{n}" for n in range(20)]
    late = [f"late-{n}" for n in range(20)]
    wave(early, T0)
    wave(late, T0)
    tickets = {name: place.ticket for name, place in places.items()}
    assert len(set(tickets.values())) == 40  # one place each
    order = [name for name, _ in sorted(tickets.items(), key=lambda item: int(item[1][1:]))]
    assert set(order[:20]) == set(early)  # every early arrival is ahead of every late one
    # Every second lets five more in, in the order of the line.
    admitted_by_time = []
    for second in range(1, 8):
        looked = {
            name: room.visit(real_redis, T0 + second, state, [room.session_identity(name)], 300, 600)
            for name in order
        }
        admitted_by_time.append({name for name, place in looked.items() if place.admitted})
    assert len(admitted_by_time[-1]) == 5 + 5 * 7
    for count, admitted in zip(range(10, 45, 5), admitted_by_time, strict=True):
        assert admitted == set(order[:count])


def test_a_refresh_keeps_the_place_and_a_second_tab_gets_no_second_place(app, session, real_redis, necklace):
    drop(session, necklace.variants[0], rate="0.01", cap=1)
    first, second, third = (shopper(app, necklace.variants[0]) for _ in range(3))
    assert position(first) is None  # the room was empty: straight to checkout
    assert position(second) == 1 and position(third) == 2
    assert position(third) == 2  # refreshing
    assert position(second) == 1  # a second tab shares the browser's session: the same place
    assert room.counts(real_redis, clock.now())[0] == 2


def test_the_same_account_in_another_browser_holds_the_same_place(app, session, real_redis, necklace):
    drop(session, necklace.variants[0], rate="0.01", cap=1)
    make_user(session, "queued@example.com")
    assert position(shopper(app, necklace.variants[0])) is None
    laptop, phone = shopper(app, necklace.variants[0]), shopper(app, necklace.variants[0])
    login(laptop, "queued@example.com")
    login(phone, "queued@example.com")
    assert position(laptop) == 1
    assert position(phone) == 1
    assert room.counts(real_redis, clock.now())[0] == 1


def test_the_waiting_page_shows_an_estimate_and_polls_without_needing_javascript(
    app, session, real_redis, necklace
):
    drop(session, necklace.variants[0], rate="0.5", cap=1)
    assert position(shopper(app, necklace.variants[0])) is None
    waiting = shopper(app, necklace.variants[0])
    page = waiting.get("/waiting-room").get_data(as_text=True)
    # Checkout is full and nobody has left it yet: no pace to estimate from, and the page says so.
    assert "You are number 1 in line" in page and "Estimating your wait" in page
    assert 'hx-trigger="every 3s"' in page and '<noscript><meta http-equiv="refresh"' in page
    fragment = waiting.get("/waiting-room", headers={"HX-Request": "true"})
    assert fragment.get_data(as_text=True).lstrip().startswith('<section id="waiting-status"')
    assert "HX-Request" in fragment.headers["Vary"]


def test_the_estimate_follows_the_pace_shoppers_leave_a_full_checkout(real_redis):
    state = room.DropState(on=True, rate=Decimal("100"), cap=2)

    def look(name: str, at: float) -> room.Place:
        return room.visit(real_redis, at, state, [room.session_identity(name)], 300, 600)

    for n in range(6):
        look(f"s{n}", T0)
    assert look("s2", T0).eta_seconds is None  # checkout full, nobody left it yet: unknown
    for n in (0, 1):  # two orders placed in the first ten seconds
        room.consume(real_redis, T0 + 5, look(f"s{n}", T0).ticket)
    assert look("s2", T0 + 10).admitted  # their places went to the next two
    waiting = look("s4", T0 + 10)
    assert waiting.position == 1 and waiting.basis == "checkout"
    assert waiting.admit_rate == pytest.approx(0.2)  # 2 left checkout in 10 s
    assert waiting.eta_seconds == pytest.approx(5.0)
    # With room in checkout, the admit rate sets the pace: one token a visit at 0.5 a second.
    roomy = room.DropState(on=True, rate=Decimal("0.5"), cap=100)
    assert room.visit(real_redis, T0 + 20, roomy, [room.session_identity("s4")], 300, 600).admitted
    late = room.visit(real_redis, T0 + 20, roomy, [room.session_identity("s5")], 300, 600)
    assert late.position == 1 and late.basis == "rate" and late.eta_seconds == pytest.approx(1 / 0.5)


# --- admissions ----------------------------------------------------------------------------------


def test_an_unused_admission_expires_and_the_next_shopper_is_let_in(app, session, real_redis, necklace, now):
    drop(session, necklace.variants[0], rate="100", cap=1)
    first, second = shopper(app, necklace.variants[0]), shopper(app, necklace.variants[0])
    assert position(first) is None
    assert position(second) == 1
    now[0] += app.config["WAITING_ROOM_ADMISSION_SECONDS"] + 1
    assert position(second) is None  # first never placed the order: their turn passed on
    before = orders_count(session)
    refused = post_order(first)
    assert refused.status_code == 403 and "ran out" in refused.get_data(as_text=True)
    assert orders_count(session) == before


def test_an_abandoned_place_passes_on(app, session, real_redis, necklace, now):
    drop(session, necklace.variants[0], rate="100", cap=1)
    first, gone, staying = (shopper(app, necklace.variants[0]) for _ in range(3))
    assert position(first) is None
    assert position(gone) == 1 and position(staying) == 2
    for _ in range(3):  # `staying` keeps polling; `gone` closed the tab
        now[0] += app.config["WAITING_ROOM_ABANDON_SECONDS"] / 2
        assert position(staying) in (1, 2)
    assert position(staying) == 1
    assert position(gone) == 2  # coming back later is a new place, at the back


def test_place_order_without_an_admission_is_refused_and_writes_nothing(app, session, real_redis, necklace):
    drop(session, necklace.variants[0], rate="0.01", cap=1)
    assert position(shopper(app, necklace.variants[0])) is None  # someone else holds the only place
    bot = shopper(app, necklace.variants[0])
    before = orders_count(session)
    response = post_order(bot)
    assert response.status_code == 403
    assert "waiting room" in response.get_data(as_text=True)
    assert orders_count(session) == before
    session.refresh(necklace.variants[0])
    assert necklace.variants[0].reserved == 0


def test_a_forged_or_foreign_admission_cookie_is_refused(app, session, real_redis, necklace):
    drop(session, necklace.variants[0], rate="0.01", cap=1)
    admitted = shopper(app, necklace.variants[0])
    assert position(admitted) is None
    cookie = admitted.get_cookie("admission").value
    thief = shopper(app, necklace.variants[0])
    thief.set_cookie("admission", cookie)  # signed, but bound to the other browser's session
    assert thief.get("/checkout").headers["Location"] == "/waiting-room"
    thief.set_cookie("admission", cookie[:-2] + "xx")
    assert post_order(thief).status_code == 403


def test_an_admitted_shopper_places_the_order_and_frees_the_place(app, session, real_redis, necklace):
    drop(session, necklace.variants[0], rate="100", cap=1)
    buyer, next_in_line = shopper(app, necklace.variants[0]), shopper(app, necklace.variants[0])
    assert position(buyer) is None
    assert position(next_in_line) == 1
    response = place(buyer)
    assert response.status_code == 303 and response.headers["Location"].startswith("/orders/SF-")
    assert room.counts(real_redis, clock.now())[2] == 0  # nobody in checkout
    assert position(next_in_line) is None


def test_two_admitted_browsers_cannot_use_one_email_address_at_once(app, session, real_redis, necklace):
    drop(session, necklace.variants[0], rate="100", cap=5)
    first, second = shopper(app, necklace.variants[0]), shopper(app, necklace.variants[0])
    assert position(first) is None and position(second) is None
    before = orders_count(session)
    # `first` names the address in a no-JavaScript totals refresh, which claims it for its place.
    refresh = place(first, refresh="1")
    assert refresh.status_code == 200
    refused = place(second, email=ADDRESS["email"].upper())
    assert refused.status_code == 403
    assert "already holds another place" in refused.get_data(as_text=True)
    assert orders_count(session) == before


def test_the_per_customer_limit_holds_across_guest_checkouts_to_the_same_address(app, session, necklace):
    sale = Sale(
        name="Limited",
        starts_at=datetime.now(UTC) - timedelta(minutes=1),
        ends_at=datetime.now(UTC) + timedelta(hours=1),
        per_customer_limit=1,
    )
    sale.items = [SaleItem(variant_id=necklace.variants[0].id, sale_price=Decimal("15.00"))]
    session.add(sale)
    session.flush()
    assert place(shopper(app, necklace.variants[0])).status_code == 303
    again = place(
        shopper(app, necklace.variants[0]),
        email="someone-else@example.com",
        line1=ADDRESS["line1"].upper().replace(" ", "  ") + ".",
    )
    assert again.status_code == 409
    assert "limited to 1 per customer" in again.get_data(as_text=True)


def test_the_drop_limits_checkouts_per_shopper(app, session, real_redis, necklace):
    drop(session, necklace.variants[0], rate="100", cap=50, checkout_limit="2/minute")
    buyer = shopper(app, necklace.variants[0])
    assert position(buyer) is None
    assert place(buyer, refresh="1").status_code == 200
    assert place(buyer, refresh="1").status_code == 200
    limited = place(buyer, refresh="1")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1


# --- the sale switch -----------------------------------------------------------------------------


def test_drop_mode_turns_on_at_the_sales_start_and_off_at_its_end(app, session, real_redis, necklace, now):
    sale = drop(session, necklace.variants[0], rate="0.01", cap=1, start=3600, end=7200)
    other = make_product(session)
    holder, browser = shopper(app, necklace.variants[0]), shopper(app, necklace.variants[0])
    assert browser.get("/checkout").status_code == 200  # before the start: no line
    with app.test_request_context():
        from storefront.waitingroom.views import drop_mode_variant_ids, in_drop_mode

        assert not in_drop_mode(necklace.variants[0].id)
        now[0] = T0 + 3600
        assert drop_mode_variant_ids() == {necklace.variants[0].id}
        assert not in_drop_mode(other.variants[0].id)
    assert position(holder) is None
    assert browser.get("/checkout").headers["Location"] == "/waiting-room"
    now[0] = T0 + 7200
    assert browser.get("/checkout").status_code == 200  # at the end: no line again, no admission needed
    assert room.counts(real_redis, now[0])[1:] == (1, 0)  # let in so far, in checkout now: nobody new
    with app.test_request_context():
        assert not in_drop_mode(necklace.variants[0].id)
    assert session.get(Sale, sale.id) is not None


def test_staff_override_off_opens_checkout_and_on_gates_a_running_sale(app, session, real_redis, necklace):
    drop(session, necklace.variants[0], rate="0.01", cap=1)
    assert position(shopper(app, necklace.variants[0])) is None
    browser = shopper(app, necklace.variants[0])
    assert browser.get("/checkout").status_code == 303
    room.write_settings(real_redis, "off")
    app.extensions["waitingroom_cache"].forget()
    assert browser.get("/checkout").status_code == 200
    room.write_settings(real_redis, "auto")
    app.extensions["waitingroom_cache"].forget()
    assert browser.get("/checkout").status_code == 303


# --- Redis down ----------------------------------------------------------------------------------


def test_with_redis_down_a_drop_fails_closed_and_other_checkouts_work(app, session, necklace):
    server = live.start_redis()
    original = app.extensions["redis"]
    app.extensions["redis"] = redis.Redis.from_url(server.url, socket_timeout=2, socket_connect_timeout=1)
    app.extensions["waitingroom_cache"].forget()
    try:
        drop(session, necklace.variants[0], rate="100", cap=5)
        earring = make_product(session, name="Everyday Earring")
        in_drop, everyday = shopper(app, necklace.variants[0]), shopper(app, earring.variants[0])
        server.stop()
        app.extensions["waitingroom_cache"].forget()
        refused = in_drop.get("/checkout")
        assert refused.status_code == 503 and "try again" in refused.get_data(as_text=True)
        assert int(refused.headers["Retry-After"]) > 0
        assert in_drop.get("/waiting-room").status_code == 503
        assert everyday.get("/checkout").status_code == 200
        assert place(everyday).status_code == 303
    finally:
        app.extensions["redis"] = original
        app.extensions["waitingroom_cache"].forget()
        if server.alive:
            server.stop()


# --- control: the CLI and /admin -----------------------------------------------------------------


def test_the_cli_turns_the_room_on_and_off_prints_status_and_audits(app, session, real_redis, necklace):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["waiting-room", "on", "--rate", "2.5", "--cap", "40"])
    assert result.exit_code == 0, result.output
    status = json.loads(runner.invoke(args=["waiting-room", "status"]).output)
    assert {key: status[key] for key in ("on", "rate", "cap", "waiting", "admitted", "in_checkout")} == {
        "on": True,
        "rate": 2.5,
        "cap": 40,
        "waiting": 0,
        "admitted": 0,
        "in_checkout": 0,
    }
    assert runner.invoke(args=["waiting-room", "on", "--rate", "0"]).exit_code != 0
    assert runner.invoke(args=["waiting-room", "off"]).exit_code == 0
    assert json.loads(runner.invoke(args=["waiting-room", "status"]).output)["on"] is False
    session.expire_all()
    actions = session.scalars(
        select(AuditEntry.action).where(AuditEntry.entity == "waiting_room").order_by(AuditEntry.id)
    ).all()
    assert actions == ["waiting_room.on", "waiting_room.off"]


def test_staff_put_a_sale_in_drop_mode_and_tighten_it_live_audited(client, session, real_redis, necklace):
    staff_login(client, session, role="admin")
    sale = Sale(
        name="Friday drop",
        starts_at=datetime.now(UTC) + timedelta(hours=1),
        ends_at=datetime.now(UTC) + timedelta(hours=2),
    )
    sale.items = [SaleItem(variant_id=necklace.variants[0].id, sale_price=Decimal("15.00"))]
    session.add(sale)
    session.flush()
    page = client.get("/admin/waiting-room")
    assert page.status_code == 200 and "Friday drop" in page.get_data(as_text=True)
    token = csrf_token(client, "/admin/waiting-room")
    form = {"csrf_token": token, "admit_rate": "20", "checkout_cap": "500", "checkout_limit": "3/minute"}
    assert client.post(f"/admin/waiting-room/sales/{sale.id}", data=form).status_code == 303
    assert (
        client.post(f"/admin/waiting-room/sales/{sale.id}", data=form | {"admit_rate": "5"}).status_code
        == 303
    )
    bad = client.post(f"/admin/waiting-room/sales/{sale.id}", data=form | {"checkout_cap": "-1"})
    assert bad.status_code == 422
    session.expire_all()
    mode = session.get(DropMode, sale.id)
    assert (mode.admit_rate, mode.checkout_cap, mode.checkout_limit) == (Decimal("5.00"), 500, "3/minute")
    assert client.post("/admin/waiting-room", data={"csrf_token": token, "mode": "off"}).status_code == 303
    entries = session.scalars(
        select(AuditEntry).where(AuditEntry.entity.in_(("sale", "waiting_room"))).order_by(AuditEntry.id)
    ).all()
    assert [entry.action for entry in entries] == ["sale.drop_mode", "sale.drop_mode", "waiting_room.off"]
    assert entries[1].before == {"admit_rate": "20.00"} and entries[1].after == {"admit_rate": "5.00"}


def test_shoppers_and_staff_without_the_admin_role_cannot_change_the_room(client, session, real_redis):
    staff_login(client, session, role="staff")
    assert client.get("/admin/waiting-room").status_code == 403


def test_the_embedded_default_runs_the_line_in_process(app, session, client, necklace):
    """`make run` has no Redis server: the same scripts run in fakeredis (with lupa)."""
    app.extensions["waitingroom_cache"].forget()
    try:
        drop(session, necklace.variants[0], rate="0.01", cap=1)
        assert position(shopper(app, necklace.variants[0])) is None
        assert position(shopper(app, necklace.variants[0])) == 1
    finally:
        app.extensions["waitingroom_cache"].forget()


def test_a_drop_turns_its_flags_on_and_queues_only_with_the_waiting_room_flag(
    app, session, real_redis, necklace
):
    from storefront.flags import services as feature_flags
    from storefront.waitingroom.views import flag_on

    sale = drop(session, necklace.variants[0], rate="0.01", cap=1)
    session.get(DropMode, sale.id).flags = ["live_stock"]
    session.flush()
    browser = shopper(app, necklace.variants[0])
    assert "There is no line right now" in browser.get("/waiting-room").get_data(as_text=True)
    assert browser.get("/checkout").status_code == 200
    with app.test_request_context():
        assert flag_on("live_stock") and not flag_on("waiting_room")
    feature_flags.save(session, "flag", "waiting_room", everyone=True)  # the flag on by itself
    app.extensions["flags"].invalidate()
    app.extensions["waitingroom_cache"].forget()
    try:
        assert position(shopper(app, necklace.variants[0])) is None
        assert browser.get("/checkout").headers["Location"] == "/waiting-room"
    finally:
        app.extensions["flags"].invalidate()


def test_the_page_polls_less_often_far_back_in_line(app, session, real_redis, necklace, now):
    drop(session, necklace.variants[0], rate="0.1", cap=100)
    browsers = [shopper(app, necklace.variants[0]) for _ in range(8)]
    for browser in browsers:
        browser.get("/waiting-room")
    near = browsers[1].get("/waiting-room").get_data(as_text=True)  # number 1: ETA 10 s
    far = browsers[-1].get("/waiting-room").get_data(as_text=True)  # number 7: ETA 70 s
    assert 'hx-trigger="every 3s"' in near
    assert 'hx-trigger="every 10s"' in far  # a fifth of the wait, at most a third of the abandon time
