"""Staff accounts: list, invite by e-mail (a reset link, never a password on screen), change roles, disable,
reset a lost second factor; the admin role only, never to oneself or the last admin, every change audited."""

import re
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select, update

from storefront.accounts import services as accounts
from storefront.accounts.models import RecoveryCode, User
from storefront.audit.models import AuditEntry
from tests.factories import PASSWORD, make_user
from tests.helpers import csrf_token, enable_totp, login, read_outbox, staff_login
from tests.helpers import post_form as post


def invite(client, email: str, role: str = "staff"):
    return client.post("/admin/staff", data={"csrf_token": csrf_token(client), "email": email, "role": role})


def audit_entries(session, action: str) -> list[AuditEntry]:
    return list(
        session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id))
    )


def row(page: str, user: User) -> str:
    return re.search(rf'<tr id="staff-{user.id}">.*?</tr>', page, re.S).group(0)


def reload(session, user: User) -> User:
    session.expire_all()
    return session.get(User, user.id)


def test_the_staff_role_gets_403_on_every_staff_account_action(client, session):
    staff_login(client, session, role="staff")
    other = make_user(session, "other.staff@example.com", role="staff")
    assert client.get("/admin/staff").status_code == 403
    assert invite(client, "newbie@example.com").status_code == 403
    for action, data in [
        ("role", {"role": "admin"}),
        ("disable", {}),
        ("enable", {}),
        ("two-factor/reset", {}),
    ]:
        assert post(client, f"/admin/staff/{other.id}/{action}", **data).status_code == 403, action
    assert reload(session, other).role == "staff" and not other.is_disabled
    assert accounts.find_user(session, "newbie@example.com") is None
    assert (
        session.scalar(select(func.count(AuditEntry.id)).where(AuditEntry.action.startswith("staff."))) == 0
    )


def test_the_list_shows_role_second_factor_disabled_and_last_sign_in(client, session, admin):
    enrolled = make_user(session, "enrolled@example.com", role="staff")
    enable_totp(session, enrolled)
    gone = make_user(session, "gone@example.com", role="admin", is_disabled=True)
    make_user(session, "shopper@example.com")
    accounts.record_attempt(session, "enrolled@example.com", "203.0.113.5", "Browser", "success")
    session.flush()
    page = client.get("/admin/staff").get_data(as_text=True)
    assert "shopper@example.com" not in page
    enrolled_row = row(page, enrolled)
    assert "Enrolled" in enrolled_row and "Active" in enrolled_row and "—" not in enrolled_row
    gone_row = row(page, gone)
    assert "Disabled" in gone_row and "Not set up" in gone_row and "—" in gone_row  # never signed in
    mine = row(page, admin)
    assert "(you)" in mine and "Change role" not in mine  # no buttons against oneself


def test_inviting_creates_the_account_and_emails_a_link_to_choose_a_password(client, session, admin, outbox):
    response = invite(client, " New.Person@Example.com ", role="staff")
    assert response.status_code == 303 and response.headers["Location"] == "/admin/staff"
    user = accounts.find_user(session, "new.person@example.com")
    assert user is not None and user.role == "staff" and user.email_verified_at is not None
    assert accounts.authenticate(session, user.email, PASSWORD) is None  # nobody knows its password
    [message] = read_outbox(outbox)
    assert message["To"] == "new.person@example.com" and "password" in message["Subject"].lower()
    [entry] = audit_entries(session, "staff.invite")
    assert (entry.entity, entry.entity_id, entry.user_email) == ("user", str(user.id), admin.email)
    assert entry.before == {} and entry.after == {"email": "new.person@example.com", "role": "staff"}
    # The newcomer chooses a password through the link and enters the admin with it.
    newcomer = client.application.test_client()
    path = urlsplit(re.search(r"http://\S+", message.get_content()).group(0)).path
    chosen = newcomer.post(
        path,
        data={
            "csrf_token": csrf_token(newcomer, path),
            "password": "amber-otter-staff-7",
            "confirm": "amber-otter-staff-7",
        },
    )
    assert chosen.status_code == 303
    assert login(newcomer, user.email, "amber-otter-staff-7").status_code == 303
    assert newcomer.get("/admin/").status_code == 200


def test_inviting_a_shoppers_address_promotes_their_account(client, session, admin, outbox):
    shopper = make_user(session, "loyal@example.com")
    assert invite(client, "loyal@example.com", role="admin").status_code == 303
    shopper = reload(session, shopper)
    assert shopper.role == "admin"
    assert accounts.authenticate(session, shopper.email, PASSWORD) is not None  # their own password stays
    assert read_outbox(outbox) == []
    [entry] = audit_entries(session, "staff.role")
    assert (entry.before, entry.after) == ({"role": "customer"}, {"role": "admin"})


