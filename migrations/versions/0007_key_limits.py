"""key limits: what a managed key may ask of a task

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-03 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0007'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('api_keys', sa.Column('limits', postgresql.JSONB(), nullable=False,
                                        server_default=sa.text("'{}'::jsonb")))


def downgrade() -> None:
    op.drop_column('api_keys', 'limits')
