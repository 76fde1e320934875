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


# --- staff: products, variants, stock, CSV ---
# The admin forms and the CSV import share these parsers, so a value one accepts the other accepts too.
# Staff changes come back as Change records; the admin view writes them to the audit log and commits.

import csv  # noqa: E402
import io  # noqa: E402
import secrets  # noqa: E402
import struct  # noqa: E402
import unicodedata  # noqa: E402
from pathlib import Path  # noqa: E402

from storefront.inventory import services as inventory  # noqa: E402
from storefront.inventory.models import StockMovement  # noqa: E402
from storefront.inventory.services import MAX_STOCK, STOCK_REASONS, StockRefused  # noqa: E402, F401

MAX_PRICE = Decimal("100000.00")
MAX_PER_CUSTOMER_LIMIT = 1_000
MAX_IMAGE_SIDE = 10_000
MAX_IMPORT_ROWS = 10_000
MAX_REPORTED_ERRORS = 200
SLUG_PATTERN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
SKU_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
SLUG_HINT = "use lower-case letters and digits, words joined by single hyphens"
SKU_HINT = "start with a letter or digit, then use letters, digits, '.', '_' and '-'"
_PRICE_PATTERN = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,2})?")
_WHOLE_PATTERN = re.compile(r"[0-9]+")
# A spreadsheet runs a cell that starts with one of these as a formula; exports quote them with "'".
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class Change:
    """One staff change with its before and after; label names it (SKU or slug) before it has an id."""

    action: str
    entity: str
    entity_id: int | None
    label: str
    before: dict
    after: dict


def parse_price(text: str | None) -> Decimal:
    """A price as staff type it: digits with at most two decimals, from 0 to MAX_PRICE; ValueError says why."""
    value = (text or "").strip()
    if not value:
        raise ValueError("Enter a price.")
    if value.startswith("-"):
        raise ValueError("A price can't be negative.")
    if not _PRICE_PATTERN.fullmatch(value):
        if re.fullmatch(r"[0-9]+(\.[0-9]*)?", value) and len(value.split(".")[0]) > 9:
            raise ValueError(f"A price can be at most {MAX_PRICE:,}.")
        raise ValueError("Enter a price like 12.50: digits, with at most two after the point.")
    amount = Decimal(value)
    if amount > MAX_PRICE:
        raise ValueError(f"A price can be at most {MAX_PRICE:,}.")
    return amount.quantize(Decimal("0.01"))


def parse_count(text: str | None, label: str, minimum: int = 0, maximum: int = MAX_STOCK) -> int:
    """A whole number (units, a limit) from minimum to maximum; ValueError says why in staff words."""
    value = (text or "").strip()
    if not value:
        raise ValueError(f"Enter {label.lower()}.")
    if value.startswith("-"):
        raise ValueError(f"{label} can't be negative.")
    if not _WHOLE_PATTERN.fullmatch(value):
        raise ValueError(f"{label} must be a whole number.")
    if len(value) > 9 or int(value) > maximum:
        raise ValueError(f"{label} can be at most {maximum:,}.")
    if int(value) < minimum:
        raise ValueError(f"{label} must be at least {minimum}.")
    return int(value)


