"""The waiting room's page, and the gate in front of checkout while a drop is on.

The gate is a hook of this blueprint on the checkout endpoints (GATED_ENDPOINTS), so checkout's own views
stay as they are; with no drop on, it costs a look at the process's cached state and no Redis round trip.
"""

import logging

import redis
from flask import Blueprint, current_app, g, make_response, redirect, render_template, request, url_for
from flask import session as flask_session
from flask_login import current_user
from itsdangerous import BadSignature, URLSafeTimedSerializer
from limits import parse

from storefront.cart import services as carts
from storefront.db import get_session
from storefront.extensions import clock, limiter, redis_client
from storefront.flags import services as flags
from storefront.htmx import is_htmx
from storefront.waitingroom import services as room

log = logging.getLogger(__name__)

bp = Blueprint("waitingroom", __name__)

COOKIE = "admission"
SESSION_KEY = "waiting_room"  # a random token naming this browser's session in the line
# Checkout's page and its place-order POST need an admission for a gated item.
GATED_ENDPOINTS = frozenset({"checkout.page", "checkout.place"})
PLACE_ENDPOINT = "checkout.place"


@bp.record_once
def _setup(state) -> None:
    app = state.app
    app.extensions["waitingroom_cache"] = room.StateCache()
    # For the live-stock templates: which variants are in drop mode now.
    app.jinja_env.globals.update(
        drop_mode_variant_ids=drop_mode_variant_ids, in_drop_mode=in_drop_mode, drop_flag_on=flag_on
    )


# --- the per-process state ------------------------------------------------------------------------------


def flag_on(name: str) -> bool:
    """A feature flag: on by its own rules (storefront.flags), or because a drop running now turns it on."""
    return name in current_state().flags or flags.flag_active(name)


def current_state() -> room.DropState:
    """What is switched on now, read at most once per WAITING_ROOM_CACHE_SECONDS and at each drop boundary."""
    config = current_app.config

    def load() -> room.DropState:
        with current_app.extensions["db_sessionmaker"]() as own:
            return room.compute_state(own, redis_client(), clock.now(), config["WAITING_ROOM_CACHE_SECONDS"])

    return current_app.extensions["waitingroom_cache"].get(clock.now(), load)


def forget_state() -> None:
    """Read the state again on the next request (after a staff change in this process)."""
    current_app.extensions["waitingroom_cache"].forget()


def drop_mode_variant_ids() -> frozenset[int]:
    """Variants of the sales in drop mode now (live stock streams them)."""
    return current_state().drop_variants


def in_drop_mode(variant_id: int) -> bool:
    """Whether this variant belongs to a sale in drop mode now."""
    return variant_id in current_state().drop_variants


def drop_flags() -> frozenset[str]:
    """Feature flags the drops running now switch on."""
    return current_state().flags


# --- the shopper's place ------------------------------------------------------------------------------


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="waiting-room-admission")


def _session_token(create: bool) -> str | None:
    token = flask_session.get(SESSION_KEY)
    if token is None and create:
        token = flask_session[SESSION_KEY] = room.new_session_token()
    return token


def _identities(token: str) -> list[str]:
    found = [room.session_identity(token)]
    if current_user.is_authenticated:
        found.append(room.account_identity(current_user.id))
    return found


def _admission_ticket() -> str | None:
    """The ticket of this browser's admission cookie, if it is signed, fresh and bound to this session."""
    value = request.cookies.get(COOKIE)
    token = _session_token(create=False)
    if not value or token is None:
        return None
    try:
        data = _serializer().loads(value, max_age=current_app.config["WAITING_ROOM_ADMISSION_SECONDS"])
    except BadSignature:
        return None
    if not isinstance(data, dict) or data.get("s") != token or not isinstance(data.get("t"), str):
        return None
    return data["t"]


def _set_admission(response, ticket: str) -> None:
    config = current_app.config
    response.set_cookie(
        COOKIE,
        _serializer().dumps({"t": ticket, "s": _session_token(create=True)}),
        max_age=int(config["WAITING_ROOM_ADMISSION_SECONDS"]),
        httponly=True,
        samesite="Lax",
        secure=config["SESSION_COOKIE_SECURE"],
    )


def _visit(state: room.DropState, join: bool) -> room.Place:
    config = current_app.config
    return room.visit(
        redis_client(),
        clock.now(),
        state,
        _identities(_session_token(create=True)),
        config["WAITING_ROOM_ADMISSION_SECONDS"],
        config["WAITING_ROOM_ABANDON_SECONDS"],
        join=join,
    )


def _gated_in_cart(state: room.DropState) -> set[int]:
    if not state.gated:
        return set()
    session = get_session()
    if current_user.is_authenticated:
        cart = carts.for_checkout(session, user_id=current_user.id)
    else:
        cart = carts.for_checkout(session, cart_id=flask_session.get("cart_id"))
    return {line.variant_id for line in cart.lines} & state.gated


# --- responses ------------------------------------------------------------------------------------


def _go(target: str):
    if is_htmx():
        response = make_response("", 204)
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target, 303)


def _refused(status: int, reason: str, retry_after: int | None = None):
    template = "waitingroom/_refused.html" if is_htmx() else "waitingroom/refused.html"
    response = make_response(
        render_template(template, status=status, reason=reason, inline=is_htmx()), status
    )
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    if is_htmx():
        response.headers["HX-Retarget"] = "#messages"
        response.headers["HX-Reswap"] = "innerHTML"
    response.vary.add("HX-Request")
    response.cache_control.no_store = True
    return response


