"""tax rates can be switched off instead of deleted

Revision ID: 5d1e7c2a9b40
Revises: 884b5d78f859
Create Date: 2026-11-28 17:42:05.000000
"""

import sqlalchemy as sa

from alembic import op

revision = "5d1e7c2a9b40"
down_revision = "884b5d78f859"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every existing rate stays in force.
    op.add_column("tax_rates", sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("tax_rates") as batch:
        batch.drop_column("is_active")
