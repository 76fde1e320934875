"""Admin: the shop's settings that checkout reads, shipping methods and tax rates. Create, edit, switch off
and on again; never delete (an order names its shipping method, and the audit log names both). The admin
role only; every change audited with its before and after."""

import re
from decimal import Decimal

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from wtforms import Form, StringField
from wtforms.validators import DataRequired, Length, Optional, Regexp

from storefront.admin import ADMIN_LINKS, admin_only, bp
from storefront.admin.fields import CountField, MoneyField, strip
from storefront.audit import services as audit
from storefront.checkout import settings as shop
from storefront.checkout.models import ShippingMethod, TaxRate
from storefront.db import get_session
from storefront.extensions import client_ip
from storefront.htmx import is_htmx

ADMIN_LINKS.append(("admin.settings_page", "Settings"))

MAX_POSITION = 1000
PERCENT = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,2})?")
COUNTRY = re.compile(r"[A-Z]{2}")


def _upper(value):
    return value.strip().upper() if isinstance(value, str) else value


class OptionalMoneyField(MoneyField):
    """A price that may be left empty (None)."""

    def process_formdata(self, valuelist):
        if not (valuelist and valuelist[0].strip()):
            self.data = None
            return
        super().process_formdata(valuelist)


class CountriesField(StringField):
    """Two-letter country codes separated by commas or spaces ("us, ca" → "US,CA"), or * for everywhere."""

    def process_formdata(self, valuelist):
        self.data = None
        text = (valuelist[0] if valuelist else "").strip()
        if text == "*":
            self.data = "*"
            return
        codes = [code for code in re.split(r"[\s,]+", text.upper()) if code]
        if not codes or not all(COUNTRY.fullmatch(code) for code in codes):
            raise ValueError("List two-letter country codes like “US, CA”, or * for everywhere.")
        joined = ",".join(dict.fromkeys(codes))
        if len(joined) > 200:
            raise ValueError("That is too many countries for one method; use * for everywhere.")
        self.data = joined

    def _value(self):
        if self.raw_data:
            return self.raw_data[0]
        return self.data or ""


class PercentField(StringField):
    """A tax rate as a percentage ("7.25"): 0 to 100, at most two decimals (what the rate column keeps)."""

    def process_formdata(self, valuelist):
        self.data = None
        text = (valuelist[0] if valuelist else "").strip().removesuffix("%").strip()
        if not text:
            raise ValueError("Enter the rate as a percentage, like 7.25.")
        if text.startswith("-"):
            raise ValueError("A rate can't be negative.")
        if not PERCENT.fullmatch(text):
            raise ValueError("Enter the rate as a percentage like 7.25: digits, at most two after the point.")
        value = Decimal(text)
        if value > 100:
            raise ValueError("A rate can be at most 100%.")
        self.data = value

    def _value(self):
        if self.raw_data:
            return self.raw_data[0]
        return "" if self.data is None else f"{self.data:.2f}"


class ShippingForm(Form):
    name = StringField("Name", filters=[strip], validators=[DataRequired(), Length(max=80)])
    description = StringField(
        "Description", filters=[strip], validators=[Optional(), Length(max=200)], default=""
    )
    price = MoneyField("Price ($)", render_kw={"inputmode": "decimal", "autocomplete": "off"})
    free_over = OptionalMoneyField(
        "Free when the goods come to ($)",
        render_kw={"inputmode": "decimal", "autocomplete": "off", "placeholder": "Never free"},
    )
    countries = CountriesField("Ships to", default="*")
    position = CountField(
        "Position in the list", default=0, maximum=MAX_POSITION, render_kw={"inputmode": "numeric"}
    )


class NewShippingForm(ShippingForm):
    code = StringField(
        "Code",
        filters=[lambda value: value.strip().lower() if isinstance(value, str) else value],
        validators=[
            DataRequired(),
            Length(max=40),
            Regexp(
                r"[a-z0-9]+(?:[-_][a-z0-9]+)*\Z",
                message="Use lower-case letters and digits, words joined by - or _.",
            ),
        ],
    )


class TaxForm(Form):
    country = StringField(
        "Country",
        filters=[_upper],
        validators=[
            DataRequired(),
            Regexp(r"[A-Z]{2}\Z", message="Use the two-letter country code, like US."),
        ],
    )
    region = StringField(
        "Region (state, province)",
        filters=[_upper],
        validators=[
            Optional(),
            Length(max=80),
            Regexp(r"[A-Z0-9][A-Z0-9 -]*\Z", message="Use the region's code, like CA: letters and digits."),
        ],
        default="",
    )
    name = StringField("Name on the receipt", filters=[strip], validators=[DataRequired(), Length(max=80)])
    rate = PercentField("Rate (%)", render_kw={"inputmode": "decimal", "autocomplete": "off"})


# --- reading and checking (the shop's settings live with checkout; these only serve this page) ----------


