"""Stacks: pictures of one moment, or copies of one picture, with their best shot (search/storage/stacks.py).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "stacks",
        sa.Column("id", Id, primary_key=True),
        sa.Column("best_item", Id, sa.ForeignKey("items.id", ondelete="SET NULL")),
        sa.Column("picked", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "stack_members",
        sa.Column("item_id", Id, sa.ForeignKey("items.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("stack_id", Id, sa.ForeignKey("stacks.id", ondelete="CASCADE"), nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("stack_members")
    op.drop_table("stacks")
