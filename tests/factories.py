"""Plain-function factories: build rows with sensible defaults, flush, return them."""

import itertools
from decimal import Decimal

from sqlalchemy.orm import Session

from storefront.accounts.models import User
from storefront.accounts.services import hash_password
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


PASSWORD = "correct horse battery"
_hashes: dict[str, str] = {}


def make_user(session: Session, email: str | None = None, password: str = PASSWORD, **fields) -> User:
    """A verified shopper; scrypt hashes are cached per password to keep tests quick."""
    from datetime import UTC, datetime

    if password not in _hashes:
        _hashes[password] = hash_password(password)
    user = User(
        **{"email": email or f"shopper{next(_sequence)}@example.com", "password_hash": _hashes[password],
           "role": "customer", "email_verified_at": datetime.now(UTC), "session_token": f"t{next(_sequence)}"}
        | fields
    )
    session.add(user)
    session.flush()
    return user
