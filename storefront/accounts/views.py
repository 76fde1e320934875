"""Sign-up, login with lockout, logout, password change and reset, and the address book."""

from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask import session as flask_session
from flask_login import current_user, login_required, login_user, logout_user
from werkzeug.exceptions import TooManyRequests

from jobs import emails
from storefront import queues
from storefront.accounts import services as accounts
from storefront.accounts.forms import (
    AddressForm,
    ChangePasswordForm,
    LoginForm,
    NewPasswordForm,
    RegisterForm,
    ResetRequestForm,
    SecondFactorForm,
)
from storefront.db import get_session
from storefront.extensions import client_ip, clock, limiter, login_manager, redis_client

bp = Blueprint("accounts", __name__)

# Session keys that survive the renewal at login (the anonymous cart is merged after it).
KEPT_ACROSS_LOGIN = ("cart_id",)
LIMIT_MESSAGE = "Too many attempts from here. Please wait a moment and try again."


# --- helpers ---------------------------------------------------------------------------------------


@login_manager.user_loader
def load_user(login_id: str):
    return accounts.user_for_login_id(get_session(), login_id)


@login_manager.unauthorized_handler
def unauthorized():
    """Send anonymous visitors to the login page (HX-Redirect for HTMX, never a 3xx)."""
    target = url_for("accounts.login", next=request.full_path if request.method == "GET" else None)
    if request.headers.get("HX-Request") == "true":
        response = make_response("", 401)
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target, 303)


