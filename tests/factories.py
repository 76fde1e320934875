"""Plain-function factories: build rows with sensible defaults, flush, return them."""

import itertools
from decimal import Decimal

from sqlalchemy.orm import Session

from storefront.catalog import services as catalog
from storefront.catalog.models import Category, Product, ProductImage, Variant

_sequence = itertools.count(1)


def make_category(session: Session, **fields) -> Category:
    n = next(_sequence)
    category = Category(**{"slug": f"category-{n}", "name": f"Category {n}", "position": n} | fields)
    session.add(category)
    session.flush()
    return category


def make_product(
    session: Session,
    category: Category | None = None,
    variants: list[dict] | None = None,
    images: int = 1,
    **fields,
) -> Product:
    """A product with variants (by default one in-stock variant at 10.00) and images."""
    n = next(_sequence)
    category = category or make_category(session)
    product = Product(
        **{"slug": f"product-{n}", "name": f"Product {n}", "description": "A test product.", "price_from": 0}
        | fields,
        category_id=category.id,
    )
    for position, spec in enumerate(variants or [{}]):
        product.variants.append(
            Variant(
                **{
                    "sku": f"SKU-{n}-{position}",
                    "name": f"Option {position}",
                    "price": Decimal("10.00"),
                    "on_hand": 50,
                    "reserved": 0,
                    "position": position,
                }
                | spec
            )
        )
    for position in range(images):
        product.images.append(
            ProductImage(
                path=f"demo/test-{n}-{position}.svg",
                alt=f"{product.name} photo",
                width=800,
                height=800,
                position=position,
            )
        )
    catalog.refresh_price_from(product)
    session.add(product)
    session.flush()
    return product
