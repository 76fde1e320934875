"""Staff: orders. Find them, read their timeline, capture, void, refund, ship or cancel them, export CSV.

Every change is one short transaction: the order row is locked, the change, its timeline event and its audit
entry are written together. A gateway operation is only recorded there (a payment attempt, status created);
an RQ job sends it after the commit, and the detail page polls its panel until the answer is back.
"""

import csv
import io
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from flask import (
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import DateField, DecimalField, Form, IntegerField, SelectChoice, SelectField, StringField
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
    StopValidation,
)

from jobs import emails
from jobs import payments as payment_jobs
from storefront import queues
from storefront.admin import ADMIN_LINKS, bp
from storefront.audit import services as audit
from storefront.db import get_session
from storefront.extensions import client_ip
from storefront.htmx import is_htmx, render
from storefront.orders import services as orders
from storefront.payments import followups
from storefront.payments import services as payments
from storefront.payments.gateway import captures_at_checkout, silent_since

ADMIN_LINKS.append(("admin.order_list", "Orders"))

PER_PAGE = 50
LOST_JOB = timedelta(seconds=60)  # a created attempt nobody picked up by then: its job was lost
MAX_MONEY = Decimal("9999999999.99")
CSV_COLUMNS = (
    "number",
    "created_at",
    "status",
    "email",
    "customer_id",
    "items",
    "subtotal",
    "shipping",
    "tax",
    "total",
    "refunded",
    "shipping_method",
    "ship_name",
    "ship_city",
    "ship_country",
    "tracking_number",
    "shipped_at",
)


def _finite(form, field) -> None:
    """Decimal() accepts NaN and Infinity; money never is."""
    if field.data is not None and not field.data.is_finite():
        raise StopValidation("Enter an amount in dollars and cents.")


def _cents(form, field) -> None:
    if field.data is not None and field.data.normalize().as_tuple().exponent < -2:
        raise StopValidation("Use dollars and cents (at most two decimals).")


class OrderFilterForm(Form):
    q = StringField("Order number or e-mail", validators=[Optional(), Length(max=254)])
    status = SelectField(
        "Status",
        choices=[SelectChoice("", "Any status")]
        + [SelectChoice(status, label) for status, label in orders.LABELS.items()],
        default="",
    )
    email = StringField("Customer e-mail", validators=[Optional(), Length(max=254)])
    since = DateField("Placed from", validators=[Optional()])
    until = DateField("Placed until", validators=[Optional()])
    min_total = DecimalField(
        "Total from", validators=[Optional(), _finite, NumberRange(min=0, max=MAX_MONEY)]
    )
    max_total = DecimalField(
        "Total up to", validators=[Optional(), _finite, NumberRange(min=0, max=MAX_MONEY)]
    )
    page = IntegerField("Page", default=1, validators=[Optional(), NumberRange(min=1, max=10_000)])

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        if valid and self.since.data and self.until.data and self.since.data > self.until.data:
            self.until.errors.append("The end date is before the start date.")
            valid = False
        low, high = self.min_total.data, self.max_total.data
        if valid and low is not None and high is not None and low > high:
            self.max_total.errors.append("The upper amount is below the lower one.")
            valid = False
        return valid


class RefundForm(FlaskForm):
    amount = DecimalField(
        "Amount to refund ($)",
        places=2,
        validators=[
            InputRequired(message="Enter the amount to refund."),
            _finite,
            _cents,
            NumberRange(min=Decimal("0.01"), max=MAX_MONEY, message="Enter an amount above zero."),
        ],
    )


class ShipForm(FlaskForm):
    tracking_number = StringField(
        "Tracking number",
        validators=[
            DataRequired(message="Enter the carrier's tracking number."),
            Length(max=64),
            Regexp(
                r"^[A-Za-z0-9][A-Za-z0-9 .-]{2,63}$",
                message="Use the carrier's tracking number: letters, digits, spaces, dots and dashes.",
            ),
        ],
        filters=[lambda value: value.strip() if value else value],
    )


def _day(value, after=False):
    if value is None:
        return None
    start = datetime.combine(value, time.min, tzinfo=UTC)
    return start + timedelta(days=1) if after else start


