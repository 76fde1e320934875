"""The shopper's orders: the live status page, paying again after a decline, and the order history."""

from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask import session as flask_session
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy.exc import IntegrityError
from wtforms import HiddenField

from jobs import payments as payment_jobs
from storefront import queues
from storefront.db import get_session
from storefront.extensions import check_limits, client_ip, limiter
from storefront.htmx import is_htmx
from storefront.orders import services as orders
from storefront.payments import hosted
from storefront.payments import services as payments
from storefront.payments.gateway import captures_at_checkout, get_gateway
from storefront.security import origin

bp = Blueprint("orders", __name__)


class PayForm(FlaskForm):
    dataDescriptor = HiddenField()
    dataValue = HiddenField()


def visible_order(number: str):
    """The order if this visitor may see it: its account, the browser that placed it, or a signed link.
    Anyone else gets a 404, as if it did not exist."""
    order = orders.by_number(get_session(), number, timeline=False)
    if order is None:
        abort(404)
    if current_user.is_authenticated and order.user_id == current_user.id:
        return order
    if order.id in flask_session.get("orders", []):
        return order
    if orders.opens(current_app.config["SECRET_KEY"], order.number, request.args.get("key", "")):
        flask_session["orders"] = [*flask_session.get("orders", [])[-19:], order.id]
        return order
    abort(404)


@bp.get("/orders/<number>")
def status(number: str):
    """The order's status; it refreshes itself until the payment is final."""
    order = visible_order(number)
    template = "orders/_status.html" if is_htmx() else "orders/status.html"
    # The full page only: the fragment is polled every second and needs no second query.
    hosted_open = not is_htmx() and order.status == "pending_payment" and _hosted_attempt(order) is not None
    response = make_response(
        render_template(template, order=order, labels=orders.LABELS, hosted_open=hosted_open)
    )
    response.vary.add("HX-Request")
    response.cache_control.no_store = True
    return response


@bp.get("/orders/<number>/pay")
def pay(number: str):
    """Try another card after a decline, while the reservation holds."""
    order = visible_order(number)
    if order.status != "payment_failed":
        return redirect(url_for(".status", number=number), 303)
    return render_template(
        "orders/pay.html",
        order=order,
        form=PayForm(),
        accept_js_url=current_app.config["ACCEPT_JS_URL"] or url_for("static", filename="js/accept-test.js"),
    )


@bp.post("/orders/<number>/pay")
def pay_post(number: str):
    """Charge the new card's nonce; the order goes back to pending_payment."""
    order = visible_order(number)
    form = PayForm()
    session = get_session()
    if order.status != "payment_failed":
        return redirect(url_for(".status", number=number), 303)
    if (
        not form.validate()
        or form.dataDescriptor.data != "COMMON.ACCEPT.INAPP.PAYMENT"
        or not form.dataValue.data
    ):
        form.dataValue.errors.append("Enter your card details (card payments need JavaScript).")
        return render_template(
            "orders/pay.html",
            order=order,
            form=form,
            accept_js_url=current_app.config["ACCEPT_JS_URL"]
            or url_for("static", filename="js/accept-test.js"),
        ), 422
    try:
        payments.new_charge(session, order, form.dataDescriptor.data, form.dataValue.data[:8192])
        moved = orders.move(session, order, "pending_payment", "The shopper is paying with another card.")
        session.commit()
    except IntegrityError:
        session.rollback()  # the same nonce posted twice: that charge is already on its way
        moved = False
    if moved:
        queues.enqueue(payment_jobs.finalize_order, order.id, queue="payments")
    return redirect(url_for(".status", number=number), 303)


def _hosted_attempt(order):
    """The order's hosted charge still open to the shopper, or None."""
    attempt = payments.latest_charge(get_session(), order.id)
    if order.status == "pending_payment" and hosted.is_hosted(attempt) and attempt.status == hosted.WAITING:
        return attempt
    return None


