"""search index in batches (SQLite): a new comment is no longer added to the FTS5 index by a
trigger of its own insert; the post that takes the comment ids to a multiple of 32 indexes every
comment waiting, in one statement, and a search reads the waiting ones directly (search.py)

Adding one row per transaction made FTS5 write a segment and merge segments every time: a tenth
of the work of posting a comment. The update trigger now re-indexes only comments already in the
index (its WHEN is read before the trigger's DELETE), so that the index always holds exactly the
comments up to its highest rowid.
PostgreSQL's tsvector table is unchanged.

Revision ID: 0014
Revises: 0013
"""
from alembic import op


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

COLUMNS = "rowid, body, author_name, author_email, author_website, ip, article_url"
NEW_ROW = "new.id, new.body, new.author_name, new.author_email, new.author_website, coalesce(new.ip, ''), " \
          "(SELECT url FROM articles WHERE id = new.article_id)"
INDEXED_UP_TO = "(SELECT coalesce(max(rowid), 0) FROM comments_fts)"
UPDATED = """CREATE TRIGGER comments_fts_update AFTER UPDATE OF body, author_name, author_email, author_website, ip
    ON comments{condition} BEGIN
    DELETE FROM comments_fts WHERE rowid = old.id;
    INSERT INTO comments_fts ({columns}) VALUES ({row});
END"""


def upgrade():
    if op.get_bind().dialect.name != 'sqlite':
        return
    op.execute("DROP TRIGGER comments_fts_insert")
    op.execute("DROP TRIGGER comments_fts_update")
    op.execute(UPDATED.format(columns=COLUMNS, row=NEW_ROW, condition=f" WHEN old.id <= {INDEXED_UP_TO}"))


def downgrade():
    if op.get_bind().dialect.name != 'sqlite':
        return
    op.execute(f"""INSERT INTO comments_fts ({COLUMNS})
        SELECT c.id, c.body, c.author_name, c.author_email, c.author_website, coalesce(c.ip, ''), a.url
        FROM comments c JOIN articles a ON a.id = c.article_id WHERE c.id > {INDEXED_UP_TO}""")
    op.execute("DROP TRIGGER comments_fts_update")
    op.execute(UPDATED.format(columns=COLUMNS, row=NEW_ROW, condition=""))
    op.execute(f"""CREATE TRIGGER comments_fts_insert AFTER INSERT ON comments BEGIN
        INSERT INTO comments_fts ({COLUMNS}) VALUES ({NEW_ROW});
    END""")