def make_slug(text: str) -> str:
    """A URL slug from a name: ASCII letters and digits joined by hyphens ("Café Ring" → "cafe-ring")."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:160].strip("-")


def slug_taken(session: Session, slug: str, exclude_id: int | None = None) -> bool:
    """Whether another product already uses this slug."""
    stmt = select(Product.id).where(Product.slug == slug)
    if exclude_id is not None:
        stmt = stmt.where(Product.id != exclude_id)
    return session.scalar(stmt.limit(1)) is not None


def sku_taken(session: Session, sku: str, exclude_id: int | None = None) -> bool:
    """Whether another variant already uses this SKU."""
    stmt = select(Variant.id).where(Variant.sku == sku)
    if exclude_id is not None:
        stmt = stmt.where(Variant.id != exclude_id)
    return session.scalar(stmt.limit(1)) is not None


def category_slug_taken(session: Session, slug: str) -> bool:
    """Whether a category already uses this slug."""
    return session.scalar(select(Category.id).where(Category.slug == slug).limit(1)) is not None


def _diff(before: dict, after: dict) -> tuple[dict, dict]:
    keys = [key for key in after if before.get(key) != after[key]]
    return {key: before.get(key) for key in keys}, {key: after[key] for key in keys}


def _change(action: str, entity: str, obj, label: str, before: dict, after: dict) -> Change | None:
    """A Change with only the fields that differ, or None when nothing did."""
    before, after = _diff(before, after)
    return Change(action, entity, obj.id, label, before, after) if after else None


# Products and categories

PRODUCT_FIELDS = ("name", "slug", "category_id", "description", "is_featured")
VARIANT_FIELDS = ("sku", "name", "price", "per_customer_limit")


def staff_products(session: Session, q: str, page: int, per_page: int = 50) -> tuple[list[Product], bool]:
    """One page of every product, archived too, newest first; q matches a name, slug or SKU."""
    stmt = select(Product).options(joinedload(Product.category), selectinload(Product.variants))
    text = q.strip()
    if text:
        sku_match = exists().where(
            Variant.product_id == Product.id, Variant.sku.icontains(text, autoescape=True)
        )
        stmt = stmt.where(
            or_(
                Product.name.icontains(text, autoescape=True),
                Product.slug.icontains(text, autoescape=True),
                sku_match,
            )
        )
    stmt = stmt.order_by(Product.created_at.desc(), Product.id.desc()).limit(per_page + 1)
    rows = list(session.scalars(stmt.offset((page - 1) * per_page)))
    return rows[:per_page], len(rows) > per_page


def staff_product(session: Session, product_id: int) -> Product | None:
    """A product, archived or not, with its category, variants and images."""
    return session.scalar(
        select(Product)
        .where(Product.id == product_id)
        .options(joinedload(Product.category), selectinload(Product.variants), selectinload(Product.images))
    )


def product_values(product: Product) -> dict:
    """The staff-editable fields of a product, for before/after comparisons."""
    return {field: getattr(product, field) for field in PRODUCT_FIELDS}


def create_product(session: Session, values: dict) -> tuple[Product, Change]:
    """A new product from validated values; its "from" price follows the variants added to it."""
    product = Product(price_from=Decimal("0.00"), **values)
    session.add(product)
    session.flush()
    return product, Change("product.create", "product", product.id, product.slug, {}, dict(values))


def update_product(session: Session, product: Product, values: dict) -> Change | None:
    """Change a product's name, slug, category, description or featured flag."""
    before = product_values(product)
    for field, value in values.items():
        setattr(product, field, value)
    session.flush()
    return _change("product.update", "product", product, product.slug, before, product_values(product))


def set_product_active(session: Session, product: Product, active: bool) -> Change | None:
    """Archive a product (gone from the shop, kept for orders and staff) or bring it back."""
    before = {"is_active": product.is_active}
    product.is_active = active
    session.flush()
    action = "product.unarchive" if active else "product.archive"
    return _change(action, "product", product, product.slug, before, {"is_active": active})


def create_category(session: Session, name: str, slug: str, description: str = "") -> tuple[Category, Change]:
    """A new category at the end of the menu."""
    position = (session.scalar(select(func.max(Category.position))) or 0) + 1
    category = Category(name=name, slug=slug, description=description, position=position)
    session.add(category)
    session.flush()
    after = {"name": name, "slug": slug, "description": description}
    return category, Change("category.create", "category", category.id, slug, {}, after)


def rename_category(session: Session, category: Category, name: str) -> Change | None:
    """Give a category a new name; its slug, and so its URL, stays."""
    before = {"name": category.name}
    category.name = name
    session.flush()
    return _change("category.rename", "category", category, category.slug, before, {"name": name})


def categories_with_counts(session: Session, only: int | None = None) -> list[tuple[Category, int]]:
    """Every category (or only the one with that id) in menu order, with how many products it holds."""
    counts = select(Product.category_id, func.count().label("n")).group_by(Product.category_id).subquery()
    stmt = select(Category, counts.c.n).outerjoin(counts, counts.c.category_id == Category.id)
    if only is not None:
        stmt = stmt.where(Category.id == only)
    rows = session.execute(stmt.order_by(Category.position, Category.name))
    return [(category, n or 0) for category, n in rows]


# Variants


