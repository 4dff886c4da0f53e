"""Engine-specific full-text search over comments: SQLite FTS5 (table comments_fts) and
PostgreSQL tsvector (table comment_search, GIN index). Both indexes cover the body, author
name, email, website, IP and article URL, and are split at punctuation. Every word typed must
match, each as a prefix.

PostgreSQL's index is kept in step by triggers (migration 0004). SQLite's takes new comments in
batches (migration 0014): FTS5 writes a segment and merges segments at every transaction that
adds to it, which cost a tenth of a post when each comment was added alone. The index holds
every comment up to its highest rowid; the newer ones wait until a post takes the ids to a
multiple of INDEX_BATCH, which indexes them all, and a search tests each waiting comment
against the query in an index of its own (waiting_matches): no comment is ever missing."""
import re
import sqlite3
import threading

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from .db_engine import is_sqlite
from .extensions import db
from .models import Article, Comment

WORD = re.compile(r"[^\W_]+")
MAX_WORDS = 8
INDEX_BATCH = 32

# comments_fts as migration 0004 made it: waiting_matches builds its one-comment index the same way.
FTS_TABLE = ("CREATE VIRTUAL TABLE comments_fts USING fts5(body, author_name, author_email, author_website, ip, "
             "article_url, tokenize = 'unicode61')")
INDEXED_UP_TO = "(SELECT coalesce(max(rowid), 0) FROM comments_fts)"
INSERT = "INSERT INTO comments_fts (rowid, body, author_name, author_email, author_website, ip, article_url) "
INDEX_WAITING = sa.text(
    INSERT + "SELECT c.id, c.body, c.author_name, c.author_email, c.author_website, coalesce(c.ip, ''), a.url "
    "FROM comments c JOIN articles a ON a.id = c.article_id WHERE c.id > " + INDEXED_UP_TO)
ONE_COMMENT = INSERT + "VALUES (1, ?, ?, ?, ?, ?, ?)"


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
        indexed = sa.select(sa.column("rowid")).select_from(sa.table("comments_fts")).where(
            sa.text("comments_fts MATCH :fts").bindparams(fts=expression))
        article_url = sa.select(Article.url).where(Article.id == Comment.article_id).scalar_subquery()
        waiting = sa.and_(Comment.id > sa.text(INDEXED_UP_TO), sa.func.waiting_matches(
            expression, Comment.body, Comment.author_name, Comment.author_email, Comment.author_website,
            sa.func.coalesce(Comment.ip, ""), article_url))
        return sa.or_(Comment.id.in_(indexed), waiting)
    expression = " & ".join(f"{word}:*" for word in words)
    ids = sa.select(sa.column("comment_id")).select_from(sa.table("comment_search")).where(
        sa.text("document @@ to_tsquery('simple', :fts)").bindparams(fts=expression))
    return Comment.id.in_(ids)


def index_if_due(comment_id: int) -> None:
    """After a new comment's insert, in its transaction: on SQLite, index the comments waiting
    when this one's id is a multiple of INDEX_BATCH (ids grow by one on SQLite, so one post in
    INDEX_BATCH does it, and indexes whatever an earlier one missed)."""
    if comment_id % INDEX_BATCH == 0:
        index_waiting()


def index_waiting() -> None:
    """On SQLite, add every comment not yet in the index (after a post, an import)."""
    if db.engine.dialect.name == "sqlite":
        db.session.execute(INDEX_WAITING)


_one_comment = threading.local()


def waiting_matches(expression: str, *fields: str) -> bool:
    """Does one comment, not yet indexed, match a search? Asked of an in-memory FTS5 table
    holding that comment alone, with comments_fts's tokenizer: the same words, prefixes and
    accents match as in the index itself. One per thread: sqlite3 connections are not shared."""
    connection = getattr(_one_comment, "connection", None)
    if connection is None:
        connection = sqlite3.connect(":memory:", isolation_level=None)
        connection.execute(FTS_TABLE)
        _one_comment.connection = connection
    connection.execute(ONE_COMMENT, fields)
    try:
        return connection.execute("SELECT count(*) FROM comments_fts WHERE comments_fts MATCH ?",
                                  (expression,)).fetchone()[0] > 0
    finally:
        connection.execute("DELETE FROM comments_fts")


@event.listens_for(Engine, "connect")
def add_waiting_matches(dbapi_connection, connection_record) -> None:
    if is_sqlite(dbapi_connection):
        dbapi_connection.create_function("waiting_matches", 7, waiting_matches, deterministic=True)


def forget_changed_words() -> None:
    """SQLite's full-text index keeps the words of changed rows until its segments merge: merge now.
    (PostgreSQL's index is a column of comment_search, rewritten by the same statement.)"""
    if db.engine.dialect.name == "sqlite":
        db.session.execute(sa.text("INSERT INTO comments_fts (comments_fts) VALUES ('optimize')"))
