"""A sale's drop mode: the waiting room, checkout limit and flags that switch on at its start and off at its end."""

from decimal import Decimal

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from storefront.db import Base


class DropMode(Base):
    """One row per sale in drop mode; the sale's own starts_at/ends_at say when it is in force."""

    __tablename__ = "drop_modes"

    sale_id: Mapped[int] = mapped_column(ForeignKey("sales.id", ondelete="CASCADE"), primary_key=True)
    # Shoppers let into checkout per second, and how many may be in checkout at once.
    admit_rate: Mapped[Decimal] = mapped_column(Numeric(8, 2))
    checkout_cap: Mapped[int]
    # flask-limiter notation, per shopper, on top of the everyday checkout limits; empty: none.
    checkout_limit: Mapped[str] = mapped_column(String(64), default="")
    flags: Mapped[list] = mapped_column(JSON, default=list)

    __table_args__ = (
        CheckConstraint("admit_rate > 0", name="admit_rate_positive"),
        CheckConstraint("checkout_cap > 0", name="checkout_cap_positive"),
    )
