"""join the flags and drop-mode line with notify and search

Revision ID: 0cc4d00e87bd
Revises: c41d7e2b9a10, c4e8a1b2d6f0
Create Date: 2026-12-08 03:34:12.701709
"""

revision = "0cc4d00e87bd"
down_revision = ("c41d7e2b9a10", "c4e8a1b2d6f0")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
