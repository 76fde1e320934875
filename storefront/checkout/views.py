"""Checkout: address, shipping, summary and Accept.js payment; placing the order answers with its status page."""

import uuid
from datetime import timedelta

import redis
from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask import session as flask_session
from flask_login import current_user
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import ServiceUnavailable
from wtforms import EmailField, HiddenField, RadioField, SelectChoice
from wtforms.validators import DataRequired, Length, Regexp

from jobs import payments as payment_jobs
from storefront import queues
from storefront.accounts import services as accounts
from storefront.accounts.forms import COUNTRIES, AddressForm
from storefront.alerts import services as alerts
from storefront.cart import services as carts
from storefront.catalog import services as catalog
from storefront.checkout import services as checkout
from storefront.db import get_session
from storefront.extensions import check_limits, client_ip, limiter, redis_client
from storefront.htmx import is_htmx
from storefront.orders import services as orders
from storefront.payments import hosted

bp = Blueprint("checkout", __name__)

NONCE_DESCRIPTORS = ("COMMON.ACCEPT.INAPP.PAYMENT",)
ORDERS_IN_SESSION = 20


class CheckoutForm(AddressForm):
    """The shipping address fields of the address book, plus contact, shipping method and payment."""

    class Meta:
        csrf = False  # CSRFProtect has checked every POST before a view runs (the page renders csrf_token())

    email = EmailField(
        "E-mail", validators=[DataRequired(), Length(max=254)], render_kw={"autocomplete": "email"}
    )
    shipping_method = RadioField("Shipping", validators=[DataRequired(message="Choose a shipping method.")])
    idempotency_key = HiddenField(
        validators=[DataRequired(), Length(min=16, max=64), Regexp(r"^[A-Za-z0-9-]+$")]
    )
    # Accept.js fills these in the browser; the card itself never reaches us.
    dataDescriptor = HiddenField()
    dataValue = HiddenField()


def current_pricing() -> checkout.Pricing:
    """Shipping methods and tax rates, shared by the process's requests for CATALOG_CACHE_SECONDS (a
    settings change shows within seconds); read from the request's own session when the cache is off."""
    seconds = current_app.config["CATALOG_CACHE_SECONDS"]
    if seconds <= 0:
        return checkout.pricing(get_session())

    def load(_now: float):
        # Its own session, closed at once: shared objects must belong to no request's session (a rollback
        # there would expire them under every other request).
        with current_app.extensions["db_sessionmaker"]() as own:
            return checkout.pricing(own), None

    return current_app.extensions["catalog_cache"].listings.get("checkout-pricing", seconds, load)


def _cart() -> carts.CheckoutCart:
    """The signed-in shopper's cart, or the anonymous one the session names."""
    if current_user.is_authenticated:
        return carts.for_checkout(get_session(), user_id=current_user.id)
    return carts.for_checkout(get_session(), cart_id=flask_session.get("cart_id"))


def _thumbnails(cart: carts.CheckoutCart) -> dict:
    """The summary's pictures, one per line."""
    return catalog.variant_thumbnails(get_session(), [line.variant_id for line in cart.lines])


def _form(formdata=None) -> CheckoutForm:
    form = CheckoutForm(formdata=formdata) if formdata is not None else CheckoutForm()
    methods = current_pricing().shipping_methods()
    form.shipping_method.choices = [SelectChoice(m.code, m.name) for m in methods]
    return form


def _prefill(form: CheckoutForm) -> None:
    """A signed-in shopper starts from their e-mail and default address."""
    form.idempotency_key.data = form.idempotency_key.data or str(uuid.uuid4())
    if form.shipping_method.data is None and form.shipping_method.choices:
        form.shipping_method.data = form.shipping_method.choices[0].value
    if not current_user.is_authenticated or form.email.data:
        return
    form.email.data = current_user.email
    saved = accounts.addresses(get_session(), current_user)
    if saved:
        for name in accounts.ADDRESS_FIELDS:
            getattr(form, name).data = getattr(saved[0], name)


