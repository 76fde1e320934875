"""Inventory: every write to a variant's on_hand / reserved, and the stock ledger. Nothing else writes them.

Stock is two-stage (as in Django Oscar): checkout reserves units; a paid order keeps them reserved; shipping
consumes them from on_hand; an unpaid, cancelled or refunded order releases them. Every write touches variant
rows in id order, so two transactions never wait on each other in opposite orders, and records the variant
ids it changed on the session; once the transaction commits, `stock_changed` is sent with them (live stock,
alerts). Services here never commit: the caller owns the transaction.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from blinker import Namespace
from sqlalchemy import Integer, bindparam, event, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from storefront.accounts.models import User
from storefront.catalog.models import Variant
from storefront.inventory.models import StockMovement

log = logging.getLogger(__name__)

# Sent once per committed transaction that changed stock, with the ids of the variants it changed (nothing
# else: no personal data). Never inside the transaction: a receiver sees what every other reader sees.
stock_changed = Namespace().signal("stock-changed")

_CHANGES = "stock_changes"
MAX_STOCK = 1_000_000
STOCK_REASONS = {
    "received": "Received: add units",
    "returned": "Returned: add units",
    "damaged": "Damaged: remove units",
    "recount": "Recount: set the counted total",
}


@dataclass(frozen=True)
class Shortage:
    """A line the reservation could not cover: what was wanted and what is left."""

    name: str
    wanted: int
    available: int


class StockRefused(Exception):
    """An adjustment the guarded UPDATE did not make; the message tells staff why."""


def record_changes(session: Session, variant_ids: Iterable[int]) -> None:
    """Note on the session which variants this transaction changed, for `stock_changed` after the commit."""
    session.info.setdefault(_CHANGES, set()).update(variant_ids)


@event.listens_for(Session, "after_commit")
def _send_after_commit(session: Session) -> None:
    # Every session (request, autocommit, job) is a Session, so one listener covers them all. A savepoint's
    # release also fires after_commit: only the outermost commit ends the transaction.
    if session.in_nested_transaction() or not session.info.get(_CHANGES):
        return
    variant_ids = frozenset(session.info.pop(_CHANGES))
    try:
        stock_changed.send(None, variant_ids=variant_ids)
    except Exception:
        # The stock is committed whatever a receiver does; a failing receiver must not turn that into an error.
        log.exception("a stock_changed receiver failed for variants %s", sorted(variant_ids))


@event.listens_for(Session, "after_transaction_end")
def _forget_uncommitted(session: Session, transaction) -> None:
    # The outermost transaction ended without after_commit taking the ids: rolled back (also a failed commit,
    # or a session closed mid-transaction), so nothing changed. A savepoint rolled back leaves the outer writes.
    if transaction.parent is None:
        session.info.pop(_CHANGES, None)


# Checkout's reservation is a Core statement on the table, built once, its values passed when it runs: the
# ORM's update(Variant).values(...) made SQLAlchemy walk every value for a cache key on each call.
_variants = Variant.__table__
_units = bindparam("units", type_=Integer)
_RESERVE = (
    update(_variants)
    .where(_variants.c.id == bindparam("variant"), _variants.c.on_hand - _variants.c.reserved >= _units)
    .values(reserved=_variants.c.reserved + _units)
)


def reserve(session: Session, lines: list[tuple[int, int, str]]) -> list[Shortage]:
    """Reserve (variant id, quantity, name) lines: one guarded UPDATE per variant, in id order; the shortages.

    An empty list means every line is reserved; otherwise the caller rolls back, so none is."""
    shortages = []
    for variant_id, quantity, name in sorted(lines):
        if not session.execute(_RESERVE, {"variant": variant_id, "units": quantity}).rowcount:
            available = session.scalar(
                select(Variant.on_hand - Variant.reserved).where(Variant.id == variant_id)
            )
            shortages.append(Shortage(name, quantity, max(0, available or 0)))
    record_changes(session, (variant_id for variant_id, _quantity, _name in lines))
    return shortages


def release(session: Session, lines: Iterable[tuple[int, int]]) -> None:
    """Give reserved (variant id, quantity) units back to the shelf, in variant-id order."""
    lines = sorted(lines)
    for variant_id, quantity in lines:
        session.execute(
            update(Variant).where(Variant.id == variant_id).values(reserved=Variant.reserved - quantity)
        )
    record_changes(session, (variant_id for variant_id, _quantity in lines))


def consume(session: Session, lines: Iterable[tuple[int, int]]) -> None:
    """Shipping: reserved (variant id, quantity) units leave on_hand for good, in variant-id order."""
    lines = sorted(lines)
    for variant_id, quantity in lines:
        session.execute(
            update(Variant)
            .where(Variant.id == variant_id)
            .values(on_hand=Variant.on_hand - quantity, reserved=Variant.reserved - quantity)
        )
    record_changes(session, (variant_id for variant_id, _quantity in lines))


def record_initial(session: Session, variants: Iterable[Variant], note: str, user_id: int | None) -> None:
    """A new variant's first stock (inserted with it) as a "received" ledger line; the variants are flushed."""
    stocked = sorted((variant for variant in variants if variant.on_hand), key=lambda variant: variant.id)
    for variant in stocked:
        session.add(
            StockMovement(
                variant_id=variant.id,
                delta=variant.on_hand,
                reason="received",
                note=note,
                on_hand_after=variant.on_hand,
                user_id=user_id,
            )
        )
    if stocked:
        record_changes(session, (variant.id for variant in stocked))


