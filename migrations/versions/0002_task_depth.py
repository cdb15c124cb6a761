"""task depth

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 13:13:43.255122
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('tasks', sa.Column('depth', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    op.drop_column('tasks', 'depth')
