"""The daily database backup, for the clock (`rq cron jobs.schedule`) and `flask --app wsgi backup`."""

import logging
from pathlib import Path

from flask import current_app

from jobs import job
from storefront.backups import services as backups
from storefront.db import engines

log = logging.getLogger(__name__)


def _alert_backup_failed(error: Exception) -> None:
    # storefront/alerts comes with the operations work (issue 15); until it is merged the failure is logged
    # at ERROR only, and the lead wires alerts.notify here.
    try:
        from storefront.alerts import services as alerts
    except ImportError:
        return
    alerts.notify("backup_failed", str(error))


def backup_now() -> dict:
    """Dump the database, rotate old dumps, and alert on failure; the job and the CLI both call this."""
    config = current_app.config
    folder = Path(config["BACKUP_DIR"])
    try:
        made = backups.create_backup(engines(current_app)[0], folder)
        deleted = backups.rotate(
            folder, config["BACKUP_KEEP_DAILY"], config["BACKUP_KEEP_WEEKLY"], config["BACKUP_KEEP_MONTHLY"]
        )
    except Exception as error:
        log.exception("backup failed")
        _alert_backup_failed(error)
        raise
    return {
        "file": str(made.path),
        "sha256": made.sha256,
        "bytes": made.size,
        "orders": made.manifest["tables"].get("orders"),
        "deleted": [path.name for path in deleted],
    }


@job
def daily_backup() -> dict:
    """The clock's daily backup (safe to run twice: each run writes a new file and rotation keeps the scheme)."""
    return backup_now()
