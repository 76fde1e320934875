"""Staff second factor: enrol an authenticator app (QR code) and receive single-use recovery codes."""

from flask import flash, render_template
from flask import session as flask_session
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from storefront.accounts import services as accounts
from storefront.admin import bp
from storefront.audit import services as audit
from storefront.db import get_session
from storefront.extensions import client_ip, clock, redis_client


class EnableForm(FlaskForm):
    code = StringField(
        "6-digit code from the app",
        validators=[DataRequired(), Length(max=8)],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"},
    )


def _pending_secret() -> str:
    """The secret being enrolled lives in the signed session until a code proves the app has it."""
    if not flask_session.get("totp_enrolment"):
        flask_session["totp_enrolment"] = accounts.new_totp_secret()
    return flask_session["totp_enrolment"]


@bp.get("/security/two-factor")
def two_factor_setup():
    """Show the QR code and secret to add to an authenticator app."""
    secret = _pending_secret()
    uri = accounts.totp_uri(current_user.email, secret)
    return render_template(
        "admin/two_factor.html",
        form=EnableForm(),
        secret=secret,
        qr_svg=accounts.totp_qr_svg(uri),
        enabled=current_user.totp_enabled_at is not None,
        codes_left=accounts.recovery_codes_left(get_session(), current_user),
    )


@bp.post("/security/two-factor")
def two_factor_enable():
    """Check one code from the app, turn the second factor on, and show the recovery codes once."""
    form = EnableForm()
    secret = _pending_secret()
    step = accounts.totp_step(secret, form.code.data, clock.now()) if form.validate() else None
    if form.code.data and not form.code.errors and step is None:
        form.code.errors.append("That code does not match. Check the phone's clock and try the next code.")
    if form.errors:
        uri = accounts.totp_uri(current_user.email, secret)
        return render_template(
            "admin/two_factor.html",
            form=form,
            secret=secret,
            qr_svg=accounts.totp_qr_svg(uri),
            enabled=current_user.totp_enabled_at is not None,
            codes_left=0,
        ), 422
    session = get_session()
    user = current_user._get_current_object()
    # The code that proved the enrolment is spent, like any other: it cannot sign in again.
    redis_client().set(f"totp:used:{user.id}:{step}", 1, ex=120)
    codes = accounts.enable_totp(session, user, secret)
    audit.record(session, user, "staff.two_factor_enabled", "user", user.id, ip=client_ip())
    session.commit()
    flask_session.pop("totp_enrolment", None)
    flask_session["second_factor"] = user.session_token
    flash("Two-step sign-in is on. Keep these recovery codes somewhere safe: each works once.", "success")
    return render_template("admin/recovery_codes.html", codes=codes)
