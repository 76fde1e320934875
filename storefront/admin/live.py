"""Admin: the live sale dashboard, charts of the last hour that refresh themselves during a drop."""

from datetime import UTC, datetime

from flask import current_app

from storefront.admin import ADMIN_LINKS, bp
from storefront.dashboard import services as dashboard
from storefront.db import get_session
from storefront.extensions import redis_client
from storefront.htmx import render

ADMIN_LINKS.append(("admin.live_sale", "Live sale"))


@bp.get("/live")
def live_sale():
    """Orders per minute, units left, waiting room, admit and decline rates, queue depth: last hour, live."""
    now = datetime.now(UTC)
    charts = dashboard.live_sale(get_session(), redis_client(), bool(current_app.config["REDIS_URL"]), now)
    return render(
        "admin/live_sale.html", "admin/_live_sale.html", charts=charts, path=dashboard.chart_path, now=now
    )
