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
        **{
            "email": email or f"shopper{next(_sequence)}@example.com",
            "password_hash": _hashes[password],
            "role": "customer",
            "email_verified_at": datetime.now(UTC),
            "session_token": f"t{next(_sequence)}",
        }
        | fields
    )
    session.add(user)
    session.flush()
    return user


def make_order(
    session: Session,
    variant=None,
    quantity: int = 1,
    status: str = "pending_payment",
    user=None,
    email: str = "buyer@example.com",
    reserve: bool = True,
    **fields,
):
    """An order for one variant, its stock reserved like checkout does, with a created charge attempt."""
    from datetime import UTC, datetime, timedelta

    from storefront.orders import services as orders
    from storefront.orders.models import Order, OrderLine
    from storefront.payments import services as payments

    if variant is None:
        variant = make_product(session, variants=[{"on_hand": 10}]).variants[0]
    total = variant.price * quantity
    order = Order(
        **{
            "number": orders.new_number(),
            "idempotency_key": f"key-{next(_sequence)}-{orders.new_number()}",
            "user_id": user.id if user else None,
            "email": user.email if user else email,
            "status": status,
            "subtotal": total,
            "shipping_total": Decimal("0.00"),
            "tax_total": Decimal("0.00"),
            "total": total,
            "shipping_method": "Standard",
            "ship_name": "Ada Lovelace",
            "ship_line1": "1 Main St",
            "ship_city": "Springfield",
            "ship_postal_code": "12345",
            "ship_country": "US",
            "expires_at": datetime.now(UTC) + timedelta(minutes=15),
        }
        | fields
    )
    order.lines = [
        OrderLine(
            variant_id=variant.id,
            sku=variant.sku,
            product_name="Thing",
            variant_name=variant.name,
            unit_price=variant.price,
            quantity=quantity,
            line_total=total,
        )
    ]
    session.add(order)
    session.flush()
    payments.new_charge(session, order, "COMMON.ACCEPT.INAPP.PAYMENT", "test-approve")
    if reserve:
        variant.reserved += quantity
    session.flush()
    return order
