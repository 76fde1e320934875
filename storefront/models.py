"""Every domain's models, imported so Base.metadata is complete for Alembic and tests."""

from storefront.accounts.models import Address, LoginAttempt, User
from storefront.cart.models import Cart, CartLine
from storefront.catalog.models import Category, Product, ProductImage, Variant
from storefront.db import Base

__all__ = [
    "Address",
    "Base",
    "Cart",
    "CartLine",
    "Category",
    "LoginAttempt",
    "Product",
    "ProductImage",
    "User",
    "Variant",
]
