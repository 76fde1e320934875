"""Settings: shipping methods and tax rates, created, edited and switched off (never deleted) by an admin;
checkout offers only what is on. Money and percentages are parsed strictly; every change is audited."""

import re
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from storefront.audit.models import AuditEntry
from storefront.checkout import services as checkout
from storefront.checkout.models import ShippingMethod, TaxRate
from tests.helpers import post_form as post
from tests.helpers import staff_login

SHIPPING = {
    "code": "next-day",
    "name": "Next day",
    "description": "Order by 2 pm",
    "price": "19.50",
    "free_over": "",
    "countries": "us, ca",
    "position": "5",
}
TAX = {"country": "us", "region": "co", "name": "Colorado sales tax", "rate": "2.9"}


def method(session, code: str) -> ShippingMethod:
    session.expire_all()
    return session.scalar(select(ShippingMethod).where(ShippingMethod.code == code))


def rate(session, country: str, region: str = "") -> TaxRate:
    session.expire_all()
    return session.scalar(select(TaxRate).where(TaxRate.country == country, TaxRate.region == region))


def audit_entries(session, action: str) -> list[AuditEntry]:
    return list(
        session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id))
    )


def offered(session, country: str = "US") -> list[str]:
    return [m.code for m in checkout.shipping_methods(session, country)]


def test_the_staff_role_gets_403_on_every_settings_page_and_action(client, session):
    staff_login(client, session, role="staff")
    standard, ca = method(session, "standard"), rate(session, "US", "CA")
    for url in ["/admin/settings", "/admin/settings/shipping/new", "/admin/settings/tax/new"]:
        assert client.get(url).status_code == 403, url
    assert client.get(f"/admin/settings/shipping/{standard.id}").status_code == 403
    assert client.get(f"/admin/settings/tax/{ca.id}").status_code == 403
    for url, data in [
        ("/admin/settings/shipping/new", SHIPPING),
        (f"/admin/settings/shipping/{standard.id}", SHIPPING | {"price": "0.01"}),
        (f"/admin/settings/shipping/{standard.id}/disable", {}),
        ("/admin/settings/tax/new", TAX),
        (f"/admin/settings/tax/{ca.id}", TAX | {"country": "US", "region": "CA", "rate": "1"}),
        (f"/admin/settings/tax/{ca.id}/disable", {}),
    ]:
        assert post(client, url, **data).status_code == 403, url
    assert method(session, "standard").price == Decimal("4.95") and method(session, "standard").is_active
    assert rate(session, "US", "CA").rate == Decimal("0.0725") and rate(session, "US", "CA").is_active
    assert method(session, "next-day") is None and rate(session, "US", "CO") is None
    assert session.scalar(select(func.count(AuditEntry.id))) == 0


def test_the_settings_page_lists_methods_and_rates(client, session, admin):
    session.get(ShippingMethod, method(session, "express").id).is_active = False
    session.flush()
    page = client.get("/admin/settings").get_data(as_text=True)
    assert "Standard" in page and "$4.95" in page and "$50.00" in page and "International" in page
    express = re.search(
        r'<tr id="shipping-\d+">(?:(?!</tr>).)*express(?:(?!</tr>).)*</tr>', page, re.S
    ).group(0)
    assert "Off" in express and "Switch on" in express
    assert "California sales tax" in page and "7.25%" in page and "(whole country)" in page


def test_a_new_shipping_method_is_offered_at_checkout_and_audited(client, session, admin):
    response = post(client, "/admin/settings/shipping/new", **SHIPPING)
    assert response.status_code == 303 and response.headers["Location"] == "/admin/settings"
    created = method(session, "next-day")
    assert (created.name, created.price, created.free_over) == ("Next day", Decimal("19.50"), None)
    assert (created.countries, created.position, created.is_active) == ("US,CA", 5, True)
    assert "next-day" in offered(session, "US") and "next-day" in offered(session, "CA")
    assert "next-day" not in offered(session, "GB")
    [entry] = audit_entries(session, "shipping.create")
    assert (entry.entity, entry.entity_id, entry.user_email) == (
        "shipping_method",
        str(created.id),
        admin.email,
    )
    assert entry.before == {} and entry.after["price"] == "19.50" and entry.after["countries"] == "US,CA"


@pytest.mark.parametrize(
    ("price", "words"),
    [
        ("-1", "be negative"),
        ("-0.01", "be negative"),
        ("NaN", "like 12.50"),
        ("Infinity", "like 12.50"),
        ("1e3", "like 12.50"),
        ("4.955", "like 12.50"),
        ("4,95", "like 12.50"),
        ("0x10", "like 12.50"),
        ("", "Enter a price"),
        ("99999999999", "at most"),
        ("100000.01", "at most"),
        ("١٢", "like 12.50"),  # Arabic-Indic digits: Decimal() would take them
    ],
)
def test_a_bad_price_gets_a_form_message_and_changes_nothing(client, session, admin, price, words):
    response = post(client, "/admin/settings/shipping/new", **SHIPPING | {"price": price})
    assert response.status_code == 422 and words in response.get_data(as_text=True)
    assert method(session, "next-day") is None and audit_entries(session, "shipping.create") == []
    free_over = post(client, "/admin/settings/shipping/new", **SHIPPING | {"free_over": price or "x"})
    assert free_over.status_code == 422 and method(session, "next-day") is None


