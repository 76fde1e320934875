"""The live sale dashboard: charts of the last hour as server-rendered SVG with their figures in text,
refreshed by HTMX (fragment only), staff only; the clock's sample keeps what has no history of its own."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from storefront import metrics
from storefront.catalog.models import Sale, SaleItem
from storefront.dashboard import services as dashboard
from storefront.payments.models import PaymentAttempt
from tests.factories import make_order, make_product
from tests.helpers import staff_login


def on_sale(session, on_hand: int):
    variant = make_product(session, variants=[{"sku": f"LIVE-{on_hand}", "on_hand": on_hand}]).variants[0]
    now = datetime.now(UTC)
    sale = Sale(name="Drop", starts_at=now - timedelta(minutes=5), ends_at=now + timedelta(hours=1))
    sale.items.append(SaleItem(variant_id=variant.id, sale_price=Decimal("9.00")))
    session.add(sale)
    session.flush()
    return variant


def test_staff_see_every_chart_with_its_figures_in_text(client, session):
    variant = on_sale(session, 40)
    for status in ("approved", "declined", "approved", "approved"):
        order = make_order(session, variant, quantity=2)
        session.scalar(select(PaymentAttempt).where(PaymentAttempt.order_id == order.id)).status = status
    session.flush()
    staff_login(client, session)
    page = client.get("/admin/live").get_data(as_text=True)
    for title in ("Orders per minute", "Decline rate", "Units left on sale", "Jobs waiting"):
        assert f">{title}</h2>" in page
    assert 'id="chart-orders"' in page and "<polyline" in page
    assert "now 4, peak 4." in page  # four orders this minute, said in text for screen readers
    assert "now 25, peak 25." in page  # decline rate: 1 in 4
    assert "now 32, peak 32." in page  # units left: 40 - 4 orders x 2 reserved
    assert 'hx-get="/admin/live"' in page and "<html" in page


def test_htmx_gets_only_the_fragment(client, session):
    staff_login(client, session)
    response = client.get("/admin/live", headers={"HX-Request": "true"})
    body = response.get_data(as_text=True)
    assert body.lstrip().startswith("<section")
    assert "<html" not in body and "HX-Request" in response.headers["Vary"]


def test_shoppers_and_visitors_never_see_it(client, session):
    assert client.get("/admin/live").status_code == 303


def test_the_clock_samples_units_queue_and_registered_waiting_room_figures(app, client, session):
    on_sale(session, 12)
    metrics.gauge_from("storefront_waiting_room_size", "Shoppers waiting.", lambda: 250)
    try:
        with app.app_context():
            redis = app.extensions["redis"]
            values = dashboard.sample(session, redis, is_async=False)
            assert values == {"units_left": 12, "queue_depth": 0, "storefront_waiting_room_size": 250.0}
            charts = {c.key: c for c in dashboard.live_sale(session, redis, is_async=False)}
    finally:
        metrics._scrape_gauges.pop("storefront_waiting_room_size")
    assert charts["storefront_waiting_room_size"].now == 250
    assert charts["storefront_waiting_room_size"].title == "Waiting room"
    assert "storefront_waiting_room_admit_rate" not in charts  # not registered, never sampled: no empty chart


def test_a_chart_line_skips_minutes_without_data_and_scales_to_its_peak():
    series = dashboard.Series("x", "X", "", [("10:00", 5), ("10:01", None), ("10:02", 10)])
    assert dashboard.chart_path(series, width=600, height=120) == "0.0,65.0 600.0,10.0"
