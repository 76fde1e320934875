"""Orders: the allowed status transitions, the timeline, visibility, and what each change does to stock.

What each change does to stock (release, consume at shipment) is inventory's to write.
"""

import secrets
from datetime import UTC, datetime

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.orm import Session, selectinload

from storefront.inventory import services as inventory
from storefront.orders.models import Order, OrderEvent, OrderLine

# Every status an order can be in, and where it may go from there. Anything else is refused.
TRANSITIONS: dict[str, set[str]] = {
    "pending_payment": {"paid", "payment_failed", "payment_review", "expired", "cancelled"},
    "payment_review": {"paid", "payment_failed", "cancelled"},
    "payment_failed": {"pending_payment", "expired", "cancelled"},
    "paid": {"shipped", "cancelled", "refunded"},
    "shipped": {"refunded"},
    "expired": set(),
    "cancelled": set(),
    "refunded": set(),
}
LABELS = {
    "pending_payment": "Confirming your payment",
    "payment_review": "Payment under review",
    "payment_failed": "Payment failed",
    "paid": "Paid",
    "shipped": "Shipped",
    "expired": "Expired",
    "cancelled": "Cancelled",
    "refunded": "Refunded",
}
# Orders that hold reserved stock, and so count towards per-customer limits.
HOLDING_STOCK = ("pending_payment", "payment_review", "payment_failed", "paid")
SOLD = ("paid", "shipped")
AWAITING_PAYMENT = ("pending_payment", "payment_review")
NUMBER_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


class InvalidTransition(ValueError):
    """An order was asked to move to a status its current one does not allow."""


def new_number() -> str:
    """A short, unguessable order number (also the gateway's invoice number, at most 20 characters)."""
    return "SF-" + "".join(secrets.choice(NUMBER_ALPHABET) for _ in range(10))


def add_event(session: Session, order: Order, kind: str, message: str = "", **data) -> None:
    session.add(OrderEvent(order_id=order.id, kind=kind, message=message, data=data))


def move(session: Session, order: Order, to: str, message: str = "", **data) -> bool:
    """Move the order to a new status if nobody moved it first; refuse transitions the table forbids."""
    was = order.status  # read first: the ORM update below sets order.status to `to` in the session
    if to not in TRANSITIONS[was]:
        raise InvalidTransition(f"order {order.number} cannot go from {was} to {to}")
    values = {"status": to, "updated_at": func.now()}
    if to == "paid":
        values["paid_at"] = datetime.now(UTC)
    moved = session.execute(
        update(Order).where(Order.id == order.id, Order.status == was).values(**values)
    ).rowcount
    if not moved:
        session.refresh(order)
        return False
    add_event(
        session, order, "status", message or f"{LABELS[was]} → {LABELS[to]}", **{"from": was, "to": to} | data
    )
    session.refresh(order)
    return True


def release_stock(session: Session, order: Order) -> None:
    """Give an unpaid order's reserved units back to the shelf."""
    inventory.release(session, ((line.variant_id, line.quantity) for line in order.lines))


def consume_stock(session: Session, order: Order) -> None:
    """Shipping: the reserved units leave the shelf for good."""
    inventory.consume(session, ((line.variant_id, line.quantity) for line in order.lines))


def view_key(secret_key: str, number: str) -> str:
    """The signed part of a guest's order link (sent in the confirmation e-mail)."""
    return _signer(secret_key).dumps(number)


def opens(secret_key: str, number: str, key: str) -> bool:
    """Whether `key` is the signed link of order `number`."""
    try:
        return bool(key) and _signer(secret_key).loads(key) == number
    except BadSignature:
        return False


def _signer(secret_key: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret_key, salt="storefront.order-view")


def get(session: Session, order_id: int) -> Order | None:
    return session.scalar(select(Order).where(Order.id == order_id).options(selectinload(Order.lines)))


def by_ids(session: Session, order_ids: set[int], lines: bool = False) -> dict[int, Order]:
    """Orders by id in one query (with their lines in a second if asked), e.g. for a batch of payments."""
    stmt = select(Order).where(Order.id.in_(order_ids))
    if lines:
        stmt = stmt.options(selectinload(Order.lines))
    return {order.id: order for order in session.scalars(stmt)}


def by_number(session: Session, number: str, timeline: bool = True) -> Order | None:
    """An order with its lines and timeline; with `timeline=False` the order alone (a shopper's status
    page, polled every second while the payment runs: its lines load only if the page shows them)."""
    stmt = select(Order).where(Order.number == number)
    if timeline:
        stmt = stmt.options(selectinload(Order.lines), selectinload(Order.events))
    return session.scalar(stmt)


