"""Feature flags, switches and samples: django-waffle's rules, a per-process cache that a change published on
Redis clears in every process, templates, the admin page (audited, admin role only) and the CLI."""

import logging
import time
from decimal import Decimal

import pytest
from flask import render_template_string
from sqlalchemy import create_engine, delete, event, select

from storefront import create_app
from storefront.audit.models import AuditEntry
from storefront.flags import services as flags
from storefront.flags.models import Flag, Sample, Switch
from tests import services
from tests.factories import make_user
from tests.helpers import post_form as post
from tests.helpers import staff_login


def rules(**fields) -> flags.FlagRules:
    return flags.FlagRules(name=fields.pop("name", "feature"), **fields)


class Shopper:
    def __init__(self, id: int, is_staff: bool = False):
        self.id, self.is_staff, self.is_authenticated = id, is_staff, True


def audit_entries(session, action: str) -> list[AuditEntry]:
    session.expire_all()
    return list(
        session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id))
    )


def stored(session, name: str) -> Flag | None:
    session.expire_all()
    return session.scalar(select(Flag).where(Flag.name == name))


# --- the rules --------------------------------------------------------------------------------------------


def test_everyone_decides_before_any_rule():
    staff = Shopper(1, is_staff=True)
    assert flags.rules_allow(rules(everyone=True), None, None)
    assert not flags.rules_allow(rules(everyone=False, staff=True, accounts=frozenset({1})), staff, "user:1")


def test_staff_and_listed_accounts_see_a_flag_others_do_not():
    flag = rules(staff=True, accounts=frozenset({7}))
    assert flags.rules_allow(flag, Shopper(1, is_staff=True), "user:1")
    assert flags.rules_allow(flag, Shopper(7), "user:7")
    assert not flags.rules_allow(flag, Shopper(8), "user:8")
    assert not flags.rules_allow(flag, None, "cookie:abc")


def test_a_percentage_is_sticky_per_shopper_and_about_the_right_share():
    flag = rules(percent=Decimal("25"))
    answers = [flags.rules_allow(flag, Shopper(n), f"user:{n}") for n in range(2000)]
    assert answers == [flags.rules_allow(flag, Shopper(n), f"user:{n}") for n in range(2000)]
    assert 400 < sum(answers) < 600  # 25% of 2000, give or take what a hash spreads


def test_two_flags_at_the_same_percentage_pick_different_shoppers():
    one, other = rules(name="one", percent=Decimal("50")), rules(name="other", percent=Decimal("50"))
    keys = [f"user:{n}" for n in range(400)]
    assert [flags.rules_allow(one, None, k) for k in keys] != [
        flags.rules_allow(other, None, k) for k in keys
    ]


def test_zero_and_a_hundred_percent_are_nobody_and_everybody():
    keys = [f"cookie:{n}" for n in range(300)]
    assert not any(flags.rules_allow(rules(percent=Decimal("0")), None, k) for k in keys)
    assert all(flags.rules_allow(rules(percent=Decimal("100")), None, k) for k in keys)


# --- reading them in the app ------------------------------------------------------------------------------


def test_the_migration_creates_the_flags_other_features_read_switched_off(app, session):
    names = set(session.scalars(select(Flag.name)))
    assert {"live_stock", "waiting_room", "new_checkout"} <= names
    with app.test_request_context():
        assert not any(flags.flag_active(name) for name in ("live_stock", "waiting_room", "new_checkout"))


def test_an_unknown_name_is_off_and_logged_once(app, connection, caplog):
    caplog.set_level(logging.WARNING, logger="storefront.flags.services")
    with app.test_request_context():
        for _ in range(3):
            assert not flags.flag_active("no_such_flag_xyz")
            assert not flags.switch_active("no_such_switch_xyz")
            assert not flags.sample_active("no_such_sample_xyz")
    warnings = [r.getMessage() for r in caplog.records if "xyz" in r.getMessage()]
    assert len(warnings) == 3, warnings


