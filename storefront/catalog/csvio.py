"""The catalog as CSV: export every product and variant, and parse and import such a file."""

import csv
import io
import re
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload, selectinload

from storefront.catalog.editing import (
    _FORMULA_STARTS,
    MAX_IMPORT_ROWS,
    MAX_PER_CUSTOMER_LIMIT,
    SKU_HINT,
    SKU_PATTERN,
    SLUG_HINT,
    SLUG_PATTERN,
    Change,
    _change,
    adjust_stock,
    parse_count,
    parse_price,
    variant_values,
)
from storefront.catalog.models import (
    Category,
    Product,
    Variant,
)
from storefront.catalog.services import refresh_price_from
from storefront.inventory import services as inventory
from storefront.inventory.services import StockRefused

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


# Long because one pass checks every row against the catalog and then writes it, in one transaction.
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
