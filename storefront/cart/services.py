"""The cart: add, change, remove and merge lines, always checked against live availability.

Stock shown here is a hint; checkout reserves it for real. Prices and totals always come from the catalog.
"""

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Integer, Select, and_, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from storefront.cart.models import Cart, CartLine
from storefront.catalog import services as catalog
from storefront.catalog.models import Product, Sale, SaleItem, Variant
from storefront.db import Prepared


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


def _check_quantity(available: int, label: str, quantity: int, max_per_line: int, already: int = 0) -> None:
    """Refuse a line quantity the stock or the per-line cap does not allow; `label` names the item."""
    if available <= 0:
        raise CartError(f"Sorry, {label} is sold out.")
    if quantity > max_per_line:
        raise CartError(f"You can buy at most {max_per_line} of each item.")
    if quantity > available:
        have = f" You already have {already} in your cart." if already else ""
        raise CartError(f"Only {available} left of {label}.{have}")


def _label(variant: Variant) -> str:
    return f"{variant.product.name} ({variant.name})"


@dataclass(frozen=True)
class Added:
    cart_id: int
    count: int  # items in the cart afterwards, for the badge


def add_item(
    session: Session,
    variant_id: int,
    quantity: int,
    max_per_line: int,
    user_id: int | None = None,
    cart_id: int | None = None,
) -> Added:
    """Add units of a variant to an account's cart, or to the anonymous cart `cart_id` (made if gone).

    On PostgreSQL one statement does it all: it checks the variant's availability and what the cart holds,
    makes the cart if it is gone (or touches it if idle for an hour) and adds to the line, or writes nothing;
    only then does a query read why. Elsewhere (SQLite) that query comes first and one or two statements
    write, never above what it allowed.
    """
    # Named unlike any column: insert() and update() keep the column names for their own parameters.
    params = {
        "variant": variant_id,
        "units": quantity,
        "user": user_id,
        "cart": cart_id,
        "per_line": max_per_line,
        "touched_before": datetime.now(UTC) - CART_TOUCH_INTERVAL,
    }
    for_account = user_id is not None
    if session.get_bind().dialect.name == "postgresql":
        try:
            written = _ADD_IN_ONE_STATEMENT[for_account].execute(session, params).first()
        except IntegrityError:  # a cart or line made at the same moment by another request of this shopper
            raise CartError("Your cart changed while adding that item. Please try again.") from None
        if written is not None:
            return Added(cart_id=written.cart_id, count=written.count)
        label = _offer(session, params, for_account).label  # raises with the reason
        raise CartError(f"Your cart changed while adding {label}. Please try again.")
    offer = _offer(session, params, for_account)
    params.update(cart=offer.cart_id, cap=min(offer.available, max_per_line))
    cart_exists, line_exists = offer.cart_id is not None, offer.in_cart > 0
    try:
        if not cart_exists or offer.cart_is_stale:
            params["cart"] = session.scalar(_cart_statement(cart_exists), params)
        written_cart = session.scalar(_line_statement(line_exists), params)
    except IntegrityError:
        written_cart = None
    if written_cart is None:  # or the line changed, or the cart went, since the read
        raise CartError(f"Your cart changed while adding {offer.label}. Please try again.")
    return Added(cart_id=written_cart, count=offer.cart_count + quantity)


@dataclass(frozen=True)
class _Offer:
    label: str
    available: int
    cart_id: int | None
    in_cart: int
    cart_count: int
    cart_is_stale: bool | None


def _offer(session: Session, params: dict, for_account: bool) -> _Offer:
    """What the variant and the cart hold now; CartError if adding `units` more is not allowed."""
    row = session.execute(_offer_query(for_account), params).one_or_none()
    if row is None:
        raise CartError("That item is no longer available.")
    available, product_name, variant_name, cart_id, in_cart, cart_count, cart_is_stale = row
    label = f"{product_name} ({variant_name})"
    _check_quantity(available, label, in_cart + params["units"], params["per_line"], in_cart)
    return _Offer(label, available, cart_id, in_cart, cart_count, cart_is_stale)


