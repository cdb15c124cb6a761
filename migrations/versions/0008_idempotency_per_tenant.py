"""idempotency keys per tenant, with the request they made

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 07:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('tasks', sa.Column('request_hash', sa.Text(), nullable=True))
    op.drop_index('tasks_idempotency_idx', table_name='tasks')
    op.create_index('tasks_idempotency_idx', 'tasks', ['owner', 'idempotency_key'], unique=True,
                    postgresql_where=sa.text('idempotency_key IS NOT NULL'))


def downgrade() -> None:
    op.drop_index('tasks_idempotency_idx', table_name='tasks')
    op.create_index('tasks_idempotency_idx', 'tasks', ['idempotency_key'], unique=True,
                    postgresql_where=sa.text('idempotency_key IS NOT NULL'))
    op.drop_column('tasks', 'request_hash')
