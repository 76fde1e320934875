"""Dashboard job: sample the figures that keep no history of their own, once a minute (from the clock)."""

from flask import current_app

from jobs import job
from storefront.dashboard import services as dashboard
from storefront.db import get_session
from storefront.extensions import redis_client


@job
def sample() -> dict:
    """Record this minute's units left, queue depth and waiting-room figures for the live sale charts."""
    return dashboard.sample(get_session(), redis_client(), bool(current_app.config["REDIS_URL"]))
