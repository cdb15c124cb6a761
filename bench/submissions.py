"""(a) Submissions/s: ``POST /api/v1/tasks`` through gunicorn vs a bare INSERT (autocommit) +
``send_task`` loop, from the same number of client threads, in interleaved rounds. No worker
runs: tasks queue."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bench.client import post_task
from bench.cpu import cpu_spent
from bench.launch import api_server
from bench.parallel import Job, JobFactory, run_parallel
from bench.plan import Counts
from bench.producer import Producer, make_producer
from bench.report import Section, latency_row, rate_row
from bench.servers import Bench
from bench.tally import Tally

TARGET = 0.7


def measure(bench: Bench, counts: Counts) -> Section:
    """Warm both sides up, then alternate rounds of baseline and cca submissions."""
    values = bench.task_values()
    bench.reset()
    producer = make_producer(bench.settings())
    base, cca = Tally(), Tally()
    try:
        with api_server(bench, processes=2) as url:
            sides = [(base, lambda: _bare(producer, values)), (cca, lambda: _post(url))]
            for _, make_job in sides:
                run_parallel(counts.submit_warmup, counts.client_threads, make_job)
            for _ in range(counts.rounds):
                for tally, make_job in sides:
                    _round(bench, counts, tally, make_job)
    finally:
        producer.close()
    bench.reset()
    return Section([
        rate_row("(a) submissions/s", cca.rate, base.rate, TARGET),
        latency_row("(a) CPU ms per submission", cca.cpu_ms, base.cpu_ms),
    ], [
        f"(a) {counts.submissions} submissions each from {counts.client_threads} client "
        f"threads in {counts.rounds} alternating rounds; cca: gunicorn sync, 2 processes, "
        f"http.client, a connection per request (sync workers close every connection "
        f"anyway), rate limits checked but set too high to refuse; baseline: a plain INSERT "
        f"of the same non-NULL values through SQLAlchemy Core in autocommit (one round trip, "
        f"no RETURNING, as the API inserts a task without a parent) + send_task with the same "
        f"options, on a pool and producer configured like the API's. CPU counts every "
        f"process of the benchmark: the clients use {cca.own_cpu_ms:.2f} ms of cca's "
        f"(http.client) and {base.own_cpu_ms:.2f} ms of the baseline's (the whole bare loop).",
    ])


def _round(bench: Bench, counts: Counts, tally: Tally, make_job: JobFactory) -> None:
    n = counts.submissions // counts.rounds
    with cpu_spent(bench.cpu_roots) as cpu:
        elapsed = run_parallel(n, counts.client_threads, make_job)
    print(f"  {n} in {elapsed:.2f}s", file=sys.stderr)
    tally.add(n, elapsed, cpu)


@contextmanager
def _post(base_url: str) -> Iterator[Job]:
    """One client thread of cca's side: POST a task, expect 202."""
    def post() -> None:
        post_task(base_url)
    yield post


@contextmanager
def _bare(producer: Producer, values: dict[str, Any]) -> Iterator[Job]:
    """One client thread of the baseline."""
    yield lambda: producer.insert_bare(values)
