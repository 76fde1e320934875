"""orders checkout payments

Revision ID: 0472badb3dbd
Revises: eb253c5b6060
Create Date: 2026-11-28 14:42:52.881858
"""

from decimal import Decimal

import sqlalchemy as sa

from alembic import op

revision = "0472badb3dbd"
down_revision = "eb253c5b6060"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shipping_methods",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("price", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("free_over", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("countries", sa.String(length=200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shipping_methods")),
        sa.UniqueConstraint("code", name=op.f("uq_shipping_methods_code")),
    )
    op.create_table(
        "tax_rates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("region", sa.String(length=80), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("rate", sa.Numeric(precision=6, scale=4), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tax_rates")),
        sa.UniqueConstraint("country", "region", name="uq_tax_rates_country_region"),
    )
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("notification_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=80), nullable=False),
        sa.Column("trans_id", sa.String(length=20), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_events")),
        sa.UniqueConstraint("notification_id", name=op.f("uq_webhook_events_notification_id")),
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("subtotal", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("shipping_total", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("tax_total", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("total", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("shipping_method", sa.String(length=40), nullable=False),
        sa.Column("ship_name", sa.String(length=120), nullable=False),
        sa.Column("ship_line1", sa.String(length=120), nullable=False),
        sa.Column("ship_line2", sa.String(length=120), nullable=False),
        sa.Column("ship_city", sa.String(length=80), nullable=False),
        sa.Column("ship_region", sa.String(length=80), nullable=False),
        sa.Column("ship_postal_code", sa.String(length=16), nullable=False),
        sa.Column("ship_country", sa.String(length=2), nullable=False),
        sa.Column("ship_phone", sa.String(length=32), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("payment_message", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("total >= 0", name=op.f("ck_orders_total_not_negative")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_orders_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_orders_idempotency_key")),
        sa.UniqueConstraint("number", name=op.f("uq_orders_number")),
    )
    op.create_index(op.f("ix_orders_created_at"), "orders", ["created_at"], unique=False)
    op.create_index(op.f("ix_orders_email"), "orders", ["email"], unique=False)
    op.create_index(op.f("ix_orders_status"), "orders", ["status"], unique=False)
    op.create_index("ix_orders_status_expires_at", "orders", ["status", "expires_at"], unique=False)
    op.create_index(op.f("ix_orders_user_id"), "orders", ["user_id"], unique=False)
    op.create_table(
        "order_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_order_events_order_id_orders"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_events")),
    )
    op.create_index(op.f("ix_order_events_order_id"), "order_events", ["order_id"], unique=False)
    op.create_table(
        "payment_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("invoice_number", sa.String(length=20), nullable=False),
        sa.Column("nonce_descriptor", sa.String(length=64), nullable=False),
        sa.Column("nonce_value", sa.Text(), nullable=True),
        sa.Column("nonce_hash", sa.String(length=64), nullable=False),
        sa.Column("trans_id", sa.String(length=20), nullable=False),
        sa.Column("ref_trans_id", sa.String(length=20), nullable=False),
        sa.Column("auth_code", sa.String(length=8), nullable=False),
        sa.Column("response_code", sa.String(length=4), nullable=False),
        sa.Column("reason_code", sa.String(length=8), nullable=False),
        sa.Column("message", sa.String(length=255), nullable=False),
        sa.Column("avs", sa.String(length=2), nullable=False),
        sa.Column("cvv", sa.String(length=2), nullable=False),
        sa.Column("account", sa.String(length=24), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_payment_attempts_order_id_orders"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_attempts")),
        sa.UniqueConstraint("order_id", "kind", "nonce_hash", name="uq_payment_attempts_order_kind_nonce"),
    )
    op.create_index(op.f("ix_payment_attempts_order_id"), "payment_attempts", ["order_id"], unique=False)
    op.create_index(op.f("ix_payment_attempts_status"), "payment_attempts", ["status"], unique=False)
    op.create_index(
        "ix_payment_attempts_status_updated_at", "payment_attempts", ["status", "updated_at"], unique=False
    )
    op.create_table(
        "order_lines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("variant_id", sa.Integer(), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("product_name", sa.String(length=200), nullable=False),
        sa.Column("variant_name", sa.String(length=120), nullable=False),
        sa.Column("unit_price", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("line_total", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_order_lines_quantity_positive")),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_order_lines_order_id_orders"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["variant_id"], ["variants.id"], name=op.f("fk_order_lines_variant_id_variants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_lines")),
    )
    op.create_index(op.f("ix_order_lines_order_id"), "order_lines", ["order_id"], unique=False)
    op.create_index(op.f("ix_order_lines_variant_id"), "order_lines", ["variant_id"], unique=False)
    op.add_column("variants", sa.Column("per_customer_limit", sa.Integer(), nullable=True))
    seed_shipping_and_tax()


def seed_shipping_and_tax() -> None:
    """Sensible defaults so a new shop can take orders; staff change them later."""
    methods = sa.table(
        "shipping_methods",
        sa.column("code", sa.String),
        sa.column("name", sa.String),
        sa.column("description", sa.String),
        sa.column("price", sa.Numeric),
        sa.column("free_over", sa.Numeric),
        sa.column("countries", sa.String),
        sa.column("position", sa.Integer),
        sa.column("is_active", sa.Boolean),
    )
    op.bulk_insert(
        methods,
        [
            {
                "code": "standard",
                "name": "Standard",
                "description": "3–5 business days",
                "price": Decimal("4.95"),
                "free_over": Decimal("50.00"),
                "countries": "US",
                "position": 1,
                "is_active": True,
            },
            {
                "code": "express",
                "name": "Express",
                "description": "1–2 business days",
                "price": Decimal("12.95"),
                "free_over": None,
                "countries": "US",
                "position": 2,
                "is_active": True,
            },
            {
                "code": "international",
                "name": "International",
                "description": "7–14 business days",
                "price": Decimal("14.95"),
                "free_over": Decimal("100.00"),
                "countries": "CA,GB,IE,AU,NZ,DE,FR,NL,ES,IT",
                "position": 3,
                "is_active": True,
            },
        ],
    )
    rates = sa.table(
        "tax_rates",
        sa.column("country", sa.String),
        sa.column("region", sa.String),
        sa.column("name", sa.String),
        sa.column("rate", sa.Numeric),
    )
    op.bulk_insert(
        rates,
        [
            {"country": "US", "region": "CA", "name": "California sales tax", "rate": Decimal("0.0725")},
            {"country": "US", "region": "NY", "name": "New York sales tax", "rate": Decimal("0.0400")},
            {"country": "US", "region": "TX", "name": "Texas sales tax", "rate": Decimal("0.0625")},
            {"country": "US", "region": "WA", "name": "Washington sales tax", "rate": Decimal("0.0650")},
            {"country": "US", "region": "IN", "name": "Indiana sales tax", "rate": Decimal("0.0700")},
            {"country": "CA", "region": "", "name": "GST", "rate": Decimal("0.0500")},
            {"country": "GB", "region": "", "name": "VAT", "rate": Decimal("0.2000")},
            {"country": "IE", "region": "", "name": "VAT", "rate": Decimal("0.2300")},
            {"country": "AU", "region": "", "name": "GST", "rate": Decimal("0.1000")},
            {"country": "NZ", "region": "", "name": "GST", "rate": Decimal("0.1500")},
            {"country": "DE", "region": "", "name": "MwSt", "rate": Decimal("0.1900")},
            {"country": "FR", "region": "", "name": "TVA", "rate": Decimal("0.2000")},
            {"country": "NL", "region": "", "name": "BTW", "rate": Decimal("0.2100")},
            {"country": "ES", "region": "", "name": "IVA", "rate": Decimal("0.2100")},
            {"country": "IT", "region": "", "name": "IVA", "rate": Decimal("0.2200")},
        ],
    )


def downgrade() -> None:
    op.drop_column("variants", "per_customer_limit")
    op.drop_index(op.f("ix_order_lines_variant_id"), table_name="order_lines")
    op.drop_index(op.f("ix_order_lines_order_id"), table_name="order_lines")
    op.drop_table("order_lines")
    op.drop_index("ix_payment_attempts_status_updated_at", table_name="payment_attempts")
    op.drop_index(op.f("ix_payment_attempts_status"), table_name="payment_attempts")
    op.drop_index(op.f("ix_payment_attempts_order_id"), table_name="payment_attempts")
    op.drop_table("payment_attempts")
    op.drop_index(op.f("ix_order_events_order_id"), table_name="order_events")
    op.drop_table("order_events")
    op.drop_index(op.f("ix_orders_user_id"), table_name="orders")
    op.drop_index("ix_orders_status_expires_at", table_name="orders")
    op.drop_index(op.f("ix_orders_status"), table_name="orders")
    op.drop_index(op.f("ix_orders_email"), table_name="orders")
    op.drop_index(op.f("ix_orders_created_at"), table_name="orders")
    op.drop_table("orders")
    op.drop_table("webhook_events")
    op.drop_table("tax_rates")
    op.drop_table("shipping_methods")
