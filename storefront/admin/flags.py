"""Admin: feature flags, switches and samples. Staff see them; the admin role changes them, each change
audited with its before and after and announced to every process once committed."""

import re
from decimal import Decimal, InvalidOperation

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from wtforms import BooleanField, Form, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional, Regexp

from storefront.accounts import services as accounts
from storefront.admin import ADMIN_LINKS, admin_only, bp
from storefront.audit import services as audit
from storefront.db import get_session
from storefront.extensions import client_ip
from storefront.flags import services as flags
from storefront.htmx import is_htmx

ADMIN_LINKS.append(("admin.flags_page", "Flags"))

NAME = Regexp(r"[a-z][a-z0-9_]*\Z", message="Use lower-case letters, digits and _, starting with a letter.")
EVERYONE = flags.EVERYONE


class PercentField(StringField):
    """0 to 100 with at most one decimal (what the column keeps); empty is None."""

    def process_formdata(self, valuelist):
        self.data = None
        text = (valuelist[0] if valuelist else "").strip().removesuffix("%").strip()
        if not text:
            return
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise ValueError("Enter a percentage like 10 or 2.5.") from None
        if not value.is_finite() or not 0 <= value <= 100 or value != value.quantize(Decimal("0.1")):
            raise ValueError("Enter a percentage from 0 to 100, at most one decimal.")
        self.data = value.quantize(Decimal("0.1"))

    def _value(self):
        if self.raw_data:
            return self.raw_data[0]
        return "" if self.data is None else str(self.data)


class FlagForm(Form):
    everyone = SelectField(
        "Everyone",
        choices=[
            SelectChoice("rules", "Go by the rules below"),
            SelectChoice("on", "On for everyone"),
            SelectChoice("off", "Off for everyone"),
        ],
    )
    staff = BooleanField("On for staff")
    percent = PercentField("Share of shoppers (%)", render_kw={"inputmode": "decimal", "autocomplete": "off"})
    accounts = StringField("Accounts (e-mails)", validators=[Optional(), Length(max=4000)])
    note = StringField("Note", validators=[Optional(), Length(max=255)])


class SwitchForm(Form):
    active = BooleanField("On")
    note = StringField("Note", validators=[Optional(), Length(max=255)])


class SampleForm(Form):
    percent = PercentField("Share of calls (%)", render_kw={"inputmode": "decimal", "autocomplete": "off"})
    note = StringField("Note", validators=[Optional(), Length(max=255)])


class NewForm(Form):
    kind = SelectField(
        "Kind",
        choices=[
            SelectChoice("flag", "Flag"),
            SelectChoice("switch", "Switch"),
            SelectChoice("sample", "Sample"),
        ],
    )
    name = StringField(
        "Name",
        filters=[lambda v: v.strip() if isinstance(v, str) else v],
        validators=[DataRequired(), Length(max=64), NAME],
    )


FORMS = {"flag": FlagForm, "switch": SwitchForm, "sample": SampleForm}


def _form_for(kind: str, thing):
    """An edit form filled from the stored values (accounts shown as e-mails)."""
    if kind == "flag":
        everyone = next(key for key, value in EVERYONE.items() if value == thing.everyone)
        emails = ", ".join(accounts.emails_for(get_session(), thing.accounts or []))
        return FlagForm(
            everyone=everyone,
            staff=thing.staff,
            percent=thing.percent,
            accounts=emails,
            note=thing.note,
            prefix=_prefix(kind, thing.name),
        )
    return FORMS[kind](obj=thing, prefix=_prefix(kind, thing.name))


def _prefix(kind: str, name: str) -> str:
    # Each row's fields get ids of their own: the page holds one form per flag.
    return f"{kind}-{name}"


