"""status notifications: every change of a task's or workflow's status is announced on the
``cca_status`` channel (NOTIFY, delivered when its transaction commits)

Live followers (``GET /api/v1/tasks/{id}/stream``, ``GET /api/v1/stream``) learn of status
changes from one LISTEN connection per API process, whoever made the change (the API, a
worker, the sweep, beat), instead of polling the table.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 12:30:00
"""

from __future__ import annotations

from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

_TASK = """
CREATE FUNCTION cca_notify_task_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('cca_status', json_build_object(
    'kind', 'task', 'id', NEW.id, 'status', NEW.status, 'waiting_for', NEW.waiting_for,
    'owner', NEW.owner, 'workflow_id', NEW.workflow_id)::text);
  RETURN NULL;
END $$;
"""
_WORKFLOW = """
CREATE FUNCTION cca_notify_workflow_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('cca_status', json_build_object(
    'kind', 'workflow', 'id', NEW.id, 'status', NEW.status, 'owner', NEW.owner)::text);
  RETURN NULL;
END $$;
"""
_CHANGED = "OLD.status IS DISTINCT FROM NEW.status"


def upgrade() -> None:
    op.execute(_TASK)
    op.execute(_WORKFLOW)
    op.execute("""CREATE TRIGGER tasks_status_inserted AFTER INSERT ON tasks
                  FOR EACH ROW EXECUTE FUNCTION cca_notify_task_status()""")
    op.execute(f"""CREATE TRIGGER tasks_status_changed AFTER UPDATE OF status, waiting_for ON tasks
                   FOR EACH ROW WHEN ({_CHANGED} OR OLD.waiting_for IS DISTINCT FROM NEW.waiting_for)
                   EXECUTE FUNCTION cca_notify_task_status()""")
    op.execute("""CREATE TRIGGER workflows_status_inserted AFTER INSERT ON workflows
                  FOR EACH ROW EXECUTE FUNCTION cca_notify_workflow_status()""")
    op.execute(f"""CREATE TRIGGER workflows_status_changed AFTER UPDATE OF status ON workflows
                   FOR EACH ROW WHEN ({_CHANGED}) EXECUTE FUNCTION cca_notify_workflow_status()""")


def downgrade() -> None:
    for trigger, table in (("tasks_status_inserted", "tasks"), ("tasks_status_changed", "tasks"),
                           ("workflows_status_inserted", "workflows"),
                           ("workflows_status_changed", "workflows")):
        op.execute(f"DROP TRIGGER {trigger} ON {table}")
    op.execute("DROP FUNCTION cca_notify_task_status()")
    op.execute("DROP FUNCTION cca_notify_workflow_status()")
