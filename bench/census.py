"""Round trips per request: what each step of a visit sends to PostgreSQL and Redis, and its Python CPU.

    python -m bench.census   (with the shop's environment; the bench runs it in a subprocess and keeps the JSON)

The shop runs in this process through Flask's test client (no gunicorn, no network to the shop), with counters
wrapped around SQLAlchemy's dialect (statements, the pool's pre-ping, commits, rollbacks, and the BEGIN that
psycopg2 sends before the first statement of each transaction) and around redis-py's socket writes. Nothing in
the shop changes; only this process's objects are wrapped. The order it places is paid like any other.
"""

import json
import os
import re
import sys
import time
from collections import Counter

import redis.connection
from psycopg2.extensions import TRANSACTION_STATUS_IDLE

COUNTS: Counter = Counter()
VERB = re.compile(r"^\s*(\w+)(?:\s+(?:INTO|FROM)?\s*(\w+))?", re.IGNORECASE)


def _raw(connection):
    """The psycopg2 connection, however SQLAlchemy wraps it."""
    return (
        getattr(connection, "dbapi_connection", None)
        or getattr(connection, "driver_connection", None)
        or connection
    )


def _idle(connection) -> bool:
    """True when no transaction is open on this psycopg2 connection."""
    return _raw(connection).info.transaction_status == TRANSACTION_STATUS_IDLE


def _begins(connection) -> bool:
    """True when psycopg2 will send BEGIN before the next statement (never in autocommit mode)."""
    return _idle(connection) and not _raw(connection).autocommit


def _wrap_dialect(dialect) -> None:
    def wrap(name, key):
        original = getattr(dialect, name)

        def counted(*args, **kwargs):
            COUNTS[key] += 1
            return original(*args, **kwargs)

        setattr(dialect, name, counted)

    original_execute = dialect.do_execute

    def execute(cursor, statement, parameters, context=None):
        if _begins(cursor.connection):
            COUNTS["pg BEGIN"] += 1  # psycopg2 sends it on its own before this statement
        match = VERB.match(statement)
        verb = match.group(1).upper() if match else "?"
        table = (match.group(2) or "").lower() if match and verb in ("INSERT", "DELETE") else ""
        if verb == "UPDATE":
            table = statement.split()[1].lower()
        COUNTS[f"pg {verb} {table}".rstrip()] += 1
        return original_execute(cursor, statement, parameters, context)

    dialect.do_execute = execute
    wrap("do_ping", "pg pre-ping")
    original_commit = dialect.do_commit

    def commit(dbapi_connection):
        if not _idle(dbapi_connection):  # psycopg2 sends nothing when no transaction is open (autocommit)
            COUNTS["pg COMMIT"] += 1
        return original_commit(dbapi_connection)

    dialect.do_commit = commit
    original_rollback = dialect.do_rollback

    def rollback(dbapi_connection):
        if not _idle(dbapi_connection):
            COUNTS["pg ROLLBACK"] += 1
        return original_rollback(dbapi_connection)

    dialect.do_rollback = rollback


def _wrap_redis() -> None:
    original = redis.connection.AbstractConnection.send_packed_command

    def send(self, command, check_health=True):
        COUNTS["redis round trip"] += 1
        return original(self, command, check_health)

    redis.connection.AbstractConnection.send_packed_command = send


CSRF = re.compile(rb"""hx-headers='\{"X-CSRFToken": "([^"]+)"\}'""")
KEY = re.compile(rb'name="idempotency_key"[^>]*value="([^"]+)"')


def census(slug: str, variants: list[int], visits: int = 5) -> dict:
    from storefront import create_app
    from storefront.db import engines

    _wrap_redis()
    app = create_app()
    for engine in engines(app):
        _wrap_dialect(engine.dialect)
    steps: dict[str, list[tuple[Counter, float, int]]] = {}

    def step(name, call):
        COUNTS.clear()
        started = time.process_time()
        response = call()
        cpu = time.process_time() - started
        steps.setdefault(name, []).append((Counter(COUNTS), cpu, response.status_code))
        return response

    address = {
        "full_name": "Ada Lovelace",
        "line1": "1 Main St",
        "city": "Springfield",
        "postal_code": "62701",
        "country": "US",
        "shipping_method": "standard",
        "dataDescriptor": "COMMON.ACCEPT.INAPP.PAYMENT",
        "dataValue": "test-approve",
    }
    # One warm-up visit (template compilation, first connections), not counted.
    for visit in range(visits + 1):
        client = app.test_client()
        page = step("product page", lambda c=client: c.get(f"/products/{slug}"))
        csrf = CSRF.search(page.data).group(1).decode()
        step("listing /products", lambda c=client: c.get("/products"))
        variant = variants[visit % len(variants)]
        step(
            "add to cart",
            lambda c=client, v=variant, t=csrf: c.post(
                "/cart/add", data={"variant_id": v, "quantity": 1, "csrf_token": t}
            ),
        )
        form = step("checkout page", lambda c=client: c.get("/checkout"))
        key = KEY.search(form.data).group(1).decode()
        data = {**address, "csrf_token": csrf, "idempotency_key": key, "email": f"census-{visit}@example.com"}
        placed = step("place order", lambda c=client, d=data: c.post("/checkout", data=d))
        number = placed.headers.get("Location", "").rsplit("/", 1)[-1]
        step("order status", lambda c=client, n=number: c.get(f"/orders/{n}"))
        if visit == 0:
            steps.clear()
    out = {}
    for name, runs in steps.items():
        total = Counter()
        for counts, _, _ in runs:
            total.update(counts)
        per = {key: round(value / len(runs), 1) for key, value in sorted(total.items())}
        pg = sum(value for key, value in per.items() if key.startswith("pg "))
        out[name] = {
            "statuses": sorted({status for _, _, status in runs}),
            "pg_round_trips": round(pg, 1),
            "redis_round_trips": per.get("redis round trip", 0),
            "python_cpu_ms": round(sorted(cpu for _, cpu, _ in runs)[len(runs) // 2] * 1000, 2),
            "detail": per,
        }
    return out


def main() -> int:
    slug = os.environ["BENCH_CENSUS_SLUG"]
    variants = [int(v) for v in os.environ["BENCH_CENSUS_VARIANTS"].split(",")]
    json.dump(census(slug, variants), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