def safe_next(target: str | None) -> str | None:
    """Only a path on this site: never another host, scheme or protocol-relative URL."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else None


def renew_session() -> None:
    """A fresh session at login and logout, keeping only what must carry over (against fixation)."""
    kept = {key: flask_session[key] for key in KEPT_ACROSS_LOGIN if key in flask_session}
    flask_session.clear()
    flask_session.update(kept)


def lockout() -> accounts.Lockout:
    config = current_app.config
    policy = accounts.LockoutPolicy(
        failures=config["LOCKOUT_FAILURES"],
        window=config["LOCKOUT_WINDOW"],
        cooloff=config["LOCKOUT_COOLOFF"],
        ip_failures=config["LOCKOUT_IP_FAILURES"],
    )
    return accounts.Lockout(redis_client(), policy)


def locked_out(lock: accounts.Lock) -> TooManyRequests:
    minutes = max(1, round(lock.retry_after(clock.now()) / 60))
    return TooManyRequests(
        description=f"Too many failed sign-ins. For your security, sign-in is paused for about "
        f"{minutes} minute{'s' if minutes != 1 else ''}. You can also reset your password.",
        retry_after=lock.retry_after(clock.now()),
    )


def account_key() -> str:
    """The rate-limit key for the account named in the form, whatever its case or spacing."""
    return "account:" + request.form.get("email", "").strip().lower()[:254]


def limit(setting: str, per_account: bool = False):
    """A configured moving-window limit, per client IP or per account named in the form."""
    return limiter.limit(
        lambda: current_app.config[setting],
        key_func=account_key if per_account else client_ip,
        error_message=LIMIT_MESSAGE,
        scope=setting.lower(),
    )


def form_page(template: str, form, status: int = 200, **context):
    """Render a form page; a form with errors answers 422 so HTMX swaps it and tools see the failure."""
    return render_template(template, form=form, **context), 422 if form.errors else status


# --- registration and e-mail confirmation ----------------------------------------------------------


@bp.get("/register")
def register():
    """The sign-up form."""
    return render_template("accounts/register.html", form=RegisterForm())


@bp.post("/register")
@limit("REGISTER_LIMIT")
def register_post():
    """Create an account; an address already registered gets the same answer and an e-mail instead."""
    form = RegisterForm()
    if not form.validate():
        return form_page("accounts/register.html", form)
    try:
        email = accounts.normalize_email(form.email.data)
    except accounts.AccountError as error:
        form.email.errors.append(str(error))
        return form_page("accounts/register.html", form)
    problem = accounts.password_problem(form.password.data, email)
    if problem:
        form.password.errors.append(problem)
        return form_page("accounts/register.html", form)
    session = get_session()
    user, created = accounts.register(session, email, form.password.data)
    session.commit()
    queues.enqueue(
        emails.send_verification if created else emails.send_account_exists, user.id, retry=queues.EMAIL_RETRY
    )
    return redirect(url_for(".register_done"), 303)


@bp.get("/register/done")
def register_done():
    """Tell the new shopper to confirm their e-mail."""
    return render_template("accounts/register_done.html")


@bp.get("/register/verify/<token>")
def verify(token: str):
    """Confirm an e-mail address from the emailed link and sign the shopper in."""
    session = get_session()
    max_age = current_app.config["VERIFY_TOKEN_MAX_AGE"]
    user = accounts.read_token(session, current_app.config["SECRET_KEY"], "verify", token, max_age)
    if user is None:
        abort(
            400,
            description="This confirmation link has expired or was already used. Sign in to get a new one.",
        )
    accounts.mark_verified(user)
    session.commit()
    renew_session()
    login_user(user)
    flash("Your e-mail address is confirmed. Welcome!", "success")
    return redirect(url_for(".account"), 303)


# --- login and logout ----------------------------------------------------------------------------


@bp.get("/login")
def login():
    """The sign-in form."""
    if current_user.is_authenticated:
        return redirect(url_for(".account"), 303)
    form = LoginForm(next=safe_next(request.args.get("next")) or "")
    return render_template("accounts/login.html", form=form)


@bp.post("/login")
@limit("LOGIN_LIMIT_PER_IP")
@limit("LOGIN_LIMIT_PER_ACCOUNT", per_account=True)
def login_post():
    """Check the password behind the lockout; the same answer for an unknown e-mail and a wrong password."""
    form = LoginForm()
    if not form.validate():
        return form_page("accounts/login.html", form)
    email = form.email.data.strip().lower()
    ip, agent, now = client_ip(), request.user_agent.string, clock.now()
    session = get_session()
    guard = lockout()
    lock = guard.current_lock(email, ip, now)
    if lock is not None:
        accounts.record_attempt(session, email, ip, agent, "locked")
        session.commit()
        raise locked_out(lock)
    user = accounts.authenticate(session, email, form.password.data)
    if user is None:
        accounts.record_attempt(session, email, ip, agent, "failed")
        session.commit()
        lock = guard.register_failure(email, ip, now)
        if lock is not None:
            raise locked_out(lock)
        form.password.errors.append("The e-mail or password is not right.")
        return form_page("accounts/login.html", form)
    guard.register_success(email, ip)
    if not user.is_active:
        accounts.record_attempt(session, email, ip, agent, "disabled")
        session.commit()
        form.email.errors.append("This account is disabled. Please contact us.")
        return form_page("accounts/login.html", form)
    if user.email_verified_at is None:
        accounts.record_attempt(session, email, ip, agent, "unverified")
        session.commit()
        queues.enqueue(emails.send_verification, user.id, retry=queues.EMAIL_RETRY)
        form.email.errors.append("Please confirm your e-mail address first: we have sent you a new link.")
        return form_page("accounts/login.html", form)
    if user.totp_enabled_at is not None:
        # The password was right; the session holds only a pending login until the second factor is given.
        accounts.record_attempt(session, email, ip, agent, "password_ok")
        session.commit()
        renew_session()
        flask_session["pending_login"] = {
            "user": user.id,
            "token": user.session_token,
            "remember": bool(form.remember.data),
            "next": safe_next(form.next.data) or "",
            "since": clock.now(),
        }
        return redirect(url_for(".second_factor"), 303)
    accounts.record_attempt(session, email, ip, agent, "success")
    renew_session()
    login_user(user, remember=form.remember.data)
    session.commit()
    return redirect(safe_next(form.next.data) or url_for(".account"), 303)


PENDING_LOGIN_SECONDS = 300


def _pending_user():
    pending = flask_session.get("pending_login")
    if not pending or clock.now() - pending.get("since", 0) > PENDING_LOGIN_SECONDS:
        flask_session.pop("pending_login", None)
        return None, None
    user = get_session().get(accounts.User, pending["user"])
    if user is None or user.session_token != pending["token"] or user.totp_enabled_at is None:
        return None, None
    return user, pending


@bp.get("/login/verify")
def second_factor():
    """The second step of a staff sign-in: the authenticator code."""
    user, _pending = _pending_user()
    if user is None:
        return redirect(url_for(".login"), 303)
    return render_template("accounts/second_factor.html", form=SecondFactorForm())


@bp.post("/login/verify")
@limit("LOGIN_LIMIT_PER_IP")
def second_factor_post():
    """Check the TOTP or a recovery code (each usable once), behind the same lockout as the password."""
    user, pending = _pending_user()
    if user is None:
        return redirect(url_for(".login"), 303)
    form = SecondFactorForm()
    if not form.validate():
        return form_page("accounts/second_factor.html", form)
    ip, agent, now = client_ip(), request.user_agent.string, clock.now()
    session = get_session()
    guard = lockout()
    lock = guard.current_lock(user.email, ip, now)
    if lock is not None:
        raise locked_out(lock)
    code = form.code.data.strip()
    step = accounts.totp_step(user.totp_secret, code, now)
    # A code is good once: remember its time step so a watched code cannot be replayed.
    fresh = step is not None and redis_client().set(f"totp:used:{user.id}:{step}", 1, nx=True, ex=120)
    if not fresh and not accounts.use_recovery_code(session, user, code):
        accounts.record_attempt(session, user.email, ip, agent, "second_factor_failed")
        session.commit()
        lock = guard.register_failure(user.email, ip, now)
        if lock is not None:
            raise locked_out(lock)
        form.code.errors.append("That code is not right, or was already used.")
        return form_page("accounts/second_factor.html", form)
    accounts.record_attempt(session, user.email, ip, agent, "success")
    guard.register_success(user.email, ip)
    renew_session()
    login_user(user, remember=pending["remember"])
    flask_session["second_factor"] = user.session_token
    session.commit()
    return redirect(pending["next"] or url_for("admin.dashboard"), 303)


@bp.post("/logout")
def logout():
    """Sign out and clear the whole session."""
    logout_user()
    flask_session.clear()
    flash("You are signed out.", "success")
    return redirect(url_for("catalog.home"), 303)


# --- password reset ------------------------------------------------------------------------------


@bp.get("/password/reset")
def reset_request():
    """Ask for a reset link."""
    return render_template("accounts/reset_request.html", form=ResetRequestForm())


@bp.post("/password/reset")
@limit("RESET_LIMIT")
@limit("RESET_LIMIT", per_account=True)
def reset_request_post():
    """Send a reset link if the account exists; the answer never says whether it does."""
    form = ResetRequestForm()
    if not form.validate():
        return form_page("accounts/reset_request.html", form)
    user = accounts.find_user(get_session(), form.email.data.strip().lower())
    # Enqueued either way so both answers take the same path and time.
    queues.enqueue(emails.send_password_reset, user.id if user else None, retry=queues.EMAIL_RETRY)
    return render_template("accounts/reset_sent.html")


def _reset_user(token: str):
    max_age = current_app.config["RESET_TOKEN_MAX_AGE"]
    user = accounts.read_token(get_session(), current_app.config["SECRET_KEY"], "reset", token, max_age)
    if user is None:
        abort(400, description="This reset link has expired or was already used. Ask for a new one.")
    return user


@bp.get("/password/reset/<token>")
def reset_password(token: str):
    """The new-password form behind a valid reset link."""
    _reset_user(token)
    return render_template("accounts/reset_password.html", form=NewPasswordForm(), token=token)


@bp.post("/password/reset/<token>")
@limit("RESET_LIMIT")
def reset_password_post(token: str):
    """Set the new password; the link stops working and every other session is signed out."""
    user = _reset_user(token)
    form = NewPasswordForm()
    if form.validate():
        problem = accounts.password_problem(form.password.data, user.email)
        if problem:
            form.password.errors.append(problem)
    if form.errors:
        return form_page("accounts/reset_password.html", form, token=token)
    accounts.set_password(user, form.password.data)
    accounts.mark_verified(user)  # the link proved the shopper owns the address
    get_session().commit()
    lockout().unlock(user.email)
    flash("Your password is changed. Sign in with the new one.", "success")
    return redirect(url_for(".login"), 303)


# --- the account pages ---------------------------------------------------------------------------


@bp.get("/account")
@login_required
def account():
    """The shopper's account overview."""
    return render_template("accounts/account.html")


