"""Every domain's models, imported so Base.metadata is complete for Alembic and tests."""

from storefront.accounts.models import Address, LoginAttempt, RecoveryCode, User
from storefront.audit.models import AuditEntry
from storefront.cart.models import Cart, CartLine
from storefront.catalog.models import (
    POSTGRES_ONLY,
    Category,
    Product,
    ProductImage,
    Sale,
    SaleItem,
    Variant,
)
from storefront.checkout.models import ShippingMethod, TaxRate
from storefront.db import Base
from storefront.inventory.models import StockMovement
from storefront.orders.models import Order, OrderEvent, OrderLine
from storefront.payments.models import PaymentAttempt, WebhookEvent


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """For schema comparisons (autogenerate, the tests): leave out what only the migrations manage, the
    PostgreSQL search vector and its index."""
    table = getattr(getattr(obj, "table", None), "name", None)
    return (table, name) not in POSTGRES_ONLY


__all__ = [
    "Address",
    "AuditEntry",
    "Base",
    "Cart",
    "CartLine",
    "Category",
    "LoginAttempt",
    "Order",
    "OrderEvent",
    "OrderLine",
    "PaymentAttempt",
    "Product",
    "ProductImage",
    "RecoveryCode",
    "Sale",
    "SaleItem",
    "ShippingMethod",
    "StockMovement",
    "TaxRate",
    "User",
    "Variant",
    "WebhookEvent",
    "include_object",
]
