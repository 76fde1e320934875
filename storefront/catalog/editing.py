"""Staff editing of the catalog: products, variants, categories and stock, and the parsers the admin forms
and the CSV import share (so a value one accepts the other accepts too). Staff changes come back as Change
records; the admin view writes them to the audit log and commits."""

import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session, joinedload, selectinload

from storefront.catalog.models import (
    Category,
    Product,
    Variant,
)
from storefront.catalog.services import refresh_price_from
from storefront.inventory import services as inventory
from storefront.inventory.models import StockMovement

# Re-exported for the admin forms and the CSV import, as catalog.services did before the split.
from storefront.inventory.services import MAX_STOCK, STOCK_REASONS, StockRefused  # noqa: F401

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
