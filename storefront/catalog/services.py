"""Catalog queries: listings with filters and sorting, text search, product detail, stock state."""

import re
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Select, and_, exists, func, literal_column, or_, select
from sqlalchemy.orm import Session, joinedload, selectinload

from storefront.catalog.models import Category, Product, Variant, search_document

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
class Card:
    product: Product
    in_stock: bool


@dataclass(frozen=True)
class Page:
    cards: list[Card]
    number: int
    has_next: bool


@dataclass(frozen=True)
class StockState:
    available: int
    level: str  # "in_stock" | "low" | "sold_out"
    label: str


def stock_state(available: int, low_threshold: int) -> StockState:
    """How a variant's stock is shown: in stock, only N left, or sold out."""
    if available <= 0:
        return StockState(0, "sold_out", "Sold out")
    if available <= low_threshold:
        return StockState(available, "low", f"Only {available} left")
    return StockState(available, "in_stock", "In stock")


def list_categories(session: Session) -> list[Category]:
    """All categories in display order."""
    return list(session.scalars(select(Category).order_by(Category.position, Category.name)))


def get_category(session: Session, slug: str) -> Category | None:
    return session.scalar(select(Category).where(Category.slug == slug))


def search_terms(text: str) -> list[str]:
    """The words of a query, lower-cased; punctuation and operators are dropped, never interpreted."""
    return re.findall(r"[^\W_]+", text.lower())[:MAX_SEARCH_TERMS]


def _has_stock():
    return exists().where(Variant.product_id == Product.id, Variant.on_hand > Variant.reserved)


def _apply_search(stmt: Select, terms: list[str], dialect: str, rank: bool) -> Select:
    if dialect == "postgresql":
        # Every term is a prefix so search-as-you-type matches "neckl" to "necklace".
        tsquery = func.to_tsquery(literal_column("'english'"), " & ".join(f"{t}:*" for t in terms))
        document = search_document(Product.name, Product.description)
        stmt = stmt.where(document.op("@@")(tsquery))
        return stmt.order_by(func.ts_rank(document, tsquery).desc()) if rank else stmt
    # The embedded SQLite fallback: every term must appear in the name or the description.
    for term in terms:
        pattern = f"%{term}%"
        stmt = stmt.where(or_(Product.name.ilike(pattern), Product.description.ilike(pattern)))
    return stmt


def list_products(session: Session, query: ListingQuery, per_page: int) -> Page:
    """One page of active products matching the query, fetching one extra row to know if more exist."""
    has_stock = _has_stock()
    stmt = select(Product, has_stock.label("in_stock")).where(Product.is_active)
    if query.category_id is not None:
        stmt = stmt.where(Product.category_id == query.category_id)
    if query.min_price is not None:
        stmt = stmt.where(Product.price_from >= query.min_price)
    if query.max_price is not None:
        stmt = stmt.where(Product.price_from <= query.max_price)
    if query.in_stock:
        stmt = stmt.where(has_stock)
    terms = search_terms(query.q)
    if query.q and not terms:
        return Page(cards=[], number=query.page, has_next=False)
    if terms:
        dialect = session.get_bind().dialect.name
        stmt = _apply_search(stmt, terms, dialect, rank=query.sort == "relevance")
    stmt = stmt.order_by(*_ordering(query.sort))
    stmt = stmt.options(selectinload(Product.images))
    stmt = stmt.limit(per_page + 1).offset((query.page - 1) * per_page)
    rows = session.execute(stmt).all()
    cards = [Card(product, bool(in_stock)) for product, in_stock in rows[:per_page]]
    return Page(cards=cards, number=query.page, has_next=len(rows) > per_page)


def _ordering(sort: str):
    if sort == "price_asc":
        return (Product.price_from.asc(), Product.id.asc())
    if sort == "price_desc":
        return (Product.price_from.desc(), Product.id.desc())
    return (Product.created_at.desc(), Product.id.desc())


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


def get_product(session: Session, slug: str) -> Product | None:
    """An active product with its category, variants and images, in three queries."""
    return session.scalar(
        select(Product)
        .where(Product.slug == slug, Product.is_active)
        .options(
            joinedload(Product.category),
            selectinload(Product.variants),
            selectinload(Product.images),
        )
    )


def product_stock(session: Session, slug: str) -> list[Variant] | None:
    """Fresh stock figures of an active product's variants, or None if there is no such product."""
    variants = list(
        session.scalars(
            select(Variant)
            .join(Product)
            .where(and_(Product.slug == slug, Product.is_active))
            .order_by(Variant.position, Variant.id)
        )
    )
    return variants or None


def refresh_price_from(product: Product) -> None:
    """Keep the product's sortable "from" price equal to its cheapest variant."""
    prices = [variant.price for variant in product.variants]
    product.price_from = min(prices) if prices else Decimal("0.00")


def product_for_variant(session: Session, variant_id: int) -> Product | None:
    """The active product a variant belongs to, loaded for its product page."""
    product_id = session.scalar(select(Variant.product_id).where(Variant.id == variant_id))
    if product_id is None:
        return None
    return session.scalar(
        select(Product)
        .where(Product.id == product_id, Product.is_active)
        .options(joinedload(Product.category), selectinload(Product.variants), selectinload(Product.images))
    )


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