def _shipping_values(method: ShippingMethod) -> dict:
    return {
        "code": method.code,
        "name": method.name,
        "description": method.description,
        "price": method.price,
        "free_over": method.free_over,
        "countries": method.countries,
        "position": method.position,
        "is_active": method.is_active,
    }


def _tax_values(rate: TaxRate) -> dict:
    return {
        "country": rate.country,
        "region": rate.region,
        "name": rate.name,
        "rate": f"{rate.rate * 100:.2f}%",
        "is_active": rate.is_active,
    }


def _shipping_free(session, form: ShippingForm, method_id: int | None = None) -> bool:
    """Whether the typed code (when new) and name are unused by any other method; else a field error."""
    code = getattr(form, "code", None)
    code_taken, name_taken = shop.shipping_taken(
        session, code.data if code is not None else None, form.name.data, method_id
    )
    free = True
    if code_taken:
        code.errors.append(f"Another shipping method uses the code “{code.data}”.")
        free = False
    if name_taken:
        form.name.errors.append(f"Another shipping method is called “{form.name.data}”.")
        free = False
    return free


def _tax_free(session, form: TaxForm, rate_id: int | None = None) -> bool:
    """Whether no other rate covers the same country and region (checkout applies one per place)."""
    other = shop.tax_rate_for_place(session, form.country.data, form.region.data or "", rate_id)
    if other is None:
        return True
    where = form.country.data + (f" / {form.region.data}" if form.region.data else " (the whole country)")
    hint = " It is switched off: edit it and switch it on instead." if not other.is_active else ""
    form.region.errors.append(f"{where} already has a rate, “{other.name}”.{hint}")
    return False


def _shipping_or_404(session, method_id: int) -> ShippingMethod:
    method = shop.shipping_method(session, method_id)
    if method is None:
        abort(404)
    return method


def _tax_or_404(session, rate_id: int) -> TaxRate:
    rate = shop.tax_rate(session, rate_id)
    if rate is None:
        abort(404)
    return rate


def _audit(session, action: str, entity: str, entity_id: int, before: dict, after: dict) -> None:
    audit.record(
        session, current_user._get_current_object(), action, entity, entity_id, before, after, ip=client_ip()
    )


# --- the overview ----------------------------------------------------------------------------------------


@bp.get("/settings")
@admin_only
def settings_page():
    """Shipping methods and tax rates, those switched off too, with their edit and on/off buttons."""
    session = get_session()
    return render_template(
        "admin/settings/list.html",
        methods=shop.all_shipping_methods(session),
        rates=shop.all_tax_rates(session),
    )


def _switch(thing, entity: str, active: bool, row_template: str, label: str):
    """Switch a shipping method or tax rate on or off; HTMX gets its row back, a plain form a 303."""
    session = get_session()
    if thing.is_active == active:
        message = f"{label} is already {'on' if active else 'off'}."
        if is_htmx():
            return render_template(row_template, item=thing, message=message, error=True), 409
        session.rollback()
        return render_template(
            "admin/settings/list.html",
            methods=shop.all_shipping_methods(session),
            rates=shop.all_tax_rates(session),
            message=message,
            error=True,
        ), 409
    thing.is_active = active
    action = f"{'shipping' if entity == 'shipping_method' else 'tax'}.{'enable' if active else 'disable'}"
    _audit(session, action, entity, thing.id, {"is_active": not active}, {"is_active": active})
    session.commit()
    message = f"{label} is {'on: checkout offers it' if active else 'off: checkout no longer offers it'}."
    if is_htmx():
        return render_template(row_template, item=thing, message=message)
    flash(message, "success")
    return redirect(url_for(".settings_page"), 303)


# --- shipping methods ------------------------------------------------------------------------------------


@bp.get("/settings/shipping/new")
@admin_only
def shipping_new():
    """The form for a new shipping method."""
    return render_template("admin/settings/shipping_form.html", form=NewShippingForm(), method=None)


@bp.post("/settings/shipping/new")
@admin_only
def shipping_create():
    """Add a shipping method; checkout offers it at once where it ships."""
    session = get_session()
    form = NewShippingForm(request.form)
    if not (form.validate() and _shipping_free(session, form)):
        return render_template("admin/settings/shipping_form.html", form=form, method=None), 422
    method = shop.add_shipping_method(
        session,
        code=form.code.data,
        name=form.name.data,
        description=form.description.data or "",
        price=form.price.data,
        free_over=form.free_over.data,
        countries=form.countries.data,
        position=form.position.data,
    )
    _audit(session, "shipping.create", "shipping_method", method.id, {}, _shipping_values(method))
    session.commit()
    flash(f"Added the shipping method {method.name}.", "success")
    return redirect(url_for(".settings_page"), 303)


