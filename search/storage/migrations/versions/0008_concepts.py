"""Concepts taught by examples (search/storage/concepts.py): each one's classifier and examples.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "concepts",
        sa.Column("id", Id, primary_key=True),
        sa.Column("name", sa.String(256), nullable=False, unique=True),
        sa.Column("weights", sa.LargeBinary, nullable=False),
        sa.Column("bias", sa.Float, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "concept_examples",
        sa.Column("concept_id", Id, sa.ForeignKey("concepts.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("item_id", Id, sa.ForeignKey("items.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("liked", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("concept_examples")
    op.drop_table("concepts")
