"""Full-text keywords per item: its file name, transcripts, titles and text fields.

SQLite gets an FTS5 index (external content over `keywords`, kept in step by triggers); PostgreSQL a
GIN index on to_tsvector('simple', text). Existing items are backfilled from their segments.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

Id = sa.BigInteger().with_variant(sa.Integer, "sqlite")

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SQLITE_FTS = [
    "CREATE VIRTUAL TABLE keywords_fts USING fts5(text, content='keywords', content_rowid='item_id', "
    "tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER keywords_ai AFTER INSERT ON keywords BEGIN "
    "INSERT INTO keywords_fts(rowid, text) VALUES (new.item_id, new.text); END",
    "CREATE TRIGGER keywords_ad AFTER DELETE ON keywords BEGIN "
    "INSERT INTO keywords_fts(keywords_fts, rowid, text) VALUES ('delete', old.item_id, old.text); END",
    "CREATE TRIGGER keywords_au AFTER UPDATE ON keywords BEGIN "
    "INSERT INTO keywords_fts(keywords_fts, rowid, text) VALUES ('delete', old.item_id, old.text); "
    "INSERT INTO keywords_fts(rowid, text) VALUES (new.item_id, new.text); END",
]


def upgrade() -> None:
    op.create_table(
        "keywords",
        sa.Column("item_id", Id, sa.ForeignKey("items.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("text", sa.Text, nullable=False),
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        for statement in SQLITE_FTS:
            op.execute(statement)
    else:
        op.execute("CREATE INDEX ix_keywords_tsv ON keywords USING GIN (to_tsvector('simple', text))")
    joined = "group_concat(s.text, ' ')" if sqlite else "string_agg(s.text, ' ')"
    op.execute(
        f"INSERT INTO keywords (item_id, text) SELECT i.id, i.uri || ' ' || COALESCE({joined}, '') "
        "FROM items i LEFT JOIN segments s ON s.item_id = i.id AND s.text IS NOT NULL "
        "WHERE i.status = 'indexed' GROUP BY i.id, i.uri"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("keywords_ai", "keywords_ad", "keywords_au"):
            op.execute(f"DROP TRIGGER {name}")
        op.execute("DROP TABLE keywords_fts")
    op.drop_table("keywords")
