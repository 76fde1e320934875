"""Accounts: sign-up with e-mail confirmation, login, logout, password change and reset, address book."""

import re

import pytest
from sqlalchemy import func, select

from storefront.accounts import services as accounts
from storefront.accounts.models import Address, LoginAttempt, User
from tests.factories import PASSWORD, make_user
from tests.helpers import csrf_token, login, read_outbox


def post(client, url, data, page=None):
    return client.post(url, data={"csrf_token": csrf_token(client, page or "/password/reset"), **data})


def link_in(message) -> str:
    return re.search(r"http://\S+", message.get_content()).group(0)


def without_tokens(response) -> str:
    """The page with its per-render CSRF tokens blanked, to compare two answers."""
    body = re.sub(r'value="[^"]*"', 'value=""', response.get_data(as_text=True))
    return re.sub(r'"X-CSRFToken": "[^"]*"', "", body)


def path_of(link: str) -> str:
    return link.split("://", 1)[1].split("/", 1)[1].join(["/", ""])


# --- registration ----------------------------------------------------------------------------------


def test_registration_sends_a_confirmation_link_that_signs_the_shopper_in(client, session, outbox):
    response = post(
        client,
        "/register",
        {"email": "New.Shopper@Example.com", "password": "lilac-tiger-42", "confirm": "lilac-tiger-42"},
    )
    assert response.status_code == 303 and response.headers["Location"] == "/register/done"
    user = session.scalar(select(User).where(User.email == "new.shopper@example.com"))
    assert user is not None and user.email_verified_at is None and user.password_hash.startswith("scrypt:")
    [message] = read_outbox(outbox)
    assert message["To"] == "new.shopper@example.com"
    confirmed = client.get(path_of(link_in(message)))
    assert confirmed.status_code == 303 and confirmed.headers["Location"] == "/account"
    assert "new.shopper@example.com" in client.get("/account").get_data(as_text=True)
    again = client.get(path_of(link_in(message)))
    assert again.status_code == 400  # the link worked once


def test_registering_a_taken_email_answers_exactly_like_a_new_one(client, session, outbox):
    make_user(session, "taken@example.com")
    data = {"password": "lilac-tiger-42", "confirm": "lilac-tiger-42"}
    new = post(client, "/register", {"email": "fresh@example.com", **data})
    taken = post(client, "/register", {"email": "TAKEN@example.com", **data})
    assert (new.status_code, new.headers["Location"]) == (taken.status_code, taken.headers["Location"])
    assert session.scalar(select(func.count(User.id)).where(User.email == "taken@example.com")) == 1
    subjects = [m["Subject"] for m in read_outbox(outbox)]
    assert subjects == ["Confirm your Storefront account", "You already have a Storefront account"]


@pytest.mark.parametrize(
    ("email", "password", "confirm", "message"),
    [
        ("not-an-email", "lilac-tiger-42", "lilac-tiger-42", "email address"),
        ("a@example.com", "short", "short", "at least 10"),
        ("a@example.com", "password123", "password123", "too common"),
        ("a@example.com", "qwertyuiop", "qwertyuiop", "too common"),
        ("alice@example.com", "alice-is-great", "alice-is-great", "e-mail address in your password"),
        ("a@example.com", "lilac-tiger-42", "lilac-tiger-43", "differ"),
        ("a@example.com", "x" * 129, "x" * 129, "129"),
        ("", "", "", "This field is required"),
    ],
)
def test_registration_rejects_bad_input_with_a_message(client, session, email, password, confirm, message):
    response = post(client, "/register", {"email": email, "password": password, "confirm": confirm})
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert message in body or message in body.replace("&#39;", "'") or "characters" in body
    assert session.scalar(select(func.count(User.id))) == 0


# --- login and logout ------------------------------------------------------------------------------


def test_login_signs_in_and_renews_the_session(client, session):
    make_user(session, "shopper@example.com")
    client.get("/login")
    before = client.get_cookie("session").value
    response = login(client, "Shopper@Example.com ")
    assert response.status_code == 303 and response.headers["Location"] == "/account"
    assert client.get_cookie("session").value != before
    assert client.get_cookie("remember_token") is None
    assert "Signed in as" in client.get("/account").get_data(as_text=True)


