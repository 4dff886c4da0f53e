"""Engine-specific full-text search over comments: SQLite FTS5 (table comments_fts) and
PostgreSQL tsvector (table comment_search, GIN index). Both indexes cover the body, author
name, email, website, IP and article URL, are split at punctuation, and are kept in step by
triggers (migration 0004). Every word typed must match, each as a prefix."""
import re

import sqlalchemy as sa

from .extensions import db
from .models import Comment

WORD = re.compile(r"[^\W_]+")
MAX_WORDS = 8


def words_of(query: str) -> list[str]:
    """The words of a moderator's search, lower-cased; punctuation only separates them."""
    return WORD.findall(query.lower())[:MAX_WORDS]


def matching(query: str) -> sa.ColumnElement[bool]:
    """A condition on Comment that holds for comments matching every word of query."""
    words = words_of(query)
    if not words:
        return sa.true()
    if db.engine.dialect.name == "sqlite":
        expression = " AND ".join(f'"{word}"*' for word in words)
        ids = sa.select(sa.column("rowid")).select_from(sa.table("comments_fts")).where(
            sa.text("comments_fts MATCH :fts").bindparams(fts=expression))
    else:
        expression = " & ".join(f"{word}:*" for word in words)
        ids = sa.select(sa.column("comment_id")).select_from(sa.table("comment_search")).where(
            sa.text("document @@ to_tsquery('simple', :fts)").bindparams(fts=expression))
    return Comment.id.in_(ids)
