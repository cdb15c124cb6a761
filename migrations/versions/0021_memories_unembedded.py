"""memories waiting for a vector: a partial index the workers' backfill reads, oldest first

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04 18:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('memories_unembedded_idx', 'memories', ['created_at'],
                    postgresql_where=sa.text('space IS NULL'))


def downgrade() -> None:
    op.drop_index('memories_unembedded_idx', table_name='memories')
