"""Admin: the waiting room's override and each sale's drop mode, changed live and audited."""

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from storefront.admin import ADMIN_LINKS, admin_only, bp
from storefront.audit import services as audit
from storefront.catalog.models import Sale
from storefront.db import get_session
from storefront.extensions import client_ip, clock, redis_client
from storefront.waitingroom import services as room

ADMIN_LINKS.append(("admin.waiting_room", "Waiting room"))


def _page(status: int = 200, errors: dict | None = None, form: dict | None = None):
    session = get_session()
    now = clock.now()
    sales = room.sales_to_show(session, now)
    return render_template(
        "admin/waitingroom.html",
        status=room.status(session, redis_client(), now),
        settings=room.read_settings(redis_client()),
        sales=sales,
        modes=room.drop_modes(session, [sale.id for sale in sales]),
        errors=errors or {},
        form=form or {},
        now=room.moment(now),
        default_flags=" ".join(room.DROP_FLAGS),
    ), status


def _sale(session, sale_id: int) -> Sale:
    sale = session.get(Sale, sale_id)
    if sale is None:
        abort(404)
    return sale


def _saved(session, message: str):
    """Commit the change with its audit entry, and answer with the page."""
    session.commit()
    # This process reads the new state at once; the others within WAITING_ROOM_CACHE_SECONDS.
    current_app.extensions["waitingroom_cache"].forget()
    flash(message, "success")
    return redirect(url_for(".waiting_room"), 303)


@bp.get("/waiting-room")
@admin_only
def waiting_room():
    """The room's numbers now, the staff override, and the drop mode of every sale to come."""
    return _page()


@bp.post("/waiting-room")
@admin_only
def waiting_room_set():
    """Turn the room on with a rate and cap, off, or back to the sales' drop mode (auto)."""
    mode = request.form.get("mode", "")
    rate = request.form.get("rate", "").strip() or None
    cap = request.form.get("cap", "").strip() or None
    client = redis_client()
    before = room.read_settings(client)
    try:
        after = room.write_settings(
            client, mode, rate if mode == "on" else None, cap if mode == "on" else None
        )
    except room.WaitingRoomError as error:
        return _page(422, {"room": str(error)})
    session = get_session()
    audit.record(
        session,
        current_user,
        f"waiting_room.{mode}",
        "waiting_room",
        "",
        before=vars(before),
        after=vars(after),
        ip=client_ip(),
    )
    return _saved(session, f"The waiting room is {'following the sales' if mode == 'auto' else mode}.")


@bp.post("/waiting-room/sales/<int:sale_id>")
@admin_only
def drop_mode_set(sale_id: int):
    """Put a sale in drop mode, or tighten or loosen its settings while it runs."""
    session = get_session()
    sale = _sale(session, sale_id)
    form = request.form
    flags = form.get("flags", " ".join(room.DROP_FLAGS)).replace(",", " ").split()
    try:
        before, after = room.set_drop_mode(
            session,
            sale,
            form.get("admit_rate", ""),
            form.get("checkout_cap", ""),
            form.get("checkout_limit", ""),
            flags,
        )
    except room.WaitingRoomError as error:
        session.rollback()
        return _page(422, {sale_id: str(error)}, {sale_id: form})
    before, after = audit.changes(before, after)
    if after:
        audit.record(session, current_user, "sale.drop_mode", "sale", sale_id, before, after, ip=client_ip())
    return _saved(session, f"Drop mode of “{sale.name}” saved.")


@bp.post("/waiting-room/sales/<int:sale_id>/clear")
@admin_only
def drop_mode_clear(sale_id: int):
    """Take a sale out of drop mode: it sells without a waiting room."""
    session = get_session()
    sale = _sale(session, sale_id)
    before = room.clear_drop_mode(session, sale)
    audit.record(
        session, current_user, "sale.drop_mode", "sale", sale_id, before, {"drop_mode": False}, ip=client_ip()
    )
    return _saved(session, f"“{sale.name}” is no longer in drop mode.")
