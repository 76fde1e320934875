"""The shop's checkout settings, shipping methods and tax rates, as staff manage them (switched-off ones
too; checkout's own reads of the active ones are in services.py)."""

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storefront.checkout.models import ShippingMethod, TaxRate


def all_shipping_methods(session: Session) -> list[ShippingMethod]:
    """Every shipping method, switched off ones too, in the order checkout lists them."""
    return list(
        session.scalars(select(ShippingMethod).order_by(ShippingMethod.position, ShippingMethod.price))
    )


def all_tax_rates(session: Session) -> list[TaxRate]:
    """Every tax rate, switched off ones too, by country and region."""
    return list(session.scalars(select(TaxRate).order_by(TaxRate.country, TaxRate.region)))


def shipping_method(session: Session, method_id: int) -> ShippingMethod | None:
    """One shipping method by id."""
    return session.get(ShippingMethod, method_id)


def tax_rate(session: Session, rate_id: int) -> TaxRate | None:
    """One tax rate by id."""
    return session.get(TaxRate, rate_id)


def shipping_taken(
    session: Session, code: str | None, name: str, method_id: int | None = None
) -> tuple[bool, bool]:
    """Whether another method (not `method_id`) already has this code (when given) and this name (in any
    case): (code taken, name taken)."""
    others = (
        select(ShippingMethod).where(ShippingMethod.id != method_id) if method_id else select(ShippingMethod)
    )
    code_taken = code is not None and session.scalar(others.where(ShippingMethod.code == code)) is not None
    name_taken = session.scalar(others.where(func.lower(ShippingMethod.name) == name.lower())) is not None
    return code_taken, name_taken


def tax_rate_for_place(
    session: Session, country: str, region: str, rate_id: int | None = None
) -> TaxRate | None:
    """Another rate (not `rate_id`) for the same country and region, switched off or not: checkout applies
    one per place."""
    stmt = select(TaxRate).where(TaxRate.country == country, TaxRate.region == region)
    if rate_id:
        stmt = stmt.where(TaxRate.id != rate_id)
    return session.scalar(stmt)


def add_shipping_method(session: Session, **values) -> ShippingMethod:
    """Record a new shipping method, switched on (flushed, so it has its id)."""
    method = ShippingMethod(**values, is_active=True)
    session.add(method)
    session.flush()
    return method


def add_tax_rate(session: Session, **values) -> TaxRate:
    """Record a new tax rate, switched on (flushed, so it has its id)."""
    rate = TaxRate(**values, is_active=True)
    session.add(rate)
    session.flush()
    return rate
