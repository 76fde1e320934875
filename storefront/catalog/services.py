"""Catalog queries: listings with filters and sorting, text search, product detail, stock state.

What shoppers see is read into plain frozen dataclasses (no ORM objects), so a snapshot can be kept for a
few seconds and shared by every request of the process (see SnapshotCache and DESIGN.md, performance).
"""

import re
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from cachetools import TLRUCache
from sqlalchemy import Select, exists, func, literal_column, or_, select
from sqlalchemy.orm import Session, joinedload, selectinload

from storefront.catalog.models import (
    SEARCH_VECTOR,
    Category,
    Product,
    ProductImage,
    Sale,
    SaleItem,
    Variant,
)

SORTS = {
    "newest": "Newest",
    "price_asc": "Price: low to high",
    "price_desc": "Price: high to low",
    "relevance": "Best match",
}
MAX_SEARCH_TERMS = 8


@dataclass(frozen=True)
class ListingQuery:
    """What a shopper asked a listing for; every field is already validated."""

    category_id: int | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    in_stock: bool = False
    q: str = ""
    sort: str = "newest"
    page: int = 1


@dataclass(frozen=True)
class Image:
    path: str
    alt: str
    width: int
    height: int


@dataclass(frozen=True)
class Summary:
    """What a product card shows."""

    id: int
    slug: str
    name: str
    price_from: Decimal
    primary_image: Image | None


@dataclass(frozen=True)
class Card:
    product: Product | Summary
    in_stock: bool


@dataclass(frozen=True)
class Page:
    cards: tuple[Card, ...]
    number: int
    has_next: bool


@dataclass(frozen=True)
class CategoryInfo:
    id: int
    slug: str
    name: str
    description: str


@dataclass(frozen=True)
class StockState:
    available: int
    level: str  # "in_stock" | "low" | "sold_out"
    label: str


@dataclass(frozen=True)
class StockFigure:
    id: int
    available: int


def stock_state(available: int, low_threshold: int) -> StockState:
    """How a variant's stock is shown: in stock, only N left, or sold out."""
    if available <= 0:
        return StockState(0, "sold_out", "Sold out")
    if available <= low_threshold:
        return StockState(available, "low", f"Only {available} left")
    return StockState(available, "in_stock", "In stock")


class SnapshotCache:
    """Process-local snapshots, each kept for `ttl` seconds or until its own deadline, whichever is sooner.

    A drop sends thousands of shoppers to the same few pages within a minute; serving them the same
    snapshot for a second or two saves every query of those pages. A deadline (a sale's start or end)
    ends an entry early, so prices change at the exact moment. `timer` gives wall-clock seconds.
    """

    def __init__(self, maxsize: int, timer: Callable[[], float]) -> None:
        self._entries: TLRUCache = TLRUCache(maxsize, ttu=lambda _key, entry, _now: entry[1], timer=timer)
        self._timer = timer
        self._lock = threading.Lock()

    def get(self, key: Hashable, ttl: float, load: Callable[[float], tuple[Any, float | None]]) -> Any:
        """The cached value, or load(now) -> (value, deadline or None); None values are not kept."""
        now = self._timer()
        if ttl > 0:
            with self._lock:
                entry = self._entries.get(key)
            if entry is not None:
                return entry[0]
        value, deadline = load(now)
        if ttl > 0 and value is not None:
            expires = now + ttl if deadline is None else min(now + ttl, deadline)
            with self._lock:
                self._entries[key] = (value, expires)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


# --- categories and listings ---


def list_categories(session: Session) -> list[Category]:
    """All categories in display order."""
    return list(session.scalars(select(Category).order_by(Category.position, Category.name)))


def category_infos(session: Session) -> tuple[CategoryInfo, ...]:
    """All categories in display order, as plain data."""
    rows = session.execute(
        select(Category.id, Category.slug, Category.name, Category.description).order_by(
            Category.position, Category.name
        )
    )
    return tuple(CategoryInfo(*row) for row in rows)


def search_terms(text: str) -> list[str]:
    """The words of a query, lower-cased; punctuation and operators are dropped, never interpreted."""
    return re.findall(r"[^\W_]+", text.lower())[:MAX_SEARCH_TERMS]


def _has_stock():
    return exists().where(Variant.product_id == Product.id, Variant.on_hand > Variant.reserved)


