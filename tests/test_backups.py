"""Backups: pg_dump of the real PostgreSQL with a checksum and a same-snapshot manifest, 7/4/12 rotation,
and a restore drill that restores into a scratch database and finds the same rows and orders."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from storefront import create_app
from storefront.backups import services as backups
from tests import services
from tests.conftest import migrate
from tests.factories import make_order


@pytest.fixture(scope="module")
def shop_database():
    """A database of its own with committed orders: pg_dump sees only what is committed."""
    name = f"storefront_backup_{services.run_suffix()}"
    url = services.fresh_database(name)
    migrate(url)
    engine = create_engine(url)
    with Session(engine) as session:
        for _ in range(3):
            make_order(session)
        session.commit()
    yield url, engine
    engine.dispose()
    services.drop_database(name)
    services.drop_database(f"{name}_drill")


@pytest.fixture
def backup_app(shop_database, tmp_path):
    url, _ = shop_database
    return create_app(
        {"TESTING": True, "SECRET_KEY": "test", "DATABASE_URL": url, "BACKUP_DIR": str(tmp_path / "backups")}
    )


def test_backup_writes_a_custom_format_dump_with_its_sha256_and_a_manifest_of_the_orders(
    shop_database, tmp_path
):
    _, engine = shop_database
    made = backups.create_backup(engine, tmp_path)
    assert made.path.read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format
    assert (tmp_path / f"{made.path.name}.sha256").read_text() == f"{made.sha256}  {made.path.name}\n"
    assert made.manifest["tables"]["orders"] == 3
    assert made.manifest["tables"]["order_lines"] == 3
    assert len(made.manifest["checksums"]["orders"]) == 32
    assert not list(tmp_path.glob("*.partial"))


def test_restore_drill_restores_the_latest_backup_and_finds_every_row_and_the_same_orders(
    shop_database, tmp_path
):
    _, engine = shop_database
    made = backups.create_backup(engine, tmp_path)
    report = backups.restore_drill(engine, backups.latest_backup(tmp_path), f"{engine.url.database}_drill")
    assert report["ok"], report["differences"]
    assert report["file"] == made.path.name and report["orders"] == 3
    assert report["rows"] == sum(made.manifest["tables"].values())


def test_restore_drill_reports_a_restore_that_differs_from_the_manifest(shop_database, tmp_path):
    _, engine = shop_database
    made = backups.create_backup(engine, tmp_path)
    manifest_file = Path(f"{made.path}.json")
    manifest = json.loads(manifest_file.read_text())
    manifest["tables"]["orders"] += 1
    manifest["checksums"]["orders"] = "0" * 32
    manifest_file.write_text(json.dumps(manifest))
    report = backups.restore_drill(engine, made.path, f"{engine.url.database}_drill")
    assert not report["ok"]
    assert set(report["differences"]) == {"rows of orders", "checksum of orders"}


def test_a_damaged_dump_fails_its_checksum_before_any_restore(shop_database, tmp_path):
    _, engine = shop_database
    made = backups.create_backup(engine, tmp_path)
    with made.path.open("r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00\x01\x02")
    with pytest.raises(backups.BackupError, match="does not match"):
        backups.restore_drill(engine, made.path, f"{engine.url.database}_drill")


def test_a_failed_dump_raises_and_leaves_no_file_with_a_backup_name(tmp_path):
    unreachable = create_engine("postgresql+psycopg2://postgres@127.0.0.1:1/nothing?connect_timeout=2")
    with pytest.raises(Exception):  # noqa: B017 - the driver's own OperationalError
        backups.create_backup(unreachable, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_rotation_keeps_seven_daily_four_weekly_and_twelve_monthly():
    now = datetime(2026, 12, 8, 3, 30, tzinfo=UTC)
    # A backup every day for 400 days, and a second one on the newest day.
    times = [now - timedelta(days=n) for n in range(400)] + [now - timedelta(hours=2)]
    keep = backups.to_keep(times, daily=7, weekly=4, monthly=12)
    days = sorted({moment.date() for moment in keep}, reverse=True)
    assert now in keep and now - timedelta(hours=2) not in keep  # one a day: the newest
    assert [day.isoformat() for day in days[:7]] == [
        (now - timedelta(days=n)).date().isoformat() for n in range(7)
    ]
    assert len({(m.year, m.month) for m in keep}) == 12
    assert len({m.isocalendar()[:2] for m in keep}) >= 4
    assert min(keep) >= now - timedelta(days=366)
    # 7 daily; the weekly and monthly ones add the newest of each older week and month.
    assert len(keep) <= 7 + 4 + 12


def test_rotate_deletes_what_the_scheme_drops_with_its_checksum_and_manifest(tmp_path):
    start = datetime(2026, 1, 1, 3, 30, tzinfo=UTC)
    for n in range(40):
        name = f"storefront-{(start + timedelta(days=n)).strftime(backups.STAMP)}.dump"
        for suffix in ("", ".sha256", ".json"):
            (tmp_path / f"{name}{suffix}").write_text("x")
    (tmp_path / "notes.txt").write_text("not a backup")
    deleted = backups.rotate(tmp_path, daily=7, weekly=4, monthly=12)
    left = sorted(path.name for path in tmp_path.glob("*.dump"))
    assert len(left) + len(deleted) == 40
    assert len(left) == len(backups.to_keep([start + timedelta(days=n) for n in range(40)], 7, 4, 12))
    assert len(list(tmp_path.glob("*.sha256"))) == len(left) == len(list(tmp_path.glob("*.json")))
    assert (tmp_path / "notes.txt").exists()


def test_backup_and_restore_drill_commands_report_json(backup_app):
    runner = backup_app.test_cli_runner()
    made = runner.invoke(args=["backup"])
    assert made.exit_code == 0, made.output
    summary = json.loads(made.output)
    assert summary["orders"] == 3 and Path(summary["file"]).exists()
    drill = runner.invoke(args=["restore-drill", "--scratch", f"{make_name(backup_app)}_drill"])
    assert drill.exit_code == 0, drill.output
    assert json.loads(drill.output)["ok"] is True


def test_restore_drill_command_without_a_backup_says_so(backup_app):
    result = backup_app.test_cli_runner().invoke(args=["restore-drill"])
    assert result.exit_code != 0
    assert "no backup in" in result.output


def test_the_clock_runs_the_daily_backup_once_a_day_with_a_long_timeout():
    import redis
    from rq.cron import CronScheduler

    scheduler = CronScheduler(connection=redis.Redis.from_url(services.redis_url()))
    scheduler.load_config_from_file("jobs.schedule")
    [entry] = [entry for entry in scheduler.get_jobs() if entry.func_name == "jobs.backups.daily_backup"]
    assert entry.cron == "30 3 * * *"
    assert entry.job_options["job_timeout"] >= 3600


def make_name(app) -> str:
    return app.config["DATABASE_URL"].rsplit("/", 1)[1]