def variant_values(variant: Variant) -> dict:
    """The staff-editable fields of a variant (not its stock), for before/after comparisons."""
    return {field: getattr(variant, field) for field in VARIANT_FIELDS}


def add_variant(
    session: Session, product: Product, values: dict, on_hand: int, user_id: int | None
) -> Change:
    """A new variant at the end of the product's list; its first stock is a "received" ledger line."""
    position = max((variant.position for variant in product.variants), default=-1) + 1
    variant = Variant(**values, on_hand=on_hand, reserved=0, position=position)
    product.variants.append(variant)
    refresh_price_from(product)
    session.flush()
    inventory.record_initial(session, [variant], "Initial stock", user_id)
    session.flush()
    after = {**values, "on_hand": on_hand, "product_id": product.id}
    return Change("variant.create", "variant", variant.id, variant.sku, {}, after)


def update_variant(session: Session, variant: Variant, values: dict) -> Change | None:
    """Change a variant's SKU, name, price or per-customer limit (stock goes through adjust_stock)."""
    before = variant_values(variant)
    for field, value in values.items():
        setattr(variant, field, value)
    refresh_price_from(variant.product)
    session.flush()
    return _change("variant.update", "variant", variant, variant.sku, before, variant_values(variant))


# Images: the real type comes from the file's first bytes, never from its name or the browser's claim.


