"""Fleet-wide numbers for Prometheus, computed from Postgres and Redis at scrape time, so
every API process reports the same values whatever worker or process did the work."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cca_core import store
from cca_core.fleet import online_workers, queue_depths
from cca_core.models import Task
from cca_core.names import ALL_STATUSES, TERMINAL_STATUSES

Family = GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200)
DEFAULT_MODEL = "default"


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
            busy = store.running_by_worker(session)
        yield from _worker_metrics(workers, busy)
        queues = {self.default_queue} | {queue for worker in workers for queue in worker["queues"]}
        depth = GaugeMetricFamily("cca_queue_depth", "Messages waiting per queue", labels=["queue"])
        for queue, count in queue_depths(self.redis, queues).items():
            depth.add_metric([queue], count)
        yield depth


def _task_metrics(session: Session) -> Iterator[Family]:
    counts = store.count_by_status(session)
    tasks = GaugeMetricFamily("cca_tasks", "Tasks by status", labels=["status"])
    for status in ALL_STATUSES:
        tasks.add_metric([status], counts.get(status, 0))
    yield tasks
    running = GaugeMetricFamily("cca_agents_running", "Agents running now, fleet-wide")
    running.add_metric([], counts.get("running", 0))
    yield running

    model = func.coalesce(Task.model, DEFAULT_MODEL)
    usage = session.execute(select(
        model, func.sum(Task.input_tokens), func.sum(Task.output_tokens),
        func.sum(Task.cache_read_input_tokens), func.sum(Task.cache_creation_input_tokens),
        func.sum(Task.cost_usd)).group_by(model)).all()
    tokens = CounterMetricFamily("cca_tokens", "Tokens spent by agents", labels=["model", "kind"])
    cost = CounterMetricFamily("cca_cost_usd", "USD spent by agents", labels=["model"])
    for name, inp, out, cache_read, cache_write, usd in usage:
        for kind, value in (("input", inp), ("output", out), ("cache_read", cache_read),
                            ("cache_creation", cache_write)):
            tokens.add_metric([name, kind], float(value or 0))
        cost.add_metric([name], float(usd or 0))
    yield tokens
    yield cost

    ended = session.execute(
        select(Task.status, func.coalesce(Task.error_code, "none"), func.count())
        .where(Task.status.in_(TERMINAL_STATUSES)).group_by(Task.status, Task.error_code)).all()
    reasons = CounterMetricFamily("cca_tasks_ended", "Finished tasks by status and reason",
                                  labels=["status", "reason"])
    for status, reason, count in ended:
        reasons.add_metric([status, reason], count)
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
    for worker in workers:
        slots.add_metric([worker["hostname"], "total"], worker["slots_total"])
        slots.add_metric([worker["hostname"], "busy"], busy.get(worker["hostname"], 0))
    yield slots
