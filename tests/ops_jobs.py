"""Jobs for the observability tests to run in a real `rq worker` (importable as tests.ops_jobs)."""

import logging

from jobs import job

log = logging.getLogger("tests.ops_jobs")

CARD = "4111 1111 1111 1111"


@job
def explode(marker: str) -> None:
    """Fail the way a careless job might: secrets in its log line and its exception message."""
    log.info("exploding %s for shopper ada.lovelace@example.com password=hunter2hunter2", marker)
    raise RuntimeError(f"boom {marker}: card {CARD} token=sk_live_abcdef123456")