def test_zero_is_a_price_and_a_free_over_amount_is_kept(client, session, admin):
    response = post(
        client, "/admin/settings/shipping/new", **SHIPPING | {"price": "0", "free_over": " 75.5 "}
    )
    assert response.status_code == 303
    created = method(session, "next-day")
    assert (created.price, created.free_over) == (Decimal("0.00"), Decimal("75.50"))


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("code", "standard", "uses the code"),
        ("code", "Next Day!", "lower-case letters"),
        ("code", "", "required"),
        ("name", "EXPRESS", "is called"),
        ("name", "", "required"),
        ("countries", "USA", "two-letter country codes"),
        ("countries", "", "two-letter country codes"),
        ("countries", "*, US", "two-letter country codes"),
        ("position", "-1", "be negative"),
        ("position", "1001", "at most"),
        ("description", "d" * 201, "200 characters"),
    ],
)
def test_codes_and_names_are_unique_and_fields_checked(client, session, admin, field, value, words):
    response = post(client, "/admin/settings/shipping/new", **SHIPPING | {field: value})
    assert response.status_code == 422 and words in response.get_data(as_text=True)
    assert session.scalar(select(func.count(ShippingMethod.id))) == 3  # the three the migration seeds


def test_editing_a_shipping_method_audits_only_what_changed_and_keeps_its_code(client, session, admin):
    standard = method(session, "standard")
    form = {
        "code": "renamed",
        "name": "Standard",
        "description": standard.description,
        "price": "5.95",
        "free_over": "50",
        "countries": "US",
        "position": "1",
    }
    assert client.get(f"/admin/settings/shipping/{standard.id}").status_code == 200
    response = post(client, f"/admin/settings/shipping/{standard.id}", **form)
    assert response.status_code == 303
    assert method(session, "standard").price == Decimal("5.95") and method(session, "renamed") is None
    [entry] = audit_entries(session, "shipping.update")
    assert (entry.before, entry.after) == ({"price": "4.95"}, {"price": "5.95"})
    same = post(client, f"/admin/settings/shipping/{standard.id}", **form)
    assert same.status_code == 303 and len(audit_entries(session, "shipping.update")) == 1  # nothing changed
    clash = post(client, f"/admin/settings/shipping/{standard.id}", **form | {"name": "Express"})
    assert clash.status_code == 422 and method(session, "standard").name == "Standard"


def test_switching_a_shipping_method_off_hides_it_from_checkout(client, session, admin):
    express = method(session, "express")
    response = post(client, f"/admin/settings/shipping/{express.id}/disable", htmx=True)
    row = response.get_data(as_text=True)
    assert response.status_code == 200 and row.lstrip().startswith(f'<tr id="shipping-{express.id}"')
    assert "Switch on" in row and "no longer offers it" in row
    assert not method(session, "express").is_active and "express" not in offered(session)
    again = post(client, f"/admin/settings/shipping/{express.id}/disable")
    assert again.status_code == 409 and "already off" in again.get_data(as_text=True)
    assert post(client, f"/admin/settings/shipping/{express.id}/enable").status_code == 303
    assert "express" in offered(session)
    assert [(e.before, e.after) for e in audit_entries(session, "shipping.disable")] == [
        ({"is_active": True}, {"is_active": False})
    ]
    assert len(audit_entries(session, "shipping.enable")) == 1


def test_a_new_tax_rate_applies_at_checkout_and_is_audited(client, session, admin):
    response = post(client, "/admin/settings/tax/new", **TAX)
    assert response.status_code == 303
    created = rate(session, "US", "CO")
    assert (created.name, created.rate, created.is_active) == ("Colorado sales tax", Decimal("0.0290"), True)
    priced = checkout.quote(session, Decimal("100.00"), "US", " co ", "standard")
    assert priced.tax == Decimal("2.90") and priced.tax_name == "Colorado sales tax"
    [entry] = audit_entries(session, "tax.create")
    assert entry.entity == "tax_rate" and entry.after["rate"] == "2.90%" and entry.after["region"] == "CO"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("-5", "be negative"),
        ("100.01", "at most 100%"),
        ("1000", "like 7.25"),
        ("7.255", "like 7.25"),
        ("1e1", "like 7.25"),
        ("NaN", "like 7.25"),
        ("0.07.25", "like 7.25"),
        ("", "Enter the rate"),
    ],
)
def test_a_bad_tax_rate_gets_a_form_message(client, session, admin, value, words):
    response = post(client, "/admin/settings/tax/new", **TAX | {"rate": value})
    assert response.status_code == 422 and words in response.get_data(as_text=True)
    assert rate(session, "US", "CO") is None and audit_entries(session, "tax.create") == []


