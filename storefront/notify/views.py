"""Notify me: a shopper asks to be e-mailed when a sold-out option is back, confirms by e-mail, can unsubscribe."""

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from wtforms import EmailField, Form, IntegerField
from wtforms.validators import DataRequired, Length

from jobs import notify as notify_jobs
from storefront import queues
from storefront.accounts import services as accounts
from storefront.db import get_session
from storefront.extensions import check_limits, client_ip, limiter
from storefront.htmx import is_htmx, render
from storefront.notify import services as notify

bp = Blueprint("notify", __name__)


class NotifyForm(Form):
    """CSRFProtect has checked the POST before the view runs (the form carries csrf_token())."""

    variant_id = IntegerField(validators=[DataRequired(message="Choose an option.")])
    email = EmailField("E-mail", validators=[DataRequired(), Length(max=254)])


@bp.post("/notify")
@check_limits
@limiter.limit(
    lambda: current_app.config["NOTIFY_LIMIT"],
    key_func=client_ip,
    scope="notify",
    error_message="Too many requests. Please wait a minute and try again.",
)
def subscribe():
    """Ask for a back-in-stock e-mail; a confirmation e-mail goes out first (double opt-in)."""
    form = NotifyForm(request.form)
    error = None
    if form.validate():
        try:
            email = accounts.normalize_email(form.email.data)
            subscription, unconfirmed = notify.subscribe(get_session(), form.variant_id.data, email)
        except (accounts.AccountError, notify.NotifyError) as refused:
            error = str(refused)
    else:
        error = " ".join(message for messages in form.errors.values() for message in messages)
    if error:
        get_session().rollback()
        return render("notify/requested.html", "notify/_requested.html", error=error, status=422)
    get_session().commit()
    if unconfirmed:  # after the commit, so the job finds the row
        queues.enqueue(notify_jobs.send_stock_confirmation, subscription.id)
    # The same answer for a new and a repeated request: it says nothing about who asked before.
    if is_htmx():
        return render("notify/requested.html", "notify/_requested.html")
    return redirect(url_for(".requested"), 303)


@bp.get("/notify/requested")
def requested():
    """Where a request without JavaScript lands: check your inbox."""
    return render_template("notify/requested.html")


@bp.get("/notify/confirm/<token>")
def confirm(token: str):
    """The second opt-in: the address follows the link it was sent."""
    session = get_session()
    subscription = notify.read_token(session, current_app.config["SECRET_KEY"], "confirm", token)
    if subscription is None:
        abort(404)
    confirmed = notify.confirm(subscription)
    back = confirmed and notify.in_stock(session, subscription.variant_id)
    session.commit()
    notify_jobs.watched().forget()
    if back:  # it came back before the address was confirmed: no later stock change would tell them
        queues.enqueue(notify_jobs.send_restock_notices, [subscription.variant_id])
    return render_template("notify/confirmed.html", confirmed=confirmed)


@bp.get("/notify/unsubscribe/<token>")
def unsubscribe_page(token: str):
    """Ask before unsubscribing, so a mail scanner that opens links changes nothing."""
    if notify.read_token(get_session(), current_app.config["SECRET_KEY"], "unsubscribe", token) is None:
        abort(404)
    return render_template("notify/unsubscribe.html", token=token, done=False)


@bp.post("/notify/unsubscribe/<token>")
def unsubscribe(token: str):
    """Stop the request: nothing more is sent for it."""
    session = get_session()
    subscription = notify.read_token(session, current_app.config["SECRET_KEY"], "unsubscribe", token)
    if subscription is None:
        abort(404)
    notify.unsubscribe(subscription)
    session.commit()
    return render_template("notify/unsubscribe.html", token=token, done=True)