def _page(form, cart, status=200, error=None):
    if form.idempotency_key.errors:
        form.idempotency_key.data = str(uuid.uuid4())
        error = error or "This form had expired. Please check it and place the order again."
    rules = current_pricing()
    quote = checkout.quote(
        get_session(),
        cart.subtotal,
        form.country.data or "US",
        form.region.data or "",
        form.shipping_method.data,
        rules,
    )
    return render_template(
        "checkout/page.html",
        form=form,
        cart=cart,
        thumbnails=_thumbnails(cart),
        quote=quote,
        error=error,
        methods=rules.shipping_methods(form.country.data or "US"),
        accept_js_url=current_app.config["ACCEPT_JS_URL"] or url_for("static", filename="js/accept-test.js"),
    ), status


@bp.get("")
def page():
    """The checkout page: contact, address, shipping, summary and card."""
    cart = _cart()
    if not cart.lines:
        return redirect(url_for("cart.detail"), 303)
    form = _form()
    _prefill(form)
    return _page(form, cart)


@bp.get("/summary")
def summary():
    """The order summary for the chosen country, region and shipping method (HTMX swaps it in)."""
    cart = _cart()
    country = request.args.get("country", "US")
    country = country if country in dict(COUNTRIES) else "US"
    rules = current_pricing()
    quote = checkout.quote(
        get_session(),
        cart.subtotal,
        country,
        request.args.get("region", "")[:80],
        request.args.get("shipping_method"),
        rules,
    )
    # The methods depend on the country too: they come along as an out-of-band swap.
    methods = rules.shipping_methods(country)
    body = render_template(
        "checkout/_summary.html", cart=cart, quote=quote, thumbnails=_thumbnails(cart)
    ) + render_template(
        "checkout/_methods.html", methods=methods, quote=quote, cart=cart, form=_form(), oob=True
    )
    response = current_app.make_response(body)
    response.vary.add("HX-Request")
    return response


def shopper_key() -> str:
    """Checkout's per-shopper limit key: the account, else the anonymous cart, else the session (never the
    address, which a drop's shoppers may share)."""
    if current_user.is_authenticated:
        return f"user:{current_user.id}"
    if "cart_id" in flask_session:
        return f"cart:{flask_session['cart_id']}"
    return f"session:{flask_session.get('csrf_token', client_ip())}"  # CSRF checked: every POST has one


def email_key() -> str:
    """The same shopper in another session or browser: the e-mail the order is for (none yet: the session)."""
    email = request.form.get("email", "").strip().lower()[:254]
    return f"email:{email}" if email else shopper_key()


def shopper_limit(key_func, scope: str):
    return limiter.limit(
        lambda: current_app.config["CHECKOUT_LIMIT_PER_SHOPPER"], key_func=key_func, scope=scope
    )


