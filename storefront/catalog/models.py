"""Catalog: categories, products, their variants (each a SKU with price and stock) and images."""

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    func,
    literal_column,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storefront.db import Base


class Category(Base):
    __tablename__ = "categories"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
    position: Mapped[int] = mapped_column(default=0)

    products: Mapped[list["Product"]] = relationship(back_populates="category")


# PostgreSQL keeps a generated tsvector column for full-text search (see the migration a3f9c1d27e55). It is
# not mapped: SQLite (the embedded default) has no such column and searches with LIKE, and nothing writes it.
# Schema comparisons leave these two alone.
SEARCH_VECTOR = literal_column("products.search_vector")
POSTGRES_ONLY = {("products", "search_vector"), ("products", "ix_products_search_vector")}


class Product(Base):
    __tablename__ = "products"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(160), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"), index=True)
    # The lowest variant price, kept by the services so listings sort and filter on one table.
    price_from: Mapped[Decimal]
    is_featured: Mapped[bool] = mapped_column(default=False)
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now(), index=True)

    category: Mapped[Category] = relationship(back_populates="products")
    variants: Mapped[list["Variant"]] = relationship(
        back_populates="product", order_by="Variant.position", cascade="all, delete-orphan"
    )
    images: Mapped[list["ProductImage"]] = relationship(
        back_populates="product", order_by="ProductImage.position", cascade="all, delete-orphan"
    )

    __table_args__ = (
        CheckConstraint("price_from >= 0", name="price_from_not_negative"),
        Index("ix_products_price_from", "price_from"),
    )

    @property
    def primary_image(self) -> "ProductImage | None":
        return self.images[0] if self.images else None


class Variant(Base):
    """One sellable SKU. Stock is two-stage: units are reserved at checkout and leave on_hand at shipment."""

    __tablename__ = "variants"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    attributes: Mapped[dict] = mapped_column(JSON, default=dict)
    price: Mapped[Decimal]
    on_hand: Mapped[int] = mapped_column(default=0)
    reserved: Mapped[int] = mapped_column(default=0)
    # At most this many units per customer across their open and paid orders; None means no limit.
    per_customer_limit: Mapped[int | None]
    position: Mapped[int] = mapped_column(default=0)

    product: Mapped[Product] = relationship(back_populates="variants")

    __table_args__ = (
        CheckConstraint("price >= 0", name="price_not_negative"),
        # The backstop under the guarded UPDATE: a unit can never be reserved twice.
        CheckConstraint("reserved >= 0 AND reserved <= on_hand", name="stock_bounds"),
    )

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


class ProductImage(Base):
    __tablename__ = "product_images"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    path: Mapped[str] = mapped_column(String(255))
    alt: Mapped[str] = mapped_column(String(255), default="")
    width: Mapped[int]
    height: Mapped[int]
    position: Mapped[int] = mapped_column(default=0)

    product: Mapped[Product] = relationship(back_populates="images")


class Sale(Base):
    """A scheduled drop: its variants sell at a sale price between starts_at and ends_at, and not outside."""

    __tablename__ = "sales"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    starts_at: Mapped[datetime] = mapped_column(index=True)
    ends_at: Mapped[datetime] = mapped_column(index=True)
    per_customer_limit: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    items: Mapped[list["SaleItem"]] = relationship(back_populates="sale", cascade="all, delete-orphan")

    __table_args__ = (CheckConstraint("ends_at > starts_at", name="ends_after_start"),)


class SaleItem(Base):
    __tablename__ = "sale_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    sale_id: Mapped[int] = mapped_column(ForeignKey("sales.id", ondelete="CASCADE"), index=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id"), index=True)
    sale_price: Mapped[Decimal]

    sale: Mapped[Sale] = relationship(back_populates="items")

    __table_args__ = (
        UniqueConstraint("sale_id", "variant_id", name="uq_sale_items_sale_variant"),
        CheckConstraint("sale_price >= 0", name="sale_price_not_negative"),
    )
