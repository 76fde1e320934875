"""Orders: an immutable snapshot of what was bought, at what price, shipped where; plus its timeline."""

from datetime import datetime
from decimal import Decimal

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storefront.db import Base


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Shown to the shopper and sent to the gateway as the invoice number (at most 20 characters there).
    number: Mapped[str] = mapped_column(String(20), unique=True)
    # From the checkout form: a second submit of the same form finds this order instead of making another.
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    email: Mapped[str] = mapped_column(String(254), index=True)
    status: Mapped[str] = mapped_column(String(24), index=True)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    subtotal: Mapped[Decimal]
    shipping_total: Mapped[Decimal]
    tax_total: Mapped[Decimal]
    total: Mapped[Decimal]
    shipping_method: Mapped[str] = mapped_column(String(40))
    ship_name: Mapped[str] = mapped_column(String(120))
    ship_line1: Mapped[str] = mapped_column(String(120))
    ship_line2: Mapped[str] = mapped_column(String(120), default="")
    ship_city: Mapped[str] = mapped_column(String(80))
    ship_region: Mapped[str] = mapped_column(String(80), default="")
    ship_postal_code: Mapped[str] = mapped_column(String(16))
    ship_country: Mapped[str] = mapped_column(String(2))
    ship_phone: Mapped[str] = mapped_column(String(32), default="")
    # Until then the reserved stock is held for this order, even through a declined card and a retry.
    expires_at: Mapped[datetime]
    paid_at: Mapped[datetime | None]
    payment_message: Mapped[str] = mapped_column(String(255), default="")
    tracking_number: Mapped[str] = mapped_column(String(64), default="")
    shipped_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now(), index=True)
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())

    lines: Mapped[list["OrderLine"]] = relationship(
        back_populates="order", order_by="OrderLine.id", cascade="all, delete-orphan"
    )
    events: Mapped[list["OrderEvent"]] = relationship(
        back_populates="order", order_by="OrderEvent.id", cascade="all, delete-orphan"
    )

    __table_args__ = (
        CheckConstraint("total >= 0", name="total_not_negative"),
        Index("ix_orders_status_expires_at", "status", "expires_at"),
        # Per-customer limits find a customer's orders by shipping address too.
        Index("ix_orders_ship_postal_code", "ship_postal_code"),
    )

    @property
    def quantity(self) -> int:
        return sum(line.quantity for line in self.lines)


class OrderLine(Base):
    __tablename__ = "order_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id"), index=True)
    sku: Mapped[str] = mapped_column(String(64))
    product_name: Mapped[str] = mapped_column(String(200))
    variant_name: Mapped[str] = mapped_column(String(120))
    unit_price: Mapped[Decimal]
    quantity: Mapped[int]
    line_total: Mapped[Decimal]

    order: Mapped[Order] = relationship(back_populates="lines")

    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)


class OrderEvent(Base):
    """One entry of an order's timeline: a status change, a payment result, a note."""

    __tablename__ = "order_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict] = mapped_column(JSON, default=dict)

    order: Mapped[Order] = relationship(back_populates="events")
