"""Keyframe thumbnails on segments, and an index on the segment's space.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("segments", sa.Column("thumbnail", sa.LargeBinary))
    op.create_index("ix_segments_space", "segments", ["space"])


def downgrade() -> None:
    op.drop_index("ix_segments_space", "segments")
    op.drop_column("segments", "thumbnail")
