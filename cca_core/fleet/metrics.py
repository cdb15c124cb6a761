"""Fleet-wide numbers for Prometheus, computed from Postgres and Redis at scrape time, so
every API process reports the same values whatever worker or process did the work.

Label values are bounded: statuses and kinds are fixed sets; models, end reasons, workers and
queues (which callers, agents or whoever can announce a worker may choose) keep their
``MAX_SERIES`` largest values, the rest is summed under ``other``, and every value is cut to
``MAX_LABEL_CHARS``. No label ever holds a task id or a key name.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cca_core.fleet.state import online_workers, queue_depths
from cca_core.models import Task
from cca_core.names import retention_counter_key
from cca_core.tasks import store
from cca_core.tasks.status import ALL_STATUSES, TERMINAL_STATUSES, TaskStatus
from cca_core.workflows import store as workflow_store

Family = GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200)
DEFAULT_MODEL = "default"
OTHER = "other"
MAX_SERIES = 20
MAX_LABEL_CHARS = 64
RETENTION_KINDS = ("task_events", "sessions", "streams", "webhook_deliveries", "fleet_samples")


@dataclass(eq=False)
class FleetCollector(Collector):
    """A prometheus_client collector over the fleet's shared state."""

    sessions: sessionmaker[Session]
    redis: redis.Redis
    default_queue: str

    def collect(self) -> Iterator[Family]:
        with self.sessions() as session:
            yield from _task_metrics(session)
            workers = online_workers(self.redis)
            busy = store.running_by_worker(session.connection())
        yield from _worker_metrics(workers, busy)
        queues = {self.default_queue} | {queue for worker in workers for queue in worker["queues"]}
        depth = GaugeMetricFamily("cca_queue_depth", "Messages waiting per queue", labels=["queue"])
        for queue, count in bounded(queue_depths(self.redis, queues)).items():
            depth.add_metric([queue], count)
        yield depth
        yield _retention_metric(self.redis)


def top_names(values: Mapping[str, float]) -> set[str]:
    """The ``MAX_SERIES`` names with the largest values."""
    return set(sorted(values, key=values.__getitem__, reverse=True)[:MAX_SERIES])


def label_of(name: str, kept: set[str]) -> str:
    return name[:MAX_LABEL_CHARS] if name in kept else OTHER


def bounded(values: Mapping[str, float], kept: set[str] | None = None) -> dict[str, float]:
    """At most ``MAX_SERIES`` + 1 labels: the ``kept`` names (by default those of the largest
    values) under their cut names, the sum of the rest under ``other``."""
    kept = top_names(values) if kept is None else kept
    labelled: dict[str, float] = {}
    for name, value in values.items():
        label = label_of(name, kept)
        labelled[label] = labelled.get(label, 0) + value
    return labelled


def _retention_metric(client: redis.Redis) -> CounterMetricFamily:
    deleted = CounterMetricFamily("cca_retention_deleted", "Rows and streams deleted by retention",
                                  labels=["kind"])
    counts = client.mget([retention_counter_key(kind) for kind in RETENTION_KINDS])
    for kind, count in zip(RETENTION_KINDS, counts, strict=True):
        deleted.add_metric([kind], float(count or 0))
    return deleted


def _task_metrics(session: Session) -> Iterator[Family]:
    counts = store.count_by_status(session.connection())
    tasks = GaugeMetricFamily("cca_tasks", "Tasks by status", labels=["status"])
    for known in ALL_STATUSES:
        tasks.add_metric([known], counts.get(known, 0))
    yield tasks
    flows = GaugeMetricFamily("cca_workflows", "Workflows by status", labels=["status"])
    flow_counts = workflow_store.count_by_status(session.connection())
    for known in ALL_STATUSES:
        if known != TaskStatus.QUEUED:  # a workflow runs from the moment it is made
            flows.add_metric([known], flow_counts.get(known, 0))
    yield flows
    running = GaugeMetricFamily("cca_agents_running", "Agents running now, fleet-wide")
    running.add_metric([], counts.get(TaskStatus.RUNNING, 0))
    yield running

    model = func.coalesce(Task.model, DEFAULT_MODEL)
    usage = session.execute(select(
        model, func.sum(Task.input_tokens), func.sum(Task.output_tokens),
        func.sum(Task.cache_read_input_tokens), func.sum(Task.cache_creation_input_tokens),
        func.sum(Task.cost_usd)).group_by(model)).all()
    kinds = ("input", "output", "cache_read", "cache_creation")
    totals = {name: [float(value or 0) for value in values] for name, *values in usage}
    kept = top_names({name: sum(values[:len(kinds)]) for name, values in totals.items()})
    grouped: dict[str, list[float]] = {}
    for name, values in totals.items():
        into = grouped.setdefault(label_of(name, kept), [0.0] * len(values))
        for n, value in enumerate(values):
            into[n] += value
    tokens = CounterMetricFamily("cca_tokens", "Tokens spent by agents", labels=["model", "kind"])
    cost = CounterMetricFamily("cca_cost_usd", "USD spent by agents", labels=["model"])
    for name, values in grouped.items():
        for kind, value in zip(kinds, values, strict=False):
            tokens.add_metric([name, kind], value)
        cost.add_metric([name], values[4])
    yield tokens
    yield cost

    ended = session.execute(
        select(Task.status, func.coalesce(Task.error_code, "none"), func.count())
        .where(Task.status.in_(TERMINAL_STATUSES)).group_by(Task.status, Task.error_code)).all()
    reasons = CounterMetricFamily("cca_tasks_ended", "Finished tasks by status and reason",
                                  labels=["status", "reason"])
    by_reason: dict[str, float] = {}
    for _, reason, count in ended:
        by_reason[reason] = by_reason.get(reason, 0) + count
    kept = top_names(by_reason)
    labelled: dict[tuple[str, str], float] = {}
    for status, reason, count in ended:
        key = (status, label_of(reason, kept))
        labelled[key] = labelled.get(key, 0) + count
    for (status, reason), total in labelled.items():
        reasons.add_metric([status, reason], total)
    yield reasons
    yield _duration_histogram(session)


def _duration_histogram(session: Session) -> HistogramMetricFamily:
    seconds = func.extract("epoch", Task.finished_at - Task.started_at)
    finished = Task.finished_at.is_not(None) & Task.started_at.is_not(None)
    columns = [func.count().filter(seconds <= bound) for bound in DURATION_BUCKETS]
    row = session.execute(select(*columns, func.count(), func.coalesce(func.sum(seconds), 0))
                          .where(finished)).one()
    buckets = [(str(bound), row[i]) for i, bound in enumerate(DURATION_BUCKETS)]
    buckets.append(("+Inf", row[len(DURATION_BUCKETS)]))
    histogram = HistogramMetricFamily("cca_task_duration_seconds",
                                      "Run time of finished tasks (start to finish)")
    histogram.add_metric([], buckets, float(row[-1]))
    return histogram


def _worker_metrics(workers: list[dict], busy: dict[str, int]) -> Iterator[GaugeMetricFamily]:
    online = GaugeMetricFamily("cca_workers_online", "Workers announcing themselves")
    online.add_metric([], len(workers))
    yield online
    slots = GaugeMetricFamily("cca_worker_slots", "Agent slots per worker", labels=["worker", "state"])
    totals = {str(worker["hostname"]): float(worker["slots_total"]) for worker in workers}
    kept = top_names(totals)  # the same workers in both states
    for state, values in (("total", totals),
                          ("busy", {name: float(busy.get(name, 0)) for name in totals})):
        for name, count in bounded(values, kept).items():
            slots.add_metric([name, state], count)
    yield slots
