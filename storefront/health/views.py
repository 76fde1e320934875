"""/healthz (the process answers) and /readyz (it can serve: database, Redis, migrations at head).

A blueprint of its own, so every app (web, stream) registers the same two routes. No session, no login, no
rate limit; they are not in the request log at info level (a load balancer asks every few seconds).
"""

from flask import Blueprint, current_app, jsonify

from storefront.extensions import limiter
from storefront.health import services as health

bp = Blueprint("health", __name__)

QUIET_PATHS = frozenset({"/healthz", "/readyz"})


@bp.get("/healthz")
@limiter.exempt
def healthz():
    """The process is up and answering."""
    return jsonify(status="ok")


@bp.get("/readyz")
@limiter.exempt
def readyz():
    """200 when the database, Redis and the schema are all fine; 503 naming each that is not."""
    checks = health.readiness(current_app.extensions["db_engine"], current_app.extensions["redis"])
    ready = all(answer == "ok" for answer in checks.values())
    response = jsonify(status="ok" if ready else "unavailable", checks=checks)
    response.status_code = 200 if ready else 503
    response.headers["Cache-Control"] = "no-store"
    return response