@bp.post("")
@check_limits
@limiter.limit(lambda: current_app.config["CHECKOUT_LIMIT_PER_IP"], key_func=client_ip, scope="checkout-ip")
@shopper_limit(shopper_key, "checkout-shopper")
@shopper_limit(email_key, "checkout-email")
def place():
    """Place the order: one short transaction, then the status page while the payment runs."""
    cart = _cart()
    form = _form(request.form)
    if "refresh" in request.form:  # the no-JavaScript way to update shipping and totals
        form.validate()
        return _page(form, cart)
    # Accept Hosted: the card is typed on the gateway's hosted form after the order is placed.
    pay_hosted = request.form.get("pay_with") == "hosted"
    if form.validate() and not pay_hosted:
        if form.dataDescriptor.data not in NONCE_DESCRIPTORS or not form.dataValue.data:
            form.dataValue.errors.append("Enter your card details (card payments need JavaScript).")
        elif len(form.dataValue.data) > 8192:
            form.dataValue.errors.append("The card details could not be read. Please enter them again.")
    if form.errors:
        return _page(form, cart, 422)
    _require_queue()
    try:
        email = accounts.normalize_email(form.email.data)
    except accounts.AccountError as error:
        form.email.errors.append(str(error))
        return _page(form, cart, 422)
    details = _details(form, email, pay_hosted)
    session = get_session()
    hold = timedelta(minutes=current_app.config["ORDER_HOLD_MINUTES"])
    try:
        order = checkout.place_order(session, cart, details, hold, current_pricing())
        session.commit()
    except checkout.AlreadyPlaced as placed:  # nothing was written
        return _to_status(placed.order)
    except checkout.CheckoutError as refused:
        session.rollback()
        alerts.order_refused(refused, session)
        return _page(form, _cart(), 409, error=str(refused))
    except IntegrityError:
        session.rollback()  # the same key won a race from another submit: answer with that order
        placed = orders.placed_with_key(session, form.idempotency_key.data)
        if placed is None:
            raise
        return _to_status(checkout.Placed(*placed))
    _remember_order(order.id)
    alerts.order_placed()
    flask_session["cart_count"] = 0
    if pay_hosted:  # nothing to charge until the shopper pays on the hosted form
        return _to(url_for("orders.hosted_form", number=order.number), full_page=True)
    # After the commit, so the worker always finds the order; if Redis fails right here, the sweep re-drives it.
    try:
        queues.enqueue(payment_jobs.finalize_order, order.id, queue="payments", timeout=_job_timeout())
    except redis.RedisError:
        current_app.logger.warning(
            "order %s placed but not enqueued; the sweep will finalize it", order.number
        )
    return _to_status(order)


def _details(form: CheckoutForm, email: str, pay_hosted: bool = False) -> checkout.Details:
    def text(field) -> str:
        return (field.data or "").strip()

    return checkout.Details(
        email=email,
        full_name=text(form.full_name),
        line1=text(form.line1),
        line2=text(form.line2),
        city=text(form.city),
        region=text(form.region),
        postal_code=text(form.postal_code),
        country=form.country.data,
        phone=text(form.phone),
        shipping_method=form.shipping_method.data,
        idempotency_key=form.idempotency_key.data,
        nonce_descriptor=hosted.DESCRIPTOR if pay_hosted else form.dataDescriptor.data,
        nonce_value="" if pay_hosted else form.dataValue.data,
        user_id=current_user.id if current_user.is_authenticated else None,
    )


def _job_timeout() -> int:
    config = current_app.config
    return int(2 * (config["AUTHNET_CONNECT_TIMEOUT"] + config["AUTHNET_READ_TIMEOUT"]) + 30)


def _require_queue() -> None:
    """Refuse up front when Redis is down (503 + Retry-After), so nothing is half made. When the checkout
    limits are on they have just used the same Redis, which proves it as well as a PING would."""
    if not current_app.config["REDIS_URL"] or limiter.current_limits:
        return
    try:
        redis_client().ping()
    except redis.RedisError as error:
        raise ServiceUnavailable(
            description="Checkout is briefly unavailable. Nothing was charged; please try again in a moment.",
            retry_after=5,
        ) from error


def _remember_order(order_id: int) -> None:
    """This browser placed the order, so it may see it without an account."""
    placed = [i for i in flask_session.get("orders", []) if i != order_id][-(ORDERS_IN_SESSION - 1) :]
    flask_session["orders"] = [*placed, order_id]


def _to_status(order):
    return _to(url_for("orders.status", number=order.number))


def _to(target: str, full_page: bool = False):
    """303 to the target; an HTMX request is told where to go instead (a full load when the page needs its
    own headers, as the hosted payment step does)."""
    if is_htmx():
        response = current_app.make_response(("", 204))
        response.headers["HX-Redirect" if full_page else "HX-Location"] = target
        return response
    return redirect(target, 303)