def placed_with_key(session: Session, key: str) -> tuple[int, str] | None:
    """(id, number) of the order a checkout form with this key placed, if any: every place order asks."""
    row = session.execute(_PLACED_WITH_KEY, {"key": key}).first()
    return tuple(row) if row else None


_PLACED_WITH_KEY = select(Order.id, Order.number).where(Order.idempotency_key == bindparam("key"))


def for_user(session: Session, user_id: int, limit: int = 50) -> list[Order]:
    """A shopper's own orders, newest first."""
    return list(
        session.scalars(
            select(Order)
            .where(Order.user_id == user_id)
            .order_by(Order.created_at.desc(), Order.id.desc())
            .options(selectinload(Order.lines))
            .limit(limit)
        )
    )


def _squeezed(column):
    """A street or postal code without case, spaces or the usual punctuation, in SQL both databases run."""
    for mark in (" ", ".", ",", "-", "#", "/"):
        column = func.replace(column, mark, "")
    return func.lower(column)


def squeeze(text: str) -> str:
    """What _squeezed makes of a value in SQL, made of it in Python."""
    for mark in (" ", ".", ",", "-", "#", "/"):
        text = text.replace(mark, "")
    return text.lower()


def units_bought(
    session: Session,
    variant_id: int,
    user_id: int | None,
    email: str,
    address: tuple[str, str, str] | None = None,
) -> int:
    """Units of a variant in this customer's orders that hold stock or went out (for per-customer limits).

    The customer is the account, the e-mail address, or the shipping address (line 1, postal code, country:
    the same street however it is cased or spaced), so a guest checkout cannot get round an account's limit.
    """
    who = [Order.email == email]
    if user_id is not None:
        who.append(Order.user_id == user_id)
    if address is not None:
        line1, postal_code, country = address
        who.append(
            (Order.ship_postal_code == postal_code.strip())
            & (Order.ship_country == country)
            & (_squeezed(Order.ship_line1) == squeeze(line1))
        )
    return session.scalar(
        select(func.coalesce(func.sum(OrderLine.quantity), 0))
        .join(Order)
        .where(OrderLine.variant_id == variant_id, Order.status.in_((*HOLDING_STOCK, "shipped")), or_(*who))
    )


def units_sold(session: Session, variant_id: int) -> int:
    """Units of a variant in paid or shipped orders."""
    return session.scalar(
        select(func.coalesce(func.sum(OrderLine.quantity), 0))
        .join(Order)
        .where(OrderLine.variant_id == variant_id, Order.status.in_(SOLD))
    )


def expired_holds(session: Session, now: datetime, limit: int = 200) -> list[int]:
    """Unpaid orders whose reservation time is up (payment state is checked by the caller)."""
    return list(
        session.scalars(
            select(Order.id)
            .where(Order.status.in_(("pending_payment", "payment_failed")), Order.expires_at < now)
            .order_by(Order.id)
            .limit(limit)
        )
    )


def day_summary(session: Session, since: datetime) -> dict:
    """Orders placed since `since`: how many, by status, and the revenue of those paid or shipped."""
    by_status = dict(
        session.execute(
            select(Order.status, func.count(Order.id)).where(Order.created_at >= since).group_by(Order.status)
        )
        .tuples()
        .all()
    )
    revenue = session.scalar(
        select(func.coalesce(func.sum(Order.total), 0)).where(
            Order.created_at >= since, Order.status.in_(SOLD)
        )
    )
    return {
        "orders": sum(by_status.values()),
        "by_status": by_status,
        "revenue": revenue,
        "paid": sum(by_status.get(status, 0) for status in SOLD),
    }


def per_minute(session: Session, since: datetime) -> dict[str, int]:
    """Orders placed per minute since `since`, keyed "HH:MM" (UTC), counted by the database."""
    if session.get_bind().dialect.name == "postgresql":
        minute = func.to_char(func.date_trunc("minute", func.timezone("UTC", Order.created_at)), "HH24:MI")
    else:
        minute = func.strftime("%H:%M", Order.created_at)
    rows = session.execute(
        select(minute.label("minute"), func.count(Order.id))
        .where(Order.created_at >= since)
        .group_by("minute")
    ).tuples()
    return {label: count for label, count in rows}


# --- staff operations ---
# (Imported here so this section stays an append to the file; they can move to the top at any time.)
from collections.abc import Iterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from decimal import Decimal  # noqa: E402


@dataclass(frozen=True)
class OrderFilter:
    """What staff narrow the order list (and its CSV export) by; empty means any."""

    status: str = ""
    since: datetime | None = None
    until: datetime | None = None
    email: str = ""
    min_total: Decimal | None = None
    max_total: Decimal | None = None
    q: str = ""


