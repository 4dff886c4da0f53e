"""readers' data: import references, the notify-me choice, the mail and webhook outbox

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 19:10:00

Plain ADD COLUMN and CREATE INDEX (no batch copy of comments), so that the triggers other
revisions put on the comments table survive on SQLite.
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('comments', sa.Column('import_ref', sa.String(length=200), nullable=True))
    op.add_column('comments', sa.Column('notify', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_index('ux_comments_import_ref', 'comments', ['site_id', 'import_ref'], unique=True)
    op.create_index('ix_comments_email', 'comments', ['author_email'])
    op.create_index('ix_comments_created', 'comments', ['created_at'])

    op.create_table('outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=True),
    sa.Column('recipient', sa.String(length=2000), nullable=False),
    sa.Column('subject', sa.String(length=300), nullable=False, server_default=''),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('dedupe_key', sa.String(length=200), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False, server_default='0'),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=False),
    sa.Column('sent_at', sa.DateTime(), nullable=True),
    sa.Column('failed_at', sa.DateTime(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=False, server_default=''),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dedupe_key'),
    )
    op.create_index('ix_outbox_due', 'outbox', ['sent_at', 'failed_at', 'next_attempt_at'])

    op.create_table('notification_settings',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False, server_default='off'),
    sa.Column('digest_minutes', sa.Integer(), nullable=False, server_default='60'),
    sa.Column('last_digest_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'site_id'),
    )

    op.create_table('webhooks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('url', sa.String(length=2000), nullable=False),
    sa.Column('secret', sa.String(length=64), nullable=False),
    sa.Column('events', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    )


def downgrade():
    op.drop_table('webhooks')
    op.drop_table('notification_settings')
    op.drop_index('ix_outbox_due', table_name='outbox')
    op.drop_table('outbox')
    op.drop_index('ix_comments_created', table_name='comments')
    op.drop_index('ix_comments_email', table_name='comments')
    op.drop_index('ux_comments_import_ref', table_name='comments')
    with op.batch_alter_table('comments') as batch_op:
        batch_op.drop_column('notify')
        batch_op.drop_column('import_ref')
