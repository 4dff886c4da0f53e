"""report tokens: the nonce of the signed form each reader report was sent with, so a report
form sends one report

Revision ID: 0011
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('reports') as batch_op:
        batch_op.add_column(sa.Column('nonce', sa.String(length=32), nullable=True))
        batch_op.create_index('ux_reports_nonce', ['nonce'], unique=True)


def downgrade():
    with op.batch_alter_table('reports') as batch_op:
        batch_op.drop_index('ux_reports_nonce')
        batch_op.drop_column('nonce')
