"""webhooks: endpoints per tenant (or an admin's, for every tenant and the fleet) and their
deliveries, an outbox written in the transaction that makes the event

``cca_webhook_emit(event, owner, payload)`` queues one delivery per endpoint that wants the
event: the owner's endpoints and the admins' (an event with no owner, such as
``worker.lost``, reaches the admins' only). A task reaching a terminal status emits
``task.finished`` (and ``task.budget_exceeded``) from a trigger, whoever ended it.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04 12:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

_EMIT = """
CREATE FUNCTION cca_webhook_emit(event text, event_owner text, payload jsonb) RETURNS void
LANGUAGE sql AS $$
  INSERT INTO webhook_deliveries (webhook_id, event, payload)
  SELECT w.id, event, payload FROM webhooks w
  WHERE event = ANY(w.events) AND (w.owner IS NULL OR w.owner = event_owner)
$$;
"""
_TASK_FINISHED = """
CREATE FUNCTION cca_webhook_task_finished() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  body jsonb := jsonb_build_object(
    'id', NEW.id, 'status', NEW.status, 'owner', NEW.owner, 'role', NEW.role,
    'error', CASE WHEN NEW.error_code IS NULL THEN NULL
                  ELSE jsonb_build_object('code', NEW.error_code, 'message', NEW.error_message) END,
    'cost_usd', NEW.cost_usd, 'input_tokens', NEW.input_tokens, 'output_tokens', NEW.output_tokens,
    'workflow_id', NEW.workflow_id, 'parent_id', NEW.parent_id, 'schedule_id', NEW.schedule_id,
    'created_at', NEW.created_at, 'finished_at', NEW.finished_at);
BEGIN
  IF NOT EXISTS (SELECT 1 FROM webhooks) THEN
    RETURN NULL;
  END IF;
  PERFORM cca_webhook_emit('task.finished', NEW.owner, jsonb_build_object('task', body));
  IF NEW.status = 'budget_exceeded' THEN
    PERFORM cca_webhook_emit('task.budget_exceeded', NEW.owner, jsonb_build_object('task', body));
  END IF;
  RETURN NULL;
END $$;
"""
_TERMINAL = "('succeeded', 'failed', 'cancelled', 'timed_out', 'budget_exceeded')"


def upgrade() -> None:
    op.create_table(
        'webhooks',
        sa.Column('id', postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column('owner', sa.Text(), nullable=True),
        sa.Column('url', sa.Text(), nullable=False),
        sa.Column('events', postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column('secret', sa.Text(), nullable=False),
        sa.Column('allow_private', sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column('description', sa.Text(), nullable=True),
        sa.Column('created_by', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_index('webhooks_owner_idx', 'webhooks', ['owner'])
    op.create_table(
        'webhook_deliveries',
        sa.Column('id', sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column('webhook_id', postgresql.UUID(as_uuid=True),
                  sa.ForeignKey('webhooks.id', ondelete='CASCADE'), nullable=False),
        sa.Column('event', sa.Text(), nullable=False),
        sa.Column('payload', postgresql.JSONB(), nullable=False),
        sa.Column('status', sa.Text(), server_default='pending', nullable=False),
        sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('history', postgresql.JSONB(), server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index('webhook_deliveries_due_idx', 'webhook_deliveries', ['next_attempt_at'],
                    postgresql_where=sa.text("status = 'pending'"))
    op.create_index('webhook_deliveries_webhook_idx', 'webhook_deliveries',
                    ['webhook_id', sa.text('id DESC')])
    op.execute(_EMIT)
    op.execute(_TASK_FINISHED)
    op.execute(f"""CREATE TRIGGER tasks_webhook_finished AFTER UPDATE OF status ON tasks
                   FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status
                                      AND NEW.status IN {_TERMINAL})
                   EXECUTE FUNCTION cca_webhook_task_finished()""")


def downgrade() -> None:
    op.execute("DROP TRIGGER tasks_webhook_finished ON tasks")
    op.execute("DROP FUNCTION cca_webhook_task_finished()")
    op.execute("DROP FUNCTION cca_webhook_emit(text, text, jsonb)")
    op.drop_table('webhook_deliveries')
    op.drop_table('webhooks')
