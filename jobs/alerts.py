"""Slack alert jobs: one event's message, a window's summary, and the periodic checks (from the clock)."""

from jobs import job
from storefront.alerts import services as alerts
from storefront.db import get_session


@job
def send_alert(event: str, details: dict) -> None:
    """Send one event's message to Slack (retried by RQ when Slack does not take it)."""
    alerts.send_alert(event, details)


@job
def send_summary(event: str) -> int:
    """Send "N more ..." for the window that just ended, if more came; safe to run twice (the count is taken)."""
    return alerts.send_summary(event)


@job
def check() -> dict:
    """Big orders, decline rate, stuck queues, failed jobs: alert on what is wrong now."""
    return alerts.run_checks(get_session())
