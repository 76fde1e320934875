"""pgbench running place-order's SQL (bench/ceilings/sql.py) on one hot row and spread over many rows."""

import re
import shutil
import subprocess
from pathlib import Path

from bench.ceilings.sql import pgbench_script

PGBENCH = shutil.which("pgbench") or "/usr/lib/postgresql/15/bin/pgbench"


def run(database: str, folder: Path, lo: int, hi: int, clients: int, seconds: float, label: str) -> dict:
    """One bounded pgbench run (-T seconds); transactions per second and latency from its summary."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "order.sql"
    script.write_text(pgbench_script())
    command = [
        PGBENCH,
        "-h",
        "127.0.0.1",
        "-p",
        "5432",
        "-U",
        "postgres",
        "-n",
        "-M",
        "simple",
        "-r",
        "-c",
        str(clients),
        "-j",
        str(min(clients, 2)),
        "-T",
        str(max(1, round(seconds))),
        "-D",
        f"lo={lo}",
        "-D",
        f"hi={hi}",
        "-f",
        str(script),
        database,
    ]
    result = subprocess.run(  # noqa: S603  (a fixed argument list: pgbench and our own script)
        command, capture_output=True, text=True, timeout=seconds + 60, check=False, stdin=subprocess.DEVNULL
    )
    (folder / f"pgbench-{label}.log").write_text(" ".join(command) + "\n" + result.stdout + result.stderr)
    if result.returncode != 0:
        raise RuntimeError(f"pgbench {label} failed ({result.returncode}): {result.stderr[-1500:]}")
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", result.stdout)
    latency = re.search(r"latency average = ([\d.]+) ms", result.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", result.stdout)
    statements = re.findall(r"^\s+([\d.]+)\s+\d+\s+\d+\s+(\S.*)$", result.stdout, re.MULTILINE)
    slowest = sorted(((float(ms), sql[:60]) for ms, sql in statements), reverse=True)[:3]
    return {
        "tps": float(tps.group(1)) if tps else None,
        "latency_avg_ms": float(latency.group(1)) if latency else None,
        "failed": int(failed.group(1)) if failed else None,
        "clients": clients,
        "seconds": seconds,
        "slowest_statements_ms": slowest,
    }
