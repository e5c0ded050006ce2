"""Word times on speech segments: a found moment is the words that matched.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("segments", sa.Column("words", sa.JSON))


def downgrade() -> None:
    op.drop_column("segments", "words")
