"""a step may run once its dependencies ended, whatever their status (tasks.run_when)

``succeeded`` (every row so far): it runs when all its dependencies succeeded.
``ended``: it runs when all have ended; a coordinated task's summary does, so a failed
specialist still gets a partial answer.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 01:25:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('tasks', sa.Column('run_when', sa.Text(), nullable=False,
                                     server_default='succeeded'))


def downgrade() -> None:
    op.drop_column('tasks', 'run_when')