# PostgreSQL: the whole add in one statement. Run on its own (autocommit) it needs no BEGIN and COMMIT either:
# the busiest write of a drop is then one round trip. Its CTEs read the cart and line as they were before the
# statement, so the count is that of before plus the units added; it returns no row when it added nothing.
_ADD_IN_ONE_SQL = """
WITH offer AS (
    SELECT LEAST(v.on_hand - v.reserved, :per_line) AS cap
    FROM variants v JOIN products p ON p.id = v.product_id
    WHERE v.id = :variant AND p.is_active
), found AS (
    SELECT id, updated_at < :touched_before AS stale FROM carts WHERE {owner}
), allowed AS (
    SELECT 1 FROM offer
    WHERE COALESCE((SELECT quantity FROM cart_lines
                    WHERE cart_id = (SELECT id FROM found) AND variant_id = :variant), 0) + :units <= offer.cap
), made AS (
    INSERT INTO carts (user_id) SELECT CAST(:user AS INTEGER)
    WHERE NOT EXISTS (SELECT 1 FROM found) AND EXISTS (SELECT 1 FROM allowed)
    RETURNING id
), touched AS (
    UPDATE carts SET updated_at = now()
    WHERE id = (SELECT id FROM found WHERE stale) AND EXISTS (SELECT 1 FROM allowed)
), cart AS (
    SELECT id FROM found UNION ALL SELECT id FROM made
), written AS (
    INSERT INTO cart_lines (cart_id, variant_id, quantity)
    SELECT cart.id, :variant, :units FROM cart, allowed
    ON CONFLICT (cart_id, variant_id) DO UPDATE SET quantity = cart_lines.quantity + EXCLUDED.quantity
    WHERE cart_lines.quantity + EXCLUDED.quantity <= (SELECT cap FROM offer)
    RETURNING cart_id
)
SELECT written.cart_id,
       (SELECT COALESCE(SUM(quantity), 0) FROM cart_lines WHERE cart_id = written.cart_id) + :units AS count
FROM written
"""
_ADD_PARAMETERS = (
    ("variant", "integer"),
    ("units", "integer"),
    ("user", "integer"),
    ("cart", "integer"),
    ("per_line", "integer"),
    ("touched_before", "timestamptz"),
)
# Prepared (planned once per connection): planning this statement cost PostgreSQL twice its running.
_ADD_IN_ONE_STATEMENT = {
    False: Prepared(
        "storefront_add_to_anonymous_cart",
        _ADD_IN_ONE_SQL.format(owner="id = :cart AND user_id IS NULL"),
        _ADD_PARAMETERS,
    ),
    True: Prepared(
        "storefront_add_to_account_cart", _ADD_IN_ONE_SQL.format(owner="user_id = :user"), _ADD_PARAMETERS
    ),
}


# The add-to-cart statements are built once, with bound parameters: a drop runs them thousands of times a
# minute, and building a statement and its cache key costs more CPU than running it.

# A cart's updated_at only tells the purge of abandoned carts (a month) that it is in use; it is indexed, so
# touching it on every add would rewrite the cart's row and index entries every time.
CART_TOUCH_INTERVAL = timedelta(hours=1)


def _owner(for_account: bool):
    """Which cart: the account's (:user), or the anonymous one by id (:cart), never an account's by id."""
    carts = Cart.__table__
    if for_account:
        return carts.c.user_id == bindparam("user")
    return and_(carts.c.id == bindparam("cart"), carts.c.user_id.is_(None))


@functools.cache
def _offer_query(for_account: bool) -> Select:
    """The variant's availability and names, and the cart's id, quantity of the variant and item count."""
    carts, lines, variants, products = (
        Cart.__table__,
        CartLine.__table__,
        Variant.__table__,
        Product.__table__,
    )
    owner = _owner(for_account)
    cart = select(carts.c.id).where(owner).scalar_subquery()
    variant_id = bindparam("variant", type_=Integer)
    in_cart = select(lines.c.quantity).where(lines.c.cart_id == cart, lines.c.variant_id == variant_id)
    count = select(func.coalesce(func.sum(lines.c.quantity), 0)).where(lines.c.cart_id == cart)
    touched_before = bindparam("touched_before", type_=carts.c.updated_at.type)
    stale = select(carts.c.updated_at < touched_before).where(owner)
    return (
        select(
            variants.c.on_hand - variants.c.reserved,
            products.c.name,
            variants.c.name,
            cart,
            func.coalesce(in_cart.scalar_subquery(), 0),
            count.scalar_subquery(),
            stale.scalar_subquery(),
        )
        .join(products, products.c.id == variants.c.product_id)
        .where(variants.c.id == variant_id, products.c.is_active)
    )


@functools.cache
def _cart_statement(exists: bool):
    """Touch the cart (or create it) and return its id."""
    carts = Cart.__table__
    if exists:
        stmt = update(carts).where(carts.c.id == bindparam("cart")).values(updated_at=func.now())
    else:
        stmt = insert(carts).values(user_id=bindparam("user"))
    return stmt.returning(carts.c.id)


@functools.cache
def _line_statement(line_exists: bool):
    """Add to the line (up to `cap` units) or insert it."""
    lines = CartLine.__table__
    cart_id = bindparam("cart", type_=Integer)
    quantity = bindparam("units", type_=Integer)
    variant_id = bindparam("variant", type_=Integer)
    if line_exists:
        stmt = (
            update(lines)
            .where(
                lines.c.cart_id == cart_id,
                lines.c.variant_id == variant_id,
                lines.c.quantity + quantity <= bindparam("cap", type_=Integer),
            )
            .values(quantity=lines.c.quantity + quantity)
        )
    else:
        source = select(cart_id, variant_id, quantity)
        stmt = insert(lines).from_select(["cart_id", "variant_id", "quantity"], source)
    return stmt.returning(lines.c.cart_id)


