"""usage of earlier attempts

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 16:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

_TOKENS = ("input_tokens", "output_tokens", "cache_read_input_tokens",
           "cache_creation_input_tokens")


def upgrade() -> None:
    for name in _TOKENS:
        op.add_column('tasks', sa.Column(f'earlier_{name}', sa.BigInteger(), server_default='0',
                                         nullable=False))
    op.add_column('tasks', sa.Column('earlier_cost_usd', sa.Numeric(14, 6), server_default='0',
                                     nullable=False))


def downgrade() -> None:
    for name in (*_TOKENS, "cost_usd"):
        op.drop_column('tasks', f'earlier_{name}')
