"""the moderator's workspace: reader reports, bans, review claims, full-text search

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 19:10:00

The search index is engine-specific (see moderation/search.py): an FTS5 table on SQLite, a
tsvector table with a GIN index on PostgreSQL, both kept in step with comments by triggers.
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

SQLITE_SEARCH = [
    """CREATE VIRTUAL TABLE comments_fts USING fts5(
        body, author_name, author_email, author_website, ip, article_url, tokenize = 'unicode61')""",
    """CREATE TRIGGER comments_fts_insert AFTER INSERT ON comments BEGIN
        INSERT INTO comments_fts (rowid, body, author_name, author_email, author_website, ip, article_url)
        VALUES (new.id, new.body, new.author_name, new.author_email, new.author_website, coalesce(new.ip, ''),
                (SELECT url FROM articles WHERE id = new.article_id));
    END""",
    """CREATE TRIGGER comments_fts_update AFTER UPDATE OF body, author_name, author_email, author_website, ip
        ON comments BEGIN
        DELETE FROM comments_fts WHERE rowid = old.id;
        INSERT INTO comments_fts (rowid, body, author_name, author_email, author_website, ip, article_url)
        VALUES (new.id, new.body, new.author_name, new.author_email, new.author_website, coalesce(new.ip, ''),
                (SELECT url FROM articles WHERE id = new.article_id));
    END""",
    """CREATE TRIGGER comments_fts_delete AFTER DELETE ON comments BEGIN
        DELETE FROM comments_fts WHERE rowid = old.id;
    END""",
    """INSERT INTO comments_fts (rowid, body, author_name, author_email, author_website, ip, article_url)
        SELECT c.id, c.body, c.author_name, c.author_email, c.author_website, coalesce(c.ip, ''), a.url
        FROM comments c JOIN articles a ON a.id = c.article_id""",
]

# Punctuation becomes spaces, so "ada@example.org" and a URL are searchable by their parts,
# exactly as SQLite's unicode61 tokenizer splits them.
POSTGRES_DOCUMENT = """to_tsvector('simple', regexp_replace(concat_ws(' ', {c}.body, {c}.author_name,
    {c}.author_email, {c}.author_website, {c}.ip, {a}), '[^[:alnum:]]+', ' ', 'g'))"""
POSTGRES_SEARCH = [
    """CREATE TABLE comment_search (
        comment_id integer PRIMARY KEY REFERENCES comments (id) ON DELETE CASCADE,
        document tsvector NOT NULL)""",
    "CREATE INDEX ix_comment_search_document ON comment_search USING gin (document)",
    """CREATE FUNCTION comment_search_refresh() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO comment_search (comment_id, document)
        VALUES (NEW.id, """ + POSTGRES_DOCUMENT.format(
        c="NEW", a="(SELECT url FROM articles WHERE id = NEW.article_id)") + """)
        ON CONFLICT (comment_id) DO UPDATE SET document = EXCLUDED.document;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER comment_search_insert AFTER INSERT ON comments
        FOR EACH ROW EXECUTE FUNCTION comment_search_refresh()""",
    """CREATE TRIGGER comment_search_update AFTER UPDATE OF body, author_name, author_email, author_website, ip
        ON comments FOR EACH ROW EXECUTE FUNCTION comment_search_refresh()""",
    """INSERT INTO comment_search (comment_id, document)
        SELECT c.id, """ + POSTGRES_DOCUMENT.format(c="c", a="a.url") + """
        FROM comments c JOIN articles a ON a.id = c.article_id""",
]


def upgrade():
    # Plain ALTER TABLE (no batch): on SQLite a batch copy of comments would drop the search triggers.
    op.add_column('comments', sa.Column('reports', sa.Integer(), nullable=False, server_default='0'))
    op.create_index('ix_comments_site_email', 'comments', ['site_id', 'author_email', 'status'])
    op.create_index('ix_comments_reported', 'comments', ['site_id', 'reports'])
    op.create_table(
        'reports',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('comment_id', sa.Integer(), nullable=False),
        sa.Column('reader', sa.String(length=64), nullable=False),
        sa.Column('reason', sa.String(length=16), nullable=False),
        sa.Column('text', sa.String(length=500), nullable=False, server_default=''),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['comment_id'], ['comments.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('comment_id', 'reader'),
    )
    op.create_index('ix_reports_reader_time', 'reports', ['reader', 'created_at'])
    op.create_table(
        'bans',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('site_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('value', sa.String(length=254), nullable=False),
        sa.Column('until', sa.DateTime(), nullable=False),
        sa.Column('note', sa.String(length=500), nullable=False, server_default=''),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['site_id'], ['sites.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_bans_site_until', 'bans', ['site_id', 'until'])
    op.create_table(
        'claims',
        sa.Column('comment_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('claimed_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['comment_id'], ['comments.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('comment_id'),
    )
    statements = SQLITE_SEARCH if op.get_bind().dialect.name == 'sqlite' else POSTGRES_SEARCH
    for statement in statements:
        op.execute(statement)


def downgrade():
    if op.get_bind().dialect.name == 'sqlite':
        for trigger in ('comments_fts_insert', 'comments_fts_update', 'comments_fts_delete'):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS comments_fts")
    else:
        op.execute("DROP TRIGGER IF EXISTS comment_search_insert ON comments")
        op.execute("DROP TRIGGER IF EXISTS comment_search_update ON comments")
        op.execute("DROP TABLE IF EXISTS comment_search")
        op.execute("DROP FUNCTION IF EXISTS comment_search_refresh()")
    op.drop_table('claims')
    op.drop_index('ix_bans_site_until', table_name='bans')
    op.drop_table('bans')
    op.drop_index('ix_reports_reader_time', table_name='reports')
    op.drop_table('reports')
    op.drop_index('ix_comments_reported', table_name='comments')
    op.drop_index('ix_comments_site_email', table_name='comments')
    with op.batch_alter_table('comments') as batch_op:
        batch_op.drop_column('reports')
