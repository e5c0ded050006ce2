"""Initial schema: items, segments with stored vectors, state.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

Id = sa.BigInteger().with_variant(sa.Integer, "sqlite")  # SQLite's AUTOINCREMENT needs INTEGER PRIMARY KEY

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "items",
        sa.Column("id", Id, primary_key=True),
        sa.Column("uri", sa.String(4096), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("mtime_ns", sa.BigInteger, nullable=False),
        sa.Column("content_hash", sa.String(64)),
        sa.Column("width", sa.Integer),
        sa.Column("height", sa.Integer),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("error", sa.Text),
        sa.Column("meta", sa.JSON),
        sa.Column("indexed_at", sa.DateTime(timezone=True), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "segments",
        sa.Column("id", Id, primary_key=True),
        sa.Column("item_id", Id, sa.ForeignKey("items.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("space", sa.String(16), nullable=False),
        sa.Column("t_start", sa.Float),
        sa.Column("t_end", sa.Float),
        sa.Column("text", sa.Text),
        sa.Column("vector", sa.LargeBinary, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "state",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("segments")
    op.drop_table("items")
    op.drop_table("state")