def image_info(data: bytes) -> tuple[str, int, int]:
    """The extension, width and height of a PNG, JPEG or WebP file; ValueError for anything else."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        extension, (width, height) = "png", struct.unpack(">II", data[16:24])
    elif data[:3] == b"\xff\xd8\xff":
        extension, (width, height) = "jpg", _jpeg_size(data)
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        extension, (width, height) = "webp", _webp_size(data)
    else:
        raise ValueError("That file is not a PNG, JPEG or WebP image.")
    if not (1 <= width <= MAX_IMAGE_SIDE and 1 <= height <= MAX_IMAGE_SIDE):
        raise ValueError(f"Images must be between 1 and {MAX_IMAGE_SIDE:,} pixels on each side.")
    return extension, width, height


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """Walk the JPEG markers to the frame header (SOFn), which holds the size."""
    at = 2
    while at + 9 <= len(data):
        if data[at] != 0xFF:
            break
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            at += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or scan data, before any frame header
            break
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return width, height
        at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
    raise ValueError("That JPEG file is damaged: it has no image size.")


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        return (
            int.from_bytes(data[26:28], "little") & 0x3FFF,
            int.from_bytes(data[28:30], "little") & 0x3FFF,
        )
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    raise ValueError("That WebP file is damaged: it has no image size.")


def store_upload(media_folder: str, data: bytes, extension: str) -> str:
    """Write an upload under a new random name (never the sender's); the path is relative to the media folder."""
    folder = Path(media_folder) / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"uploads/{secrets.token_hex(16)}.{extension}"
    with (Path(media_folder) / name).open("xb") as target:
        target.write(data)
    return name


def discard_upload(media_folder: str, path: str) -> None:
    """Delete an uploaded file; shared files outside uploads/ (the demo's) are never touched."""
    if re.fullmatch(r"uploads/[0-9a-f]{32}\.(png|jpg|webp)", path):
        (Path(media_folder) / path).unlink(missing_ok=True)


def add_image(session: Session, product: Product, path: str, width: int, height: int, alt: str) -> Change:
    """Attach a stored image as the product's last one."""
    position = max((image.position for image in product.images), default=-1) + 1
    image = ProductImage(path=path, alt=alt, width=width, height=height, position=position)
    product.images.append(image)
    session.flush()
    after = {"product_id": product.id, "path": path, "alt": alt, "width": width, "height": height}
    return Change("image.create", "image", image.id, path, {}, after)


def remove_image(session: Session, image: ProductImage) -> Change:
    """Delete an image row; the caller deletes an uploaded file after commit."""
    before = {"product_id": image.product_id, "path": image.path, "alt": image.alt}
    change = Change("image.delete", "image", image.id, image.path, before, {})
    image.product.images.remove(image)  # delete-orphan: the row goes at flush, and the list stays right
    session.flush()
    return change


# Stock is inventory's to write; the admin gets the audit log's Change for each adjustment.


def adjust_stock(
    session: Session, variant: Variant, reason: str, quantity: int, note: str = "", user_id: int | None = None
) -> tuple[StockMovement, Change]:
    """Adjust a variant's stock (see inventory.adjust) and say what changed for the audit log."""
    movement = inventory.adjust(session, variant, reason, quantity, note, user_id)
    on_hand_after, delta = movement.on_hand_after, movement.delta
    before = {"on_hand": on_hand_after - delta}
    after = {"on_hand": on_hand_after, "reason": reason, "delta": delta, "note": note}
    return movement, Change("stock.adjust", "variant", variant.id, variant.sku, before, after)


def stock_ledger(
    session: Session, variant_id: int, page: int, per_page: int = 50
) -> tuple[list[tuple[StockMovement, str | None]], bool]:
    """A variant's stock movements, newest first, each with the e-mail of the staff member who made it."""
    return inventory.ledger(session, variant_id, page, per_page)


def stock_report(
    session: Session, threshold: int, page: int, per_page: int = 50
) -> tuple[list[Variant], bool]:
    """Variants of active products with at most `threshold` units available, fewest first, a page at a time."""
    available = Variant.on_hand - Variant.reserved
    rows = list(
        session.scalars(
            select(Variant)
            .join(Product)
            .where(Product.is_active, available <= threshold)
            .order_by(available, Variant.id)
            .options(joinedload(Variant.product))
            .limit(per_page + 1)
            .offset((page - 1) * per_page)
        )
    )
    return rows[:per_page], len(rows) > per_page


def staff_variant(session: Session, variant_id: int) -> Variant | None:
    """A variant with its product, archived or not."""
    return session.scalar(
        select(Variant).where(Variant.id == variant_id).options(joinedload(Variant.product))
    )


# CSV export and import: one line per variant, matched by SKU; products by slug, categories by slug.

CSV_COLUMNS = (
    "sku",
    "product_slug",
    "product_name",
    "category_slug",
    "variant_name",
    "price",
    "on_hand",
    "per_customer_limit",
    "active",
)
_TRUE = {"true", "yes", "1"}
_FALSE = {"false", "no", "0"}


@dataclass(frozen=True)
class LineError:
    line: int
    message: str


@dataclass(frozen=True)
class ProductRow:
    """One validated line of an import file."""

    line: int
    sku: str
    product_slug: str
    product_name: str
    category_slug: str
    variant_name: str
    price: Decimal
    on_hand: int
    per_customer_limit: int | None
    active: bool


def _cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _uncell(text: str) -> str:
    return text[1:] if text.startswith("'") and text[1:2] and text[1:].startswith(_FORMULA_STARTS) else text


def export_products_csv(session: Session) -> str:
    """Every variant as one CSV line, with its product and category, in the import's column order."""
    rows = session.execute(
        select(Variant, Product.slug, Product.name, Category.slug, Product.is_active)
        .join(Product, Variant.product_id == Product.id)
        .join(Category, Product.category_id == Category.id)
        .order_by(Product.id, Variant.position, Variant.id)
    )
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for variant, slug, name, category_slug, active in rows:
        writer.writerow(
            [
                _cell(variant.sku),
                slug,
                _cell(name),
                category_slug,
                _cell(variant.name),
                f"{variant.price:.2f}",
                variant.on_hand,
                "" if variant.per_customer_limit is None else variant.per_customer_limit,
                "true" if active else "false",
            ]
        )
    return out.getvalue()


def _decode(data: bytes) -> tuple[str, list[LineError]]:
    """The file as text; lines that are not UTF-8 are reported by number (spreadsheets' "CSV UTF-8")."""
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError:
        pass
    errors = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            errors.append(LineError(number, 'This line is not UTF-8 text. Save the file as "CSV UTF-8".'))
    return "", errors


def _row_values(line: int, record: dict) -> tuple[ProductRow | None, list[LineError]]:
    errors: list[str] = []

    def text(column: str, max_length: int, pattern: re.Pattern | None = None, hint: str = "") -> str:
        value = _uncell(record[column].strip())
        if not value:
            errors.append(f"{column} is empty.")
        elif len(value) > max_length:
            errors.append(f"{column} is longer than {max_length} characters.")
        elif "\x00" in value:
            errors.append(f"{column} contains a NUL character.")
        elif pattern is not None and not pattern.fullmatch(value):
            errors.append(f"{column} {value!r} is not valid: {hint}.")
        return value

    def parsed(column: str, parse, *args):
        try:
            return parse(record[column], *args)
        except ValueError as error:
            errors.append(f"{column}: {error}")
            return None

    values = {
        "sku": text("sku", 64, SKU_PATTERN, SKU_HINT),
        "product_slug": text("product_slug", 160, SLUG_PATTERN, SLUG_HINT),
        "product_name": text("product_name", 200),
        "category_slug": text("category_slug", 80, SLUG_PATTERN, SLUG_HINT),
        "variant_name": text("variant_name", 120),
        "price": parsed("price", parse_price),
        "on_hand": parsed("on_hand", parse_count, "Stock"),
        "per_customer_limit": None,
    }
    if record["per_customer_limit"].strip():
        values["per_customer_limit"] = parsed(
            "per_customer_limit", parse_count, "The limit", 1, MAX_PER_CUSTOMER_LIMIT
        )
    active = record["active"].strip().lower()
    if active not in _TRUE | _FALSE:
        errors.append("active must be true or false.")
    if errors:
        return None, [LineError(line, message) for message in errors]
    return ProductRow(line=line, active=active in _TRUE, **values), []


def parse_product_csv(data: bytes) -> tuple[list[ProductRow], list[LineError]]:
    """Read an import file and check every line on its own; any error means nothing may be imported."""
    text, errors = _decode(data)
    if errors:
        return [], errors
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as error:
        return [], [LineError(1, f"This is not a readable CSV file ({error}).")]
    if not header:
        return [], [
            LineError(
                1, f"The file is empty. The first line must name the columns: {', '.join(CSV_COLUMNS)}."
            )
        ]
    columns = [name.strip().lower() for name in header]
    missing = [name for name in CSV_COLUMNS if name not in columns]
    unknown = [name for name in columns if name not in CSV_COLUMNS]
    if missing or unknown or len(set(columns)) != len(columns):
        problems = []
        if missing:
            problems.append(f"missing columns: {', '.join(missing)}")
        if unknown:
            problems.append(f"unknown columns: {', '.join(repr(name) for name in unknown)}")
        if len(set(columns)) != len(columns):
            problems.append("a column is named twice")
        return [], [LineError(1, "The header line is wrong: " + "; ".join(problems) + ".")]
    rows: list[ProductRow] = []
    seen_sku: dict[str, int] = {}
    first_of_product: dict[str, ProductRow] = {}
    line, records = 1, 0
    try:
        for fields in reader:
            line = reader.line_num
            if not fields or all(not field.strip() for field in fields):
                continue
            records += 1
            if records > MAX_IMPORT_ROWS:
                errors.append(LineError(line, f"The file has more than {MAX_IMPORT_ROWS:,} lines; split it."))
                break
            if len(fields) != len(columns):
                errors.append(LineError(line, f"Expected {len(columns)} fields, found {len(fields)}."))
                continue
            row, row_errors = _row_values(line, dict(zip(columns, fields, strict=True)))
            errors += row_errors
            if row is None:
                continue
            if row.sku in seen_sku:
                errors.append(LineError(line, f"SKU {row.sku} is already on line {seen_sku[row.sku]}."))
                continue
            seen_sku[row.sku] = line
            first = first_of_product.setdefault(row.product_slug, row)
            for column in ("product_name", "category_slug", "active"):
                if getattr(row, column) != getattr(first, column):
                    errors.append(
                        LineError(
                            line, f"{column} differs from line {first.line} for product {row.product_slug}."
                        )
                    )
            rows.append(row)
    except csv.Error as error:
        errors.append(LineError(reader.line_num or line, f"This line is not valid CSV ({error})."))
    if not rows and not errors:
        errors.append(LineError(1, "The file has a header but no products."))
    return rows, errors


def import_products(
    session: Session, rows: list[ProductRow], user_id: int | None = None, apply: bool = False
) -> tuple[list[Change], list[LineError]]:
    """Check the rows against the catalog and list what would change; with apply, also make the changes.

    One walk serves the dry run and the import, so what the dry run shows is what the import does. With
    errors nothing is changed; the caller commits (or rolls back) the whole import as one transaction.
    """
    categories = {
        c.slug: c
        for c in session.scalars(
            select(Category).where(Category.slug.in_({row.category_slug for row in rows}))
        )
    }
    products = {
        p.slug: p
        for p in session.scalars(
            select(Product)
            .where(Product.slug.in_({row.product_slug for row in rows}))
            .options(joinedload(Product.category), selectinload(Product.variants))
        )
    }
    variants = {
        v.sku: v
        for v in session.scalars(
            select(Variant)
            .where(Variant.sku.in_({row.sku for row in rows}))
            .options(joinedload(Variant.product))
        )
    }
    errors = []
    for row in rows:
        variant = variants.get(row.sku)
        if row.category_slug not in categories:
            errors.append(LineError(row.line, f"Unknown category {row.category_slug!r}."))
        if variant is not None and variant.product.slug != row.product_slug:
            errors.append(
                LineError(
                    row.line,
                    f"SKU {row.sku} belongs to product {variant.product.slug}; "
                    "a variant can't move to another product.",
                )
            )
        elif variant is not None and row.on_hand < variant.reserved:
            errors.append(
                LineError(
                    row.line,
                    f"on_hand {row.on_hand} is below the {variant.reserved} units reserved for open orders.",
                )
            )
    if errors:
        return [], errors

    changes: list[Change] = []
    created: list[tuple[Change, Product | Variant]] = []
    first_rows: dict[str, ProductRow] = {}
    for row in rows:
        first_rows.setdefault(row.product_slug, row)
    for slug, row in first_rows.items():
        after = {"name": row.product_name, "category": row.category_slug, "is_active": row.active}
        product = products.get(slug)
        if product is None:
            change = Change("product.create", "product", None, slug, {}, {"slug": slug, **after})
            changes.append(change)
            if apply:
                product = Product(
                    slug=slug,
                    name=row.product_name,
                    category_id=categories[row.category_slug].id,
                    is_active=row.active,
                    description="",
                    price_from=Decimal("0.00"),
                )
                session.add(product)
                products[slug] = product
                created.append((change, product))
            continue
        before = {"name": product.name, "category": product.category.slug, "is_active": product.is_active}
        change = _change("product.update", "product", product, slug, before, after)
        if change is not None:
            changes.append(change)
            if apply:
                product.name = row.product_name
                product.category = categories[row.category_slug]
                product.is_active = row.active

    stock_rows: list[tuple[ProductRow, Variant]] = []
    new_variants: list[Variant] = []
    for row in rows:
        values = {
            "sku": row.sku,
            "name": row.variant_name,
            "price": row.price,
            "per_customer_limit": row.per_customer_limit,
        }
        variant = variants.get(row.sku)
        if variant is None:
            after = {**values, "on_hand": row.on_hand, "product": row.product_slug}
            change = Change("variant.create", "variant", None, row.sku, {}, after)
            changes.append(change)
            if apply:
                product = products[row.product_slug]
                position = max((v.position for v in product.variants), default=-1) + 1
                variant = Variant(**values, on_hand=row.on_hand, reserved=0, position=position)
                product.variants.append(variant)
                new_variants.append(variant)
                created.append((change, variant))
            continue
        change = _change("variant.update", "variant", variant, row.sku, variant_values(variant), values)
        if change is not None:
            changes.append(change)
            if apply:
                for field, value in values.items():
                    setattr(variant, field, value)
        if row.on_hand != variant.on_hand:
            if apply:
                stock_rows.append((row, variant))
            else:
                before, after = {"on_hand": variant.on_hand}, {"on_hand": row.on_hand, "reason": "recount"}
                changes.append(Change("stock.adjust", "variant", variant.id, row.sku, before, after))
    if not apply:
        return changes, []

    for product in products.values():
        refresh_price_from(product)
    session.flush()
    for change, obj in created:
        change.entity_id = obj.id
    inventory.record_initial(session, new_variants, "CSV import", user_id)
    for row, variant in stock_rows:
        try:
            _movement, change = adjust_stock(session, variant, "recount", row.on_hand, "CSV import", user_id)
        except StockRefused as refused:
            return [], [LineError(row.line, str(refused))]
        changes.append(change)
    session.flush()
    return changes, []
