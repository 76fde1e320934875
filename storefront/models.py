"""Every domain's models, imported so Base.metadata is complete for Alembic and tests."""

from storefront.catalog.models import Category, Product, ProductImage, Variant
from storefront.db import Base

__all__ = ["Base", "Category", "Product", "ProductImage", "Variant"]
