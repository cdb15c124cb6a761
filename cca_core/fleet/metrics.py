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
from sqlalchemy.orm import Session, sessionmaker

from cca_core.fleet.state import online_workers, queue_depths
from cca_core.names import retention_counter_key
from cca_core.tasks import store, totals
from cca_core.tasks.status import ALL_STATUSES, TaskStatus
from cca_core.workflows import store as workflow_store

Family = GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily
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
    groups = totals.snapshot(session.connection())  # bounded: a rollup and the live rows
    counts = totals.by_status(groups)
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
    yield from _usage_metrics(groups)
    yield _ended_metric(groups)
    yield _duration_histogram(groups)


def _usage_metrics(groups: list[totals.Group]) -> Iterator[Family]:
    kinds = ("input", "output", "cache_read", "cache_creation")
    by_model: dict[str, list[float]] = {}
    for group in groups:
        into = by_model.setdefault(group.model, [0.0] * 5)
        for n, value in enumerate((group.input_tokens, group.output_tokens, group.cache_read_input_tokens,
                                   group.cache_creation_input_tokens, group.cost_usd)):
            into[n] += value
    kept = top_names({name: sum(values[:len(kinds)]) for name, values in by_model.items()})
    grouped: dict[str, list[float]] = {}
    for name, values in by_model.items():
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


def _ended_metric(groups: list[totals.Group]) -> CounterMetricFamily:
    ended = totals.ended(groups)
    reasons = CounterMetricFamily("cca_tasks_ended", "Finished tasks by status and reason",
                                  labels=["status", "reason"])
    by_reason: dict[str, float] = {}
    for (_, reason), count in ended.items():
        by_reason[reason] = by_reason.get(reason, 0) + count
    kept = top_names(by_reason)
    labelled: dict[tuple[str, str], float] = {}
    for (status, reason), count in ended.items():
        key = (status, label_of(reason, kept))
        labelled[key] = labelled.get(key, 0) + count
    for (status, reason), total in labelled.items():
        reasons.add_metric([status, reason], total)
    return reasons


def _duration_histogram(groups: list[totals.Group]) -> HistogramMetricFamily:
    cumulative, seconds = totals.durations(groups)
    buckets = [(str(bound), cumulative[n]) for n, bound in enumerate(totals.DURATION_BUCKETS)]
    buckets.append(("+Inf", cumulative[-1]))
    histogram = HistogramMetricFamily("cca_task_duration_seconds",
                                      "Run time of finished tasks (start to finish)")
    histogram.add_metric([], buckets, seconds)
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
