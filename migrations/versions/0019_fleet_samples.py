"""fleet samples: queue depths and slot use over time, for the dashboard's plots

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'fleet_samples',
        sa.Column('at', sa.DateTime(timezone=True), server_default=sa.func.now(), primary_key=True),
        sa.Column('workers', sa.Integer(), nullable=False),
        sa.Column('slots_total', sa.Integer(), nullable=False),
        sa.Column('slots_busy', sa.Integer(), nullable=False),
        sa.Column('queues', postgresql.JSONB(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table('fleet_samples')