@bp.get("/orders/<number>/hosted")
def hosted_form(number: str):
    """The step to the hosted payment form: a button that posts a fresh form token there (no JavaScript)."""
    order = visible_order(number)
    attempt = _hosted_attempt(order)
    if attempt is None:
        return redirect(url_for(".status", number=number), 303)
    # The gateway sends the shopper back with this signed key, so coming back needs no cookie.
    key = hosted.return_key(current_app.config["SECRET_KEY"], order.number, attempt.id)
    wanted = hosted.page_request(
        order,
        attempt,
        captures_at_checkout(),
        url_for(".hosted_return", number=number, key=key, _external=True),
        url_for(".hosted_cancel", number=number, key=key, _external=True),
    )
    session = get_session()
    hosted.issued(session, attempt)
    session.commit()  # no transaction stays open while the gateway is asked
    page = get_gateway().hosted_page(wanted)
    if page is None:
        return render_template("orders/hosted.html", order=order, page=None), 503
    # Only the test gateway's stand-in is ours: only there does the form carry our CSRF token.
    ours = urlsplit(page.url).netloc == request.host
    response = make_response(render_template("orders/hosted.html", order=order, page=page, ours=ours))
    # This page alone may post a form to the payment provider's origin.
    policy = current_app.config["CONTENT_SECURITY_POLICY"]
    response.headers["Content-Security-Policy"] = policy.replace(
        "form-action 'self'", f"form-action 'self' {origin(page.url)}"
    )
    response.cache_control.no_store = True
    return response


@bp.post("/orders/<number>/hosted")
def hosted_again(number: str):
    """Pay on the hosted form after a failed payment; the order goes back to pending_payment."""
    order = visible_order(number)
    session = get_session()
    if order.status == "payment_failed":
        hosted.new_charge(session, order)
        orders.move(session, order, "pending_payment", "The shopper is paying on the hosted payment form.")
        session.commit()
    return redirect(url_for(".hosted_form", number=number), 303)


def _returned(number: str):
    """The order and hosted charge a signed return link names (from the gateway's redirect), or a 404."""
    signed = hosted.read_return_key(current_app.config["SECRET_KEY"], request.args.get("key", ""))
    order = orders.by_number(get_session(), number, timeline=False) if signed else None
    if order is None or signed[0] != number:
        abort(404)
    attempt_id = signed[1]
    # The browser that paid may see its order, as the one that placed it may.
    flask_session["orders"] = [*[i for i in flask_session.get("orders", []) if i != order.id][-19:], order.id]
    return order, attempt_id


@bp.get("/orders/<number>/hosted/return")
@check_limits
@limiter.limit("30/minute", key_func=client_ip, scope="hosted-return")
def hosted_return(number: str):
    """Back from the hosted form: look the payment up on the gateway (once, however often this is visited)."""
    order, _attempt_id = _returned(number)
    get_session().commit()
    if order.status == "pending_payment":
        queues.enqueue(payment_jobs.finalize_order, order.id, queue="payments")
    return redirect(url_for(".status", number=number), 303)


@bp.get("/orders/<number>/hosted/cancel")
@check_limits
@limiter.limit("30/minute", key_func=client_ip, scope="hosted-return")
def hosted_cancel(number: str):
    """The shopper left the hosted form: what the gateway has now is final; the order page offers a retry."""
    order, attempt_id = _returned(number)
    session = get_session()
    attempt = _hosted_attempt(order)
    finished = attempt is not None and attempt.id == attempt_id and hosted.finish(session, attempt)
    session.commit()
    if finished:
        queues.enqueue(payment_jobs.reconcile_charge, attempt_id, queue="payments")
    return redirect(url_for(".status", number=number), 303)


@bp.get("/account/orders")
@login_required
def history():
    """The signed-in shopper's orders."""
    return render_template(
        "orders/list.html", orders=orders.for_user(get_session(), current_user.id), labels=orders.LABELS
    )
