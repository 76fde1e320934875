"""Staff: customers. Find an account, see its orders and sign-in attempts, lift its lockouts, disable or
enable it; and every lockout in force, with an unlock button each. Every change is audited."""

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import Form, HiddenField, IntegerField, StringField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from storefront.accounts import lookup
from storefront.accounts import services as accounts
from storefront.accounts.lockout import ANY_ACCOUNT, for_app
from storefront.accounts.models import User
from storefront.admin import ADMIN_LINKS, bp
from storefront.audit import services as audit
from storefront.db import get_session
from storefront.extensions import client_ip, clock
from storefront.htmx import is_htmx, render
from storefront.orders import services as orders

ADMIN_LINKS.append(("admin.customer_list", "Customers"))

PER_PAGE = 50


class CustomerSearchForm(Form):
    q = StringField("E-mail contains", validators=[Optional(), Length(max=254)])
    page = IntegerField("Page", default=1, validators=[Optional(), NumberRange(min=1, max=10_000)])


class UnlockForm(FlaskForm):
    email = HiddenField(validators=[DataRequired(), Length(max=254)])
    ip = HiddenField(validators=[Optional(), Length(max=45)])


def _staff():
    return current_user._get_current_object()


def lockout():
    return for_app(current_app)


def _user(user_id: int) -> User:
    user = lookup.get_user(get_session(), user_id)
    if user is None:
        abort(404)
    return user


@bp.get("/customers")
def customer_list():
    """Accounts found by e-mail, newest first; as-you-type results with HTMX."""
    form = CustomerSearchForm(request.args)
    found, has_next = [], False
    if form.validate():
        found, has_next = accounts.search_users(
            get_session(), form.q.data or "", form.page.data or 1, PER_PAGE
        )
    return render(
        "admin/customers/list.html",
        "admin/customers/_results.html",
        status=422 if form.errors else 200,
        form=form,
        users=found,
        has_next=has_next,
        page=form.page.data or 1,
    )


def _detail_context(user: User) -> dict:
    session = get_session()
    return {
        "user": user,
        "orders": orders.for_customer(session, user.id, user.email),
        "addresses": accounts.addresses(session, user),
        "attempts": accounts.login_attempts(session, user.email),
        "locks": lockout().locks_for(user.email, clock.now()),
        "labels": orders.LABELS,
        "now": clock.now(),
    }


@bp.get("/customers/<int:user_id>")
def customer_detail(user_id: int):
    """One account: its orders, addresses, the last 50 sign-in attempts and any lockout in force."""
    return render_template("admin/customers/detail.html", **_detail_context(_user(user_id)))


def _set_disabled(user_id: int, disabled: bool):
    user = _user(user_id)
    staff = _staff()
    refusal = None
    if user.id == staff.id:
        refusal = "You cannot disable or enable your own account."
    elif user.is_staff and staff.role != "admin":
        abort(403)  # a staff account is a permission matter: the admin role only
    elif user.is_disabled == disabled:
        refusal = f"The account is already {'disabled' if disabled else 'enabled'}."
    if refusal is not None:
        context = _detail_context(user) | {"account_message": refusal, "account_error": True}
        return render("admin/customers/detail.html", "admin/customers/_account.html", status=409, **context)
    session = get_session()
    accounts.set_disabled(user, disabled)
    action = "customer.disable" if disabled else "customer.enable"
    audit.record(
        session,
        staff,
        action,
        "user",
        user.id,
        {"is_disabled": not disabled},
        {"is_disabled": disabled},
        ip=client_ip(),
    )
    session.commit()
    message = "Account disabled and signed out everywhere." if disabled else "Account enabled."
    return _account_answer(user, message)


def _account_answer(user: User, message: str):
    """The account block with the message for HTMX; otherwise back to the account's page."""
    if is_htmx():
        return render_template("admin/customers/_account.html", user=user, account_message=message)
    flash(message, "success")
    return redirect(url_for(".customer_detail", user_id=user.id), 303)


@bp.post("/customers/<int:user_id>/disable")
def customer_disable(user_id: int):
    """Disable an account: it cannot sign in, and every session of it is signed out."""
    return _set_disabled(user_id, True)