def _wanted(form: OrderFilterForm) -> orders.OrderFilter:
    return orders.OrderFilter(
        status=form.status.data or "",
        since=_day(form.since.data),
        until=_day(form.until.data, after=True),
        email=form.email.data or "",
        min_total=form.min_total.data,
        max_total=form.max_total.data,
        q=form.q.data or "",
    )


def _staff():
    return current_user._get_current_object()


def _audit(action: str, order, before: dict, after: dict) -> None:
    audit.record(get_session(), _staff(), action, "order", order.number, before, after, ip=client_ip())


@bp.get("/orders")
def order_list():
    """Orders filtered by status, dates, customer, amount or a search, newest first, a page at a time."""
    form = OrderFilterForm(request.args)
    found, has_next = [], False
    if form.validate():
        found, has_next = orders.search(get_session(), _wanted(form), form.page.data or 1, PER_PAGE)
    export_args = {key: value for key, value in request.args.items() if key != "page"}
    return render(
        "admin/orders/list.html",
        "admin/orders/_results.html",
        status=422 if form.errors else 200,
        form=form,
        orders=found,
        has_next=has_next,
        page=form.page.data or 1,
        labels=orders.LABELS,
        ship_form=ShipForm(formdata=None),
        export_url=url_for(".order_export", **export_args),
    )


