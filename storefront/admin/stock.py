"""Admin: what is running low, each variant's stock ledger, and adjustments that are safe during a sale."""

from flask import abort, current_app, flash, redirect, request, url_for
from flask_login import current_user
from wtforms import Form, IntegerField, SelectChoice, SelectField, StringField
from wtforms.validators import Length, NumberRange, Optional, ValidationError

from storefront.admin import ADMIN_LINKS, bp
from storefront.admin.fields import CountField
from storefront.admin.products import log_changes
from storefront.catalog import editing
from storefront.db import get_session
from storefront.htmx import is_htmx, render

ADMIN_LINKS.append(("admin.low_stock", "Stock"))

MAX_PAGE = 10_000


class ThresholdForm(Form):
    threshold = IntegerField(
        "Available units at most", validators=[Optional(), NumberRange(min=0, max=editing.MAX_STOCK)]
    )
    page = IntegerField("Page", default=1, validators=[Optional(), NumberRange(min=1, max=MAX_PAGE)])


class AdjustForm(Form):
    reason = SelectField(
        "Reason", choices=[SelectChoice(value, label) for value, label in editing.STOCK_REASONS.items()]
    )
    quantity = CountField("Quantity", render_kw={"inputmode": "numeric", "autocomplete": "off"})
    note = StringField("Note", validators=[Optional(), Length(max=255)])

    def validate_quantity(self, field):
        if field.data == 0 and self.reason.data != "recount":
            raise ValidationError("Enter at least 1 unit (a recount may be 0).")


@bp.get("/stock")
def low_stock():
    """Variants at or under a threshold of available units (LOW_STOCK_THRESHOLD unless asked), fewest first."""
    form = ThresholdForm(request.args, threshold=current_app.config["LOW_STOCK_THRESHOLD"])
    variants, has_next = [], False
    if form.validate():
        variants, has_next = editing.stock_report(
            get_session(), form.threshold.data or 0, form.page.data or 1
        )
    return render(
        "admin/stock/low.html",
        "admin/stock/_low_results.html",
        status=422 if form.errors else 200,
        form=form,
        variants=variants,
        has_next=has_next,
        page=form.page.data or 1,
    )


def _variant_or_404(session, variant_id: int):
    variant = editing.staff_variant(session, variant_id)
    if variant is None:
        abort(404)
    return variant


def _stock_page(session, variant, form: AdjustForm, status: int = 200, message: str = ""):
    page = min(max(request.args.get("page", 1, type=int), 1), MAX_PAGE)
    ledger, has_next = editing.stock_ledger(session, variant.id, page)
    return render(
        "admin/stock/variant.html",
        "admin/stock/_panel.html",
        status=status,
        variant=variant,
        form=form,
        ledger=ledger,
        has_next=has_next,
        page=page,
        reasons=editing.STOCK_REASONS,
        message=message,
    )


@bp.get("/stock/<int:variant_id>")
def stock_detail(variant_id: int):
    """A variant's stock figures, its ledger newest first, and the adjust form."""
    session = get_session()
    return _stock_page(session, _variant_or_404(session, variant_id), AdjustForm())


@bp.post("/stock/<int:variant_id>")
def stock_adjust(variant_id: int):
    """Adjust on_hand with a reason in one guarded UPDATE; refused, with the reason, below what is reserved."""
    session = get_session()
    variant = _variant_or_404(session, variant_id)
    form = AdjustForm(request.form)
    if form.validate():
        try:
            movement, change = editing.adjust_stock(
                session, variant, form.reason.data, form.quantity.data, form.note.data or "", current_user.id
            )
        except editing.StockRefused as refused:
            session.rollback()
            form.quantity.errors.append(str(refused))
        else:
            log_changes(session, change)
            session.commit()
            message = f"{variant.sku}: on hand {movement.on_hand_after - movement.delta} → {movement.on_hand_after}."
            if is_htmx():
                return _stock_page(session, variant, AdjustForm(), message=message)
            flash(message, "success")
            return redirect(url_for("admin.stock_detail", variant_id=variant.id), 303)
    return _stock_page(session, variant, form, 422)