def _in_stock(session: Session, product_ids: list[int]) -> set[int]:
    """Which of these products have a unit left. Asked for one page's products after the page is chosen:
    as an EXISTS in the page query's SELECT list PostgreSQL hashes every variant of the catalog first
    (110 ms at 100,000 products), whatever the LIMIT."""
    if not product_ids:
        return set()
    return set(
        session.scalars(
            select(Variant.product_id)
            .where(Variant.product_id.in_(product_ids), Variant.on_hand > Variant.reserved)
            .distinct()
        )
    )


def apply_search(stmt: Select, terms: list[str], dialect: str, rank: bool) -> Select:
    if dialect == "postgresql":
        # Every term is a prefix so search-as-you-type matches "neckl" to "necklace".
        tsquery = func.to_tsquery(literal_column("'english'"), " & ".join(f"{t}:*" for t in terms))
        stmt = stmt.where(SEARCH_VECTOR.op("@@")(tsquery))
        return stmt.order_by(func.ts_rank(SEARCH_VECTOR, tsquery).desc()) if rank else stmt
    # The embedded SQLite fallback: every term must appear in the name or the description.
    for term in terms:
        pattern = f"%{term}%"
        stmt = stmt.where(or_(Product.name.ilike(pattern), Product.description.ilike(pattern)))
    return stmt


def _primary_images(session: Session, product_ids: list[int]) -> dict[int, Image]:
    """The first image of each product, in one query."""
    if not product_ids:
        return {}
    rows = session.execute(
        select(
            ProductImage.product_id,
            ProductImage.path,
            ProductImage.alt,
            ProductImage.width,
            ProductImage.height,
        )
        .where(ProductImage.product_id.in_(product_ids))
        .order_by(ProductImage.product_id, ProductImage.position.desc(), ProductImage.id.desc())
    )
    # Ordered last to first within each product, so the first image is the one that stays.
    return {product_id: Image(*image) for product_id, *image in rows}


def filtered(query: ListingQuery, *columns) -> Select:
    """Active products passing the listing's filters (category, price, stock); no search, no order."""
    stmt = select(*columns).where(Product.is_active)
    if query.category_id is not None:
        stmt = stmt.where(Product.category_id == query.category_id)
    if query.min_price is not None:
        stmt = stmt.where(Product.price_from >= query.min_price)
    if query.max_price is not None:
        stmt = stmt.where(Product.price_from <= query.max_price)
    if query.in_stock:
        stmt = stmt.where(_has_stock())
    return stmt


def list_products(session: Session, query: ListingQuery, per_page: int) -> Page:
    """One page of active products matching the query, fetching one extra row to know if more exist."""
    stmt = filtered(query, Product.id, Product.slug, Product.name, Product.price_from)
    terms = search_terms(query.q)
    if query.q and not terms:
        return Page(cards=(), number=query.page, has_next=False)
    if terms:
        dialect = session.get_bind().dialect.name
        stmt = apply_search(stmt, terms, dialect, rank=query.sort == "relevance")
    stmt = stmt.order_by(*_ordering(query.sort))
    stmt = stmt.limit(per_page + 1).offset((query.page - 1) * per_page)
    return page_of(session, session.execute(stmt).all(), query.page, per_page)


def page_of(session: Session, rows, number: int, per_page: int) -> Page:
    """A page of cards from (id, slug, name, price_from) rows, one more than the page when more exist."""
    shown = [row.id for row in rows[:per_page]]
    images = _primary_images(session, shown)
    stocked = _in_stock(session, shown)
    cards = tuple(
        Card(Summary(row.id, row.slug, row.name, row.price_from, images.get(row.id)), row.id in stocked)
        for row in rows[:per_page]
    )
    return Page(cards=cards, number=number, has_next=len(rows) > per_page)


def _ordering(sort: str):
    if sort == "price_asc":
        return (Product.price_from.asc(), Product.id.asc())
    if sort == "price_desc":
        return (Product.price_from.desc(), Product.id.desc())
    return (Product.created_at.desc(), Product.id.desc())


