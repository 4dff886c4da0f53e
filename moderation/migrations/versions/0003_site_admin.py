"""site admin: authors marked trusted or untrusted by a moderator

Revision ID: 0003
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'author_trust',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('site_id', sa.Integer(), nullable=False),
        sa.Column('author_key', sa.String(length=64), nullable=True),
        sa.Column('email', sa.String(length=254), nullable=True),
        sa.Column('author_name', sa.String(length=100), nullable=False, server_default=''),
        sa.Column('trusted', sa.Boolean(), nullable=False),
        sa.Column('marked_by', sa.String(length=254), nullable=False, server_default=''),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['site_id'], ['sites.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('author_trust', schema=None) as batch_op:
        batch_op.create_index('ix_author_trust_key', ['site_id', 'author_key'], unique=False)
        batch_op.create_index('ix_author_trust_email', ['site_id', 'email'], unique=False)


def downgrade():
    with op.batch_alter_table('author_trust', schema=None) as batch_op:
        batch_op.drop_index('ix_author_trust_email')
        batch_op.drop_index('ix_author_trust_key')
    op.drop_table('author_trust')
