"""User metadata on items and tags with scores.

`items.fields` keeps a manifest row as given (JSON, for display); `item_fields` holds the same values one
row per field, typed (a number in `num`, anything else in `text`), so filters compare numbers as numbers
with plain indexed SQL on every database. `tags` holds labels with scores (zero-shot classification).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

Id = sa.BigInteger().with_variant(sa.Integer, "sqlite")

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("items", sa.Column("fields", sa.JSON))
    op.create_table(
        "item_fields",
        sa.Column("item_id", Id, sa.ForeignKey("items.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("num", sa.Float),
        sa.Column("text", sa.Text),
    )
    op.create_index("ix_item_fields_name_num", "item_fields", ["name", "num"])
    op.create_table(
        "tags",
        sa.Column("item_id", Id, sa.ForeignKey("items.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("label", sa.String(256), primary_key=True),
        sa.Column("score", sa.Float, nullable=False),
    )
    op.create_index("ix_tags_label", "tags", ["label"])


def downgrade() -> None:
    op.drop_index("ix_tags_label", "tags")
    op.drop_table("tags")
    op.drop_index("ix_item_fields_name_num", "item_fields")
    op.drop_table("item_fields")
    op.drop_column("items", "fields")