@bp.get("/settings/shipping/<int:method_id>")
@admin_only
def shipping_edit(method_id: int):
    """A shipping method's edit form (its code stays: checkout forms in flight post it)."""
    method = _shipping_or_404(get_session(), method_id)
    return render_template("admin/settings/shipping_form.html", form=ShippingForm(obj=method), method=method)


@bp.post("/settings/shipping/<int:method_id>")
@admin_only
def shipping_update(method_id: int):
    """Save a shipping method's name, description, price, free-over amount, countries and position."""
    session = get_session()
    method = _shipping_or_404(session, method_id)
    form = ShippingForm(request.form)
    if not (form.validate() and _shipping_free(session, form, method.id)):
        return render_template("admin/settings/shipping_form.html", form=form, method=method), 422
    before = _shipping_values(method)
    method.name, method.description = form.name.data, form.description.data or ""
    method.price, method.free_over = form.price.data, form.free_over.data
    method.countries, method.position = form.countries.data, form.position.data
    return _saved(
        session,
        "shipping.update",
        "shipping_method",
        method.id,
        before,
        _shipping_values(method),
        method.name,
    )


def _saved(session, action: str, kind: str, target_id: int, before: dict, after: dict, name: str):
    """Audit and commit what an edit form changed (only the fields that differ), then back to the list."""
    changed_before, changed_after = audit.changes(before, after)
    if changed_after:
        _audit(session, action, kind, target_id, changed_before, changed_after)
        session.commit()
        flash(f"Saved {name}.", "success")
    else:
        flash("Nothing changed.", "warning")
    return redirect(url_for(".settings_page"), 303)


@bp.post("/settings/shipping/<int:method_id>/disable")
@admin_only
def shipping_disable(method_id: int):
    """Stop offering a shipping method at checkout; orders that used it keep its name."""
    method = _shipping_or_404(get_session(), method_id)
    return _switch(method, "shipping_method", False, "admin/settings/_shipping_row.html", method.name)


@bp.post("/settings/shipping/<int:method_id>/enable")
@admin_only
def shipping_enable(method_id: int):
    """Offer a switched-off shipping method at checkout again."""
    method = _shipping_or_404(get_session(), method_id)
    return _switch(method, "shipping_method", True, "admin/settings/_shipping_row.html", method.name)


# --- tax rates -------------------------------------------------------------------------------------------


@bp.get("/settings/tax/new")
@admin_only
def tax_new():
    """The form for a new tax rate."""
    return render_template("admin/settings/tax_form.html", form=TaxForm(), rate=None)


@bp.post("/settings/tax/new")
@admin_only
def tax_create():
    """Add a tax rate for a country, or for one region of it; checkout applies it at once."""
    session = get_session()
    form = TaxForm(request.form)
    if not (form.validate() and _tax_free(session, form)):
        return render_template("admin/settings/tax_form.html", form=form, rate=None), 422
    rate = shop.add_tax_rate(
        session,
        country=form.country.data,
        region=form.region.data or "",
        name=form.name.data,
        rate=form.rate.data / 100,
    )
    _audit(session, "tax.create", "tax_rate", rate.id, {}, _tax_values(rate))
    session.commit()
    flash(f"Added the tax rate {rate.name}.", "success")
    return redirect(url_for(".settings_page"), 303)


@bp.get("/settings/tax/<int:rate_id>")
@admin_only
def tax_edit(rate_id: int):
    """A tax rate's edit form."""
    rate = _tax_or_404(get_session(), rate_id)
    data = {"country": rate.country, "region": rate.region, "name": rate.name, "rate": rate.rate * 100}
    return render_template("admin/settings/tax_form.html", form=TaxForm(data=data), rate=rate)


@bp.post("/settings/tax/<int:rate_id>")
@admin_only
def tax_update(rate_id: int):
    """Save a tax rate's place, name and percentage."""
    session = get_session()
    rate = _tax_or_404(session, rate_id)
    form = TaxForm(request.form)
    if not (form.validate() and _tax_free(session, form, rate.id)):
        return render_template("admin/settings/tax_form.html", form=form, rate=rate), 422
    before = _tax_values(rate)
    rate.country, rate.region, rate.name = form.country.data, form.region.data or "", form.name.data
    rate.rate = form.rate.data / 100
    return _saved(session, "tax.update", "tax_rate", rate.id, before, _tax_values(rate), rate.name)


@bp.post("/settings/tax/<int:rate_id>/disable")
@admin_only
def tax_disable(rate_id: int):
    """Stop applying a tax rate at checkout."""
    rate = _tax_or_404(get_session(), rate_id)
    return _switch(rate, "tax_rate", False, "admin/settings/_tax_row.html", rate.name)


@bp.post("/settings/tax/<int:rate_id>/enable")
@admin_only
def tax_enable(rate_id: int):
    """Apply a switched-off tax rate at checkout again."""
    rate = _tax_or_404(get_session(), rate_id)
    return _switch(rate, "tax_rate", True, "admin/settings/_tax_row.html", rate.name)
