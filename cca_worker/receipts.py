"""The worker's main process records each agent task message it takes, under this process's
incarnation (``cca_core.tasks.deliveries``): if it dies before a pool process claims the task,
the sweep sends the task again at its next turn."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import redis

from cca_core.names import RUN_AGENT_TASK
from cca_core.tasks import deliveries

# This process's incarnation: its announcement carries it; a restart under the same name
# is another one.
INCARNATION = uuid.uuid4().hex


def make_receipt_recorder(redis_url: str) -> Callable[..., None]:
    """A ``task_received`` handler (run in the main process, as each message is taken)."""
    client = redis.Redis.from_url(redis_url, socket_timeout=5)

    def on_received(sender: Any, request: Any, **_: Any) -> None:
        if request.name == RUN_AGENT_TASK and request.args:
            deliveries.record(client, str(request.args[0]), sender.hostname, INCARNATION)

    return on_received