def test_a_flag_follows_the_signed_in_account(app, client, session):
    shopper = make_user(session, "listed@example.com")
    flags.save(session, "flag", "beta_page", accounts=[shopper.id])
    with app.test_request_context():
        assert not flags.flag_active("beta_page")
        assert flags.flag_active("beta_page", user=shopper)


def test_templates_ask_with_flag_switch_and_sample(app, session):
    flags.save(session, "flag", "shiny", everyone=True)
    flags.save(session, "switch", "banner", active=True)
    flags.save(session, "sample", "never", percent=Decimal("0"))
    template = '{% if flag("shiny") %}F{% endif %}{% if switch("banner") %}S{% endif %}{% if sample("never") %}N{% endif %}'
    with app.test_request_context():
        assert render_template_string(template) == "FS"


def test_an_anonymous_shopper_keeps_their_percentage_bucket_by_cookie(app, session):
    flags.save(session, "flag", "half", percent=Decimal("50"))
    with app.test_request_context():
        first = flags.flag_active("half")
        response = app.process_response(app.make_response("ok"))
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{flags.BUCKET_COOKIE}=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    token = cookie.split(";")[0].split("=", 1)[1]
    for _ in range(5):
        with app.test_request_context(headers={"Cookie": f"{flags.BUCKET_COOKIE}={token}"}):
            assert flags.flag_active("half") == first
            again = app.process_response(app.make_response("ok"))
        assert "Set-Cookie" not in again.headers  # the cookie is made once, not on every page


def test_a_page_that_checks_no_percentage_flag_sets_no_cookie(client):
    cookies = client.get("/").headers.getlist("Set-Cookie")
    assert not [cookie for cookie in cookies if cookie.startswith(flags.BUCKET_COOKIE)]


def test_a_sample_is_drawn_on_every_call(app, session):
    flags.save(session, "sample", "coin", percent=Decimal("50"))
    with app.test_request_context():
        draws = [flags.sample_active("coin") for _ in range(400)]
    assert 100 < sum(draws) < 300


# --- the cache and its invalidation across processes ------------------------------------------------------


@pytest.fixture
def cached_apps(database_url, media_folder):
    """Two apps on the same database and a real Redis, as two processes would be, trusting their cache for
    an hour: only the published change can make them read again. Flags made here are committed: removed after."""
    redis_url = services.redis_url()
    config = {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "MEDIA_FOLDER": str(media_folder),
        "FLAGS_CACHE_SECONDS": 3600,
    }
    apps = create_app(config), create_app(config)
    yield apps
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(delete(Flag).where(Flag.name.like("cached_%")))
    engine.dispose()


def _set(app, name: str, **changes) -> None:
    with app.app_context():
        from storefront.db import get_session

        session = get_session()
        flags.save(session, "flag", name, **changes)
        session.commit()
        flags.announce_change()


def _active(app, name: str) -> bool:
    with app.test_request_context():
        return flags.flag_active(name)


def test_checking_a_cached_flag_costs_no_database_round_trip(cached_apps):
    web, _other = cached_apps
    _set(web, "cached_fast", everyone=True)
    assert _active(web, "cached_fast")
    assert web.extensions["flags"].listening.wait(10)
    assert _active(web, "cached_fast")  # read again once subscribed
    statements = []
    event.listen(web.extensions["db_engine"], "before_cursor_execute", lambda *a: statements.append(a[2]))
    for _ in range(1000):
        assert _active(web, "cached_fast")
    assert statements == []