def variant_thumbnails(session: Session, variant_ids: list[int]) -> dict[int, Image]:
    """The first picture of each variant's product, for summaries that show lines as plain values."""
    if not variant_ids:
        return {}
    first = (
        select(ProductImage.id)
        .where(ProductImage.product_id == Variant.product_id)
        .order_by(ProductImage.position, ProductImage.id)
        .limit(1)
        .correlate(Variant)
        .scalar_subquery()
    )
    rows = session.execute(
        select(Variant.id, ProductImage.path, ProductImage.alt, ProductImage.width, ProductImage.height)
        .join(ProductImage, ProductImage.id == first)
        .where(Variant.id.in_(variant_ids))
    )
    return {row.id: Image(row.path, row.alt, row.width, row.height) for row in rows}


def featured_products(session: Session, limit: int = 8) -> list[Card]:
    """Featured products for the home page, newest first."""
    page = session.execute(
        select(Product, _has_stock().label("in_stock"))
        .where(Product.is_active, Product.is_featured)
        .order_by(Product.created_at.desc(), Product.id.desc())
        .options(selectinload(Product.images))
        .limit(limit)
    ).all()
    return [Card(product, bool(in_stock)) for product, in_stock in page]


# --- the product page ---


@dataclass(frozen=True)
class SalePrice:
    price: Decimal
    sale_name: str
    ends_at: datetime
    per_customer_limit: int | None


@dataclass(frozen=True)
class UpcomingSale:
    """The next sale of a product's variants to start: what its drop page counts down to."""

    name: str
    starts_at: datetime
    per_customer_limit: int | None


@dataclass(frozen=True)
class Offer:
    """One variant as the product page offers it: the price now, the stock when read, the limit."""

    id: int
    sku: str
    name: str
    price: Decimal
    available: int
    per_customer_limit: int | None  # the tighter of the variant's own and a running sale's
    sale: SalePrice | None


@dataclass(frozen=True)
class ProductPage:
    """Everything the product page shows, read at one moment; valid until `valid_until` at the latest."""

    id: int
    slug: str
    name: str
    description: str
    price_from: Decimal
    category: CategoryInfo
    images: tuple[Image, ...]
    variants: tuple[Offer, ...]
    valid_until: datetime | None  # the next start or end of a sale of one of its variants
    next_sale: UpcomingSale | None = None


# Long because it reads the whole product page in two queries and folds the rows into one snapshot.
def product_page(
    session: Session, now: datetime, slug: str | None = None, variant_id: int | None = None
) -> ProductPage | None:
    """An active product (by slug, or by one of its variants) as the page shows it at `now`, in two queries.

    The first reads the product, its category and variants, and every sale of those variants that has not
    ended (running ones set the price, future ones only the deadline); the second reads the images.
    """
    sales = (
        select(
            SaleItem.variant_id,
            SaleItem.sale_price,
            Sale.name.label("sale_name"),
            Sale.starts_at,
            Sale.ends_at,
            Sale.per_customer_limit.label("sale_limit"),
        )
        .join(Sale)
        .where(Sale.ends_at > now)
        .subquery()
    )
    stmt = (
        select(
            Product.id,
            Product.slug,
            Product.name,
            Product.description,
            Product.price_from,
            Category.id.label("category_id"),
            Category.slug.label("category_slug"),
            Category.name.label("category_name"),
            Category.description.label("category_description"),
            Variant.id.label("variant_id"),
            Variant.sku,
            Variant.name.label("variant_name"),
            Variant.price,
            (Variant.on_hand - Variant.reserved).label("available"),
            Variant.per_customer_limit,
            sales.c.sale_price,
            sales.c.sale_name,
            sales.c.starts_at,
            sales.c.ends_at,
            sales.c.sale_limit,
        )
        .join(Category, Category.id == Product.category_id)
        .outerjoin(Variant, Variant.product_id == Product.id)
        .outerjoin(sales, sales.c.variant_id == Variant.id)
        .where(Product.is_active)
        .order_by(Variant.position, Variant.id)
    )
    if slug is not None:
        stmt = stmt.where(Product.slug == slug)
    else:
        product_id = select(Variant.product_id).where(Variant.id == variant_id).scalar_subquery()
        stmt = stmt.where(Product.id == product_id)
    rows = session.execute(stmt).all()
    if not rows:
        return None
    variants = {}  # one row per variant and sale: the variant's own columns come from its first row
    running: dict[int, SalePrice] = {}
    boundaries = []
    next_sale: UpcomingSale | None = None
    for row in rows:
        if row.variant_id is None:  # a product without variants
            continue
        variants.setdefault(row.variant_id, row)
        if row.sale_price is None:
            continue
        starts_at, ends_at = _utc(row.starts_at), _utc(row.ends_at)
        if starts_at > now:  # a sale to come: only its start matters yet (and the drop page counts to it)
            boundaries.append(starts_at)
            if next_sale is None or starts_at < next_sale.starts_at:
                next_sale = UpcomingSale(row.sale_name, starts_at, row.sale_limit)
            continue
        boundaries.append(ends_at)
        current = running.get(row.variant_id)
        if current is None or row.sale_price < current.price:  # overlapping sales: the lowest price wins
            running[row.variant_id] = SalePrice(row.sale_price, row.sale_name, ends_at, row.sale_limit)
    offers = []
    for row in variants.values():
        sale = running.get(row.variant_id)
        offers.append(
            Offer(
                id=row.variant_id,
                sku=row.sku,
                name=row.variant_name,
                price=row.price,
                available=row.available,
                per_customer_limit=_tighter(
                    row.per_customer_limit, sale.per_customer_limit if sale else None
                ),
                sale=sale,
            )
        )
    first = rows[0]
    images = session.execute(
        select(ProductImage.path, ProductImage.alt, ProductImage.width, ProductImage.height)
        .where(ProductImage.product_id == first.id)
        .order_by(ProductImage.position, ProductImage.id)
    )
    return ProductPage(
        id=first.id,
        slug=first.slug,
        name=first.name,
        description=first.description,
        price_from=first.price_from,
        category=CategoryInfo(
            first.category_id, first.category_slug, first.category_name, first.category_description
        ),
        images=tuple(Image(*image) for image in images),
        variants=tuple(offers),
        valid_until=min(boundaries, default=None),
        next_sale=next_sale,
    )