def _filtered(wanted: OrderFilter):
    stmt = select(Order)
    if wanted.status:
        stmt = stmt.where(Order.status == wanted.status)
    if wanted.since:
        stmt = stmt.where(Order.created_at >= wanted.since)
    if wanted.until:
        stmt = stmt.where(Order.created_at < wanted.until)
    if wanted.email:
        stmt = stmt.where(Order.email.ilike(f"%{_like(wanted.email.strip().lower())}%", escape="\\"))
    if wanted.min_total is not None:
        stmt = stmt.where(Order.total >= wanted.min_total)
    if wanted.max_total is not None:
        stmt = stmt.where(Order.total <= wanted.max_total)
    if wanted.q:
        q = wanted.q.strip()
        number = q.upper() if q.upper().startswith("SF-") else "SF-" + q.upper()
        stmt = stmt.where(
            Order.number.like(f"{_like(number)}%", escape="\\")
            | Order.email.ilike(f"%{_like(q.lower())}%", escape="\\")
        )
    return stmt


def _like(text: str) -> str:
    """Typed text matched literally inside a LIKE pattern (no wildcards of its own)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search(session: Session, wanted: OrderFilter, page: int, per_page: int = 50) -> tuple[list[Order], bool]:
    """One page of matching orders, newest first, and whether there is another."""
    rows = list(
        session.scalars(
            _filtered(wanted)
            .options(selectinload(Order.lines))
            .order_by(Order.created_at.desc(), Order.id.desc())
            .limit(per_page + 1)
            .offset((page - 1) * per_page)
        )
    )
    return rows[:per_page], len(rows) > per_page


def export_batches(session: Session, wanted: OrderFilter, size: int = 500) -> Iterator[list[Order]]:
    """Every matching order, newest id first, in batches read by keyset (no OFFSET, no open cursor)."""
    after: int | None = None
    while True:
        stmt = _filtered(wanted).options(selectinload(Order.lines)).order_by(Order.id.desc()).limit(size)
        if after is not None:
            stmt = stmt.where(Order.id < after)
        batch = list(session.scalars(stmt))
        if not batch:
            return
        yield batch
        after = batch[-1].id


def for_staff(session: Session, number: str) -> Order | None:
    """An order with its lines and timeline, for the staff detail page."""
    return by_number(session, number)


def lock(session: Session, number: str) -> Order | None:
    """The order row locked FOR UPDATE until commit, so two staff actions on one order run one after the
    other (and a sweep or a payment job moving the same order waits its turn)."""
    return session.scalar(
        select(Order)
        .where(Order.number == number)
        .with_for_update(of=Order)
        .options(selectinload(Order.lines))
        .execution_options(populate_existing=True)
    )


def lock_id(session: Session, order_id: int) -> Order | None:
    """Like lock(), by id (for jobs)."""
    return session.scalar(
        select(Order)
        .where(Order.id == order_id)
        .with_for_update(of=Order)
        .options(selectinload(Order.lines))
        .execution_options(populate_existing=True)
    )


def for_customer(session: Session, user_id: int, email: str, limit: int = 50) -> list[Order]:
    """A customer's orders, newest first: those placed signed in, and those placed as a guest with the
    account's e-mail."""
    return list(
        session.scalars(
            select(Order)
            .where((Order.user_id == user_id) | (Order.email == email))
            .order_by(Order.created_at.desc(), Order.id.desc())
            .options(selectinload(Order.lines))
            .limit(limit)
        )
    )


def ship(session: Session, order: Order, tracking_number: str, by: str) -> None:
    """Mark a paid order shipped with its tracking number; its reserved units leave on_hand for good."""
    if not move(
        session,
        order,
        "shipped",
        f"Shipped by {by}, tracking {tracking_number}.",
        tracking_number=tracking_number,
        by=by,
    ):
        raise InvalidTransition(f"order {order.number} changed while it was being shipped")
    order.tracking_number = tracking_number
    order.shipped_at = datetime.now(UTC)
    consume_stock(session, order)
    session.flush()


def cancel(session: Session, order: Order, by: str, reason: str = "") -> None:
    """Cancel an order before it ships and give its reserved units back to the shelf at once.
    What happens to the money is the caller's business (payments services), not the stock's."""
    held = order.status in HOLDING_STOCK
    message = f"Cancelled by {by}." + (f" {reason}" if reason else "")
    if not move(session, order, "cancelled", message, by=by):
        raise InvalidTransition(f"order {order.number} changed while it was being cancelled")
    if held:
        release_stock(session, order)
    session.flush()


def close_refunded(session: Session, order: Order, message: str) -> bool:
    """All the money went back: a paid order will not ship (its units return to the shelf), a shipped one
    is done. Cancelled or already refunded orders stay as they are."""
    if order.status not in ("paid", "shipped"):
        return False
    was = order.status
    if not move(session, order, "refunded", message):
        return False
    if was == "paid":
        release_stock(session, order)
    return True
