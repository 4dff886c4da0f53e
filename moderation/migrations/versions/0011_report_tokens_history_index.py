"""report tokens and an index for authors' records: the nonce of the signed form each reader
report was sent with (a report form sends one report), and comments by site, IP and status,
so counting an author's comments by IP reads the index alone

Revision ID: 0011
Revises: 0009
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('reports') as batch_op:
        batch_op.add_column(sa.Column('nonce', sa.String(length=32), nullable=True))
        batch_op.create_index('ux_reports_nonce', ['nonce'], unique=True)
    op.create_index('ix_comments_site_ip_status', 'comments', ['site_id', 'ip', 'status'])


def downgrade():
    op.drop_index('ix_comments_site_ip_status', table_name='comments')
    with op.batch_alter_table('reports') as batch_op:
        batch_op.drop_index('ux_reports_nonce')
        batch_op.drop_column('nonce')
