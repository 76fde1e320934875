"""Back-in-stock notices: ask, confirm (double opt-in), unsubscribe, and find who to tell when stock is back."""

from datetime import UTC, datetime

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from storefront.catalog.models import Variant
from storefront.notify.models import StockSubscription

CONFIRM_MAX_AGE = 3 * 24 * 3600
PURPOSES = ("confirm", "unsubscribe")


class NotifyError(ValueError):
    """The request cannot be taken; the message is safe to show."""


def _open(variant_id: int, email: str):
    return select(StockSubscription).where(
        StockSubscription.variant_id == variant_id,
        StockSubscription.email == email,
        StockSubscription.notified_at.is_(None),
        StockSubscription.unsubscribed_at.is_(None),
    )


def subscribe(session: Session, variant_id: int, email: str) -> tuple[StockSubscription, bool]:
    """The open request of this address for this sold-out variant, made if new; True when it still needs
    confirming (so the confirmation e-mail is worth sending)."""
    variant = session.get(Variant, variant_id)
    if variant is None:
        raise NotifyError("There is no such option.")
    if variant.on_hand - variant.reserved > 0:
        raise NotifyError("This option is in stock: you can buy it now.")
    existing = session.scalar(_open(variant_id, email))
    if existing is not None:
        return existing, existing.confirmed_at is None
    subscription = StockSubscription(variant_id=variant_id, email=email)
    session.add(subscription)
    session.flush()
    return subscription, True


def make_token(secret: str, purpose: str, subscription: StockSubscription) -> str:
    """A signed link token naming one subscription and what the link does."""
    return URLSafeTimedSerializer(secret, salt=f"storefront.notify.{purpose}").dumps(subscription.id)


def read_token(session: Session, secret: str, purpose: str, token: str) -> StockSubscription | None:
    """The subscription a link names, or None when the link is forged or (for a confirmation) too old."""
    serializer = URLSafeTimedSerializer(secret, salt=f"storefront.notify.{purpose}")
    try:
        # Unsubscribing must work from any old notice; confirming only shortly after asking.
        subscription_id = serializer.loads(token, max_age=CONFIRM_MAX_AGE if purpose == "confirm" else None)
    except BadSignature:
        return None
    return session.get(StockSubscription, subscription_id) if isinstance(subscription_id, int) else None


def in_stock(session: Session, variant_id: int) -> bool:
    """Whether the variant has a unit left now."""
    variant = session.get(Variant, variant_id)
    return variant is not None and variant.on_hand - variant.reserved > 0


def confirm(subscription: StockSubscription) -> bool:
    """Confirm the address (the second opt-in); False when it was unsubscribed or already notified."""
    if subscription.unsubscribed_at or subscription.notified_at:
        return False
    subscription.confirmed_at = subscription.confirmed_at or datetime.now(UTC)
    return True


def unsubscribe(subscription: StockSubscription) -> None:
    """Stop this request; nothing more is sent for it."""
    subscription.unsubscribed_at = subscription.unsubscribed_at or datetime.now(UTC)


def watched(session: Session) -> list[int]:
    """Every variant confirmed addresses are waiting for."""
    return list(
        session.scalars(
            select(StockSubscription.variant_id)
            .where(
                StockSubscription.confirmed_at.is_not(None),
                StockSubscription.notified_at.is_(None),
                StockSubscription.unsubscribed_at.is_(None),
            )
            .distinct()
        )
    )


def to_notify(session: Session, variant_ids: list[int]) -> list[int]:
    """Confirmed, still-open requests for those of these variants that have stock again."""
    return list(
        session.scalars(
            select(StockSubscription.id)
            .join(Variant, Variant.id == StockSubscription.variant_id)
            .where(
                StockSubscription.variant_id.in_(variant_ids),
                StockSubscription.confirmed_at.is_not(None),
                StockSubscription.notified_at.is_(None),
                StockSubscription.unsubscribed_at.is_(None),
                Variant.on_hand > Variant.reserved,
            )
            .order_by(StockSubscription.id)
        )
    )


def claim_notice(session: Session, subscription_id: int) -> bool:
    """Take the right to send this request's notice; only one caller (job, retry) ever wins."""
    return bool(
        session.execute(
            update(StockSubscription)
            .where(
                StockSubscription.id == subscription_id,
                StockSubscription.confirmed_at.is_not(None),
                StockSubscription.notified_at.is_(None),
                StockSubscription.unsubscribed_at.is_(None),
            )
            .values(notified_at=datetime.now(UTC))
        ).rowcount
    )


def release_notice(session: Session, subscription_id: int) -> None:
    """The notice could not be sent: leave the request open for the next try."""
    session.execute(
        update(StockSubscription).where(StockSubscription.id == subscription_id).values(notified_at=None)
    )
