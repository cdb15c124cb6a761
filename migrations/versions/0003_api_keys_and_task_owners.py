"""api keys and task owners

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 13:21:39.764471
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_keys',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('prefix', sa.Text(), nullable=False),
    sa.Column('secret_hash', sa.Text(), nullable=False),
    sa.Column('role', sa.Text(), nullable=False),
    sa.Column('tenant', sa.Text(), nullable=False),
    sa.Column('max_concurrent', sa.Integer(), nullable=True),
    sa.Column('tokens_per_day', sa.BigInteger(), nullable=True),
    sa.Column('usd_per_day', sa.Numeric(precision=12, scale=4, asdecimal=False), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name'),
    sa.UniqueConstraint('prefix')
    )
    op.add_column('tasks', sa.Column('created_by', sa.Text(), nullable=True))
    op.create_index('tasks_owner_created_idx', 'tasks', ['owner', sa.literal_column('created_at DESC'), sa.literal_column('id DESC')], unique=False)
    op.create_index('tasks_created_by_idx', 'tasks', ['created_by', 'created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('tasks_created_by_idx', table_name='tasks')
    op.drop_index('tasks_owner_created_idx', table_name='tasks')
    op.drop_column('tasks', 'created_by')
    op.drop_table('api_keys')
