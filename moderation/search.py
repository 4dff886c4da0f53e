"""Engine-specific full-text search over comments: SQLite FTS5 (table comments_fts) and
PostgreSQL tsvector (table comment_search, GIN index). Both indexes cover the body, author
name, email, website, IP and article URL, are split at punctuation, and are kept in step by
triggers (migration 0004). Every word typed must match, each as a prefix. Also what bulk imports
and erasures need of the SQLite index: its trigger paused, and the words of erased rows merged away."""
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


def pause_indexing() -> str | None:
    """For a bulk import, on SQLite: drop the trigger that adds each new comment to the FTS5 index,
    and return its SQL for index_in_bulk. Indexing row by row costs about twenty times what one
    INSERT ... SELECT at the end does. The drop is part of the import's transaction: a failed
    import rolls it back with everything else, and no other connection can write meanwhile (the
    import holds SQLite's write lock)."""
    if db.engine.dialect.name != "sqlite":
        return None
    trigger = db.session.scalar(sa.text(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'comments_fts_insert'"))
    if trigger:
        db.session.execute(sa.text("DROP TRIGGER comments_fts_insert"))
    return trigger


def index_in_bulk(after_id: int, trigger: str) -> None:
    """Index the comments stored since after_id, as the trigger would have, and put the trigger back."""
    db.session.execute(sa.text(
        "INSERT INTO comments_fts (rowid, body, author_name, author_email, author_website, ip, article_url) "
        "SELECT c.id, c.body, c.author_name, c.author_email, c.author_website, coalesce(c.ip, ''), a.url "
        "FROM comments c JOIN articles a ON a.id = c.article_id WHERE c.id > :after"), {"after": after_id})
    db.session.execute(sa.text(trigger))


def forget_changed_words() -> None:
    """SQLite's full-text index keeps the words of changed rows until its segments merge: merge now.
    (PostgreSQL's index is a column of comment_search, rewritten by the same statement.)"""
    if db.engine.dialect.name == "sqlite":
        db.session.execute(sa.text("INSERT INTO comments_fts (comments_fts) VALUES ('optimize')"))