def _utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; the shop stores every moment in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _tighter(*limits: int | None) -> int | None:
    present = [limit for limit in limits if limit is not None]
    return min(present) if present else None


def product_stock(session: Session, slug: str) -> list[StockFigure] | None:
    """Fresh stock figures of an active product's variants, or None if there is no such product."""
    rows = session.execute(
        select(Variant.id, Variant.on_hand - Variant.reserved)
        .join(Product)
        .where(Product.slug == slug, Product.is_active)
        .order_by(Variant.position, Variant.id)
    )
    return [StockFigure(*row) for row in rows] or None


def refresh_price_from(product: Product) -> None:
    """Keep the product's sortable "from" price equal to its cheapest variant."""
    prices = [variant.price for variant in product.variants]
    product.price_from = min(prices) if prices else Decimal("0.00")


def low_stock(session: Session, threshold: int, limit: int = 20) -> list[Variant]:
    """Variants of active products with at most `threshold` units available, fewest first."""
    available = Variant.on_hand - Variant.reserved
    return list(
        session.scalars(
            select(Variant)
            .join(Product)
            .where(Product.is_active, available <= threshold)
            .order_by(available, Variant.id)
            .options(joinedload(Variant.product))
            .limit(limit)
        )
    )


# --- drops: sale prices while a sale is on ---


def sale_prices(session: Session, variant_ids: list[int], now: datetime) -> dict[int, SalePrice]:
    """The sale price of each variant that is in a sale running now (the lowest, if sales overlap)."""
    if not variant_ids:
        return {}
    rows = session.execute(
        select(SaleItem.variant_id, SaleItem.sale_price, Sale.name, Sale.ends_at, Sale.per_customer_limit)
        .join(Sale)
        .where(SaleItem.variant_id.in_(variant_ids), Sale.starts_at <= now, Sale.ends_at > now)
        .order_by(SaleItem.sale_price.desc())
    )
    return {
        variant_id: SalePrice(price, name, ends_at, limit) for variant_id, price, name, ends_at, limit in rows
    }


def running_sale_products(session: Session, now: datetime, limit: int = 8) -> list[Card]:
    """Products in a sale running now, for the home page's drop."""
    product_ids = (
        select(Variant.product_id)
        .join(SaleItem, SaleItem.variant_id == Variant.id)
        .join(Sale)
        .where(Sale.starts_at <= now, Sale.ends_at > now)
    )
    rows = session.execute(
        select(Product, _has_stock().label("in_stock"))
        .where(Product.is_active, Product.id.in_(product_ids))
        .order_by(Product.id)
        .options(selectinload(Product.images))
        .limit(limit)
    ).all()
    return [Card(product, bool(in_stock)) for product, in_stock in rows]