def test_remember_me_sets_a_long_lived_httponly_cookie(client, session):
    make_user(session, "shopper@example.com")
    login(client, "shopper@example.com", remember="y")
    cookie = client.get_cookie("remember_token")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"


def test_unknown_email_and_wrong_password_get_the_same_answer(client, session):
    make_user(session, "shopper@example.com")
    wrong = login(client, "shopper@example.com", "wrong password here")
    unknown = login(client, "nobody@example.com", "wrong password here")
    assert wrong.status_code == unknown.status_code == 422
    assert without_tokens(wrong).replace("shopper@example.com", "X") == without_tokens(unknown).replace(
        "nobody@example.com", "X"
    )
    assert "The e-mail or password is not right." in wrong.get_data(as_text=True)


def test_unverified_account_cannot_sign_in_and_gets_a_new_link(client, session, outbox):
    make_user(session, "late@example.com", email_verified_at=None)
    response = login(client, "late@example.com")
    assert response.status_code == 422 and "confirm your e-mail" in response.get_data(as_text=True)
    assert [m["Subject"] for m in read_outbox(outbox)] == ["Confirm your Storefront account"]


def test_disabled_account_cannot_sign_in(client, session):
    make_user(session, "gone@example.com", is_disabled=True)
    response = login(client, "gone@example.com")
    assert response.status_code == 422 and "disabled" in response.get_data(as_text=True)


def test_login_follows_only_a_local_next_url(client, session):
    make_user(session, "shopper@example.com")
    assert login(client, "shopper@example.com", next="/cart").headers["Location"] == "/cart"
    for evil in ["//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"]:
        client.post("/logout", data={"csrf_token": csrf_token(client, "/account")})
        assert login(client, "shopper@example.com", next=evil).headers["Location"] == "/account"


def test_account_pages_send_anonymous_visitors_to_login(client):
    response = client.get("/account/addresses")
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/login?next=/account/addresses")
    htmx = client.get("/account", headers={"HX-Request": "true"})
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith("/login")


def test_logout_clears_the_session(client, session):
    make_user(session, "shopper@example.com")
    login(client, "shopper@example.com")
    response = client.post("/logout", data={"csrf_token": csrf_token(client, "/account")})
    assert response.status_code == 303
    assert client.get("/account").status_code == 303


def test_every_attempt_is_recorded_for_staff(client, session):
    make_user(session, "shopper@example.com")
    login(
        client,
        "shopper@example.com",
        "wrong password!",
    )
    login(client, "shopper@example.com", headers=None)
    attempts = session.scalars(select(LoginAttempt).order_by(LoginAttempt.id)).all()
    assert [(a.email, a.outcome) for a in attempts] == [
        ("shopper@example.com", "failed"),
        ("shopper@example.com", "success"),
    ]
    assert attempts[0].ip == "127.0.0.1" and attempts[0].user_agent.startswith("Werkzeug")


# --- password change and reset ---------------------------------------------------------------------


def test_changing_the_password_signs_out_other_sessions(app, client, session):
    make_user(session, "shopper@example.com")
    other = app.test_client()
    login(other, "shopper@example.com")
    login(client, "shopper@example.com")
    response = post(
        client,
        "/account/password",
        {"current_password": PASSWORD, "password": "new-lilac-tiger-7", "confirm": "new-lilac-tiger-7"},
    )
    assert response.status_code == 303
    assert client.get("/account").status_code == 200  # this session was renewed
    assert other.get("/account").status_code == 303  # the other was signed out
    client.post("/logout", data={"csrf_token": csrf_token(client, "/account")})
    assert login(client, "shopper@example.com", "new-lilac-tiger-7").status_code == 303


def test_changing_the_password_needs_the_current_one(client, session):
    make_user(session, "shopper@example.com")
    login(client, "shopper@example.com")
    response = post(
        client,
        "/account/password",
        {
            "current_password": "nope nope nope",
            "password": "new-lilac-tiger-7",
            "confirm": "new-lilac-tiger-7",
        },
    )
    assert response.status_code == 422 and "not your current password" in response.get_data(as_text=True)


