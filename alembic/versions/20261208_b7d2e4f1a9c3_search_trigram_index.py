"""products: pg_trgm and a trigram index on the name, for close matches and suggestions (PostgreSQL only)

Revision ID: b7d2e4f1a9c3
Revises: a3f9c1d27e55
Create Date: 2026-12-08 02:20:00.000000

A misspelt word ("neckalce") matches nothing in full-text search; pg_trgm's word similarity finds the names
it is close to, and the GIN trigram index answers that (`<%`) and the suggestions' ILIKE without reading every
product. SQLite (the embedded default) has neither and searches exact words only.
"""

from alembic import op

revision = "b7d2e4f1a9c3"
down_revision = "a3f9c1d27e55"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute("CREATE INDEX ix_products_name_trgm ON products USING gin (name gin_trgm_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX ix_products_name_trgm")
    # The extension stays: other objects may have come to use it since.
