"""Turning a task body into a row, and a stored row into its Celery message.

Shared by every producer of tasks (the API, the beat, the sweep), so a scheduled task is
exactly the task the API would have made from the same body.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from kombu.exceptions import OperationalError
from redis import RedisError
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from cca_core.errors import Invalid
from cca_core.infra.db import autocommit
from cca_core.models import Task
from cca_core.names import RUN_AGENT_TASK
from cca_core.settings import AgentSettings
from cca_core.tasks import store
from cca_core.tasks.dispatch import message_options
from cca_core.tasks.schemas import TaskCreate, TaskSpec
from cca_core.tasks.workspace import check_cwd

log = logging.getLogger(__name__)
# The fields of a body that are columns of its row as they are (``metadata`` is ``meta``).
TASK_FIELDS = set(TaskCreate.model_fields) - {"metadata", "mode", "memory", "retries"}


class Producer(Protocol):
    """What sends messages: a Celery app (``send_task`` by name, never an import)."""

    def send_task(self, name: str, args: Any = ..., **options: Any) -> Any: ...


def task_values(body: TaskSpec, agents: AgentSettings, default_queue: str) -> dict[str, Any]:
    """The row to insert: the body with the fleet's defaults filled in. Raises Invalid."""
    if body.role is not None and body.role not in agents.roles:
        raise Invalid(f"role {body.role} does not exist; the roles are: "
                      f"{', '.join(sorted(agents.roles))}", field="role")
    if body.cwd is not None:
        check_cwd(body.cwd, agents.allowed_roots)
    if body.repo is not None:
        check_cwd(body.repo, agents.allowed_roots, field="repo")
    if body.permission_mode == "dangerous" and not agents.permissions.allow_dangerous:
        raise Invalid("permission_mode dangerous is refused: the fleet does not allow it"
                      " (agents.permissions.allow_dangerous)", field="permission_mode")
    values = body.model_dump(include=TASK_FIELDS)
    values["meta"] = body.metadata
    values["recall_k"] = body.memory.k if body.memory is not None else None
    values["retries"] = {failure.value: rule.model_dump(exclude_none=True)
                         for failure, rule in (body.retries or {}).items()} or None
    values["token_budget"] = body.token_budget or agents.token_budget_of(body.role)
    values["timeout_seconds"] = body.timeout_seconds or agents.timeout_of(body.role)
    values["queue"] = body.queue or default_queue
    if values["queue"] not in agents.queues:  # no worker consumes it: it would wait forever
        raise Invalid(f"queue {values['queue']} is not configured (agents.queues: "
                      f"{', '.join(agents.queues)})", field="queue")
    return values


def enqueue(producer: Producer, task: Task) -> bool:
    """Send the task's message after its row committed; a task with ``expires_at`` carries it
    as the message's expiry. If Redis is down the row stays queued and the sweep re-sends it
    (see :func:`send`).

    Returns whether the message was sent.
    """
    step = f"{task.workflow_id}/{task.step}" if task.workflow_id else None
    options = message_options(task.queue, task.priority, task.timeout_seconds,
                              task_id=str(task.id), prompt=task.prompt, step=step)
    if task.expires_at is not None:
        options["expires"] = task.expires_at
    try:
        producer.send_task(RUN_AGENT_TASK, args=[str(task.id)], **options)
    except (OperationalError, RedisError, OSError) as exc:
        log.warning("task %s stored but not enqueued yet (%s); the sweep will send it", task.id, exc)
        return False
    return True



def send(producer: Producer, engine: Engine, task: Task) -> bool:
    """Send the task's message; when Redis cannot take it, the task is kept, marked unsent:
    the sweep's next turn once Redis is back sends it (not ``worker.resend_after_seconds``
    later). Returns whether the message was sent."""
    if enqueue(producer, task):
        return True
    try:
        with autocommit(engine) as connection:
            store.mark_unsent(connection, str(task.id))
    except SQLAlchemyError as exc:
        log.warning("task %s: cannot mark it unsent (%s); the sweep sends it after "
                    "worker.resend_after_seconds", task.id, exc)
    return False