@bp.post("/customers/<int:user_id>/enable")
def customer_enable(user_id: int):
    """Enable a disabled account again."""
    return _set_disabled(user_id, False)


@bp.post("/customers/<int:user_id>/sign-out")
def customer_sign_out(user_id: int):
    """Sign an account out of every browser and remembered device (a shared or stolen cookie stops working)."""
    user = _user(user_id)
    if user.is_staff and _staff().role != "admin":
        abort(403)  # a staff account is a permission matter: the admin role only
    session = get_session()
    accounts.sign_out_everywhere(user)
    audit.record(session, _staff(), "customer.sign_out", "user", user.id, None, None, ip=client_ip())
    session.commit()
    message = "Signed out everywhere."
    return _account_answer(user, message)


@bp.post("/customers/<int:user_id>/unlock")
def customer_unlock(user_id: int):
    """Lift every lockout on this account, from any IP."""
    user = _user(user_id)
    guard = lockout()
    ips = ", ".join(sorted(lock.ip for lock in guard.locks_for(user.email, clock.now())))
    lifted = guard.unlock(user.email)
    session = get_session()
    audit.record(
        session,
        _staff(),
        "customer.unlock",
        "user",
        user.id,
        {"locked_ips": ips},
        {"locked_ips": ""},
        ip=client_ip(),
    )
    session.commit()
    message = f"Lifted {lifted} lockout{'s' if lifted != 1 else ''}."
    if is_htmx():
        return render_template(
            "admin/customers/_locks.html", user=user, locks=[], now=clock.now(), locks_message=message
        )
    flash(message, "success")
    return redirect(url_for(".customer_detail", user_id=user.id), 303)


# --- every lockout -----------------------------------------------------------------------------------


def _lockouts_context(**extra) -> dict:
    now = clock.now()
    locks = lockout().active_locks(now)
    emails = {lock.email for lock in locks if lock.email != ANY_ACCOUNT}
    users = lookup.user_ids_by_email(get_session(), emails)
    return {"locks": locks, "user_ids": users, "now": now, "any_account": ANY_ACCOUNT, **extra}


@bp.get("/lockouts")
def lockout_list():
    """Every sign-in lockout in force (an account from an IP, or an IP across accounts)."""
    return render("admin/customers/lockouts.html", "admin/customers/_lockouts.html", **_lockouts_context())


@bp.post("/lockouts/unlock")
def lockout_unlock():
    """Lift a lockout: an account's (from every IP, like `flask unlock`), or an IP's across accounts."""
    form = UnlockForm()
    if not form.validate() or (form.email.data == ANY_ACCOUNT and not form.ip.data):
        message, status = "Choose a lockout to lift.", 422
    else:
        guard = lockout()
        session = get_session()
        if form.email.data == ANY_ACCOUNT:
            lifted = int(guard.lift_slowdown(form.ip.data))
            entity, entity_id, before = "lockout", form.ip.data, {"ip_locked": form.ip.data}
            after = {"ip_locked": None}
        else:
            email = form.email.data.strip().lower()
            ips = ", ".join(sorted(lock.ip for lock in guard.locks_for(email, clock.now())))
            lifted = guard.unlock(email)
            user_id = lookup.user_ids_by_email(session, {email}).get(email)
            entity, entity_id = ("user", user_id) if user_id else ("lockout", email[:64])
            before, after = {"email": email, "locked_ips": ips}, {"email": email, "locked_ips": ""}
        audit.record(session, _staff(), "customer.unlock", entity, entity_id, before, after, ip=client_ip())
        session.commit()
        message, status = f"Lifted {lifted} lockout{'s' if lifted != 1 else ''}.", 200
    if status >= 400:
        context = _lockouts_context(message=message, error=True)
        return render(
            "admin/customers/lockouts.html", "admin/customers/_lockouts.html", status=status, **context
        )
    if is_htmx():
        return render_template("admin/customers/_lockouts.html", **_lockouts_context(message=message))
    flash(message, "success")
    return redirect(url_for(".lockout_list"), 303)
