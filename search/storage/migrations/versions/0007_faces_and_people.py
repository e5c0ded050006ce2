"""Faces found in pictures and keyframes, grouped into people (search/storage/people.py).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "people",
        sa.Column("id", Id, primary_key=True),
        sa.Column("name", sa.String(256), index=True),
        sa.Column("hidden", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "faces",
        sa.Column("id", Id, primary_key=True),
        sa.Column("item_id", Id, sa.ForeignKey("items.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column(
            "segment_id", Id, sa.ForeignKey("segments.id", ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column("box", sa.JSON, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("sharpness", sa.Float, nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
        sa.Column("person_id", Id, sa.ForeignKey("people.id", ondelete="SET NULL"), index=True),
    )
    op.create_table(
        "face_refusals",
        sa.Column("face_id", Id, sa.ForeignKey("faces.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("person_id", Id, sa.ForeignKey("people.id", ondelete="CASCADE"), primary_key=True),
    )


def downgrade() -> None:
    op.drop_table("face_refusals")
    op.drop_table("faces")
    op.drop_table("people")