@bp.get("/account/password")
@login_required
def change_password():
    """The change-password form."""
    return render_template("accounts/password.html", form=ChangePasswordForm())


@bp.post("/account/password")
@login_required
@limit("LOGIN_LIMIT_PER_IP")
def change_password_post():
    """Change the password after checking the current one; other sessions are signed out."""
    form = ChangePasswordForm()
    session = get_session()
    if form.validate():
        if accounts.authenticate(session, current_user.email, form.current_password.data) is None:
            form.current_password.errors.append("That is not your current password.")
        elif problem := accounts.password_problem(form.password.data, current_user.email):
            form.password.errors.append(problem)
    if form.errors:
        return form_page("accounts/password.html", form)
    user = current_user._get_current_object()
    accounts.set_password(user, form.password.data)
    session.commit()
    renew_session()
    login_user(user)
    flash("Your password is changed.", "success")
    return redirect(url_for(".account"), 303)


@bp.get("/account/addresses")
@login_required
def address_book():
    """The shopper's saved addresses."""
    return render_template(
        "accounts/addresses.html", addresses=accounts.addresses(get_session(), current_user)
    )


def _own_address(address_id: int):
    address = accounts.get_address(get_session(), current_user, address_id)
    if address is None:
        abort(404)
    return address


@bp.get("/account/addresses/new")
@login_required
def address_new():
    """The new-address form."""
    return render_template("accounts/address_form.html", form=AddressForm(), address=None)


