"""schedules: recurring agent jobs, and the tasks they fire

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 15:02:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('schedules',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('owner', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('created_by', sa.Text(), nullable=True),
    sa.Column('cron', sa.Text(), nullable=True),
    sa.Column('timezone', sa.Text(), nullable=False),
    sa.Column('interval_seconds', sa.Integer(), nullable=True),
    sa.Column('anchor_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('template', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('overlap', sa.Text(), nullable=False),
    sa.Column('catchup', sa.Text(), nullable=False),
    sa.Column('expires_seconds', sa.Integer(), nullable=True),
    sa.Column('next_fire_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_fire_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_task_id', sa.UUID(), nullable=True),
    sa.Column('last_skip_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_skip_reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('(cron IS NULL) <> (interval_seconds IS NULL)', name='schedules_one_timing'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('owner', 'name', name='schedules_owner_name_key')
    )
    op.create_index('schedules_due_idx', 'schedules', ['next_fire_at'], unique=False, postgresql_where=sa.text('enabled'))
    op.add_column('tasks', sa.Column('schedule_id', sa.UUID(), nullable=True))
    op.add_column('tasks', sa.Column('scheduled_for', sa.DateTime(timezone=True), nullable=True))
    op.add_column('tasks', sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
    op.create_foreign_key('tasks_schedule_id_fkey', 'tasks', 'schedules', ['schedule_id'], ['id'], ondelete='SET NULL')
    op.create_index('tasks_schedule_fire_idx', 'tasks', ['schedule_id', 'scheduled_for'], unique=True, postgresql_where=sa.text('schedule_id IS NOT NULL'))


def downgrade() -> None:
    op.drop_index('tasks_schedule_fire_idx', table_name='tasks', postgresql_where=sa.text('schedule_id IS NOT NULL'))
    op.drop_constraint('tasks_schedule_id_fkey', 'tasks', type_='foreignkey')
    op.drop_column('tasks', 'expires_at')
    op.drop_column('tasks', 'scheduled_for')
    op.drop_column('tasks', 'schedule_id')
    op.drop_index('schedules_due_idx', table_name='schedules', postgresql_where=sa.text('enabled'))
    op.drop_table('schedules')
