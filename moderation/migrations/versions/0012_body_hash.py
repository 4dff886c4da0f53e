"""body hash: an indexed digest of each comment's text, for the duplicate and repeated-text checks

Revision ID: 0012
Revises: 0011
"""
import hashlib

from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

BATCH = 5000


def upgrade():
    op.add_column('comments', sa.Column('body_hash', sa.String(length=32), nullable=True))
    comments = sa.table('comments', sa.column('id', sa.Integer), sa.column('body', sa.Text),
                        sa.column('body_hash', sa.String))
    bind = op.get_bind()
    last = 0
    while True:
        rows = bind.execute(sa.select(comments.c.id, comments.c.body).where(comments.c.id > last)
                            .order_by(comments.c.id).limit(BATCH)).all()
        if not rows:
            break
        bind.execute(comments.update().where(comments.c.id == sa.bindparam('row_id'))
                     .values(body_hash=sa.bindparam('hash')),
                     [{'row_id': id, 'hash': hashlib.blake2b(body.encode(), digest_size=16).hexdigest()}
                      for id, body in rows])
        last = rows[-1].id
    op.create_index('ix_comments_body_hash', 'comments', ['site_id', 'body_hash', 'created_at'])


def downgrade():
    op.drop_index('ix_comments_body_hash', table_name='comments')
    with op.batch_alter_table('comments') as batch:
        batch.drop_column('body_hash')