def set_on_hand(session: Session, variant: Variant, units: int) -> None:
    """Set-up only (the demo seeder): put `units` on the shelf without a ledger line; the caller checked that
    no more than that is reserved."""
    variant.on_hand = units
    session.flush()
    record_changes(session, (variant.id,))


def adjust(
    session: Session, variant: Variant, reason: str, quantity: int, note: str = "", user_id: int | None = None
) -> StockMovement:
    """Add received or returned units, remove damaged ones, or set a recount; never below what is reserved.

    One guarded UPDATE, so it is safe while checkout reserves units on the same row. Raises StockRefused when
    the result would be below the units reserved for open orders or above MAX_STOCK.
    """
    if reason not in STOCK_REASONS:
        raise ValueError(f"unknown stock reason {reason!r}")
    delta, guard = (-quantity if reason == "damaged" else quantity), ()
    for _attempt in range(3):
        if reason == "recount":
            # A recount sets the total; the delta is taken from the on_hand it replaces, which must not move
            # in between (a shipment, another adjustment), or we read it again.
            seen = session.scalar(select(Variant.on_hand).where(Variant.id == variant.id))
            delta, guard = quantity - seen, (Variant.on_hand == seen,)
        row = session.execute(
            update(Variant)
            .where(
                Variant.id == variant.id,
                Variant.on_hand + delta >= Variant.reserved,
                Variant.on_hand + delta <= MAX_STOCK,
                *guard,
            )
            .values(on_hand=Variant.on_hand + delta)
            .returning(Variant.on_hand, Variant.reserved)
            .execution_options(synchronize_session=False)
        ).one_or_none()
        if row is not None:
            break
        on_hand, reserved = session.execute(
            select(Variant.on_hand, Variant.reserved).where(Variant.id == variant.id)
        ).one()
        if reason == "recount" and on_hand != seen:
            continue
        raise StockRefused(_refusal(reason, delta, on_hand, reserved))
    else:
        raise StockRefused("The stock kept changing while this was saved. Please try again.")
    on_hand_after, reserved = row
    set_committed_value(variant, "on_hand", on_hand_after)
    set_committed_value(variant, "reserved", reserved)
    movement = StockMovement(
        variant_id=variant.id,
        delta=delta,
        reason=reason,
        note=note,
        on_hand_after=on_hand_after,
        user_id=user_id,
    )
    session.add(movement)
    session.flush()
    record_changes(session, (variant.id,))
    return movement


def _refusal(reason: str, delta: int, on_hand: int, reserved: int) -> str:
    if on_hand + delta > MAX_STOCK:
        return f"On hand can be at most {MAX_STOCK:,} (it is {on_hand:,} now)."
    if reason == "recount":
        return (
            f"{reserved} units are reserved for open orders, so the count can't be below {reserved}. "
            "Ship or cancel those orders first."
        )
    return (
        f"Only {max(on_hand - reserved, 0)} units can be removed: {reserved} of the {on_hand} on hand "
        "are reserved for open orders."
    )


def ledger(
    session: Session, variant_id: int, page: int, per_page: int = 50
) -> tuple[list[tuple[StockMovement, str | None]], bool]:
    """A variant's stock movements, newest first, each with the e-mail of the staff member who made it."""
    rows = session.execute(
        select(StockMovement, User.email)
        .outerjoin(User, User.id == StockMovement.user_id)
        .where(StockMovement.variant_id == variant_id)
        .order_by(StockMovement.id.desc())
        .limit(per_page + 1)
        .offset((page - 1) * per_page)
    ).all()
    return [tuple(row) for row in rows[:per_page]], len(rows) > per_page
