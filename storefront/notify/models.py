"""Back-in-stock notices: a shopper's request to be e-mailed when a sold-out option comes back."""

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from storefront.db import Base


class StockSubscription(Base):
    """One address waiting for one variant. Double opt-in: nothing is sent to an address until it follows the
    signed link in the confirmation e-mail. A subscription is used once: the restock notice ends it."""

    __tablename__ = "stock_subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    confirmed_at: Mapped[datetime | None]
    notified_at: Mapped[datetime | None]
    unsubscribed_at: Mapped[datetime | None]

    __table_args__ = (
        # One open request per address and variant: asking twice does not e-mail twice.
        Index(
            "uq_stock_subscriptions_open",
            "variant_id",
            "email",
            unique=True,
            postgresql_where=text("notified_at IS NULL AND unsubscribed_at IS NULL"),
            sqlite_where=text("notified_at IS NULL AND unsubscribed_at IS NULL"),
        ),
        Index("ix_stock_subscriptions_waiting", "variant_id", "confirmed_at"),
    )
