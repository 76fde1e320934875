"""The audit log, for staff to browse and filter."""

from datetime import UTC, datetime, time, timedelta

from flask import render_template, request
from wtforms import DateField, Form, IntegerField, StringField
from wtforms.validators import Length, NumberRange, Optional

from storefront.admin import bp
from storefront.audit import services as audit
from storefront.db import get_session


class AuditFilterForm(Form):
    action = StringField("Action", validators=[Optional(), Length(max=64)])
    entity = StringField("Entity", validators=[Optional(), Length(max=32)])
    entity_id = StringField("Id", validators=[Optional(), Length(max=64)])
    user = StringField("Staff e-mail", validators=[Optional(), Length(max=254)])
    since = DateField("From", validators=[Optional()])
    until = DateField("To", validators=[Optional()])
    page = IntegerField("Page", default=1, validators=[Optional(), NumberRange(min=1, max=10_000)])


def _day(value, after=False):
    if value is None:
        return None
    start = datetime.combine(value, time.min, tzinfo=UTC)
    return start + timedelta(days=1) if after else start


@bp.get("/audit")
def audit_log():
    """Every staff change, newest first, filtered by action, entity, staff member and dates."""
    form = AuditFilterForm(request.args)
    entries, has_next = [], False
    if form.validate():
        wanted = audit.AuditFilter(
            action=form.action.data or "",
            entity=form.entity.data or "",
            entity_id=form.entity_id.data or "",
            user=form.user.data or "",
            since=_day(form.since.data),
            until=_day(form.until.data, after=True),
        )
        entries, has_next = audit.entries(get_session(), wanted, form.page.data or 1)
    status = 422 if form.errors else 200
    return render_template(
        "admin/audit.html", form=form, entries=entries, has_next=has_next, page=form.page.data or 1
    ), status
