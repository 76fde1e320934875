"""The shopper's orders: the live status page, paying again after a decline, and the order history."""

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
from storefront.htmx import is_htmx
from storefront.orders import services as orders
from storefront.payments import services as payments

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
    response = make_response(render_template(template, order=order, labels=orders.LABELS))
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


@bp.get("/account/orders")
@login_required
def history():
    """The signed-in shopper's orders."""
    return render_template(
        "orders/list.html", orders=orders.for_user(get_session(), current_user.id), labels=orders.LABELS
    )
