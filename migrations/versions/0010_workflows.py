"""workflows: named tasks with dependencies, run as one graph with a failure policy and a budget

A ``workflows`` row holds the graph's policy, budget and status; its tasks point to it
(``workflow_id``, ``step``, ``depends_on`` as task ids). A task whose dependencies have not all
succeeded waits (``waiting_for = 'dependencies'``): no worker claims it and the sweep does not
re-send it. ``cancel_code`` is the error code a requested cancel ends a run with
(``dependency_failed``, ``budget_exceeded``), so a stopped sibling says why.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 23:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'workflows',
        sa.Column('id', postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column('name', sa.Text(), nullable=False),
        sa.Column('status', sa.Text(), nullable=False, server_default='running'),
        sa.Column('failure_policy', sa.Text(), nullable=False, server_default='fail_fast'),
        sa.Column('token_budget', sa.BigInteger(), nullable=True),
        sa.Column('budget_usd', sa.Numeric(12, 4), nullable=True),
        sa.Column('parent_task_id', postgresql.UUID(as_uuid=True),
                  sa.ForeignKey('tasks.id', ondelete='SET NULL'), nullable=True),
        sa.Column('plan', postgresql.JSONB(), nullable=True),
        sa.Column('error_code', sa.Text(), nullable=True),
        sa.Column('error_message', sa.Text(), nullable=True),
        sa.Column('metadata', postgresql.JSONB(), nullable=False,
                  server_default=sa.text("'{}'::jsonb")),
        sa.Column('owner', sa.Text(), nullable=True),
        sa.Column('created_by', sa.Text(), nullable=True),
        sa.Column('cancel_requested_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index('workflows_owner_created_idx', 'workflows',
                    ['owner', sa.text('created_at DESC'), sa.text('id DESC')])
    op.create_index('workflows_created_idx', 'workflows',
                    [sa.text('created_at DESC'), sa.text('id DESC')])
    op.create_index('workflows_running_idx', 'workflows', ['created_at'],
                    postgresql_where=sa.text("status = 'running'"))
    op.add_column('tasks', sa.Column('workflow_id', postgresql.UUID(as_uuid=True),
                                     sa.ForeignKey('workflows.id', ondelete='CASCADE'),
                                     nullable=True))
    op.add_column('tasks', sa.Column('step', sa.Text(), nullable=True))
    op.add_column('tasks', sa.Column('depends_on', postgresql.ARRAY(postgresql.UUID(as_uuid=True)),
                                     nullable=True))
    op.add_column('tasks', sa.Column('waiting_for', sa.Text(), nullable=True))
    op.add_column('tasks', sa.Column('cancel_code', sa.Text(), nullable=True))
    op.create_index('tasks_workflow_step_idx', 'tasks', ['workflow_id', 'step'], unique=True,
                    postgresql_where=sa.text('workflow_id IS NOT NULL'))


def downgrade() -> None:
    op.drop_index('tasks_workflow_step_idx', table_name='tasks')
    for name in ('cancel_code', 'waiting_for', 'depends_on', 'step', 'workflow_id'):
        op.drop_column('tasks', name)
    op.drop_table('workflows')
