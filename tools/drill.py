"""Failure drills on the loopback cluster (make drill): a small drop through nginx while one part fails.

Each drill starts shoppers (the bench's no-JS browser: product page, add to cart, checkout form, place the
order with a test nonce) for a bounded time and count, breaks one thing partway, and then checks what the
shop promised: every accepted order is in the database and ends paid or failed, no order is charged twice
(the loopback gateway's own ledger), no answer was a 500, and how long the shop could not take orders.
Results go to test-output/drill/results.json and stdout.
"""

import argparse
import asyncio
import json
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text

from bench.http import HttpError
from bench.shopper import Browser, add_to_cart, checkout_form, open_checkout, place_order
from bench.stats import Recorder
from bench.sut import gateway_transactions
from tools.cluster import DEFAULT_DIR, Cluster
from tools.procs import HOST, wait_for
from tools.sqldb import SqlDb

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "test-output" / "drill" / "results.json"
FINAL = ("paid", "payment_failed", "expired", "cancelled")
CHARGES = {"authCaptureTransaction", "authOnlyTransaction"}


@dataclass
class Attempt:
    """One shopper's try at an order: when the POST went out, and how it was answered."""

    started: float
    outcome: str  # accepted, refused (sold out), busy (503), error <status>
    number: str | None = None


@dataclass
class Drop:
    """Shoppers placing orders through nginx in a thread of its own until stopped or out of time/count."""

    port: int
    variant_id: int
    slug: str
    shoppers: int = 6
    max_seconds: float = 60.0
    max_orders: int = 2000
    attempts: list[Attempt] = field(default_factory=list)
    stop_event: threading.Event = field(default_factory=threading.Event)
    recorder: Recorder = field(default_factory=Recorder)

    def start(self) -> "Drop":
        self.recorder.recording = True  # every answer of every step, by label and status
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self.thread.start()
        return self

    def stop(self) -> list[Attempt]:
        self.stop_event.set()
        self.thread.join(timeout=self.max_seconds + 60)
        return self.attempts

    async def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        await asyncio.gather(*(self._shopper(deadline) for _ in range(self.shoppers)))

    async def _shopper(self, deadline: float) -> None:
        while (
            not self.stop_event.is_set()
            and time.monotonic() < deadline
            and len(self.attempts) < self.max_orders
        ):
            browser = Browser(HOST, self.port, self.recorder, timeout=15)
            started = time.monotonic()
            try:
                outcome, number = await self._visit(browser)
            except (HttpError, OSError) as error:
                outcome, number = f"error {type(error).__name__}", None
            finally:
                browser.close()
            self.attempts.append(Attempt(started, outcome, number))
            if outcome != "accepted":
                await asyncio.sleep(0.2)  # a shopper told to try again waits a moment, as a person would

    async def _visit(self, browser: Browser) -> tuple[str, str | None]:
        page = await browser.get(f"/products/{self.slug}", "product")
        if page.status != 200:
            return _answer(page.status), None
        added = await add_to_cart(browser, self.variant_id)
        if added != "added":
            return ("refused" if added == "refused" else "busy-or-error"), None
        hidden = await open_checkout(browser)
        if hidden is None:
            return "busy-or-error", None
        outcome, number = await place_order(browser, checkout_form(browser, hidden))
        if outcome.startswith("error "):
            return _answer(int(outcome.split()[1])), None
        return outcome, number


def _answer(status: int) -> str:
    return "busy" if status == 503 else f"error {status}"


def summary(attempts: list[Attempt], since: float) -> dict:
    return {
        "attempts": len(attempts),
        "outcomes": dict(Counter(a.outcome for a in attempts)),
        "seconds": round(max((a.started for a in attempts), default=since) - since, 1),
    }


