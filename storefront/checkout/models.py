"""What checkout charges besides the goods: shipping methods and tax rates, kept in the database."""

from decimal import Decimal

from sqlalchemy import Numeric, String, UniqueConstraint, true
from sqlalchemy.orm import Mapped, mapped_column

from storefront.db import Base


class ShippingMethod(Base):
    __tablename__ = "shipping_methods"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(80))
    description: Mapped[str] = mapped_column(String(200), default="")
    price: Mapped[Decimal]
    # Free when the goods come to at least this much; None means never free.
    free_over: Mapped[Decimal | None]
    # Comma-separated ISO country codes, or "*" for everywhere.
    countries: Mapped[str] = mapped_column(String(200), default="*")
    position: Mapped[int] = mapped_column(default=0)
    is_active: Mapped[bool] = mapped_column(default=True)

    def ships_to(self, country: str) -> bool:
        return self.countries == "*" or country in self.countries.split(",")

    def price_for(self, subtotal: Decimal) -> Decimal:
        if self.free_over is not None and subtotal >= self.free_over:
            return Decimal("0.00")
        return self.price


class TaxRate(Base):
    """A sales tax or VAT rate for a country, or for one region of it (region "" is the whole country)."""

    __tablename__ = "tax_rates"

    id: Mapped[int] = mapped_column(primary_key=True)
    country: Mapped[str] = mapped_column(String(2))
    region: Mapped[str] = mapped_column(String(80), default="")
    name: Mapped[str] = mapped_column(String(80))
    rate: Mapped[Decimal] = mapped_column(Numeric(6, 4))
    # Off instead of deleted, so a rate stays on record; checkout applies only active ones.
    is_active: Mapped[bool] = mapped_column(default=True, server_default=true())

    __table_args__ = (UniqueConstraint("country", "region", name="uq_tax_rates_country_region"),)