@pytest.mark.parametrize(
    ("email", "role", "words"),
    [
        ("not-an-address", "staff", "must have an @-sign"),
        ("", "staff", "required"),
        ("x@example.com", "superuser", "Not a valid choice"),
        ("a" * 300 + "@example.com", "staff", "characters"),
    ],
)
def test_a_bad_invitation_says_why_and_creates_nothing(client, session, admin, outbox, email, role, words):
    before = session.scalar(select(func.count(User.id)))
    response = invite(client, email, role)
    assert response.status_code == 422 and words in response.get_data(as_text=True)
    assert session.scalar(select(func.count(User.id))) == before
    assert audit_entries(session, "staff.invite") == [] and read_outbox(outbox) == []


def test_inviting_someone_who_is_staff_already_points_at_the_role_change(client, session, admin):
    member = make_user(session, "already@example.com", role="staff")
    response = invite(client, "already@example.com", role="admin")
    assert response.status_code == 422 and "is staff already" in response.get_data(as_text=True)
    assert reload(session, member).role == "staff" and audit_entries(session, "staff.role") == []


def test_changing_a_role_answers_htmx_with_the_table_and_is_audited(client, session, admin):
    member = make_user(session, "rising@example.com", role="staff")
    response = post(client, f"/admin/staff/{member.id}/role", htmx=True, role="admin")
    table = response.get_data(as_text=True)
    assert response.status_code == 200 and table.lstrip().startswith('<section id="staff-members"')
    assert "rising@example.com is now admin." in table
    assert reload(session, member).role == "admin"
    [entry] = audit_entries(session, "staff.role")
    assert (entry.before, entry.after, entry.user_email) == (
        {"role": "staff"},
        {"role": "admin"},
        admin.email,
    )
    back = post(client, f"/admin/staff/{member.id}/role", role="staff")
    assert back.status_code == 303 and reload(session, member).role == "staff"


def test_demoting_to_customer_closes_the_admin_and_drops_the_second_factor(app, client, session, admin):
    member_client = app.test_client()
    member = staff_login(member_client, session, role="staff")
    assert member_client.get("/admin/").status_code == 200
    response = post(client, f"/admin/staff/{member.id}/role", role="customer")
    assert response.status_code == 303
    member = reload(session, member)
    assert member.role == "customer" and member.totp_enabled_at is None and member.totp_secret is None
    assert session.scalar(select(func.count(RecoveryCode.id)).where(RecoveryCode.user_id == member.id)) == 0
    assert member_client.get("/admin/").status_code == 303  # signed out everywhere
    assert login(member_client, member.email).headers["Location"] == "/account"  # a plain shopper sign-in
    assert member_client.get("/admin/").status_code == 404  # and no admin for a shopper
    [entry] = audit_entries(session, "staff.role")
    assert entry.before == {"role": "staff", "two_factor": True}
    assert entry.after == {"role": "customer", "two_factor": False}
    assert f'id="staff-{member.id}"' not in client.get("/admin/staff").get_data(as_text=True)


def test_an_admin_cannot_demote_or_disable_themselves(client, session, admin):
    for action, data in [("role", {"role": "staff"}), ("role", {"role": "customer"}), ("disable", {})]:
        response = post(client, f"/admin/staff/{admin.id}/{action}", htmx=True, **data)
        assert response.status_code == 409, action
        assert "cannot change your own role" in response.get_data(as_text=True)
    me = reload(session, admin)
    assert me.role == "admin" and not me.is_disabled
    assert (
        session.scalar(select(func.count(AuditEntry.id)).where(AuditEntry.action.startswith("staff."))) == 0
    )
    assert client.get("/admin/staff").status_code == 200  # still an admin, still signed in


def test_the_last_admin_cannot_be_demoted_or_disabled(session):
    last = make_user(session, "only.admin@example.com", role="admin")
    # The rule holds in the service, whoever asks: here a staff member acting outside the page.
    someone = make_user(session, "someone@example.com", role="staff")
    session.execute(update(User).where(User.role == "admin", User.id != last.id).values(role="staff"))
    session.expire_all()
    for change in (
        lambda: accounts.change_role(session, someone, last, "staff"),
        lambda: accounts.change_role(session, someone, last, "customer"),
        lambda: accounts.set_staff_disabled(session, someone, last, True),
    ):
        with pytest.raises(accounts.StaffRefused, match="last admin"):
            change()
    assert reload(session, last).role == "admin" and not last.is_disabled
    second = make_user(session, "second.admin@example.com", role="admin")
    accounts.change_role(session, someone, last, "staff")  # with another admin left, it is allowed
    assert reload(session, last).role == "staff"
    with pytest.raises(accounts.StaffRefused, match="last admin"):
        accounts.change_role(session, someone, second, "staff")