class Drills:
    """The drills against one running cluster, each leaving the cluster whole again for the next."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.db = SqlDb(cluster.database_url(), pool_size=1, max_overflow=1)
        [row] = self.db.rows(
            "SELECT v.id, p.slug FROM variants v JOIN products p ON p.id = v.product_id WHERE v.sku = 'DEMO-FLASH'"
        )
        self.variant_id, self.slug = row["id"], row["slug"]

    def restock(self, units: int = 100000) -> None:
        self.db.execute(
            "UPDATE variants SET on_hand = reserved + :units WHERE id = :id", units=units, id=self.variant_id
        )

    def drop(self, **kwargs) -> Drop:
        return Drop(self.cluster.http_port, self.variant_id, self.slug, **kwargs).start()

    def settle(self, numbers: list[str], timeout: float = 240.0) -> dict:
        """Wait until every accepted order is final; then the checks: found, final, charged at most once."""

        def unsettled():
            rows = self.db.rows("SELECT number, status FROM orders WHERE number = ANY(:n)", n=numbers)
            pending = [row for row in rows if row["status"] not in FINAL]
            return (rows, pending) if not pending and len(rows) == len(numbers) else None

        started = time.monotonic()
        try:
            rows, _ = wait_for(unsettled, timeout, "every accepted order final", interval=1.0)
        except TimeoutError:
            rows = self.db.rows("SELECT number, status FROM orders WHERE number = ANY(:n)", n=numbers)
        found = {row["number"]: row["status"] for row in rows}
        charges = Counter(
            t["invoice_number"]
            for t in gateway_transactions(self.cluster.loopback.port)
            if t["response_code"] == "1" and t["transaction_type"] in CHARGES
        )
        twice = sorted(number for number in found if charges.get(number, 0) > 1)
        paid = sum(1 for status in found.values() if status == "paid")
        return {
            "accepted": len(numbers),
            "found": len(found),
            "lost": sorted(set(numbers) - set(found)),
            "statuses": dict(Counter(found.values())),
            "paid": paid,
            "charged_twice": twice,
            "settled_in_seconds": round(time.monotonic() - started, 1),
        }

    def _run(self, name: str, break_it, warmup: float = 4.0, after: float = 10.0) -> dict:
        self.restock()
        began = time.monotonic()
        drop = self.drop()
        time.sleep(warmup)
        broke_at = time.monotonic()
        figures = break_it() or {}
        time.sleep(after)
        attempts = drop.stop()
        accepted = [a.number for a in attempts if a.outcome == "accepted"]
        after_break = [a for a in attempts if a.started >= broke_at]
        first_ok = next(
            (a.started for a in sorted(after_break, key=lambda a: a.started) if a.outcome == "accepted"), None
        )
        result = {
            "drill": name,
            **figures,
            "drop": summary(attempts, began),
            "orders_placed_again_after_seconds": round(first_ok - broke_at, 1) if first_ok else None,
            "answers": {label: dict(counts) for label, counts in drop.recorder.statuses.items()},
            "client_errors": dict(drop.recorder.errors),
            # Any 5xx but the deliberate 503 "try again", on any step (page, add to cart, checkout, order).
            "errors_5xx_other_than_503": sum(
                count
                for counts in drop.recorder.statuses.values()
                for status, count in counts.items()
                if isinstance(status, int) and status >= 500 and status != 503
            ),
            # Answers a kill -9 cut off after their headers had left (nothing nginx can replace then).
            "answers_cut_off": sum(counts.get("error", 0) for counts in drop.recorder.statuses.values()),
            **self.settle(accepted),
        }
        result["ok"] = (
            not result["lost"]
            and not result["charged_twice"]
            and result["errors_5xx_other_than_503"] == 0
            and result["found"] == result["accepted"]
            and result["accepted"] > 0
            and set(result["statuses"]) <= set(FINAL)
        )
        return result

    def _kill_supervised(self, name: str, victim) -> dict:
        before = len(victim.restarts)

        def kill():
            proc = victim.proc
            self.cluster.kill(proc)
            return {"killed": f"{victim.name} (pid {proc.pid})"}

        result = self._run(name, kill)
        wait_for(lambda: len(victim.restarts) > before, 120, f"{victim.name} restarted by the supervisor")
        result["restarted_after_seconds"] = victim.restarts[-1]
        return result

    def web_node_killed(self) -> dict:
        return self._kill_supervised("web node kill -9", self.cluster.web[0])

    def worker_killed(self) -> dict:
        return self._kill_supervised("rq worker kill -9", self.cluster.workers[0])

    def leader_killed(self) -> dict:
        before = int(self.db.scalar("SELECT count(*) FROM orders"))
        state = {}

        def kill():
            old = self.cluster.kill_leader()
            started = time.monotonic()
            new = wait_for(
                lambda: self.cluster.leader() not in (None, old) and self.cluster.leader(), 90, "a leader"
            )
            state["old"] = old
            return {
                "killed": f"Patroni leader {old.name} and its postmaster",
                "new_leader": new.name,
                "promoted_after_seconds": round(time.monotonic() - started, 1),
            }

        result = self._run("PostgreSQL leader kill -9", kill, after=15.0)
        self.db.dispose()
        self.db = SqlDb(self.cluster.database_url(), pool_size=1, max_overflow=1)
        result["orders_before_failure"] = before
        result["orders_before_failure_still_there"] = (
            int(self.db.scalar("SELECT count(*) FROM orders")) >= before
        )
        result["ok"] = result["ok"] and result["orders_before_failure_still_there"]
        # The old leader comes back as a replica of the new one (pg_rewind).
        self.cluster.start_pg_node(state["old"])
        wait_for(self.cluster.replica_streaming, 120, "the old leader streaming again as a replica")
        return result

    def redis_restarted(self) -> dict:
        return self._run(
            "Redis restart", lambda: {"redis_down_seconds": round(self.cluster.restart_redis(), 1)}
        )


def point_in_time_recovery(drills: "Drills") -> dict:
    """pgBackRest: a full and an incremental backup of the leader, a deliberate DELETE of orders, then a
    restore to just before it into a scratch data directory on another port, where the orders are found."""
    cluster, db = drills.cluster, drills.db
    started = time.monotonic()
    cluster.pgbackrest("backup", "--type=full")
    full_seconds = time.monotonic() - started
    drills.restock()
    drop = drills.drop(max_seconds=8.0)
    time.sleep(8.0)
    drop.stop()
    cluster.pgbackrest("backup", "--type=incr")
    victims = [row["id"] for row in db.rows("SELECT id FROM orders ORDER BY id DESC LIMIT 20")]
    target = db.scalar("SELECT to_char(clock_timestamp(), 'YYYY-MM-DD HH24:MI:SS.US+00')")
    time.sleep(1.0)
    children = db.rows(
        "SELECT c.conrelid::regclass::text AS child, a.attname AS col FROM pg_constraint c "
        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
        "WHERE c.contype = 'f' AND c.confrelid = 'orders'::regclass"
    )
    with db.engine.begin() as connection:
        # Table and column names from the catalog (the foreign keys onto orders), not from input.
        for row in children:
            connection.execute(
                text(f'DELETE FROM {row["child"]} WHERE "{row["col"]}" = ANY(:ids)'),  # noqa: S608
                {"ids": victims},
            )
        deleted = connection.execute(
            text("DELETE FROM orders WHERE id = ANY(:ids)"), {"ids": victims}
        ).rowcount
    # The DELETE's WAL segment must reach the repository before the restore can replay up to it.
    db.scalar("SELECT pg_switch_wal()")
    cluster.pgbackrest("check")
    restored = cluster.restore_to_time(target)
    try:
        found = SqlDb(restored.url, pool_size=1, max_overflow=0)
        there = int(found.scalar("SELECT count(*) FROM orders WHERE id = ANY(:ids)", ids=victims))
        found.dispose()
    finally:
        restored.stop()
    info = json.loads(cluster.pgbackrest("info", "--output=json"))
    backups = [b["type"] for b in info[0]["backup"]]
    return {
        "drill": "pgBackRest point-in-time recovery",
        "backups": backups,
        "full_backup_seconds": round(full_seconds, 1),
        "deleted_orders": deleted,
        "restored_to": target,
        "restore_seconds": restored.seconds,
        "deleted_orders_found_in_restore": there,
        "ok": deleted == len(victims) > 0 and there == deleted and "incr" in backups,
    }


DRILLS = {
    "web": Drills.web_node_killed,
    "worker": Drills.worker_killed,
    "leader": Drills.leader_killed,
    "redis": Drills.redis_restarted,
    "pitr": point_in_time_recovery,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "drills", nargs="*", metavar="DRILL", help=f"some of {', '.join(DRILLS)} (default: all)"
    )
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    unknown = set(args.drills) - set(DRILLS)
    if unknown:
        parser.error(f"no such drill: {', '.join(sorted(unknown))}")
    args.drills = args.drills or list(DRILLS)
    started = time.monotonic()
    cluster = Cluster(args.dir, args.port)
    results = []
    try:
        cluster.start()
        drills = Drills(cluster)
        for name in args.drills:
            result = DRILLS[name](drills)
            print(json.dumps(result), flush=True)
            results.append(result)
    finally:
        cluster.stop()
    report = {"seconds": round(time.monotonic() - started), "drills": results}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    print(f"{len(results)} drills in {report['seconds']} s; all ok: {all(r['ok'] for r in results)}")
    return 0 if results and all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
