"""The cart page and its HTMX pieces: add to cart, change quantity, remove, and the badge."""

import re
from datetime import UTC, datetime

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    url_for,
)
from flask import session as flask_session
from flask_login import current_user, user_logged_in
from flask_wtf import FlaskForm
from wtforms import IntegerField
from wtforms.validators import InputRequired, NumberRange

from storefront.cart import services as carts
from storefront.catalog import services as catalog
from storefront.db import autocommit_session, get_session
from storefront.extensions import limiter
from storefront.htmx import is_htmx

bp = Blueprint("cart", __name__)


def max_per_line() -> int:
    return current_app.config["CART_MAX_LINE_QUANTITY"]


class WholeNumberField(IntegerField):
    """Only plain ASCII digits: no signs, decimals, exponents, underscores or other scripts' digits."""

    def process_formdata(self, valuelist):
        if valuelist and not re.fullmatch(r"[0-9]{1,9}", valuelist[0].strip()):
            self.data = None
            raise ValueError("Enter a whole number." if valuelist[0].strip() else "Enter a quantity.")
        super().process_formdata(valuelist)


class AddForm(FlaskForm):
    class Meta:
        csrf = False  # CSRFProtect has checked every POST before a view runs; twice is one HMAC more per add

    variant_id = WholeNumberField(
        "Option", validators=[InputRequired(message="Choose an option."), NumberRange(min=1, max=2**31 - 1)]
    )
    quantity = WholeNumberField(
        "Quantity", default=1, validators=[InputRequired(message="Enter a quantity.")]
    )

    def validate_quantity(self, field):
        NumberRange(min=1, max=max_per_line(), message=f"Enter a whole number from 1 to {max_per_line()}.")(
            self, field
        )


class QuantityForm(FlaskForm):
    quantity = WholeNumberField("Quantity", validators=[InputRequired(message="Enter a quantity.")])

    def validate_quantity(self, field):
        NumberRange(min=1, max=max_per_line(), message=f"Enter a whole number from 1 to {max_per_line()}.")(
            self, field
        )


def first_error(form) -> str:
    for errors in form.errors.values():
        if errors:
            message = errors[0]
            return message
    return "Please check the form."


# --- which cart is this request's ---------------------------------------------------------------------


def current_cart():
    """The signed-in shopper's cart, or the anonymous one named in the signed session cookie."""
    session = get_session()
    if current_user.is_authenticated:
        return carts.get_cart(session, user_id=current_user.id)
    return carts.get_cart(session, cart_id=flask_session.get("cart_id"))


def remember_count(cart) -> int:
    """Keep the badge's count in the session, so ordinary pages need no cart query."""
    number = carts.count(get_session(), cart)
    flask_session["cart_count"] = number
    return number


@user_logged_in.connect
def merge_anonymous_cart(app, user, **_extra):
    """At login, fold the anonymous cart into the account's, capped by what is available."""
    session = get_session()
    anonymous = carts.get_cart(session, cart_id=flask_session.pop("cart_id", None))
    cart = carts.get_cart(session, user_id=user.id)
    if anonymous is not None and anonymous.lines:
        cart = cart or carts.create_cart(session, user_id=user.id)
        for note in carts.merge(session, anonymous, cart, app.config["CART_MAX_LINE_QUANTITY"]):
            flash(note, "warning")
    elif anonymous is not None:
        session.delete(anonymous)
    remember_count(cart)


# --- responses ------------------------------------------------------------------------------------


def htmx_update(fragment: str, status: int, message: str, cart_view=None, **context):
    """A fragment plus out-of-band updates of the badge (and summary) and a polite status message."""
    body = render_template(
        fragment, message=message, cart=cart_view, oob=True, is_error=status >= 400, **context
    )
    response = make_response(body, status)
    if status < 400:
        response.headers["HX-Trigger"] = "cart-updated"
    return response


