"""Logical backups of the PostgreSQL database: pg_dump custom format with a checksum and a manifest,
rotation (daily, weekly, monthly), and a restore drill that proves a backup restores to what was dumped.

The manifest (row counts of every table and a checksum of the orders) is read inside the very snapshot
pg_dump dumps (pg_export_snapshot + pg_dump --snapshot), so the drill compares like with like even while
the shop keeps selling during the dump."""

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlencode

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine, make_url

PREFIX = "storefront-"
SUFFIX = ".dump"
STAMP = "%Y%m%dT%H%M%SZ"
# The rows a checksum covers: every order and its lines, in a fixed order, all columns as text.
CHECKSUMS = {
    "orders": "SELECT coalesce(md5(string_agg(o::text, E'\\n' ORDER BY o.id)), '') FROM orders o",
    "order_lines": "SELECT coalesce(md5(string_agg(l::text, E'\\n' ORDER BY l.id)), '') FROM order_lines l",
}


class BackupError(RuntimeError):
    """A dump, a checksum or a restore did not succeed; the message says which and why."""


@dataclass(frozen=True)
class Backup:
    path: Path
    sha256: str
    size: int
    manifest: dict


def libpq_uri(url: str) -> tuple[str, dict]:
    """A SQLAlchemy PostgreSQL URL as a libpq URI for pg_dump/pg_restore, and the environment carrying its
    password (never on a command line). Multi-host URLs (?host=a:5432&host=b:5432) keep every host."""
    parsed = make_url(url)
    query = dict(parsed.query)
    hosts = query.pop("host", None)
    if hosts:
        hostspec = ",".join([hosts] if isinstance(hosts, str) else hosts)
    else:
        hostspec = f"{parsed.host or '127.0.0.1'}:{parsed.port or 5432}"
    user = f"{quote(parsed.username, safe='')}@" if parsed.username else ""
    tail = f"?{urlencode(query, doseq=True)}" if query else ""
    env = {"PGPASSWORD": parsed.password} if parsed.password else {}
    return f"postgresql://{user}{hostspec}/{quote(parsed.database or '', safe='')}{tail}", env


def _tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise BackupError(f"{name} is not installed (Debian's postgresql-client)")
    return found


def _run(command: list[str], env: dict, what: str) -> None:
    result = subprocess.run(  # noqa: S603 - fixed tool, arguments built here
        command, env={**os.environ, **env}, capture_output=True, text=True, timeout=6 * 3600, check=False
    )
    if result.returncode != 0:
        raise BackupError(f"{what} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")


