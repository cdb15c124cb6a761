"""every task row holds its limits: token_budget and timeout_seconds NOT NULL

The API and the beat have written both since submission decided them (cca_core.tasks.
submission.task_values); rows older than that get the built-in defaults the worker gave them
(agents.token_budget_per_task = 100000, agents.default_timeout_seconds = 600), so the worker
trusts the row alone.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 17:20:00
"""

from __future__ import annotations

from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

BUILT_IN_TOKEN_BUDGET = 100000
BUILT_IN_TIMEOUT_SECONDS = 600


def upgrade() -> None:
    op.execute(f"UPDATE tasks SET token_budget = {BUILT_IN_TOKEN_BUDGET} WHERE token_budget IS NULL")
    op.execute(f"UPDATE tasks SET timeout_seconds = {BUILT_IN_TIMEOUT_SECONDS} "
               "WHERE timeout_seconds IS NULL")
    op.alter_column('tasks', 'token_budget', nullable=False)
    op.alter_column('tasks', 'timeout_seconds', nullable=False)


def downgrade() -> None:
    op.alter_column('tasks', 'timeout_seconds', nullable=True)
    op.alter_column('tasks', 'token_budget', nullable=True)
