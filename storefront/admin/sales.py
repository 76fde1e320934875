"""Admin: schedule a drop (its variants, sale price and per-customer limit) that starts and ends by itself."""

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import DateTimeLocalField, IntegerField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional, ValidationError

from storefront.admin import ADMIN_LINKS, admin_only, bp
from storefront.audit import services as audit
from storefront.catalog import sales
from storefront.catalog.models import Variant
from storefront.db import get_session
from storefront.extensions import client_ip

ADMIN_LINKS.append(("admin.sale_list", "Sales"))
MAX_ITEMS = 500


class SaleForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    starts_at = DateTimeLocalField("Starts (UTC)", validators=[DataRequired()], format="%Y-%m-%dT%H:%M")
    ends_at = DateTimeLocalField("Ends (UTC)", validators=[DataRequired()], format="%Y-%m-%dT%H:%M")
    per_customer_limit = IntegerField(
        "Per-customer limit", validators=[Optional(), NumberRange(min=1, max=1000)]
    )
    items = TextAreaField(
        "Variants: one “SKU, sale price” a line",
        validators=[DataRequired(), Length(max=50_000)],
        render_kw={"rows": 6, "placeholder": "DEMO-FLASH, 7.99"},
    )

    def validate_ends_at(self, field):
        if self.starts_at.data and field.data and field.data <= self.starts_at.data:
            raise ValidationError("The end must be after the start.")


def parse_items(text: str, session) -> tuple[list[tuple[Variant, Decimal]], list[str]]:
    """Lines of "SKU, price" → variants and prices, or line-by-line errors."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors, wanted = [], []
    if len(lines) > MAX_ITEMS:
        return [], [f"At most {MAX_ITEMS} variants per sale."]
    for number, line in enumerate(lines, start=1):
        sku, _, price_text = line.partition(",")
        try:
            price = Decimal(price_text.strip())
        except InvalidOperation:
            errors.append(f"Line {number}: “{price_text.strip()}” is not a price.")
            continue
        if not price.is_finite() or price < 0 or price != price.quantize(Decimal("0.01")) or price > 100_000:
            errors.append(f"Line {number}: the price must be between 0 and 100000 with at most 2 decimals.")
            continue
        wanted.append((number, sku.strip(), price))
    variants = sales.variants_by_sku(session, [s for _, s, _ in wanted])
    items, seen = [], set()
    for number, sku, price in wanted:
        variant = variants.get(sku)
        if variant is None:
            errors.append(f"Line {number}: no variant with SKU “{sku}”.")
        elif sku in seen:
            errors.append(f"Line {number}: {sku} is listed twice.")
        else:
            seen.add(sku)
            items.append((variant, price))
    return items, errors


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC)


@bp.get("/sales")
@admin_only
def sale_list():
    """Sales that are running, coming up and over."""
    every = sales.every_sale(get_session())
    return render_template("admin/sales/list.html", sales=every, now=datetime.now(UTC))


@bp.get("/sales/new")
@admin_only
def sale_new():
    """The form to schedule a drop."""
    return render_template("admin/sales/form.html", form=SaleForm(), item_errors=[])


@bp.post("/sales/new")
@admin_only
def sale_create():
    """Schedule a drop; it appears on the shop at its start and ends by itself."""
    form = SaleForm()
    session = get_session()
    items, item_errors = ([], [])
    if form.validate():
        items, item_errors = parse_items(form.items.data, session)
    if form.errors or item_errors or not items:
        if form.validate() and not item_errors and not items:
            item_errors = ["List at least one variant."]
        return render_template("admin/sales/form.html", form=form, item_errors=item_errors), 422
    sale = sales.schedule(
        session,
        form.name.data.strip(),
        _utc(form.starts_at.data),
        _utc(form.ends_at.data),
        form.per_customer_limit.data,
        items,
    )
    audit.record(
        session,
        current_user,
        "sale.create",
        "sale",
        sale.id,
        after={
            "name": sale.name,
            "starts_at": sale.starts_at,
            "ends_at": sale.ends_at,
            "per_customer_limit": sale.per_customer_limit,
            "items": ", ".join(f"{variant.sku}={price}" for variant, price in items),
        },
        ip=client_ip(),
    )
    session.commit()
    flash(f"Sale “{sale.name}” is scheduled.", "success")
    return redirect(url_for(".sale_list"), 303)


@bp.post("/sales/<int:sale_id>/end")
@admin_only
def sale_end(sale_id: int):
    """End a running or upcoming sale now."""
    session = get_session()
    sale = sales.get(session, sale_id)
    if sale is None:
        abort(404)
    now = datetime.now(UTC)
    if sale.ends_at <= now:
        flash("That sale is already over.", "warning")
        return redirect(url_for(".sale_list"), 303)
    before = {"starts_at": sale.starts_at, "ends_at": sale.ends_at}
    if sales.end(session, sale, now):
        audit.record(session, current_user, "sale.delete", "sale", sale_id, before=before, ip=client_ip())
    else:
        audit.record(
            session,
            current_user,
            "sale.end",
            "sale",
            sale_id,
            before=before,
            after={"ends_at": now},
            ip=client_ip(),
        )
    session.commit()
    flash("The sale is over.", "success")
    return redirect(url_for(".sale_list"), 303)
