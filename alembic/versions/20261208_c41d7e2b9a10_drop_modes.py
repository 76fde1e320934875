"""drop_modes: a sale's waiting room, checkout limit and flags; orders found by postal code for limits

Revision ID: c41d7e2b9a10
Revises: c4f1a9e2d7b3
Create Date: 2026-12-08 02:10:00.000000
"""

import sqlalchemy as sa

from alembic import op

revision = "c41d7e2b9a10"
down_revision = "c4f1a9e2d7b3"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drop_modes",
        sa.Column("sale_id", sa.Integer(), nullable=False),
        sa.Column("admit_rate", sa.Numeric(8, 2), nullable=False),
        sa.Column("checkout_cap", sa.Integer(), nullable=False),
        sa.Column("checkout_limit", sa.String(64), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.CheckConstraint("admit_rate > 0", name=op.f("ck_drop_modes_admit_rate_positive")),
        sa.CheckConstraint("checkout_cap > 0", name=op.f("ck_drop_modes_checkout_cap_positive")),
        sa.ForeignKeyConstraint(
            ["sale_id"], ["sales.id"], name=op.f("fk_drop_modes_sale_id_sales"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("sale_id", name=op.f("pk_drop_modes")),
    )
    # Per-customer limits find a customer's orders by shipping address too.
    op.create_index(op.f("ix_orders_ship_postal_code"), "orders", ["ship_postal_code"])


def downgrade() -> None:
    op.drop_index(op.f("ix_orders_ship_postal_code"), table_name="orders")
    op.drop_table("drop_modes")