def get_line(session: Session, cart: Cart, line_id: int) -> CartLine | None:
    """A line of this cart, never of another."""
    return session.scalar(select(CartLine).where(CartLine.id == line_id, CartLine.cart_id == cart.id))


def set_quantity(session: Session, cart: Cart, line: CartLine, quantity: int, max_per_line: int) -> None:
    variant = _sellable_variant(session, line.variant_id)
    _check_quantity(variant.available, _label(variant), quantity, max_per_line)
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


def view(session: Session, cart: Cart | None, max_per_line: int, images: bool = True) -> CartView:
    """The cart's lines with current prices and totals, in two queries (three with the products' images,
    which only the cart page shows)."""
    if cart is None:
        return CartView(lines=[], count=0, subtotal=Decimal("0.00"))
    return _priced(session, _lines(session, CartLine.cart_id == cart.id, images), max_per_line)


@dataclass(frozen=True)
class CheckoutLine:
    """A cart line as checkout prices, shows and reserves it: plain values, no ORM objects."""

    variant_id: int
    sku: str
    product_name: str
    variant_name: str
    quantity: int
    unit_price: Decimal
    per_customer_limit: int | None

    @property
    def total(self) -> Decimal:
        return self.unit_price * self.quantity


@dataclass(frozen=True)
class CheckoutCart:
    cart_id: int | None
    lines: tuple[CheckoutLine, ...]

    @property
    def subtotal(self) -> Decimal:
        return sum((line.total for line in self.lines), Decimal("0.00"))


def for_checkout(session: Session, *, cart_id: int | None = None, user_id: int | None = None) -> CheckoutCart:
    """An account's cart, or an anonymous one by id (never an account's by id), as checkout needs it: its
    lines with names, current prices (a running sale's wins) and limits, in one query."""
    if user_id is None and cart_id is None:
        return CheckoutCart(None, ())
    rows = session.execute(
        _checkout_query(user_id is not None), {"user": user_id, "cart": cart_id, "now": datetime.now(UTC)}
    ).all()
    lines = tuple(
        CheckoutLine(
            variant_id=variant_id,
            sku=sku,
            product_name=product_name,
            variant_name=variant_name,
            quantity=quantity,
            unit_price=price if sale_price is None else sale_price,
            per_customer_limit=_tighter(limit, sale_limit if sale_price is not None else None),
        )
        for _cart, variant_id, sku, product_name, variant_name, quantity, price, limit, sale_price, sale_limit in rows
    )
    return CheckoutCart(rows[0][0] if rows else None, lines)


@functools.cache
def _checkout_query(for_account: bool) -> Select:
    """A cart's lines with their variant, product and lowest running sale price, built once (see below)."""
    carts, lines, variants, products = (
        Cart.__table__,
        CartLine.__table__,
        Variant.__table__,
        Product.__table__,
    )
    sales, items = Sale.__table__, SaleItem.__table__
    owner = _owner(for_account)
    now = bindparam("now", type_=sales.c.starts_at.type)

    def of_lowest_running_sale(column):
        return (
            select(column)
            .select_from(items.join(sales, sales.c.id == items.c.sale_id))
            .where(items.c.variant_id == variants.c.id, sales.c.starts_at <= now, sales.c.ends_at > now)
            .order_by(items.c.sale_price, items.c.id)
            .limit(1)
            .scalar_subquery()
        )

    return (
        select(
            lines.c.cart_id,
            variants.c.id,
            variants.c.sku,
            products.c.name,
            variants.c.name,
            lines.c.quantity,
            variants.c.price,
            variants.c.per_customer_limit,
            of_lowest_running_sale(items.c.sale_price),
            of_lowest_running_sale(sales.c.per_customer_limit),
        )
        .join(carts, carts.c.id == lines.c.cart_id)
        .join(variants, variants.c.id == lines.c.variant_id)
        .join(products, products.c.id == variants.c.product_id)
        .where(owner)
        .order_by(lines.c.id)
    )


def _lines(session: Session, which, images: bool) -> list[CartLine]:
    product = joinedload(CartLine.variant).joinedload(Variant.product)
    return list(
        session.scalars(
            select(CartLine)
            .where(which)
            .order_by(CartLine.id)
            .options(product.selectinload(Product.images) if images else product)
        ).all()
    )


def _priced(session: Session, lines: list[CartLine], max_per_line: int) -> CartView:
    if not lines:
        return CartView(lines=[], count=0, subtotal=Decimal("0.00"))
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


def purge_abandoned(session: Session, updated_before: datetime) -> int:
    """Delete anonymous carts nobody touched since `updated_before`; how many went."""
    return session.execute(
        delete(Cart).where(Cart.user_id.is_(None), Cart.updated_at < updated_before)
    ).rowcount
