"""feature flags, switches and samples, with the flags the waiting room, live stock and new checkout read

Revision ID: c4f1a9e2d7b3
Revises: a3f9c1d27e55
Create Date: 2026-12-08 02:00:00.000000
"""

import sqlalchemy as sa

from alembic import op

revision = "c4f1a9e2d7b3"
down_revision = "a3f9c1d27e55"
branch_labels = None
depends_on = None

# Off until staff turn them on: each guards a feature that should reach shoppers by choice, not by deploy.
FLAGS = [
    ("live_stock", "Live stock counts streamed to product pages (server-sent events)."),
    ("waiting_room", "Shoppers queue in the waiting room before a drop's pages."),
    ("new_checkout", "The new checkout steps."),
]


def upgrade() -> None:
    flags = op.create_table(
        "flags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("everyone", sa.Boolean(), nullable=True),
        sa.Column("staff", sa.Boolean(), nullable=False),
        sa.Column("percent", sa.Numeric(precision=4, scale=1), nullable=True),
        sa.Column("accounts", sa.JSON(), nullable=False),
        sa.Column("note", sa.String(length=255), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flags")),
        sa.UniqueConstraint("name", name=op.f("uq_flags_name")),
    )
    op.create_table(
        "switches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("note", sa.String(length=255), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_switches")),
        sa.UniqueConstraint("name", name=op.f("uq_switches_name")),
    )
    op.create_table(
        "samples",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("percent", sa.Numeric(precision=4, scale=1), nullable=False),
        sa.Column("note", sa.String(length=255), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_samples")),
        sa.UniqueConstraint("name", name=op.f("uq_samples_name")),
    )
    op.bulk_insert(
        flags,
        [
            {"name": name, "everyone": None, "staff": False, "percent": None, "accounts": [], "note": note}
            for name, note in FLAGS
        ],
    )


def downgrade() -> None:
    op.drop_table("samples")
    op.drop_table("switches")
    op.drop_table("flags")
