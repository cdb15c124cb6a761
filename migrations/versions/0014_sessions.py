"""sessions are data: each task's transcript and workspace snapshot, and tasks that continue
another's session

``task_sessions``: the latest checkpoint of a task's claude session (its transcript, gzipped;
the per-task workspace as a gzipped tar when it fits ``sessions.max_workspace_bytes``), written
after each tool result and at the end of each run, so any worker can resume it.
``tasks.continues``: the finished task whose session a follow-up task forks.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 06:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('tasks', sa.Column('continues', postgresql.UUID(as_uuid=True),
                                     sa.ForeignKey('tasks.id', ondelete='SET NULL'), nullable=True))
    op.create_table(
        'task_sessions',
        sa.Column('task_id', postgresql.UUID(as_uuid=True),
                  sa.ForeignKey('tasks.id', ondelete='CASCADE'), primary_key=True),
        sa.Column('session_id', sa.Text(), nullable=False),
        sa.Column('attempt', sa.Integer(), nullable=False),
        sa.Column('transcript', sa.LargeBinary(), nullable=False),
        sa.Column('workspace', sa.LargeBinary(), nullable=True),
        sa.Column('workspace_note', sa.Text(), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
    )


def downgrade() -> None:
    op.drop_table('task_sessions')
    op.drop_column('tasks', 'continues')
