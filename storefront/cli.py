"""Command-line tools for operators: flask --app wsgi <command>."""

import json
from pathlib import Path

import click
from flask import current_app, url_for
from flask.cli import with_appcontext
from sqlalchemy import select

from storefront.accounts import lockout
from storefront.catalog.models import Product, Variant
from storefront.db import get_session
from storefront.demo import seed_demo as build_demo
from storefront.extensions import clock
from storefront.orders import services as orders


@click.command("seed-demo")
@click.option("--products", default=1000, show_default=True, help="How many demo products.")
@click.option("--flash-stock", default=100, show_default=True, help="Units of the DEMO-FLASH variant.")
@click.option("--if-empty", is_flag=True, help="Do nothing when the catalog already has products.")
@with_appcontext
def seed_demo(products: int, flash_stock: int, if_empty: bool) -> None:
    """Build the demo catalog (idempotent) and set the flash-sale SKU's stock."""
    session = get_session()
    if if_empty and session.scalar(select(Product.id).limit(1)) is not None:
        click.echo("catalog already has products; nothing to do")
        return
    try:
        summary = build_demo(session, Path(current_app.config["MEDIA_FOLDER"]), products, flash_stock)
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    session.commit()
    click.echo(json.dumps(summary))


@click.command("stock")
@click.argument("sku")
@with_appcontext
def stock(sku: str) -> None:
    """Print a variant's product page path and stock figures as JSON."""
    session = get_session()
    row = session.execute(select(Variant, Product.slug).join(Product).where(Variant.sku == sku)).first()
    if row is None:
        raise click.ClickException(f"no variant with SKU {sku!r}")
    variant, slug = row
    with current_app.test_request_context():
        url = url_for("catalog.product", slug=slug)
    click.echo(
        json.dumps(
            {
                "sku": variant.sku,
                "url": url,
                "on_hand": variant.on_hand,
                "reserved": variant.reserved,
                "available": variant.available,
                "sold": orders.units_sold(session, variant.id),
            }
        )
    )


@click.command("lockouts")
@with_appcontext
def lockouts() -> None:
    """List the login lockouts in force, one JSON object a line."""
    now = clock.now()
    for lock in lockout.for_app(current_app).active_locks(now):
        account = None if lock.email == "*" else lock.email
        click.echo(json.dumps({"email": account, "ip": lock.ip, "seconds_left": lock.retry_after(now)}))


@click.command("unlock")
@click.argument("email")
@with_appcontext
def unlock(email: str) -> None:
    """Lift every lockout of an account, from any IP."""
    lifted = lockout.for_app(current_app).unlock(email.strip().lower())
    click.echo(f"lifted {lifted} lockout{'s' if lifted != 1 else ''} for {email}")


@click.command("sweep")
@with_appcontext
def sweep() -> None:
    """Run every periodic sweep once, here (what `rq cron jobs.schedule` runs on a timer)."""
    from jobs.maintenance import SWEEPS

    for task in SWEEPS:
        click.echo(json.dumps({"sweep": task.__name__, "result": task()}))


@click.command("create-staff")
@click.argument("email")
@click.option("--role", type=click.Choice(["staff", "admin"]), default="staff", show_default=True)
@click.password_option(help="The password (asked twice when not given).")
@with_appcontext
def create_staff(email: str, role: str, password: str) -> None:
    """Create a staff or admin account, or give an existing account that role."""
    from storefront.accounts import services as accounts

    session = get_session()
    try:
        user, created = accounts.make_staff(session, email, role, password)
    except accounts.AccountError as error:
        raise click.ClickException(str(error)) from error
    session.commit()
    click.echo(f"{'created' if created else 'updated'} {role} {user.email}")


@click.command("backup")
@with_appcontext
def backup() -> None:
    """Dump the database now (pg_dump custom format, sha256, rotation), as the clock does daily."""
    from jobs.backups import backup_now
    from storefront.backups.services import BackupError

    try:
        click.echo(json.dumps(backup_now()))
    except BackupError as error:
        raise click.ClickException(str(error)) from error


@click.command("restore-drill")
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False), help="Default: the latest.")
@click.option("--scratch", default=None, help="Scratch database name (default: <database>_restore_drill).")
@with_appcontext
def restore_drill(path: str | None, scratch: str | None) -> None:
    """Restore a backup into a scratch database and check its row counts and orders checksum."""
    from storefront.backups import services as backups
    from storefront.db import engines

    engine = engines(current_app)[0]
    if engine.dialect.name != "postgresql":
        raise click.ClickException("the restore drill needs PostgreSQL (DATABASE_URL)")
    try:
        chosen = Path(path) if path else backups.latest_backup(Path(current_app.config["BACKUP_DIR"]))
        report = backups.restore_drill(engine, chosen, scratch or f"{engine.url.database}_restore_drill")
    except backups.BackupError as error:
        raise click.ClickException(str(error)) from error
    click.echo(json.dumps(report))
    if not report["ok"]:
        raise click.ClickException("the restored database differs from the backup's manifest")