def read_manifest(connection: Connection) -> dict:
    """Row counts of every table in the public schema and checksums of the orders, as this connection sees."""
    tables = (
        connection.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
        )
        .scalars()
        .all()
    )
    quote_name = connection.dialect.identifier_preparer.quote
    # Names come from the catalog, quoted as identifiers: nothing here is user input.
    counts = {
        name: connection.execute(text(f"SELECT count(*) FROM public.{quote_name(name)}")).scalar_one()  # noqa: S608
        for name in tables
    }
    checksums = {name: connection.execute(text(sql)).scalar_one() for name, sql in CHECKSUMS.items()}
    return {"tables": counts, "checksums": checksums}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def create_backup(engine: Engine, folder: Path, now: datetime | None = None) -> Backup:
    """Dump the database to `folder` (custom format), with a .sha256 file and a manifest of the same snapshot."""
    now = now or datetime.now(UTC)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{PREFIX}{now.strftime(STAMP)}{SUFFIX}"
    final, partial = folder / name, folder / f"{name}.partial"
    uri, env = libpq_uri(engine.url.render_as_string(hide_password=False))
    # The snapshot stays exported only while this transaction is open: pg_dump must finish inside it.
    repeatable = engine.connect().execution_options(isolation_level="REPEATABLE READ")
    with repeatable as connection, connection.begin():
        snapshot = connection.execute(text("SELECT pg_export_snapshot()")).scalar_one()
        manifest = read_manifest(connection)
        try:
            _run(
                [_tool("pg_dump"), "--format=custom", f"--snapshot={snapshot}", f"--file={partial}", uri],
                env,
                "pg_dump",
            )
        except BackupError:
            partial.unlink(missing_ok=True)
            raise
    checksum = sha256_of(partial)
    manifest.update({"file": name, "sha256": checksum, "created": now.isoformat()})
    (folder / f"{name}.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    (folder / f"{name}.sha256").write_text(f"{checksum}  {name}\n")
    partial.rename(final)  # last: a file with the final name is always complete
    return Backup(final, checksum, final.stat().st_size, manifest)


def backup_time(path: Path) -> datetime | None:
    """When a backup file was taken, from its name; None for any other file."""
    name = path.name
    if not (name.startswith(PREFIX) and name.endswith(SUFFIX)):
        return None
    try:
        return datetime.strptime(name[len(PREFIX) : -len(SUFFIX)], STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None


def to_keep(times: list[datetime], daily: int, weekly: int, monthly: int) -> set[datetime]:
    """The backups a 7-daily/4-weekly/12-monthly scheme keeps: the newest of each of the last `daily` days,
    `weekly` ISO weeks and `monthly` months that have a backup (grandfather-father-son)."""
    keep: set[datetime] = set()
    for count, period in (
        (daily, lambda t: t.date()),
        (weekly, lambda t: t.isocalendar()[:2]),
        (monthly, lambda t: (t.year, t.month)),
    ):
        newest: dict = {}
        for moment in sorted(times, reverse=True):
            newest.setdefault(period(moment), moment)
        keep.update(sorted(newest.values(), reverse=True)[:count])
    return keep


def rotate(folder: Path, daily: int, weekly: int, monthly: int) -> list[Path]:
    """Delete the backups (and their .sha256 and .json) the scheme does not keep; return what was deleted."""
    backups = {moment: path for path in folder.glob(f"{PREFIX}*{SUFFIX}") if (moment := backup_time(path))}
    keep = to_keep(list(backups), daily, weekly, monthly)
    deleted = []
    for moment, path in sorted(backups.items()):
        if moment in keep:
            continue
        for companion in (path, Path(f"{path}.sha256"), Path(f"{path}.json")):
            companion.unlink(missing_ok=True)
        deleted.append(path)
    return deleted


def latest_backup(folder: Path) -> Path:
    """The newest complete backup in `folder`."""
    backups = sorted(
        (moment, path) for path in folder.glob(f"{PREFIX}*{SUFFIX}") if (moment := backup_time(path))
    )
    if not backups:
        raise BackupError(f"no backup in {folder}")
    return backups[-1][1]


def verify_checksum(path: Path) -> str:
    """The file's sha256, if it matches the one written beside it."""
    recorded_file = Path(f"{path}.sha256")
    if not recorded_file.exists():
        raise BackupError(f"{recorded_file.name} is missing")
    recorded = recorded_file.read_text().split()[0]
    actual = sha256_of(path)
    if actual != recorded:
        raise BackupError(f"{path.name}: sha256 {actual} does not match the recorded {recorded}")
    return actual


def restore_drill(engine: Engine, path: Path, scratch: str) -> dict:
    """Restore `path` into a fresh scratch database on the same server, compare it with the backup's manifest
    (every table's row count, the orders' checksums), drop the scratch database, and report."""
    verify_checksum(path)
    manifest = json.loads(Path(f"{path}.json").read_text())
    source = engine.url
    admin = create_engine(source.set(database="postgres"), isolation_level="AUTOCOMMIT")
    target = source.set(database=scratch)
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{scratch}"'))
        uri, env = libpq_uri(target.render_as_string(hide_password=False))
        _run(
            [
                _tool("pg_restore"),
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                f"--dbname={uri}",
                str(path),
            ],
            env,
            "pg_restore",
        )
        restored_engine = create_engine(target)
        try:
            with restored_engine.connect() as connection:
                restored = read_manifest(connection)
        finally:
            restored_engine.dispose()
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))
        admin.dispose()
    differences = {
        **{
            f"rows of {name}": [count, restored["tables"].get(name)]
            for name, count in manifest["tables"].items()
            if restored["tables"].get(name) != count
        },
        **{
            f"checksum of {name}": [value, restored["checksums"].get(name)]
            for name, value in manifest["checksums"].items()
            if restored["checksums"].get(name) != value
        },
    }
    return {
        "file": path.name,
        "sha256": manifest["sha256"],
        "tables": len(manifest["tables"]),
        "rows": sum(manifest["tables"].values()),
        "orders": manifest["tables"].get("orders"),
        "ok": not differences,
        "differences": differences,
    }