def _unavailable():
    return _refused(
        503,
        "The line for this drop is briefly unavailable. Nothing was ordered or charged; please try again in "
        "a moment.",
        retry_after=5,
    )


def _poll_seconds(place: room.Place) -> int:
    """How soon the page asks again: every WAITING_ROOM_POLL_SECONDS near the front, less often far back
    (a fifth of the wait), but often enough that a waiting shopper never looks like one who left."""
    config = current_app.config
    base = config["WAITING_ROOM_POLL_SECONDS"]
    longest = max(base, int(config["WAITING_ROOM_ABANDON_SECONDS"] / 3))
    eta = place.eta_seconds
    return base if eta is None else int(min(longest, max(base, eta / 5)))


# --- the page -------------------------------------------------------------------------------------


@bp.get("")
def page():
    """The waiting page: the shopper's place and an estimated wait; sends them to checkout when it's their turn."""
    state = current_state()
    if state.on and not state.redis_ok:
        return _unavailable()
    place = None
    try:
        if state.on and _session_token(create=False):  # polling: the place alone, no cart query
            place = _visit(state, join=False)
        if state.on and not (place and place.ticket) and _gated_in_cart(state):
            place = _visit(state, join=True)
    except redis.RedisError as error:
        log.error("waiting room unavailable: %s", error)
        return _unavailable()
    if place is None or not place.ticket:
        if is_htmx():  # the line is gone while the page polled: on to checkout
            return _go(url_for("checkout.page"))
        response = make_response(render_template("waitingroom/page.html", place=None, poll=False))
        response.vary.add("HX-Request")
        return response
    if place.admitted:
        response = _go(url_for("checkout.page"))
        _set_admission(response, place.ticket)
        return response
    template = "waitingroom/_status.html" if is_htmx() else "waitingroom/page.html"
    response = make_response(render_template(template, place=place, poll=_poll_seconds(place)))
    response.vary.add("HX-Request")
    response.cache_control.no_store = True
    return response


# --- the gate -------------------------------------------------------------------------------------


@bp.before_app_request
def require_admission():
    """Checkout of a gated item during a drop: the page needs a place, place order needs an admission."""
    if request.endpoint not in GATED_ENDPOINTS:
        return None
    state = current_state()
    if not state.on or not _gated_in_cart(state):
        return None
    if not state.redis_ok:  # known down: answer at once rather than wait out a connect timeout each time
        return _unavailable()
    try:
        if request.method == "POST":
            return _check_place_order(state)
        return _check_checkout_page(state)
    except redis.RedisError as error:
        log.error("waiting room unavailable: %s", error)
        return _unavailable()


def _check_checkout_page(state: room.DropState):
    ticket = _admission_ticket()
    if ticket and room.claim(redis_client(), clock.now(), ticket, []) == 1:
        return None
    place = _visit(state, join=True)
    if place.admitted:  # no line right now: straight in
        g.waitingroom_admit = place.ticket
        return None
    return _go(url_for("waitingroom.page"))


def _check_place_order(state: room.DropState):
    if state.checkout_limit:
        item = parse(state.checkout_limit)
        key = _session_token(create=False) or request.remote_addr or "unknown"
        who = f"user:{current_user.id}" if current_user.is_authenticated else f"session:{key}"
        if not limiter.limiter.hit(item, "drop-checkout", who):
            reset = limiter.limiter.get_window_stats(item, "drop-checkout", who).reset_time
            return _refused(
                429,
                "Too many orders in a short time during this drop. Please wait a moment.",
                retry_after=max(1, int(reset - clock.now()) + 1),
            )
    ticket = _admission_ticket()
    if ticket is None:
        return _refused(403, "This drop is selling through a waiting room: take your place in line first.")
    form = request.form
    identities = [room.email_identity(form.get("email", ""))] if form.get("email") else []
    if form.get("line1") or form.get("postal_code"):
        identities.append(
            room.address_identity(
                form.get("line1", ""),
                form.get("line2", ""),
                form.get("postal_code", ""),
                form.get("country", ""),
            )
        )
    claimed = room.claim(redis_client(), clock.now(), ticket, identities)
    if claimed == 0:
        return _refused(
            403, "Your turn at checkout ran out before the order was placed. Please join the line again."
        )
    if claimed < 0:
        return _refused(
            403, "That e-mail address or shipping address already holds another place in this drop."
        )
    g.waitingroom_ticket = ticket
    return None


@bp.after_app_request
def after_checkout(response):
    """Hand out the admission checkout's page found free, and use it up once place order has answered with
    the order (a 303 or HX-Location to its status page); a refused order keeps it until it expires."""
    admit = g.pop("waitingroom_admit", None)
    if admit is not None:
        _set_admission(response, admit)
    ticket = g.pop("waitingroom_ticket", None)
    if ticket is not None and request.endpoint == PLACE_ENDPOINT:
        placed = response.status_code == 303 or "HX-Location" in response.headers
        if placed:
            try:
                room.consume(redis_client(), clock.now(), ticket)
            except redis.RedisError as error:  # it expires by itself
                log.warning("admission %s not released: %s", ticket, error)
            response.delete_cookie(COOKIE)
    return response