def test_password_reset_link_works_once(client, session, outbox):
    user = make_user(session, "forgot@example.com")
    old_hash = user.password_hash
    response = post(client, "/password/reset", {"email": "forgot@example.com"})
    assert response.status_code == 200 and "If an account exists" in response.get_data(as_text=True)
    [message] = read_outbox(outbox)
    path = path_of(link_in(message))
    assert client.get(path).status_code == 200
    done = client.post(
        path,
        data={
            "csrf_token": csrf_token(client, path),
            "password": "fresh-lilac-tiger-9",
            "confirm": "fresh-lilac-tiger-9",
        },
    )
    assert done.status_code == 303 and done.headers["Location"] == "/login"
    session.refresh(user)
    assert user.password_hash != old_hash
    assert client.get(path).status_code == 400
    assert login(client, "forgot@example.com", "fresh-lilac-tiger-9").status_code == 303


def test_password_reset_for_an_unknown_email_looks_the_same_and_sends_nothing(client, session, outbox):
    make_user(session, "known@example.com")
    known = post(client, "/password/reset", {"email": "known@example.com"})
    unknown = post(client, "/password/reset", {"email": "unknown@example.com"})
    assert known.status_code == unknown.status_code == 200
    assert without_tokens(known) == without_tokens(unknown)
    assert len(read_outbox(outbox)) == 1


def test_expired_or_forged_reset_links_are_refused(app, client, session, monkeypatch):
    user = make_user(session)
    token = accounts.make_token(app.config["SECRET_KEY"], "reset", user)
    monkeypatch.setitem(app.config, "RESET_TOKEN_MAX_AGE", -1)
    assert client.get(f"/password/reset/{token}").status_code == 400
    monkeypatch.setitem(app.config, "RESET_TOKEN_MAX_AGE", 3600)
    assert client.get(f"/password/reset/{token}").status_code == 200
    assert client.get(f"/password/reset/{token[:-2]}xx").status_code == 400
    other_purpose = accounts.make_token(app.config["SECRET_KEY"], "verify", user)
    assert client.get(f"/password/reset/{other_purpose}").status_code == 400


# --- address book ----------------------------------------------------------------------------------

ADDRESS = {
    "full_name": "Ada Lovelace",
    "line1": "12 St James's Square",
    "city": "London",
    "postal_code": "SW1Y 4JH",
    "country": "GB",
    "phone": "+44 20 7946 0000",
}


def test_address_book_add_edit_default_delete(client, session):
    user = make_user(session)
    login(client, user.email)
    assert post(client, "/account/addresses/new", ADDRESS).status_code == 303
    assert post(client, "/account/addresses/new", ADDRESS | {"full_name": "Second"}).status_code == 303
    first, second = session.scalars(
        select(Address).where(Address.user_id == user.id).order_by(Address.id)
    ).all()
    assert first.is_default and not second.is_default
    assert post(client, f"/account/addresses/{second.id}/default", {}).status_code == 303
    session.refresh(first)
    session.refresh(second)
    assert second.is_default and not first.is_default
    edit = post(client, f"/account/addresses/{first.id}/edit", ADDRESS | {"city": "Cambridge"})
    assert edit.status_code == 303
    session.refresh(first)
    assert first.city == "Cambridge"
    assert post(client, f"/account/addresses/{second.id}/delete", {}).status_code == 303
    session.refresh(first)
    assert first.is_default
    assert "Cambridge" in client.get("/account/addresses").get_data(as_text=True)


@pytest.mark.parametrize(
    ("field", "value"),
    [("postal_code", "!!"), ("country", "XX"), ("phone", "call me"), ("full_name", ""), ("line1", "x" * 121)],
)
def test_address_with_bad_fields_is_refused_with_a_message(client, session, field, value):
    user = make_user(session)
    login(client, user.email)
    response = post(client, "/account/addresses/new", ADDRESS | {field: value})
    assert response.status_code == 422 and 'aria-invalid="true"' in response.get_data(as_text=True)
    assert session.scalar(select(func.count(Address.id))) == 0


def test_a_shopper_can_never_touch_another_shoppers_address(client, session):
    owner = make_user(session)
    intruder = make_user(session)
    address = accounts.save_address(session, owner, ADDRESS)
    login(client, intruder.email)
    assert client.get(f"/account/addresses/{address.id}/edit").status_code == 404
    for action in ("edit", "default", "delete"):
        response = post(client, f"/account/addresses/{address.id}/{action}", ADDRESS)
        assert response.status_code == 404
    session.refresh(address)
    assert address.full_name == "Ada Lovelace"
    assert "Ada Lovelace" not in client.get("/account/addresses").get_data(as_text=True)