@bp.get("")
def detail():
    """The cart page."""
    cart = current_cart()
    cart_view = carts.view(get_session(), cart, max_per_line())
    flask_session["cart_count"] = cart_view.count
    return render_template("cart/detail.html", cart=cart_view)


@bp.get("/badge")
def badge():
    """The cart badge alone, for pages that refresh it."""
    count = remember_count(current_cart())
    response = make_response(render_template("cart/_badge.html", cart_count=count))
    response.cache_control.no_store = True
    return response


@bp.post("/add")
@limiter.limit(lambda: current_app.config["ADD_TO_CART_LIMIT"])
def add():
    """Add a variant to the cart: a status message and the badge for HTMX, a 303 to the cart otherwise."""
    form = AddForm()
    error = None if form.validate() else first_error(form)
    if error is None:
        signed_in = current_user.is_authenticated  # loads a signed-in shopper first
        session = autocommit_session()  # on PostgreSQL adding is one statement: no BEGIN and COMMIT needed
        try:
            added = carts.add_item(
                session,
                form.variant_id.data,
                form.quantity.data,
                max_per_line(),
                user_id=current_user.id if signed_in else None,
                cart_id=None if signed_in else flask_session.get("cart_id"),
            )
            session.commit()
        except carts.CartError as refused:
            session.rollback()
            error = str(refused)
    if error is not None:
        return _add_refused(form, error)
    if not signed_in and flask_session.get("cart_id") != added.cart_id:
        flask_session["cart_id"] = added.cart_id
    count = flask_session["cart_count"] = added.count
    message = f"Added to your cart ({count} item{'s' if count != 1 else ''})."
    if is_htmx():
        return htmx_update("cart/_added.html", 200, message, cart_count=count)
    flash(message, "success")
    return redirect(url_for(".detail"), 303)


def _add_refused(form, error: str):
    if is_htmx():
        return htmx_update("cart/_added.html", 422, error, cart_count=flask_session.get("cart_count", 0))
    product = None
    if form.variant_id.data:
        now = datetime.now(UTC)
        product = catalog.product_page(get_session(), now, variant_id=form.variant_id.data)
    if product is None:
        abort(422, description=error)
    return render_template("catalog/product.html", product=product, add_error=error, form=form), 422


@bp.post("/lines/<int:line_id>")
def update(line_id: int):
    """Change a line's quantity."""
    session = get_session()
    cart = current_cart()
    line = carts.get_line(session, cart, line_id) if cart else None
    if line is None:
        abort(404)
    form = QuantityForm()
    error = None if form.validate() else first_error(form)
    if error is None:
        try:
            carts.set_quantity(session, cart, line, form.quantity.data, max_per_line())
            session.commit()
        except carts.CartError as refused:
            session.rollback()
            error = str(refused)
    return _line_response(cart, line_id, error, "Quantity updated.")


@bp.post("/lines/<int:line_id>/remove")
def remove(line_id: int):
    """Remove a line from the cart."""
    session = get_session()
    cart = current_cart()
    line = carts.get_line(session, cart, line_id) if cart else None
    if line is None:
        abort(404)
    name = f"{line.variant.product.name} ({line.variant.name})"
    carts.remove_line(session, cart, line)
    session.commit()
    return _line_response(cart, line_id, None, f"Removed {name}.")


def _line_response(cart, line_id: int, error: str | None, success: str):
    session = get_session()
    cart_view = carts.view(session, cart, max_per_line())
    flask_session["cart_count"] = cart_view.count
    line_view = next((v for v in cart_view.lines if v.line.id == line_id), None)
    if is_htmx():
        return htmx_update(
            "cart/_line_update.html",
            422 if error else 200,
            error or success,
            cart_view,
            line=line_view,
            error=error,
            cart_count=cart_view.count,
        )
    if error:
        return render_template("cart/detail.html", cart=cart_view, line_errors={line_id: error}), 422
    flash(success, "success")
    return redirect(url_for(".detail"), 303)
