"""Command-line tools for operators: flask --app wsgi <command>."""

import json
from pathlib import Path

import click
from flask import current_app, url_for
from flask.cli import with_appcontext
from sqlalchemy import select

from storefront.accounts.views import lockout
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
    for lock in lockout().active_locks(now):
        account = None if lock.email == "*" else lock.email
        click.echo(json.dumps({"email": account, "ip": lock.ip, "seconds_left": lock.retry_after(now)}))


@click.command("unlock")
@click.argument("email")
@with_appcontext
def unlock(email: str) -> None:
    """Lift every lockout of an account, from any IP."""
    lifted = lockout().unlock(email.strip().lower())
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


@click.group("waiting-room")
def waiting_room() -> None:
    """Turn the drops' waiting room on or off, or print how it stands."""


class _Operator:
    """The audit log's actor for a change made from the command line."""

    id = None

    def __init__(self) -> None:
        import getpass

        self.email = f"cli:{getpass.getuser()}"[:254]


def _set_room(mode: str, rate: str | None = None, cap: int | None = None) -> None:
    from storefront.admin import services as audit  # moves to storefront.audit with the refactor
    from storefront.extensions import redis_client
    from storefront.waitingroom import services as room

    client = redis_client()
    before = room.read_settings(client)
    try:
        after = room.write_settings(client, mode, rate, cap)
    except room.WaitingRoomError as error:
        raise click.ClickException(str(error)) from error
    session = get_session()
    audit.record(session, _Operator(), f"waiting_room.{mode}", "waiting_room", "", vars(before), vars(after))
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
