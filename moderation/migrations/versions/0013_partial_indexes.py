"""partial indexes: reported comments and imported ones only, so a new comment enters neither

Almost no comment is reported or imported, yet every comment posted was added to both indexes:
two of the twelve b-trees its insert and its commit write.

Revision ID: 0013
Revises: 0012
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

REPORTED = sa.text('reports > 0')
IMPORTED = sa.text('import_ref IS NOT NULL')


def upgrade():
    op.drop_index('ix_comments_reported', table_name='comments')
    op.create_index('ix_comments_reported', 'comments', ['site_id', 'reports'],
                    sqlite_where=REPORTED, postgresql_where=REPORTED)
    op.drop_index('ux_comments_import_ref', table_name='comments')
    op.create_index('ux_comments_import_ref', 'comments', ['site_id', 'import_ref'], unique=True,
                    sqlite_where=IMPORTED, postgresql_where=IMPORTED)


def downgrade():
    op.drop_index('ux_comments_import_ref', table_name='comments')
    op.create_index('ux_comments_import_ref', 'comments', ['site_id', 'import_ref'], unique=True)
    op.drop_index('ix_comments_reported', table_name='comments')
    op.create_index('ix_comments_reported', 'comments', ['site_id', 'reports'])
