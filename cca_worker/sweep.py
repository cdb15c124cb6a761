"""Recover tasks whose message or worker was lost (run by one worker at a time)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

import redis
from sqlalchemy import Engine

from cca_core.infra.db import autocommit
from cca_core.models import Task
from cca_core.settings import AgentSettings
from cca_core.tasks import deliveries, store, totals
from cca_core.tasks.status import TaskStatus
from cca_core.webhooks import store as webhooks
from cca_core.webhooks.events import WORKER_LOST
from cca_core.workflows import store as workflows
from cca_core.workflows.advance import advance_and_send

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepReport:
    resent: int
    retried: int  # parked tasks whose retry came due, sent again
    ended: int
    released: int  # workflow steps a lost advance had left waiting


def sweep(
    engine: Engine, send: Callable[[Task], None], agents: AgentSettings, *, resend_after_s: int,
    held: Collection[str] = (), untaken: Collection[str] = (), short: Collection[str] = (),
) -> SweepReport:
    """End runs that can never finish, then send the tasks whose retry is due, then re-send
    the message of every task that may have lost it, then advance every running workflow (a
    worker that died between a step's finish and its advance, or a run ended here, leaves it
    behind), then fold what finished into the fleet's totals. A re-sent message for a task
    that is in fact fine is harmless: claims are conditional. ``held`` tasks
    (``cca_core.tasks.holds``: their runs wait for Postgres) are neither ended nor re-sent;
    ``untaken`` ones (their message taken by a worker gone before it claimed them:
    ``cca_core.tasks.deliveries``) are re-sent now if still queued; one queued for over
    ``resend_after_s`` only in a queue ``short`` of messages (:func:`short_of_messages`)."""
    with engine.begin() as connection:
        ended = store.end_abandoned(connection, agents.max_attempts, held)
        due = store.release_due_retries(connection)
        candidates = store.resend_candidates(connection, resend_after_s, held, untaken, short)
        for worker, task_ids in lost_workers(candidates).items():
            webhooks.emit(connection, WORKER_LOST, None, {"worker": {"name": worker, "tasks": task_ids}})
        running = workflows.running_workflows(connection)
    for task in due:
        log.info("retrying task %s (attempt %s failed: %s)", task.id, task.attempts, task.error_code)
        send(task)
    for task in candidates:
        log.warning("re-sending task %s (status %s, attempts %s)", task.id, task.status, task.attempts)
        send(task)
    released = sum(advance_and_send(engine, send, workflow_id, agents) for workflow_id in running)
    with engine.begin() as connection:
        totals.fold(connection)  # keeps fleet totals (status, /metrics) from scanning every task
    return SweepReport(resent=len(candidates), retried=len(due), ended=len(ended),
                       released=released)


def short_of_messages(engine: Engine, depths: Mapping[str, int], taken: Collection[str]) -> set[str]:
    """The queues that hold fewer messages (``depths``, read before ``taken``) than tasks wait
    in them for one, leaving out the ``taken`` ones (a worker holds their message): a message
    was lost there (Redis lost it, say), and a task that waited long may have lost its own. In
    a queue that holds them all, it is waiting its turn: re-sending every task that waited
    ``resend_after_seconds`` gave a backlog a second message for each of them (bench (l): 191
    of 9,000)."""
    with autocommit(engine) as connection:
        waiting = store.waiting_by_queue(connection, taken)
    return {queue for queue, count in waiting.items() if count > depths.get(queue, 0)}


def lost_workers(candidates: list[Task]) -> dict[str, list[str]]:
    """The workers whose running tasks' leases expired (they died or hung), with those tasks."""
    lost: dict[str, list[str]] = {}
    for task in candidates:
        if task.status == TaskStatus.RUNNING and task.worker:
            lost.setdefault(task.worker, []).append(str(task.id))
    return lost


def forget_settled(engine: Engine, client: redis.Redis, received: Collection[deliveries.Delivery],
                   untaken: Collection[str]) -> None:
    """Drop the delivery records the sweep is done with: ``untaken`` (re-sent, or not queued
    any more) and those whose task was claimed or parked since."""
    with autocommit(engine) as connection:
        waiting = store.queued_among(connection, [delivery.task_id for delivery in received])
    deliveries.forget(client, [delivery for delivery in received
                               if delivery.task_id in untaken or delivery.task_id not in waiting])
