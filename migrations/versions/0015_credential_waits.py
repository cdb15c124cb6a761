"""tasks parked for a credential: waiting for one with room, or for a usage window's reset

A queued task may now wait (``waiting_for``) for ``credential`` (every credential is at its
``max_agents``) or ``usage_window`` (every credential is rate-limited until ``retry_at``) as
well as ``retry``; the index of parked tasks by ``retry_at`` covers all three.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 09:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

PARKED = "waiting_for IN ('retry', 'credential', 'usage_window')"


def upgrade() -> None:
    op.drop_index('tasks_retry_due_idx', table_name='tasks')
    op.create_index('tasks_parked_idx', 'tasks', ['retry_at'], postgresql_where=sa.text(PARKED))


def downgrade() -> None:
    op.drop_index('tasks_parked_idx', table_name='tasks')
    op.create_index('tasks_retry_due_idx', 'tasks', ['retry_at'],
                    postgresql_where=sa.text("waiting_for = 'retry'"))
