"""The staff dashboard: today's orders and revenue, orders by status, low stock, orders per minute."""

from datetime import UTC, datetime, timedelta

from flask import current_app

from storefront.admin import bp
from storefront.catalog import services as catalog
from storefront.db import get_session
from storefront.htmx import render
from storefront.orders import services as orders

CHART_MINUTES = 60


def chart(counts: dict[str, int], now: datetime) -> list[dict]:
    """The last hour as bars, oldest first, with every minute present (quiet minutes are zero)."""
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=CHART_MINUTES - 1)
    minutes = [(start + timedelta(minutes=i)).strftime("%H:%M") for i in range(CHART_MINUTES)]
    peak = max([counts.get(m, 0) for m in minutes] + [1])
    return [{"minute": m, "count": counts.get(m, 0), "height": counts.get(m, 0) / peak} for m in minutes]


@bp.get("/")
def dashboard():
    """Today at a glance; during a sale the figures refresh themselves every few seconds."""
    session = get_session()
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    context = {
        "today": orders.day_summary(session, midnight),
        "bars": chart(orders.per_minute(session, now - timedelta(minutes=CHART_MINUTES)), now),
        "low_stock": catalog.low_stock(session, current_app.config["LOW_STOCK_THRESHOLD"]),
        "labels": orders.LABELS,
        "now": now,
    }
    return render("admin/dashboard.html", "admin/_stats.html", **context)
