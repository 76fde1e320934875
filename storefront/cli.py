"""Command-line tools for operators: flask --app wsgi <command>."""

import json
from pathlib import Path

import click
from flask import current_app, url_for
from flask.cli import with_appcontext
from sqlalchemy import select

from storefront import progress
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
        with progress.bar(products, "Building the demo catalog") as done:
            summary = build_demo(
                session, Path(current_app.config["MEDIA_FOLDER"]), products, flash_stock, progress=done.update
            )
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


@click.group("waiting-room")
def waiting_room() -> None:
    """Turn the drops' waiting room on or off, or print how it stands."""


def _set_room(mode: str, rate: str | None = None, cap: int | None = None) -> None:
    from storefront.audit import services as audit
    from storefront.extensions import redis_client
    from storefront.waitingroom import services as room

    client = redis_client()
    before = room.read_settings(client)
    try:
        after = room.write_settings(client, mode, rate, cap)
    except room.WaitingRoomError as error:
        raise click.ClickException(str(error)) from error
    session = get_session()
    audit.record(
        session, _operator(), f"waiting_room.{mode}", "waiting_room", "", vars(before), vars(after), ip="cli"
    )
    session.commit()
    click.echo(json.dumps(room.status(session, client, clock.now()).as_dict()))


@waiting_room.command("on")
@click.option("--rate", required=True, help="Shoppers let into checkout a second.")
@click.option("--cap", type=int, default=None, help="Most shoppers in checkout at once.")
@with_appcontext
def waiting_room_on(rate: str, cap: int | None) -> None:
    """Gate checkout of every running sale's items, whatever their drop mode."""
    _set_room("on", rate, cap)


@waiting_room.command("off")
@with_appcontext
def waiting_room_off() -> None:
    """No waiting room, even for sales in drop mode, until `on` or `auto`."""
    _set_room("off")


@waiting_room.command("auto")
@with_appcontext
def waiting_room_auto() -> None:
    """Leave the room to the sales' drop mode (the default)."""
    _set_room("auto")


@waiting_room.command("status")
@with_appcontext
def waiting_room_status() -> None:
    """Print the room as one JSON object: on, rate, cap, waiting, admitted, in_checkout."""
    from storefront.extensions import redis_client
    from storefront.waitingroom import services as room

    click.echo(json.dumps(room.status(get_session(), redis_client(), clock.now()).as_dict()))


@click.group("flags")
def flags_cli() -> None:
    """Feature flags, switches and samples: list, set, unset."""


def _operator():
    """Who the audit log names for a change made here: the operating-system user, no account."""
    import getpass
    from types import SimpleNamespace

    return SimpleNamespace(id=None, email=f"cli:{getpass.getuser()}")


def _flag_line(kind: str, values: dict, name: str) -> str:
    return json.dumps({"kind": kind, "name": name, **values}, default=str)


@flags_cli.command("list")
@with_appcontext
def flags_list() -> None:
    """Every flag, switch and sample with its rules, one JSON object a line."""
    from storefront.flags import services as flags

    for kind, things in flags.all_of(get_session()).items():
        _model, values = flags.MODELS[kind]
        for thing in things:
            click.echo(_flag_line(kind, values(thing), thing.name))


@flags_cli.command("set")
@click.argument("name")
@click.option("--kind", type=click.Choice(["flag", "switch", "sample"]), help="When creating (default flag).")
@click.option("--on", "state", flag_value="on", help="A flag on for everyone; a switch on.")
@click.option("--off", "state", flag_value="off", help="A flag off for everyone; a switch off.")
@click.option("--rules", "state", flag_value="rules", help="A flag decided by staff, accounts and percent.")
@click.option("--staff/--no-staff", default=None, help="A flag on for staff.")
@click.option("--percent", type=click.FloatRange(0, 100), help="A flag's sticky share, or a sample's.")
@click.option("--accounts", help="A flag's accounts: e-mails separated by commas (empty clears).")
@click.option("--note", help="What it is for.")
@with_appcontext
def flags_set(name, kind, state, staff, percent, accounts, note) -> None:
    """Create or change a flag, switch or sample; every process has the change within a moment."""
    from decimal import Decimal

    from storefront.accounts import services as account_services
    from storefront.audit import services as audit
    from storefront.flags import services as flags

    session = get_session()
    existing = [k for k in flags.KINDS if flags.find(session, k, name) is not None]
    kind = kind or (existing[0] if existing else "flag")
    changes: dict = {} if note is None else {"note": note}
    if state is not None and kind == "sample":
        raise click.UsageError("a sample has only --percent")
    if state is not None:
        key, values = (
            ("active", {"on": True, "off": False}) if kind == "switch" else ("everyone", flags.EVERYONE)
        )
        if state not in values:
            raise click.UsageError(f"a {kind} takes --on or --off")
        changes[key] = values[state]
    if kind != "flag" and (staff is not None or accounts is not None):
        raise click.UsageError("--staff and --accounts are for flags")
    if kind == "switch" and percent is not None:
        raise click.UsageError("a switch has no percent")
    if staff is not None:
        changes["staff"] = staff
    if percent is not None:
        changes["percent"] = Decimal(str(percent)).quantize(Decimal("0.1"))
    if accounts is not None:
        ids, missing = account_services.ids_for_emails(session, [e for e in accounts.split(",") if e.strip()])
        if missing:
            raise click.ClickException(f"no account for {', '.join(missing)}")
        changes["accounts"] = ids
    _thing, before, after = flags.save(session, kind, name, **changes)
    changed_before, changed_after = audit.changes(before, after)
    if changed_after or not before:
        action = f"{kind}.{'update' if before else 'create'}"
        audit.record(session, _operator(), action, kind, name, changed_before, changed_after, ip="cli")
    session.commit()
    flags.announce_change()
    click.echo(_flag_line(kind, after, name))


@flags_cli.command("unset")
@click.argument("name")
@with_appcontext
def flags_unset(name: str) -> None:
    """Remove a flag, switch or sample: code asking for it then reads it as off."""
    from storefront.audit import services as audit
    from storefront.flags import services as flags

    session = get_session()
    for kind in flags.KINDS:
        before = flags.delete(session, kind, name)
        if before is not None:
            audit.record(session, _operator(), f"{kind}.delete", kind, name, before, {}, ip="cli")
            session.commit()
            flags.announce_change()
            click.echo(f"removed {kind} {name}")
            return
    raise click.ClickException(f"no flag, switch or sample called {name!r}")
