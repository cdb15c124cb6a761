"""How a task's Celery message is addressed: queue, priority and time limit (pure)."""

from __future__ import annotations

from typing import Any

from cca_core.infra.redact import preview
from cca_core.names import CELERY_PRIORITY, DEFAULT_QUEUE, PRIORITY_SEP, PRIORITY_STEPS

# Room for the stop grace period and the final writes after the runner's own timeout.
TIME_LIMIT_MARGIN_S = 120


def message_options(
    queue: str | None, priority: str, timeout_s: int | None, *, task_id: str | None = None,
    prompt: str | None = None, step: str | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``send_task(RUN_AGENT_TASK, args=[task_id], **options)``.

    With ``task_id`` and ``prompt``, monitoring (Flower) shows the id and a short preview of the
    prompt with secrets removed instead of the bare argument list; a workflow's step shows as
    ``<workflow id>/<step> <task id>``.
    """
    options: dict[str, Any] = {
        "queue": queue or DEFAULT_QUEUE,
        "priority": CELERY_PRIORITY.get(priority, CELERY_PRIORITY["normal"]),
    }
    if task_id is not None:
        name = f"{step} {task_id}" if step else task_id
        options["argsrepr"] = f"{name} · {preview(prompt or '')}"
        options["kwargsrepr"] = "{}"
    if timeout_s:
        options["time_limit"] = timeout_s + TIME_LIMIT_MARGIN_S
    return options


def celery_config(broker_url: str, visibility_timeout_s: int) -> dict[str, Any]:
    """The Celery settings every producer and consumer of cca shares (notes/celery.md)."""
    return {
        "broker_url": broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            "visibility_timeout": visibility_timeout_s,
            "priority_steps": PRIORITY_STEPS,
            "sep": PRIORITY_SEP,
            "queue_order_strategy": "priority",
        },
        "task_default_queue": DEFAULT_QUEUE,
        "task_default_priority": CELERY_PRIORITY["normal"],
        "task_create_missing_queues": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_ignore_result": True,
        "task_send_sent_event": True,
        "worker_send_task_events": True,
        "worker_prefetch_multiplier": 1,
        "worker_disable_prefetch": True,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "task_serializer": "json",
        "accept_content": ["json"],
    }
