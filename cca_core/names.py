"""Names shared by the API and the workers: Celery task names, queues, priorities, Redis keys."""

from __future__ import annotations

from typing import Literal

RUN_AGENT_TASK = "cca.run_agent"
SWEEP_TASK = "cca.sweep"
INDEX_CODE_TASK = "cca.index_code"  # a code index job (cca_worker.jobs)
REEMBED_TASK = "cca.reembed"  # a re-embedding job (cca_worker.jobs)
DEFAULT_QUEUE = "cca"

Priority = Literal["low", "normal", "high", "critical"]
# kombu's Redis transport serves priority 0 first; these land on its default steps 0/3/6/9.
CELERY_PRIORITY: dict[str, int] = {"critical": 0, "high": 3, "normal": 6, "low": 9}
PRIORITY_STEPS = [0, 3, 6, 9]
PRIORITY_SEP = "\x06\x16"


def queue_keys(queue: str) -> list[str]:
    """The Redis lists kombu uses for one queue, one per priority step."""
    return [queue if step == 0 else f"{queue}{PRIORITY_SEP}{step}" for step in PRIORITY_STEPS]


def events_stream_key(task_id: str) -> str:
    return f"cca:events:{task_id}"


EVENTS_STREAM_PATTERN = "cca:events:*"


def cancel_key(task_id: str) -> str:
    return f"cca:cancel:{task_id}"


def worker_key(hostname: str) -> str:
    return f"cca:worker:{hostname}"


WORKERS_INDEX_KEY = "cca:workers"  # hostname -> when its announcement expires (cca_core.fleet.state)
SWEEP_LOCK_KEY = "cca:sweep-lock"
# task id -> the run that holds it while Postgres cannot record it (cca_core.tasks.holds)
HELD_TASKS_KEY = "cca:held"
# task id -> the worker incarnation that took its message, until claimed (cca_core.tasks.deliveries)
DELIVERIES_KEY = "cca:deliveries"
SAMPLE_LOCK_KEY = "cca:sample-lock"  # the worker taking this dashboard.sample_seconds' fleet sample
RETENTION_SCAN_KEY = "cca:retention:stream-cursor"  # where the stream retention scan resumes


def retention_counter_key(kind: str) -> str:
    """Total deleted by retention, fleet-wide, per kind (``task_events``, ``streams``)."""
    return f"cca:retention:deleted:{kind}"


def quota_notice_key(key_name: str, limit: str) -> str:
    """Set while a key's ``quota.reached`` webhook for ``limit`` was sent recently."""
    return f"cca:webhooks:quota:{key_name}:{limit}"


def budget_key(hostname: str, bucket: int) -> str:
    return f"cca:budget:{hostname}:{bucket}"


def key_spend_key(key_name: str, day: str) -> str:
    """The tokens an API key's tasks spent on ``day`` (YYYYMMDD, UTC), charged as runs stream."""
    return f"cca:spend:{key_name}:{day}"


def credential_leases_key(name: str) -> str:
    """The runs holding credential ``name``: a sorted set of holders scored by lease expiry (ms)."""
    return f"cca:credential:{name}:leases"


def credential_parked_key(name: str) -> str:
    """Set while credential ``name`` is rate-limited: its reset (Unix seconds), expiring then."""
    return f"cca:credential:{name}:parked"


def credential_limits_key(name: str) -> str:
    """The rate-limit headers of credential ``name``'s last response."""
    return f"cca:credential:{name}:limits"


def credential_usage_key(name: str, day: str) -> str:
    """Requests and tokens through credential ``name`` on ``day`` (YYYYMMDD, UTC)."""
    return f"cca:credential:{name}:usage:{day}"


TASK_BRANCH_PREFIX = "cca/"


def branch_of(task_id: str) -> str:
    """The branch a repository task works on, in its repository."""
    return f"{TASK_BRANCH_PREFIX}{task_id}"
