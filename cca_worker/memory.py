"""A run's memory: the memories recalled before its prompt, and what is remembered when it
ends (cca_core.memory). Neither may cost the run: a failure is logged and the run goes on
without. Remembering happens on a thread of the slot's process, so the slot takes its next
task at once. A lesson is stored as text: the worker's main process gives it its vector
(``cca_worker.backfill``), so no slot loads the embedding model to remember."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from cca_core.embeddings.providers import embedder_for
from cca_core.infra.redact import Redactor
from cca_core.memory import store
from cca_core.memory.lessons import lesson_of
from cca_core.memory.recall import with_memories
from cca_core.models import Task
from cca_core.settings import Settings
from cca_core.tasks.outcome import Outcome

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recalled:
    prompt: str
    memory_ids: tuple[str, ...] = ()
    note: str | None = None  # for the run's events: what was recalled, or why not


def recall(engine: Engine, settings: Settings, task: Task, prompt: str) -> Recalled:
    """``prompt`` led by the task's k most relevant memories (of its tenant), k being the
    task's own, else its role's, else ``memory.recall_k``."""
    role_k = settings.agents.role(task.role).recall_k
    k = next(value for value in (task.recall_k, role_k, settings.memory.recall_k) if value is not None)
    if k <= 0:
        return Recalled(prompt)
    try:
        with engine.begin() as connection:
            found = store.search_memories(connection, embedder_for(settings.embeddings), task.prompt,
                                          tenant=task.owner or "local", limit=k,
                                          ef_search=settings.memory.ef_search)
    except Exception as exc:
        log.warning("task %s: memories not recalled: %s", task.id, exc)
        return Recalled(prompt, note=f"memories not recalled: {type(exc).__name__}")
    ids = tuple(str(row["id"]) for row in found.rows)
    note = f"recalled {len(ids)} memories ({found.mode})" + (f"; {found.degraded}" if found.degraded else "")
    return Recalled(with_memories(prompt, found.rows), ids, note)


_remembering = ThreadPoolExecutor(max_workers=1, thread_name_prefix="remember")


def remember_later(engine: Engine, settings: Settings, task: Task, outcome: Outcome,
                   recalled: Sequence[str], redactor: Redactor) -> None:
    """:func:`remember`, on the process's remembering thread (if there is anything to do)."""
    if recalled or _keeps(settings, task):
        _remembering.submit(remember, engine, settings, task, outcome, recalled, redactor)


def remember(engine: Engine, settings: Settings, task: Task, outcome: Outcome,
             recalled: Sequence[str], redactor: Redactor) -> None:
    """Credit the recalled memories with the run's success or failure, and store its lesson
    (``outcome`` is redacted already; the prompt is redacted here) when its role (else
    ``memory.remember``) says so."""
    keep = _keeps(settings, task)
    try:
        with engine.begin() as connection:
            store.credit(connection, recalled, outcome.status == "succeeded")
            if keep and outcome.status in ("succeeded", "failed"):
                lesson = lesson_of(task_id=str(task.id), prompt=redactor.text(task.prompt), role=task.role,
                                   status=outcome.status, error_code=outcome.error_code,
                                   result=outcome.result, summary_chars=settings.memory.summary_chars)
                store.add_memories(connection, None, task.owner or "local", [lesson], task.created_by)
    except Exception as exc:
        log.warning("task %s: not remembered: %s", task.id, exc)


def _keeps(settings: Settings, task: Task) -> bool:
    """Whether the task's lesson is stored: its role says, else ``memory.remember``."""
    role_says = settings.agents.role(task.role).remember
    return settings.memory.remember if role_says is None else role_says
