"""repository tasks: a task may run in a clone of a git repository on its own branch, and what
that branch holds over its base is recorded

``tasks.repo``, ``tasks.base``, ``tasks.push``: the repository, the commit or branch to start
from, and whether to push the task's branch (``cca/<task id>``) to the repository's remote.
``task_changes``: the branch's commits, diff stat and diff when a run ended, and the push.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 09:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('tasks', sa.Column('repo', sa.Text(), nullable=True))
    op.add_column('tasks', sa.Column('base', sa.Text(), nullable=True))
    op.add_column('tasks', sa.Column('push', sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_table(
        'task_changes',
        sa.Column('task_id', postgresql.UUID(as_uuid=True),
                  sa.ForeignKey('tasks.id', ondelete='CASCADE'), primary_key=True),
        sa.Column('branch', sa.Text(), nullable=False),
        sa.Column('base', sa.Text(), nullable=False),
        sa.Column('head', sa.Text(), nullable=False),
        sa.Column('commits', postgresql.JSONB(), nullable=False),
        sa.Column('files', sa.Integer(), nullable=False),
        sa.Column('insertions', sa.Integer(), nullable=False),
        sa.Column('deletions', sa.Integer(), nullable=False),
        sa.Column('diff', sa.Text(), nullable=False),
        sa.Column('truncated', sa.Boolean(), nullable=False),
        sa.Column('pushed', sa.Boolean(), nullable=True),
        sa.Column('push_error', sa.Text(), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
    )


def downgrade() -> None:
    op.drop_table('task_changes')
    op.drop_column('tasks', 'push')
    op.drop_column('tasks', 'base')
    op.drop_column('tasks', 'repo')