def test_a_change_reaches_another_process_through_redis_before_its_cache_expires(cached_apps):
    web, other = cached_apps
    _set(web, "cached_rollout", everyone=False)
    assert not _active(other, "cached_rollout")
    assert other.extensions["flags"].listening.wait(10)
    assert not _active(other, "cached_rollout")  # read again once subscribed: now cached for an hour
    # Without a published message `other` keeps its copy (the database already says on) ...
    engine = create_engine(web.config["DATABASE_URL"])
    with engine.begin() as conn:
        conn.execute(Flag.__table__.update().where(Flag.name == "cached_rollout").values(everyone=True))
    engine.dispose()
    assert not _active(other, "cached_rollout")
    # ... and a change made through the service, announced after commit, reaches it.
    _set(web, "cached_rollout", everyone=True, note="go")
    deadline = time.monotonic() + 10
    while not _active(other, "cached_rollout") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _active(other, "cached_rollout")


# --- /admin/flags -----------------------------------------------------------------------------------------


def test_anonymous_visitors_and_shoppers_never_see_the_flags_page(client, session):
    assert client.get("/admin/flags").status_code == 303
    shopper = make_user(session, "shopper-flags@example.com")
    from tests.helpers import login

    login(client, shopper.email)
    assert client.get("/admin/flags").status_code == 404


def test_staff_see_the_flags_but_only_the_admin_role_changes_them(client, session):
    staff_login(client, session, role="staff")
    page = client.get("/admin/flags")
    assert page.status_code == 200 and "live_stock" in page.get_data(as_text=True)
    assert "Save live_stock" not in page.get_data(as_text=True)
    assert (
        post(client, "/admin/flags/flag/live_stock", **{"flag-live_stock-everyone": "on"}).status_code == 403
    )
    assert post(client, "/admin/flags", kind="switch", name="x").status_code == 403
    assert post(client, "/admin/flags/flag/live_stock/delete").status_code == 403
    assert stored(session, "live_stock").everyone is None


def test_an_admin_turns_a_flag_on_for_staff_and_listed_accounts_and_it_is_audited(app, client, session):
    admin = staff_login(client, session, role="admin")
    tester = make_user(session, "tester@example.com")
    response = post(
        client,
        "/admin/flags/flag/waiting_room",
        **{
            "flag-waiting_room-everyone": "rules",
            "flag-waiting_room-staff": "y",
            "flag-waiting_room-percent": "12.5",
            "flag-waiting_room-accounts": "Tester@example.com",
            "flag-waiting_room-note": "trial",
        },
    )
    assert response.status_code == 303
    flag = stored(session, "waiting_room")
    assert (flag.staff, flag.percent, flag.accounts, flag.note) == (
        True,
        Decimal("12.5"),
        [tester.id],
        "trial",
    )
    [entry] = audit_entries(session, "flag.update")
    assert (entry.user_id, entry.entity, entry.entity_id) == (admin.id, "flag", "waiting_room")
    assert {key: entry.before[key] for key in ("staff", "percent", "accounts")} == {
        "staff": False,
        "percent": None,
        "accounts": "[]",
    }
    assert entry.after == {"staff": True, "percent": "12.5", "accounts": f"[{tester.id}]", "note": "trial"}
    with app.test_request_context():
        assert flags.flag_active("waiting_room", user=tester)
        assert flags.flag_active("waiting_room", user=admin)


def test_htmx_gets_the_flags_row_back(client, session):
    staff_login(client, session, role="admin")
    response = post(
        client, "/admin/flags/flag/new_checkout", htmx=True, **{"flag-new_checkout-everyone": "on"}
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and body.lstrip().startswith("<article")
    assert "On for everyone." in body and "<html" not in body
    assert stored(session, "new_checkout").everyone is True


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("percent", "150", "from 0 to 100"),
        ("percent", "ten", "like 10 or 2.5"),
        ("percent", "1.25", "at most one decimal"),
        ("accounts", "nobody@example.com", "No account for nobody@example.com"),
        ("everyone", "maybe", "Not a valid choice"),
    ],
)
def test_bad_input_is_a_422_with_a_message_and_changes_nothing(client, session, field, value, message):
    staff_login(client, session, role="admin")
    form = {"flag-live_stock-everyone": "rules", f"flag-live_stock-{field}": value}
    response = post(client, "/admin/flags/flag/live_stock", **form)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    flag = stored(session, "live_stock")
    assert (flag.everyone, flag.percent, flag.accounts) == (None, None, [])
    assert audit_entries(session, "flag.update") == []


