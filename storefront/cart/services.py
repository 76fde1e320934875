"""The cart: add, change, remove and merge lines, always checked against live availability.

Stock shown here is a hint; checkout reserves it for real. Prices and totals always come from the catalog.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from storefront.cart.models import Cart, CartLine
from storefront.catalog import services as catalog
from storefront.catalog.models import Product, Variant


class CartError(ValueError):
    """A change the cart refused; the message is safe to show the shopper."""


@dataclass(frozen=True)
class LineView:
    line: CartLine
    variant: Variant
    product: Product
    unit_price: Decimal
    total: Decimal
    max_quantity: int
    per_customer_limit: int | None = None


@dataclass(frozen=True)
class CartView:
    lines: list[LineView]
    count: int
    subtotal: Decimal


def get_cart(session: Session, cart_id: int | None = None, user_id: int | None = None) -> Cart | None:
    """An account's cart, or an anonymous one by id (never an account's cart by id)."""
    if user_id is not None:
        return session.scalar(select(Cart).where(Cart.user_id == user_id))
    if cart_id is not None:
        return session.scalar(select(Cart).where(Cart.id == cart_id, Cart.user_id.is_(None)))
    return None


def create_cart(session: Session, user_id: int | None = None) -> Cart:
    cart = Cart(user_id=user_id)
    session.add(cart)
    session.flush()
    return cart


def _sellable_variant(session: Session, variant_id: int) -> Variant:
    variant = session.scalar(select(Variant).join(Product).where(Variant.id == variant_id, Product.is_active))
    if variant is None:
        raise CartError("That item is no longer available.")
    return variant


def _line(session: Session, cart: Cart, variant_id: int) -> CartLine | None:
    return session.scalar(
        select(CartLine).where(CartLine.cart_id == cart.id, CartLine.variant_id == variant_id)
    )


def _check_quantity(variant: Variant, quantity: int, max_per_line: int, already: int = 0) -> None:
    available = variant.available
    if available <= 0:
        raise CartError(f"Sorry, {variant.product.name} ({variant.name}) is sold out.")
    if quantity > max_per_line:
        raise CartError(f"You can buy at most {max_per_line} of each item.")
    if quantity > available:
        have = f" You already have {already} in your cart." if already else ""
        raise CartError(f"Only {available} left of {variant.product.name} ({variant.name}).{have}")


def add_item(session: Session, cart: Cart, variant_id: int, quantity: int, max_per_line: int) -> CartLine:
    """Add units of a variant, on top of any already in the cart."""
    variant = _sellable_variant(session, variant_id)
    line = _line(session, cart, variant_id)
    already = line.quantity if line else 0
    _check_quantity(variant, already + quantity, max_per_line, already)
    if line is None:
        line = CartLine(cart_id=cart.id, variant_id=variant_id, quantity=quantity)
        session.add(line)
    else:
        line.quantity = already + quantity
    _touch(cart)
    session.flush()
    return line


def get_line(session: Session, cart: Cart, line_id: int) -> CartLine | None:
    """A line of this cart, never of another."""
    return session.scalar(select(CartLine).where(CartLine.id == line_id, CartLine.cart_id == cart.id))


def set_quantity(session: Session, cart: Cart, line: CartLine, quantity: int, max_per_line: int) -> None:
    variant = _sellable_variant(session, line.variant_id)
    _check_quantity(variant, quantity, max_per_line)
    line.quantity = quantity
    _touch(cart)
    session.flush()


def remove_line(session: Session, cart: Cart, line: CartLine) -> None:
    session.delete(line)
    _touch(cart)
    session.flush()


def merge(session: Session, source: Cart, target: Cart, max_per_line: int) -> list[str]:
    """Move an anonymous cart's lines into an account's cart, capped by availability; say what was cut."""
    notes: list[str] = []
    for line in list(source.lines):
        variant = session.get(Variant, line.variant_id)
        existing = _line(session, target, line.variant_id)
        wanted = line.quantity + (existing.quantity if existing else 0)
        allowed = min(wanted, max_per_line, max(variant.available, 0)) if variant else 0
        if allowed < wanted and variant is not None:
            notes.append(f"{variant.product.name} ({variant.name}): only {allowed} could stay in your cart.")
        if existing is not None:
            if allowed > 0:
                existing.quantity = allowed
            else:
                session.delete(existing)
        elif allowed > 0:
            session.add(CartLine(cart_id=target.id, variant_id=line.variant_id, quantity=allowed))
    session.delete(source)
    _touch(target)
    session.flush()
    return notes


def count(session: Session, cart: Cart | None) -> int:
    if cart is None:
        return 0
    return session.scalar(
        select(func.coalesce(func.sum(CartLine.quantity), 0)).where(CartLine.cart_id == cart.id)
    )


def view(session: Session, cart: Cart | None, max_per_line: int) -> CartView:
    """The cart's lines with current prices and totals, in two queries."""
    if cart is None:
        return CartView(lines=[], count=0, subtotal=Decimal("0.00"))
    lines = session.scalars(
        select(CartLine)
        .where(CartLine.cart_id == cart.id)
        .order_by(CartLine.id)
        .options(joinedload(CartLine.variant).joinedload(Variant.product).selectinload(Product.images))
    ).all()
    # A running sale's price wins: prices always come from the catalog at this moment, never the browser.
    on_sale = catalog.sale_prices(session, [line.variant_id for line in lines], datetime.now(UTC))
    views = []
    for line in lines:
        sale = on_sale.get(line.variant_id)
        price = sale.price if sale else line.variant.price
        views.append(
            LineView(
                line=line,
                variant=line.variant,
                product=line.variant.product,
                unit_price=price,
                total=price * line.quantity,
                max_quantity=max(1, min(max_per_line, line.variant.available)),
                per_customer_limit=_tighter(
                    line.variant.per_customer_limit, sale.per_customer_limit if sale else None
                ),
            )
        )
    return CartView(
        lines=views,
        count=sum(v.line.quantity for v in views),
        subtotal=sum((v.total for v in views), Decimal("0.00")),
    )


def _tighter(*limits: int | None) -> int | None:
    present = [limit for limit in limits if limit is not None]
    return min(present) if present else None


def _touch(cart: Cart) -> None:
    cart.updated_at = func.now()