def _changes(kind: str, form) -> dict | None:
    """The values a valid form sets, or None (with field errors) when an e-mail names no account."""
    if kind == "switch":
        return {"active": form.active.data, "note": form.note.data or ""}
    if kind == "sample":
        return {"percent": form.percent.data or Decimal("0"), "note": form.note.data or ""}
    emails = [email for email in re.split(r"[\s,]+", form.accounts.data or "") if email]
    ids, missing = accounts.ids_for_emails(get_session(), emails)
    if missing:
        form.accounts.errors.append(f"No account for {', '.join(missing)}.")
        return None
    return {
        "everyone": EVERYONE[form.everyone.data],
        "staff": form.staff.data,
        "percent": form.percent.data,
        "accounts": ids,
        "note": form.note.data or "",
    }


def _kind_or_404(kind: str) -> str:
    if kind not in flags.KINDS:
        abort(404)
    return kind


def _page(status: int = 200, new_form: NewForm | None = None, forms: dict | None = None):
    everything = flags.all_of(get_session())
    rows = {
        kind: [(thing, (forms or {}).get((kind, thing.name)) or _form_for(kind, thing)) for thing in things]
        for kind, things in everything.items()
    }
    return render_template("admin/flags/list.html", rows=rows, new_form=new_form or NewForm()), status


def _commit(action: str, kind: str, name: str, before: dict, after: dict) -> None:
    """Audit the change, commit it, then tell every process."""
    audit.record(
        get_session(), current_user._get_current_object(), action, kind, name, before, after, ip=client_ip()
    )
    get_session().commit()
    flags.announce_change()


@bp.get("/flags")
def flags_page():
    """Every flag, switch and sample with its rules, and a form to change each."""
    return _page()


@bp.post("/flags")
@admin_only
def flags_create():
    """Create a flag, switch or sample, off until edited."""
    session = get_session()
    form = NewForm(request.form)
    if form.validate() and flags.find(session, form.kind.data, form.name.data) is not None:
        form.name.errors.append(f"There is already a {form.kind.data} called {form.name.data}.")
    if form.errors or not form.validate():
        session.rollback()
        return _page(422, new_form=form)
    _thing, before, after = flags.save(session, form.kind.data, form.name.data)
    _commit(f"{form.kind.data}.create", form.kind.data, form.name.data, before, after)
    flash(f"Created the {form.kind.data} {form.name.data} (off).", "success")
    return redirect(url_for(".flags_page"), 303)


@bp.post("/flags/<kind>/<name>")
@admin_only
def flags_update(kind: str, name: str):
    """Save one flag's, switch's or sample's rules; HTMX gets its row back, a plain form a 303."""
    session = get_session()
    thing = flags.find(session, _kind_or_404(kind), name)
    if thing is None:
        abort(404)
    form = FORMS[kind](request.form, prefix=_prefix(kind, name))
    changes = _changes(kind, form) if form.validate() else None
    if changes is None:
        if is_htmx():
            return render_template("admin/flags/_row.html", kind=kind, thing=thing, form=form), 422
        return _page(422, forms={(kind, name): form})
    _thing, before, after = flags.save(session, kind, name, **changes)
    changed_before, changed_after = audit.changes(before, after)
    message = "Nothing changed."
    if changed_after:
        _commit(f"{kind}.update", kind, name, changed_before, changed_after)
        message = f"Saved {name}: every process has it within a moment."
    if is_htmx():
        return render_template(
            "admin/flags/_row.html", kind=kind, thing=thing, form=_form_for(kind, thing), message=message
        )
    flash(message, "success" if changed_after else "warning")
    return redirect(url_for(".flags_page"), 303)


@bp.post("/flags/<kind>/<name>/delete")
@admin_only
def flags_delete(kind: str, name: str):
    """Remove a flag, switch or sample; code that still asks for it gets off."""
    session = get_session()
    before = flags.delete(session, _kind_or_404(kind), name)
    if before is None:
        abort(404)
    _commit(f"{kind}.delete", kind, name, before, {})
    flash(f"Removed the {kind} {name}; it now reads as off.", "success")
    return redirect(url_for(".flags_page"), 303)
