"""tasks and task_events

Revision ID: 0001
Revises:
Create Date: 2026-11-29 12:59:48.514261
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.create_table('tasks',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('prompt', sa.Text(), nullable=False),
    sa.Column('role', sa.Text(), nullable=True),
    sa.Column('model', sa.Text(), nullable=True),
    sa.Column('priority', sa.Text(), nullable=False),
    sa.Column('queue', sa.Text(), nullable=False),
    sa.Column('token_budget', sa.BigInteger(), nullable=True),
    sa.Column('timeout_seconds', sa.Integer(), nullable=True),
    sa.Column('max_turns', sa.Integer(), nullable=True),
    sa.Column('max_budget_usd', sa.Numeric(precision=12, scale=4, asdecimal=False), nullable=True),
    sa.Column('permission_mode', sa.Text(), nullable=True),
    sa.Column('allowed_tools', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('denied_tools', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('cwd', sa.Text(), nullable=True),
    sa.Column('json_schema', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('metadata', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('idempotency_key', sa.Text(), nullable=True),
    sa.Column('owner', sa.Text(), nullable=True),
    sa.Column('parent_id', sa.UUID(), nullable=True),
    sa.Column('result', sa.Text(), nullable=True),
    sa.Column('structured_output', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('error_code', sa.Text(), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('input_tokens', sa.BigInteger(), nullable=False),
    sa.Column('output_tokens', sa.BigInteger(), nullable=False),
    sa.Column('cache_read_input_tokens', sa.BigInteger(), nullable=False),
    sa.Column('cache_creation_input_tokens', sa.BigInteger(), nullable=False),
    sa.Column('cost_usd', sa.Numeric(precision=14, scale=6, asdecimal=False), nullable=False),
    sa.Column('num_turns', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.Text(), nullable=True),
    sa.Column('permission_denials', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('worker', sa.Text(), nullable=True),
    sa.Column('worker_pid', sa.Integer(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancel_requested_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('tasks_active_idx', 'tasks', ['status', 'lease_expires_at'], unique=False, postgresql_where=sa.text("status IN ('queued', 'running')"))
    op.create_index('tasks_created_idx', 'tasks', [sa.literal_column('created_at DESC'), sa.literal_column('id DESC')], unique=False)
    op.create_index('tasks_idempotency_idx', 'tasks', ['idempotency_key'], unique=True, postgresql_where=sa.text('idempotency_key IS NOT NULL'))
    op.create_index('tasks_parent_idx', 'tasks', ['parent_id'], unique=False, postgresql_where=sa.text('parent_id IS NOT NULL'))
    op.create_index('tasks_role_created_idx', 'tasks', ['role', sa.literal_column('created_at DESC'), sa.literal_column('id DESC')], unique=False)
    op.create_index('tasks_status_created_idx', 'tasks', ['status', sa.literal_column('created_at DESC'), sa.literal_column('id DESC')], unique=False)
    op.create_table('task_events',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('task_id', sa.UUID(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('type', sa.Text(), nullable=False),
    sa.Column('subtype', sa.Text(), nullable=True),
    sa.Column('data', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('task_events_task_idx', 'task_events', ['task_id', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('task_events_task_idx', table_name='task_events')
    op.drop_table('task_events')
    op.drop_index('tasks_status_created_idx', table_name='tasks')
    op.drop_index('tasks_role_created_idx', table_name='tasks')
    op.drop_index('tasks_parent_idx', table_name='tasks', postgresql_where=sa.text('parent_id IS NOT NULL'))
    op.drop_index('tasks_idempotency_idx', table_name='tasks', postgresql_where=sa.text('idempotency_key IS NOT NULL'))
    op.drop_index('tasks_created_idx', table_name='tasks')
    op.drop_index('tasks_active_idx', table_name='tasks', postgresql_where=sa.text("status IN ('queued', 'running')"))
    op.drop_table('tasks')
