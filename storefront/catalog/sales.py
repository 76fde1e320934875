"""Sales (drops) as staff schedule and end them; what a running sale does to prices is read in services.py."""

from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from storefront.catalog.models import Sale, SaleItem, Variant


def every_sale(session: Session) -> list[Sale]:
    """Every sale with its items, the latest start first."""
    return list(
        session.scalars(select(Sale).options(selectinload(Sale.items)).order_by(Sale.starts_at.desc()))
    )


def get(session: Session, sale_id: int) -> Sale | None:
    """One sale by id."""
    return session.get(Sale, sale_id)


def variants_by_sku(session: Session, skus: list[str]) -> dict[str, Variant]:
    """The variants with these SKUs, by SKU (unknown ones are simply missing)."""
    return {v.sku: v for v in session.scalars(select(Variant).where(Variant.sku.in_(skus)))}


def schedule(
    session: Session,
    name: str,
    starts_at: datetime,
    ends_at: datetime,
    per_customer_limit: int | None,
    items: list[tuple[Variant, Decimal]],
) -> Sale:
    """Record a sale of these variants at these prices (flushed, so it has its id)."""
    sale = Sale(name=name, starts_at=starts_at, ends_at=ends_at, per_customer_limit=per_customer_limit)
    sale.items = [SaleItem(variant_id=variant.id, sale_price=price) for variant, price in items]
    session.add(sale)
    session.flush()
    return sale


def end(session: Session, sale: Sale, now: datetime) -> bool:
    """End a sale now: one that never started is deleted (True), a running one ends at `now` (False)."""
    if sale.starts_at > now:
        session.delete(sale)  # never started: nothing to keep
        return True
    sale.ends_at = now
    return False
