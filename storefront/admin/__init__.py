"""Staff admin at /admin: one blueprint spread over modules, every route behind the staff gate.

The gate is a before_request on the blueprint, so a route added later cannot forget it (a test walks every
admin URL rule as an anonymous visitor, a shopper and staff to prove that).
"""

import functools

from flask import Blueprint, abort, current_app, make_response, redirect, request, session, url_for
from flask_login import current_user

from storefront.extensions import login_manager

bp = Blueprint("admin", __name__)

# Routes a staff member can reach before their second factor is set up or given.
SECOND_FACTOR_EXEMPT = {"admin.two_factor_setup", "admin.two_factor_enable"}


def _redirect(target: str):
    if request.headers.get("HX-Request") == "true":
        response = make_response("", 204)
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target, 303)


@bp.before_request
def require_staff():
    """Anonymous visitors sign in; shoppers get a 404 (the admin does not exist for them); admins must
    have enrolled a second factor, and every staff member who has one must have given it this session."""
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if not current_user.is_staff:
        abort(404)
    if request.endpoint in SECOND_FACTOR_EXEMPT:
        return None
    if current_user.totp_enabled_at is None:
        if current_user.role == "admin":
            return _redirect(url_for("admin.two_factor_setup"))
        return None
    if session.get("second_factor") != current_user.session_token:
        # Signed in before enrolling, or a remembered cookie: prove the second factor again.
        current_app.logger.info("staff %s must give the second factor", current_user.id)
        return _redirect(url_for("accounts.login", next=request.full_path))
    return None


# The admin sections, in menu order; a module adds its entry when it joins the blueprint.
ADMIN_LINKS: list[tuple[str, str]] = []


@bp.app_context_processor
def admin_menu():
    return {"admin_links": ADMIN_LINKS}


def admin_only(view):
    """Staff accounts, settings and sales: the admin role only."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if current_user.role != "admin":
            abort(403)
        return view(*args, **kwargs)

    return wrapper


from storefront.admin import (  # noqa: E402, F401  (their routes join bp; menu order follows)
    audit,
    customers,
    dashboard,
    flags,
    jobs,
    live,
    orders,
    products,
    sales,
    settings,
    staff,
    stock,
    two_factor,
    waitingroom,
)
