"""Text read in pictures (OCR): each line's box and confidence on the segment that holds the text.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("segments", sa.Column("written", sa.JSON))


def downgrade() -> None:
    op.drop_column("segments", "written")
