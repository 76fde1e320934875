"""Prometheus metrics: requests counted by endpoint and status with latency, figures read at scrape time
(orders by state, sale stock, registered gauges), /metrics for loopback or a bearer token only, and switched
off by METRICS_ENABLED."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from prometheus_client.parser import text_string_to_metric_families

from storefront import create_app, metrics
from storefront.catalog.models import Sale, SaleItem
from tests.factories import make_order, make_product

TOKEN = "test-metrics-token"


def scrape(client, **kwargs) -> dict[str, list]:
    response = client.get("/metrics", **kwargs)
    assert response.status_code == 200, response.status_code
    assert response.headers["Content-Type"].startswith("text/plain")
    return {
        family.name: family.samples
        for family in text_string_to_metric_families(response.get_data(as_text=True))
    }


def value(families, name: str, **labels) -> float | None:
    for family_samples in families.values():
        for sample in family_samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


def test_requests_are_counted_by_endpoint_method_and_status_with_their_latency(client):
    before = scrape(client)
    start = value(before, "storefront_http_requests_total", endpoint="catalog.home", status="200") or 0
    latency = value(before, "storefront_http_request_duration_seconds_count", endpoint="catalog.home") or 0
    client.get("/")
    client.get("/")
    client.get("/no/such/page")
    after = scrape(client)
    assert (
        value(after, "storefront_http_requests_total", endpoint="catalog.home", method="GET", status="200")
        == start + 2
    )
    assert (
        value(after, "storefront_http_request_duration_seconds_count", endpoint="catalog.home") == latency + 2
    )
    assert value(after, "storefront_http_requests_total", endpoint="unmatched", status="404") >= 1


def test_orders_by_state_and_the_stock_of_variants_on_sale_are_read_at_scrape_time(client, session):
    variant = make_product(session, variants=[{"sku": "METRIC-SALE", "on_hand": 7}]).variants[0]
    make_order(session, variant, quantity=2, status="paid")
    now = datetime.now(UTC)
    sale = Sale(name="Drop", starts_at=now - timedelta(minutes=1), ends_at=now + timedelta(hours=1))
    sale.items.append(SaleItem(variant_id=variant.id, sale_price=Decimal("5.00")))
    session.add(sale)
    session.flush()
    families = scrape(client)
    assert value(families, "storefront_orders", state="paid") >= 1
    assert value(families, "storefront_sale_stock_available", sku="METRIC-SALE") == 5


def test_another_part_registers_a_gauge_read_on_every_scrape(client):
    figures = iter([12, 30])
    metrics.gauge_from("storefront_waiting_room_size", "Shoppers waiting.", lambda: next(figures))
    try:
        assert value(scrape(client), "storefront_waiting_room_size") == 12
        assert value(scrape(client), "storefront_waiting_room_size") == 30
    finally:
        metrics._scrape_gauges.pop("storefront_waiting_room_size")


def test_a_broken_registered_gauge_does_not_break_the_scrape(client):
    metrics.gauge_from("storefront_broken", "Fails.", lambda: 1 / 0)
    try:
        assert "storefront_orders" in scrape(client)
    finally:
        metrics._scrape_gauges.pop("storefront_broken")


def test_metrics_answer_loopback_or_the_bearer_token_and_nobody_else(client):
    outside = {"REMOTE_ADDR": "203.0.113.9"}
    assert client.get("/metrics", environ_base=outside).status_code == 404
    wrong = {"Authorization": "Bearer not-the-token"}
    assert client.get("/metrics", environ_base=outside, headers=wrong).status_code == 404
    scrape(client, environ_base=outside, headers={"Authorization": f"Bearer {TOKEN}"})
    scrape(client, environ_base={"REMOTE_ADDR": "::1"})


def test_with_metrics_off_nothing_is_counted_and_metrics_is_a_404(database_url):
    app = create_app(
        {"TESTING": True, "SECRET_KEY": "t", "DATABASE_URL": database_url, "METRICS_ENABLED": False}
    )
    assert app.test_client().get("/metrics").status_code == 404
    assert not any(
        getattr(f, "__name__", "") == "count_request" for f in app.after_request_funcs.get(None, [])
    )


def test_place_order_outcomes_are_counted(app, session):
    with app.test_request_context():
        from storefront.alerts import services as alerts
        from storefront.checkout.services import CheckoutError, OutOfStock, Shortage

        before = {o: metrics.PLACE_ORDER.labels(o)._value.get() for o in ("accepted", "sold_out", "refused")}
        alerts.order_placed()
        alerts.order_refused(OutOfStock([Shortage("Ring", 2, 0)]), session)
        alerts.order_refused(CheckoutError("Your cart is empty."), session)
        after = {o: metrics.PLACE_ORDER.labels(o)._value.get() for o in before}
    assert {o: after[o] - before[o] for o in before} == {"accepted": 1, "sold_out": 1, "refused": 1}