def test_a_disabled_admin_does_not_count_as_the_remaining_admin(session):
    active = make_user(session, "active.admin@example.com", role="admin")
    make_user(session, "disabled.admin@example.com", role="admin", is_disabled=True)
    actor = make_user(session, "actor@example.com", role="staff")
    session.execute(
        update(User)
        .where(User.role == "admin", User.id != active.id, User.is_disabled.is_(False))
        .values(role="staff")
    )
    session.expire_all()
    with pytest.raises(accounts.StaffRefused, match="last admin"):
        accounts.set_staff_disabled(session, actor, active, True)


def test_disabling_a_member_signs_them_out_and_enabling_lets_them_back(app, client, session, admin):
    member_client = app.test_client()
    member = staff_login(member_client, session, role="staff")
    response = post(client, f"/admin/staff/{member.id}/disable")
    assert response.status_code == 303
    assert reload(session, member).is_disabled
    assert member_client.get("/admin/").status_code == 303  # its session no longer signs anyone in
    assert login(app.test_client(), member.email).status_code == 422
    again = post(client, f"/admin/staff/{member.id}/disable", htmx=True)
    assert again.status_code == 409 and "already disabled" in again.get_data(as_text=True)
    assert post(client, f"/admin/staff/{member.id}/enable").status_code == 303
    assert not reload(session, member).is_disabled
    assert [(e.before, e.after) for e in audit_entries(session, "staff.disable")] == [
        ({"is_disabled": False}, {"is_disabled": True})
    ]
    assert [(e.before, e.after) for e in audit_entries(session, "staff.enable")] == [
        ({"is_disabled": True}, {"is_disabled": False})
    ]


def test_resetting_a_second_factor_makes_the_member_enrol_again(app, client, session, admin):
    member_client = app.test_client()
    member = staff_login(member_client, session, role="admin")
    assert member_client.get("/admin/").status_code == 200
    response = post(client, f"/admin/staff/{member.id}/two-factor/reset", htmx=True)
    assert response.status_code == 200 and "must set it up again" in response.get_data(as_text=True)
    member = reload(session, member)
    assert member.totp_secret is None and member.totp_enabled_at is None
    assert accounts.recovery_codes_left(session, member) == 0
    assert member_client.get("/admin/").status_code == 303  # signed out everywhere
    assert login(member_client, member.email).headers["Location"] == "/account"  # no code asked any more
    enrol = member_client.get("/admin/")
    assert enrol.status_code == 303 and enrol.headers["Location"] == "/admin/security/two-factor"
    [entry] = audit_entries(session, "staff.two_factor_reset")
    assert entry.before == {"two_factor": True, "recovery_codes_left": 10}
    assert entry.after == {"two_factor": False, "recovery_codes_left": 0}
    twice = post(client, f"/admin/staff/{member.id}/two-factor/reset")
    assert twice.status_code == 409 and "has not set up two-step sign-in" in twice.get_data(as_text=True)
    own = post(client, f"/admin/staff/{admin.id}/two-factor/reset")
    assert own.status_code == 409 and reload(session, admin).totp_enabled_at is not None


def test_a_shopper_or_missing_account_is_not_on_the_staff_page(client, session, admin):
    shopper = make_user(session)
    assert post(client, f"/admin/staff/{shopper.id}/role", role="admin").status_code == 404
    assert post(client, "/admin/staff/987654321/disable").status_code == 404
    assert reload(session, shopper).role == "customer"


@pytest.mark.parametrize("value", ["x" * 5000, "\x00", "<script>alert(1)</script>", "' OR 1=1 --", "9" * 40])
def test_hostile_input_gets_a_4xx_never_a_500(client, session, admin, value):
    member = make_user(session, role="staff")
    assert invite(client, value, role=value).status_code in (400, 422)
    assert post(client, f"/admin/staff/{member.id}/role", role=value).status_code in (400, 422)
    assert reload(session, member).role == "staff"


def test_the_cli_and_the_page_share_one_way_to_make_staff(app, session):
    shopper = make_user(session, "cli.promote@example.com")
    result = app.test_cli_runner().invoke(
        args=["create-staff", "cli.promote@example.com", "--role", "admin"],
        input="violet-heron-admin-4\nviolet-heron-admin-4\n",
    )
    assert result.exit_code == 0 and "updated admin cli.promote@example.com" in result.output
    shopper = reload(session, shopper)
    assert shopper.role == "admin" and accounts.authenticate(session, shopper.email, "violet-heron-admin-4")
    bad = app.test_cli_runner().invoke(
        args=["create-staff", "nope"], input="violet-heron-9x\nviolet-heron-9x\n"
    )
    assert bad.exit_code != 0 and "@-sign" in bad.output