@bp.post("/account/addresses/new")
@login_required
def address_create():
    """Save a new address."""
    form = AddressForm()
    if not form.validate():
        return form_page("accounts/address_form.html", form, address=None)
    session = get_session()
    accounts.save_address(session, current_user, form.data)
    session.commit()
    flash("Address saved.", "success")
    return redirect(url_for(".address_book"), 303)


@bp.get("/account/addresses/<int:address_id>/edit")
@login_required
def address_edit(address_id: int):
    """Edit one of the shopper's addresses."""
    address = _own_address(address_id)
    return render_template("accounts/address_form.html", form=AddressForm(obj=address), address=address)


@bp.post("/account/addresses/<int:address_id>/edit")
@login_required
def address_update(address_id: int):
    """Save changes to one of the shopper's addresses."""
    address = _own_address(address_id)
    form = AddressForm()
    if not form.validate():
        return form_page("accounts/address_form.html", form, address=address)
    session = get_session()
    accounts.save_address(session, current_user, form.data, address)
    session.commit()
    flash("Address updated.", "success")
    return redirect(url_for(".address_book"), 303)


@bp.post("/account/addresses/<int:address_id>/default")
@login_required
def address_default(address_id: int):
    """Make an address the default for checkout."""
    session = get_session()
    accounts.make_default(session, current_user, _own_address(address_id))
    session.commit()
    flash("Default address changed.", "success")
    return redirect(url_for(".address_book"), 303)


@bp.post("/account/addresses/<int:address_id>/delete")
@login_required
def address_delete(address_id: int):
    """Delete one of the shopper's addresses."""
    session = get_session()
    accounts.delete_address(session, current_user, _own_address(address_id))
    session.commit()
    flash("Address deleted.", "success")
    return redirect(url_for(".address_book"), 303)