def test_an_admin_creates_and_removes_a_switch(app, client, session):
    staff_login(client, session, role="admin")
    assert post(client, "/admin/flags", kind="switch", name="maintenance_banner").status_code == 303
    assert post(client, "/admin/flags", kind="switch", name="maintenance_banner").status_code == 422
    assert post(client, "/admin/flags", kind="flag", name="Bad Name").status_code == 422
    response = post(
        client, "/admin/flags/switch/maintenance_banner", **{"switch-maintenance_banner-active": "y"}
    )
    assert response.status_code == 303
    with app.test_request_context():
        assert flags.switch_active("maintenance_banner")
    assert post(client, "/admin/flags/switch/maintenance_banner/delete").status_code == 303
    session.expire_all()
    assert session.scalar(select(Switch).where(Switch.name == "maintenance_banner")) is None
    assert [
        e.action for e in audit_entries(session, "switch.create") + audit_entries(session, "switch.delete")
    ] == [
        "switch.create",
        "switch.delete",
    ]
    assert post(client, "/admin/flags/switch/maintenance_banner/delete").status_code == 404
    assert post(client, "/admin/flags/gadget/x").status_code == 404


def test_a_change_without_the_csrf_token_is_refused(client, session):
    staff_login(client, session, role="admin")
    response = client.post("/admin/flags/flag/live_stock", data={"flag-live_stock-everyone": "on"})
    assert response.status_code == 400
    assert stored(session, "live_stock").everyone is None


# --- flask flags list|set|unset ---------------------------------------------------------------------------


def test_operators_set_list_and_unset_from_the_command_line(app, connection, session):
    runner = app.test_cli_runner()
    make_user(session, "ops-listed@example.com")
    result = runner.invoke(args=["flags", "set", "live_stock", "--on"])
    assert result.exit_code == 0, result.output
    assert stored(session, "live_stock").everyone is True
    result = runner.invoke(
        args=[
            "flags",
            "set",
            "live_stock",
            "--rules",
            "--percent",
            "5",
            "--accounts",
            "ops-listed@example.com",
        ]
    )
    assert result.exit_code == 0, result.output
    flag = stored(session, "live_stock")
    assert (flag.everyone, flag.percent, len(flag.accounts)) == (None, Decimal("5.0"), 1)
    assert (
        runner.invoke(
            args=["flags", "set", "checkout_sample", "--kind", "sample", "--percent", "30"]
        ).exit_code
        == 0
    )
    assert session.scalar(select(Sample.percent).where(Sample.name == "checkout_sample")) == Decimal("30.0")
    listing = runner.invoke(args=["flags", "list"]).output
    assert '"name": "live_stock"' in listing and '"name": "checkout_sample"' in listing
    assert runner.invoke(args=["flags", "unset", "checkout_sample"]).exit_code == 0
    assert runner.invoke(args=["flags", "unset", "checkout_sample"]).exit_code != 0
    entries = audit_entries(session, "flag.update")
    assert len(entries) == 2 and all(e.user_email.startswith("cli:") and e.user_id is None for e in entries)
    assert [e.action for e in audit_entries(session, "sample.delete")] == ["sample.delete"]


def test_the_command_line_refuses_what_a_kind_does_not_have(app, connection, session):
    runner = app.test_cli_runner()
    assert (
        runner.invoke(args=["flags", "set", "x_switch", "--kind", "switch", "--percent", "3"]).exit_code != 0
    )
    assert (
        runner.invoke(args=["flags", "set", "live_stock", "--accounts", "nobody@example.com"]).exit_code != 0
    )
    assert runner.invoke(args=["flags", "set", "live_stock", "--percent", "101"]).exit_code != 0
    assert stored(session, "live_stock").percent is None
