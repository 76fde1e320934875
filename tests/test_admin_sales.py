"""Drops: scheduled by an admin, priced on the shop only while running, with their per-customer limit."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from storefront.audit.models import AuditEntry
from storefront.catalog.models import Sale, SaleItem
from tests.factories import make_product
from tests.helpers import ADDRESS, checkout_form, csrf_token, staff_login


def when(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).strftime("%Y-%m-%dT%H:%M")


def schedule(client, items: str, start=timedelta(minutes=-1), end=timedelta(hours=1), **extra):
    return client.post(
        "/admin/sales/new",
        data={
            "csrf_token": csrf_token(client, "/admin/sales/new"),
            "name": "Winter drop",
            "starts_at": when(start),
            "ends_at": when(end),
            "items": items,
            **extra,
        },
    )


def test_only_admins_schedule_sales(client, session):
    staff_login(client, session, role="staff")
    assert client.get("/admin/sales").status_code == 403


def test_a_running_sale_prices_the_product_page_and_the_cart(client, session):
    staff_login(client, session, role="admin")
    product = make_product(session, variants=[{"sku": "DROP-1", "price": Decimal("20.00")}])
    response = schedule(client, "DROP-1, 12.50", per_customer_limit="1")
    assert response.status_code == 303
    page = client.get(f"/products/{product.slug}").get_data(as_text=True)
    assert "<del>$20.00</del>" in page and "$12.50" in page
    client.post(
        "/cart/add",
        data={"variant_id": product.variants[0].id, "quantity": 1, "csrf_token": csrf_token(client)},
    )
    assert "$12.50" in client.get("/cart").get_data(as_text=True)
    assert session.scalar(select(AuditEntry.action).where(AuditEntry.entity == "sale")) == "sale.create"


def test_a_future_sale_changes_nothing_yet_and_a_past_one_nothing_any_more(client, session):
    staff_login(client, session, role="admin")
    product = make_product(session, variants=[{"sku": "LATER-1", "price": Decimal("20.00")}])
    assert (
        schedule(client, "LATER-1, 5.00", start=timedelta(hours=1), end=timedelta(hours=2)).status_code == 303
    )
    assert "$5.00" not in client.get(f"/products/{product.slug}").get_data(as_text=True)
    sale = session.scalar(select(Sale).join(SaleItem).where(SaleItem.variant_id == product.variants[0].id))
    sale.starts_at = datetime.now(UTC) - timedelta(hours=2)
    sale.ends_at = datetime.now(UTC) - timedelta(minutes=1)
    session.flush()
    assert "$5.00" not in client.get(f"/products/{product.slug}").get_data(as_text=True)


def test_bad_sales_are_refused_line_by_line(client, session):
    staff_login(client, session, role="admin")
    make_product(session, variants=[{"sku": "OK-1"}])
    response = schedule(client, "OK-1, 1.999\nNOPE-9, 3.00\nOK-1, abc\nOK-1, -1")
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Line 1" in body and "no variant with SKU" in body and "Line 3" in body and "Line 4" in body
    backwards = schedule(client, "OK-1, 3.00", start=timedelta(hours=2), end=timedelta(hours=1))
    assert backwards.status_code == 422 and "after the start" in backwards.get_data(as_text=True)
    assert session.scalar(select(Sale.id)) is None


def test_ending_a_sale_now(client, session):
    staff_login(client, session, role="admin")
    product = make_product(session, variants=[{"sku": "END-1", "price": Decimal("20.00")}])
    schedule(client, "END-1, 9.00")
    sale_id = session.scalar(select(Sale.id))
    assert (
        client.post(f"/admin/sales/{sale_id}/end", data={"csrf_token": csrf_token(client)}).status_code == 303
    )
    assert "$9.00" not in client.get(f"/products/{product.slug}").get_data(as_text=True)


def test_the_sales_per_customer_limit_applies_at_checkout(app, client, session):
    staff_login(client, session, role="admin")
    product = make_product(session, variants=[{"sku": "LIM-1", "price": Decimal("20.00"), "on_hand": 50}])
    schedule(client, "LIM-1, 10.00", per_customer_limit="1")
    client.post(
        "/cart/add",
        data={"variant_id": product.variants[0].id, "quantity": 2, "csrf_token": csrf_token(client)},
    )
    data = (
        checkout_form(client)
        | ADDRESS
        | {"dataDescriptor": "COMMON.ACCEPT.INAPP.PAYMENT", "dataValue": "test-approve"}
    )
    response = client.post("/checkout", data=data)
    assert response.status_code == 409 and "limited to 1 per customer" in response.get_data(as_text=True)
