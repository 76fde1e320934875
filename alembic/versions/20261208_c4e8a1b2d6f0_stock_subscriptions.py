"""stock_subscriptions: "notify me" requests for sold-out variants (double opt-in)

Revision ID: c4e8a1b2d6f0
Revises: b7d2e4f1a9c3
Create Date: 2026-12-08 02:30:00.000000
"""

import sqlalchemy as sa

from alembic import op

revision = "c4e8a1b2d6f0"
down_revision = "b7d2e4f1a9c3"
branch_labels = None
depends_on = None

OPEN = "notified_at IS NULL AND unsubscribed_at IS NULL"


def upgrade() -> None:
    op.create_table(
        "stock_subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("variant_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("unsubscribed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["variant_id"],
            ["variants.id"],
            name=op.f("fk_stock_subscriptions_variant_id_variants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stock_subscriptions")),
    )
    op.create_index(
        "uq_stock_subscriptions_open",
        "stock_subscriptions",
        ["variant_id", "email"],
        unique=True,
        postgresql_where=sa.text(OPEN),
        sqlite_where=sa.text(OPEN),
    )
    op.create_index(
        "ix_stock_subscriptions_waiting", "stock_subscriptions", ["variant_id", "confirmed_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_stock_subscriptions_waiting", table_name="stock_subscriptions")
    op.drop_index("uq_stock_subscriptions_open", table_name="stock_subscriptions")
    op.drop_table("stock_subscriptions")