def _cell(value) -> str:
    """A CSV cell a spreadsheet shows as text: a leading = + - @ (or tab/CR) would start a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@bp.get("/orders/export.csv")
def order_export():
    """The orders matching the current filters as CSV, streamed in batches."""
    form = OrderFilterForm(request.args)
    if not form.validate():
        return render_template(
            "admin/orders/list.html",
            form=form,
            orders=[],
            has_next=False,
            page=1,
            labels=orders.LABELS,
            ship_form=ShipForm(formdata=None),
            export_url="",
        ), 422
    wanted = _wanted(form)

    def rows():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        session = get_session()
        for batch in orders.export_batches(session, wanted):
            refunded = followups.refunded_by_order(session, [order.id for order in batch])
            for order in batch:
                writer.writerow(
                    _cell(value)
                    for value in (
                        order.number,
                        order.created_at.astimezone(UTC).isoformat(timespec="seconds"),
                        order.status,
                        order.email,
                        order.user_id or "",
                        order.quantity,
                        order.subtotal,
                        order.shipping_total,
                        order.tax_total,
                        order.total,
                        refunded.get(order.id, Decimal("0.00")),
                        order.shipping_method,
                        order.ship_name,
                        order.ship_city,
                        order.ship_country,
                        order.tracking_number,
                        order.shipped_at.astimezone(UTC).isoformat(timespec="seconds")
                        if order.shipped_at
                        else "",
                    )
                )
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        if buffer.getvalue():
            yield buffer.getvalue()

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    response = Response(stream_with_context(rows()), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="orders-{stamp}.csv"'
    response.cache_control.no_store = True
    return response


# --- one order ---------------------------------------------------------------------------------------


def _checkable(order) -> set[int]:
    """Attempts staff may ask about again: no answer (unknown), or a job that seems lost."""
    lost = datetime.now(UTC) - LOST_JOB
    return {
        attempt.id
        for attempt in followups.stuck(get_session(), order, silent_since())
        if attempt.status != "created" or attempt.updated_at < lost
    }


def _panel_context(order, **extra) -> dict:
    state = followups.money(get_session(), order, not captures_at_checkout())
    return {
        "order": order,
        "payment": state,
        "checkable": _checkable(order),
        "labels": orders.LABELS,
        "transitions": orders.TRANSITIONS,
        "refund_form": extra.pop("refund_form", None) or RefundForm(formdata=None),
        "ship_form": extra.pop("ship_form", None) or ShipForm(formdata=None),
        **extra,
    }


def _page(order, status: int = 200, **extra):
    """The detail page, or for HTMX its panel (status, money, actions, payments, timeline)."""
    response = render(
        "admin/orders/detail.html",
        "admin/orders/_panel.html",
        status=status,
        **_panel_context(order, **extra),
    )
    response.cache_control.no_store = True
    return response


@bp.get("/orders/<number>")
def order_detail(number: str):
    """One order: lines, totals, address, payments and timeline; the panel polls while the gateway works."""
    order = orders.for_staff(get_session(), number)
    if order is None:
        abort(404)
    return _page(order)


def _locked(number: str):
    order = orders.lock(get_session(), number)
    if order is None:
        abort(404)
    return order


def _row_wanted() -> bool:
    """The list's inline ship form asks for its table row back instead of the order's panel."""
    return is_htmx() and request.args.get("view") == "row"


def _answer(order, message: str, status: int = 200, **forms):
    """After an action: a plain form gets a 303 to the order with a flash; HTMX gets the fresh panel (or
    row). A refusal changed nothing (rolled back) and answers 409/422 with the message."""
    session = get_session()
    if status >= 400:
        session.rollback()
    if status < 400 and not is_htmx():
        flash(message, "success")
        return redirect(url_for(".order_detail", number=order.number), 303)
    session.expire_all()  # a job may have recorded the gateway's answer already (inline queue)
    fresh = orders.for_staff(session, order.number)
    category = "error" if status >= 400 else "success"
    if _row_wanted():
        response = render_template(
            "admin/orders/_row.html",
            order=fresh,
            labels=orders.LABELS,
            ship_form=forms.get("ship_form") or ShipForm(formdata=None),
            message=message,
            message_category=category,
        )
        return response, status
    return _page(fresh, status, message=message, message_category=category, **forms)


def _enqueue(attempt) -> None:
    if attempt is not None:
        queues.enqueue(payment_jobs.FOLLOW_UP_JOBS[attempt.kind], attempt.id, queue="payments")


def _state(order):
    return followups.money(get_session(), order, not captures_at_checkout())


@bp.post("/orders/<number>/capture")
def order_capture(number: str):
    """Capture an authorized (authOnly) payment: recorded now, sent to the gateway by a job."""
    order = _locked(number)
    if order.status not in ("paid", "shipped"):
        return _answer(order, f"A {orders.LABELS[order.status].lower()} order has nothing to capture.", 409)
    state = _state(order)
    try:
        attempt = followups.new_capture(get_session(), order, state, _staff().email)
    except followups.PaymentRefused as refused:
        return _answer(order, str(refused), 409)
    _audit(
        "order.capture",
        order,
        {"captured": state.captured},
        {"capture_requested": attempt.amount, "attempt": attempt.id},
    )
    get_session().commit()
    _enqueue(attempt)
    return _answer(order, f"Capture of ${attempt.amount:,.2f} sent to the gateway.")


@bp.post("/orders/<number>/void")
def order_void(number: str):
    """Void the payment (all of it goes back; after settlement the job refunds instead)."""
    order = _locked(number)
    if order.status not in ("paid", "shipped", "cancelled"):
        return _answer(order, f"A {orders.LABELS[order.status].lower()} order has no payment to void.", 409)
    state = _state(order)
    try:
        attempt = followups.new_void(get_session(), order, state, _staff().email)
    except followups.PaymentRefused as refused:
        return _answer(order, str(refused), 409)
    _audit(
        "order.void",
        order,
        {"status": order.status, "voided": False},
        {"void_requested": attempt.amount, "attempt": attempt.id},
    )
    get_session().commit()
    _enqueue(attempt)
    return _answer(order, "Void sent to the gateway.")


@bp.post("/orders/<number>/refund")
def order_refund(number: str):
    """Refund part or all of what was captured; refused before anything is recorded if it is too much."""
    order = _locked(number)
    form = RefundForm()
    if order.status not in ("paid", "shipped", "cancelled"):
        return _answer(order, f"A {orders.LABELS[order.status].lower()} order has nothing to refund.", 409)
    state = _state(order)
    if not form.validate():
        return _answer(order, "Check the refund amount.", 422, refund_form=form)
    if state.charge is not None and not state.busy and form.amount.data > state.refundable:
        form.amount.errors.append(f"At most ${state.refundable:,.2f} can be refunded.")
        return _answer(order, form.amount.errors[-1], 422, refund_form=form)
    try:
        attempt = followups.new_refund(get_session(), order, state, form.amount.data, _staff().email)
    except followups.PaymentRefused as refused:
        return _answer(order, str(refused), 409, refund_form=form)
    _audit(
        "order.refund",
        order,
        {"refunded": state.refunded, "refundable": state.refundable},
        {
            "refund_requested": attempt.amount,
            "invoice_number": attempt.invoice_number,
            "attempt": attempt.id,
        },
    )
    get_session().commit()
    _enqueue(attempt)
    return _answer(order, f"Refund of ${attempt.amount:,.2f} ({attempt.invoice_number}) sent to the gateway.")


@bp.post("/orders/<number>/ship")
def order_ship(number: str):
    """Mark a paid order shipped with its tracking number: stock leaves the shelf, the customer is told.
    With PAYMENT_CAPTURE=auth_only the payment is captured now too (capture at shipment)."""
    order = _locked(number)
    form = ShipForm()
    if "shipped" not in orders.TRANSITIONS[order.status]:
        return _answer(
            order,
            f"Only a paid order can be shipped; this one is {orders.LABELS[order.status].lower()}.",
            409,
            ship_form=form,
        )
    if not form.validate():
        return _answer(order, "Enter a tracking number to ship.", 422, ship_form=form)
    session, staff = get_session(), _staff()
    state = _state(order)
    if state.busy:
        return _answer(order, followups.BUSY, 409, ship_form=form)
    capture = followups.new_capture(session, order, state, staff.email) if state.can_capture else None
    before = {"status": order.status, "tracking_number": order.tracking_number}
    orders.ship(session, order, form.tracking_number.data, staff.email)
    after = {"status": order.status, "tracking_number": order.tracking_number, "stock": "consumed"}
    if capture is not None:
        after["capture_attempt"] = capture.id
    _audit("order.ship", order, before, after)
    session.commit()
    queues.enqueue(emails.send_shipping_confirmation, order.id, retry=queues.EMAIL_RETRY)
    _enqueue(capture)
    return _answer(
        order, f"Shipped with tracking number {order.tracking_number}; the customer is being told."
    )


@bp.post("/orders/<number>/cancel")
def order_cancel(number: str):
    """Cancel before shipping: the stock goes back at once; money already taken goes back by a void (before
    settlement) or a refund (after), sent by a job."""
    order = _locked(number)
    if "cancelled" not in orders.TRANSITIONS[order.status]:
        hint = " Refund it instead." if order.status == "shipped" else ""
        return _answer(
            order, f"A {orders.LABELS[order.status].lower()} order cannot be cancelled.{hint}", 409
        )
    session, staff = get_session(), _staff()
    before = {"status": order.status}
    state = _state(order)
    if order.status == "paid":
        if state.busy:
            return _answer(order, followups.BUSY, 409)
    elif not payments.cancel_unsent(session, order):
        # A charge was sent (or may have been) and has no final answer: cancelling now could leave a card
        # charged for a cancelled order. Its outcome comes first.
        return _answer(
            order, "The customer's payment is still being decided. Wait for its outcome first.", 409
        )
    orders.cancel(session, order, staff.email)
    attempt = followups.return_all(session, order, state, staff.email) if before["status"] == "paid" else None
    after = {"status": order.status, "stock": "released"}
    if attempt is not None:
        after |= {"money_back": attempt.kind, "amount": attempt.amount, "attempt": attempt.id}
    _audit("order.cancel", order, before, after)
    session.commit()
    queues.enqueue(emails.send_cancellation_notice, order.id, retry=queues.EMAIL_RETRY)
    _enqueue(attempt)
    message = "Order cancelled and its stock released."
    if attempt is not None:
        message += f" The {attempt.kind} of ${attempt.amount:,.2f} was sent to the gateway."
    return _answer(order, message)


@bp.post("/orders/<number>/payments/<int:attempt_id>/check")
def order_payment_check(number: str, attempt_id: int):
    """Ask again about a capture, void or refund with no answer (unknown, or its job was lost)."""
    order = _locked(number)
    attempt = next(
        (a for a in followups.stuck(get_session(), order, silent_since()) if a.id == attempt_id), None
    )
    if attempt is None:
        return _answer(order, "That payment operation is not waiting for an answer.", 409)
    _audit(
        "order.payment_check", order, {"attempt": attempt.id, "status": attempt.status}, {"checking": True}
    )
    get_session().commit()
    _enqueue(attempt)
    return _answer(order, f"Checking the {attempt.kind} with the gateway again.")
