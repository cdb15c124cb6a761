"""task rollup: fleet totals (status counts, usage, end reasons, durations) without a scan

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'task_rollup',
        sa.Column('status', sa.Text(), primary_key=True),
        sa.Column('reason', sa.Text(), primary_key=True),
        sa.Column('model', sa.Text(), primary_key=True),
        sa.Column('bucket', sa.Integer(), primary_key=True),
        sa.Column('tasks', sa.BigInteger(), nullable=False),
        sa.Column('input_tokens', sa.BigInteger(), nullable=False),
        sa.Column('output_tokens', sa.BigInteger(), nullable=False),
        sa.Column('cache_read_input_tokens', sa.BigInteger(), nullable=False),
        sa.Column('cache_creation_input_tokens', sa.BigInteger(), nullable=False),
        sa.Column('cost_usd', sa.Numeric(20, 6), nullable=False),
        sa.Column('seconds', sa.Numeric(20, 3), nullable=False),
    )
    op.create_table(
        'task_rollup_mark',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('finished_before', sa.DateTime(timezone=True), nullable=False),
    )
    # Nothing is rolled up yet: every task is read live until the sweep's first fold.
    op.execute("INSERT INTO task_rollup_mark (id, finished_before) VALUES (1, '1970-01-01 00:00:00+00')")
    op.create_index('tasks_finished_idx', 'tasks', ['finished_at'])


def downgrade() -> None:
    op.drop_index('tasks_finished_idx', table_name='tasks')
    op.drop_table('task_rollup_mark')
    op.drop_table('task_rollup')