def test_percent_signs_zero_and_a_hundred_are_rates(client, session, admin):
    assert post(client, "/admin/settings/tax/new", **TAX | {"rate": "0%"}).status_code == 303
    assert rate(session, "US", "CO").rate == Decimal("0.0000")
    assert post(client, "/admin/settings/tax/new", **TAX | {"region": "ZZ", "rate": "100"}).status_code == 303
    assert rate(session, "US", "ZZ").rate == Decimal("1.0000")


def test_one_rate_per_country_and_region(client, session, admin):
    response = post(client, "/admin/settings/tax/new", **TAX | {"region": "ca"})
    assert response.status_code == 422 and "already has a rate" in response.get_data(as_text=True)
    ca = rate(session, "US", "CA")
    post(client, f"/admin/settings/tax/{ca.id}/disable")
    switched_off = post(client, "/admin/settings/tax/new", **TAX | {"region": "CA"})
    assert switched_off.status_code == 422 and "switch it on instead" in switched_off.get_data(as_text=True)
    bad_country = post(client, "/admin/settings/tax/new", **TAX | {"country": "USA"})
    assert bad_country.status_code == 422 and "two-letter country code" in bad_country.get_data(as_text=True)


def test_editing_a_tax_rate_audits_the_percentages(client, session, admin):
    ca = rate(session, "US", "CA")
    page = client.get(f"/admin/settings/tax/{ca.id}").get_data(as_text=True)
    assert 'value="7.25"' in page
    form = {"country": "US", "region": "CA", "name": "California sales tax", "rate": "7.5"}
    assert post(client, f"/admin/settings/tax/{ca.id}", **form).status_code == 303
    assert rate(session, "US", "CA").rate == Decimal("0.0750")
    [entry] = audit_entries(session, "tax.update")
    assert (entry.before, entry.after) == ({"rate": "7.25%"}, {"rate": "7.50%"})
    onto_another = post(client, f"/admin/settings/tax/{ca.id}", **form | {"region": "NY"})
    assert onto_another.status_code == 422 and rate(session, "US", "CA") is not None


def test_a_switched_off_rate_is_not_charged(client, session, admin):
    ca = rate(session, "US", "CA")
    response = post(client, f"/admin/settings/tax/{ca.id}/disable", htmx=True)
    assert response.status_code == 200 and response.get_data(as_text=True).lstrip().startswith("<tr id=")
    assert checkout.tax_rate(session, "US", "CA") is None
    assert checkout.quote(session, Decimal("100.00"), "US", "CA", "standard").tax == Decimal("0.00")
    assert post(client, f"/admin/settings/tax/{ca.id}/enable").status_code == 303
    assert checkout.quote(session, Decimal("100.00"), "US", "CA", "standard").tax == Decimal("7.25")
    [off] = audit_entries(session, "tax.disable")
    assert (off.before, off.after) == ({"is_active": True}, {"is_active": False})


def test_a_switched_off_region_falls_back_to_the_country_rate(client, session, admin):
    post(client, "/admin/settings/tax/new", **TAX | {"region": "", "name": "Federal test tax", "rate": "1"})
    ca = rate(session, "US", "CA")
    post(client, f"/admin/settings/tax/{ca.id}/disable")
    assert checkout.tax_rate(session, "US", "CA").name == "Federal test tax"


def test_missing_settings_are_404(client, admin):
    assert client.get("/admin/settings/shipping/987654").status_code == 404
    assert client.get("/admin/settings/tax/987654").status_code == 404
    assert post(client, "/admin/settings/shipping/987654/disable").status_code == 404
    assert post(client, "/admin/settings/tax/987654", **TAX).status_code == 404


@pytest.mark.parametrize("value", ["x" * 5000, "\x00", "<script>alert(1)</script>", "' OR 1=1 --", "9" * 40])
def test_hostile_input_gets_a_4xx_never_a_500(client, session, admin, value):
    # Some of these are fine as a name or description (303); none may break the page.
    for field in SHIPPING:
        response = post(client, "/admin/settings/shipping/new", **SHIPPING | {field: value})
        assert response.status_code in (303, 400, 422), field
    for field in TAX:
        response = post(client, "/admin/settings/tax/new", **TAX | {field: value})
        assert response.status_code in (303, 400, 422), field
    page = client.get("/admin/settings")
    assert page.status_code == 200 and "<script>alert(1)</script>" not in page.get_data(as_text=True)
