"""thread version: a per-article counter bumped by every public change, for cached threads;
an index for walking a thread from its top-level comments to their replies

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 19:10:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    # Plain ADD COLUMN (no batch table copy): SQLite supports it, and copying the articles
    # table with foreign keys on would cascade-delete its comments.
    op.add_column('articles', sa.Column('thread_version', sa.Integer(), nullable=False, server_default='1'))
    op.add_column('articles', sa.Column('thread_changed_at', sa.DateTime(), nullable=True))
    # A page of a thread walks down from its top-level comments to their replies.
    op.create_index('ix_comments_parent', 'comments', ['parent_id'])


def downgrade():
    op.drop_index('ix_comments_parent', table_name='comments')
    op.drop_column('articles', 'thread_changed_at')  # SQLite 3.35+ drops columns in place
    op.drop_column('articles', 'thread_version')
