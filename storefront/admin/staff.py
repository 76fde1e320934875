"""Admin: staff accounts. List them, invite one by e-mail (they choose a password from the reset link),
change a role, disable or enable, reset a lost second factor. The admin role only; every change audited."""

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import EmailField, SelectChoice, SelectField
from wtforms.validators import DataRequired, Length

from jobs import emails
from storefront import queues
from storefront.accounts import lookup
from storefront.accounts import services as accounts
from storefront.accounts.models import User
from storefront.admin import ADMIN_LINKS, admin_only, bp
from storefront.audit import services as audit
from storefront.db import get_session
from storefront.extensions import client_ip
from storefront.htmx import is_htmx, render

ADMIN_LINKS.append(("admin.staff_list", "Staff"))

ROLE_LABELS = {
    "staff": "Staff: orders, products, stock, customers",
    "admin": "Admin: also staff accounts, settings and sales",
    "customer": "Customer: no admin access",
}


class InviteForm(FlaskForm):
    email = EmailField(
        "E-mail", validators=[DataRequired(), Length(max=254)], render_kw={"autocomplete": "off"}
    )
    role = SelectField(
        "Role",
        choices=[SelectChoice(role, ROLE_LABELS[role]) for role in accounts.STAFF_ROLES],
        default="staff",
    )


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=[SelectChoice(role, label) for role, label in ROLE_LABELS.items()])


def _staff():
    return current_user._get_current_object()


def _member(user_id: int) -> User:
    """A staff or admin account; anyone else is not on this page."""
    user = lookup.get_user(get_session(), user_id)
    if user is None or not user.is_staff:
        abort(404)
    return user


def _context(**extra) -> dict:
    return {
        "members": accounts.staff_members(get_session()),
        "me": current_user.id,
        "role_labels": ROLE_LABELS,
        "invite_form": extra.pop("invite_form", None) or InviteForm(formdata=None),
        **extra,
    }


def _answer(message: str, status: int = 200):
    """After a change: plain forms get a 303 back to the list with a flash, HTMX the fresh member table.
    A refusal changed nothing (rolled back) and answers with the message and a 4xx."""
    session = get_session()
    if status >= 400:
        session.rollback()
        return render(
            "admin/staff/list.html",
            "admin/staff/_members.html",
            status=status,
            **_context(message=message, error=True),
        )
    if is_htmx():
        return render_template("admin/staff/_members.html", **_context(message=message))
    flash(message, "success")
    return redirect(url_for(".staff_list"), 303)


@bp.get("/staff")
@admin_only
def staff_list():
    """Staff and admin accounts: role, two-step sign-in, disabled, last sign-in; and the invite form."""
    return render_template("admin/staff/list.html", **_context())


@bp.post("/staff")
@admin_only
def staff_invite():
    """Create a staff account (or promote a shopper's); a new one gets a link to choose its password."""
    form = InviteForm()
    session = get_session()
    existing = None
    if form.validate():
        try:
            address = accounts.normalize_email(form.email.data)
        except accounts.AccountError as error:
            form.email.errors.append(str(error))
        else:
            existing = accounts.find_user(session, address)
            if existing is not None and existing.is_staff:
                form.email.errors.append(f"{address} is {existing.role} already; change the role below.")
    if form.errors:
        return render_template("admin/staff/list.html", **_context(invite_form=form)), 422
    before = {"role": existing.role} if existing else {}
    user, created = accounts.make_staff(session, address, form.role.data)
    if created:
        action, after = "staff.invite", {"email": user.email, "role": user.role}
    else:
        action, after = "staff.role", {"role": user.role}
    audit.record(session, _staff(), action, "user", user.id, before, after, ip=client_ip())
    session.commit()
    if created:
        queues.enqueue(emails.send_password_reset, user.id, retry=queues.EMAIL_RETRY)
        message = (
            f"{user.email} is now {user.role}. They will get an e-mail with a link to choose a password."
        )
    else:
        message = f"{user.email} had an account and is now {user.role}; they sign in with their own password."
    flash(message, "success")
    return redirect(url_for(".staff_list"), 303)


@bp.post("/staff/<int:user_id>/role")
@admin_only
def staff_role(user_id: int):
    """Make a member staff or admin, or take their admin access away (back to customer)."""
    user = _member(user_id)
    form = RoleForm()
    if not form.validate():
        return _answer("Choose staff, admin or customer.", 422)
    before = {"role": user.role, "two_factor": user.totp_enabled_at is not None}
    try:
        accounts.change_role(get_session(), _staff(), user, form.role.data)
    except accounts.StaffRefused as refused:
        return _answer(str(refused), 409)
    after = {"role": user.role, "two_factor": user.totp_enabled_at is not None}
    audit.record(
        get_session(), _staff(), "staff.role", "user", user.id, *audit.changes(before, after), ip=client_ip()
    )
    get_session().commit()
    return _answer(f"{user.email} is now {user.role}.")


def _set_disabled(user_id: int, disabled: bool):
    user = _member(user_id)
    try:
        accounts.set_staff_disabled(get_session(), _staff(), user, disabled)
    except accounts.StaffRefused as refused:
        return _answer(str(refused), 409)
    audit.record(
        get_session(),
        _staff(),
        "staff.disable" if disabled else "staff.enable",
        "user",
        user.id,
        {"is_disabled": not disabled},
        {"is_disabled": disabled},
        ip=client_ip(),
    )
    get_session().commit()
    return _answer(f"{user.email} is {'disabled and signed out everywhere' if disabled else 'enabled'}.")


@bp.post("/staff/<int:user_id>/disable")
@admin_only
def staff_disable(user_id: int):
    """Disable a staff account: it cannot sign in, and every session of it is signed out."""
    return _set_disabled(user_id, True)


@bp.post("/staff/<int:user_id>/enable")
@admin_only
def staff_enable(user_id: int):
    """Enable a disabled staff account again."""
    return _set_disabled(user_id, False)


@bp.post("/staff/<int:user_id>/two-factor/reset")
@admin_only
def staff_reset_two_factor(user_id: int):
    """Clear a member's authenticator and recovery codes (a lost phone): they must enrol again."""
    user = _member(user_id)
    session = get_session()
    codes_left = accounts.recovery_codes_left(session, user)
    try:
        accounts.reset_second_factor(session, _staff(), user)
    except accounts.StaffRefused as refused:
        return _answer(str(refused), 409)
    audit.record(
        session,
        _staff(),
        "staff.two_factor_reset",
        "user",
        user.id,
        {"two_factor": True, "recovery_codes_left": codes_left},
        {"two_factor": False, "recovery_codes_left": 0},
        ip=client_ip(),
    )
    session.commit()
    return _answer(
        f"Two-step sign-in of {user.email} is reset; they are signed out and must set it up again."
    )
