"""failed runs are retried by class, and every attempt is recorded

``tasks.retries``: the task's own retry rules (cca_core.retries); ``retry_at``: when a
task parked after a failure (``waiting_for = 'retry'``) runs again; ``retried``: how many runs
its retry policy granted, so a poison task that kills workers is still stopped after
``agents.max_attempts`` lost runs. ``task_attempts``: one row per run.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 06:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('tasks', sa.Column('retries', postgresql.JSONB(), nullable=True))
    op.add_column('tasks', sa.Column('retry_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('tasks', sa.Column('retried', sa.Integer(), nullable=False, server_default='0'))
    op.create_index('tasks_retry_due_idx', 'tasks', ['retry_at'],
                    postgresql_where=sa.text("waiting_for = 'retry'"))
    op.create_table(
        'task_attempts',
        sa.Column('task_id', postgresql.UUID(as_uuid=True),
                  sa.ForeignKey('tasks.id', ondelete='CASCADE'), primary_key=True),
        sa.Column('attempt', sa.Integer(), primary_key=True),
        sa.Column('worker', sa.Text(), nullable=True),
        sa.Column('started_at', sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('status', sa.Text(), nullable=True),
        sa.Column('error_code', sa.Text(), nullable=True),
        sa.Column('error_message', sa.Text(), nullable=True),
        sa.Column('input_tokens', sa.BigInteger(), nullable=False, server_default='0'),
        sa.Column('output_tokens', sa.BigInteger(), nullable=False, server_default='0'),
        sa.Column('cache_read_input_tokens', sa.BigInteger(), nullable=False, server_default='0'),
        sa.Column('cache_creation_input_tokens', sa.BigInteger(), nullable=False,
                  server_default='0'),
        sa.Column('cost_usd', sa.Numeric(14, 6), nullable=False, server_default='0'),
        sa.Column('num_turns', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('session_id', sa.Text(), nullable=True),
        sa.Column('retry_at', sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table('task_attempts')
    op.drop_index('tasks_retry_due_idx', table_name='tasks')
    op.drop_column('tasks', 'retried')
    op.drop_column('tasks', 'retry_at')
    op.drop_column('tasks', 'retries')
