"""How much each measurement does: ``--quick`` (CI smoke, under a minute) or the default
(at most about five minutes on two cores)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Counts:
    submissions: int
    submit_warmup: int
    client_threads: int
    latency_samples: int
    latency_warmup: int
    tasks: int
    slots: int
    profile_tasks: int
    floor_tasks: int
    rounds: int  # (a) and (c) alternate baseline and cca this many times
    real_tasks: int  # (d): tasks per round, each a real claude run
    real_rounds: int
    workflow_chains: int  # (e): three-step chains per round
    tree_rounds: int  # (e): coordinated trees against their children run directly
    search_scales: tuple[int, ...]  # (f): chunks of each synthetic index
    search_queries: int  # (f): searches timed per scale and mode
    live_followers: tuple[int, ...]  # (i): followers of one task's stream, per round
    live_events: int  # (i): events written per round
    dashboard_tasks: int  # (j): rows in the tasks table
    dashboard_requests: int  # (j): requests timed per page
    scale_tasks: tuple[int, ...]  # (k): finished tasks in the table, growing
    scale_requests: int  # (k): requests timed per path and scale
    burst_tasks: int  # (l): submissions in the burst
    event_scales: tuple[int, ...]  # (m): rows of task_events, growing


QUICK = Counts(submissions=300, submit_warmup=40, client_threads=4, latency_samples=20,
               latency_warmup=4, tasks=48, slots=8, profile_tasks=10, floor_tasks=100,
               rounds=2, real_tasks=16, real_rounds=1, workflow_chains=10,
               tree_rounds=1, search_scales=(10_000,), search_queries=50,
               live_followers=(1, 50), live_events=20,
               dashboard_tasks=10_000, dashboard_requests=20,
               scale_tasks=(1_000, 10_000), scale_requests=20, burst_tasks=1_000,
               event_scales=(10_000, 100_000))
DEFAULT = Counts(submissions=3000, submit_warmup=200, client_threads=4, latency_samples=300,
                 latency_warmup=10, tasks=600, slots=8, profile_tasks=50, floor_tasks=1000,
                 rounds=3, real_tasks=32, real_rounds=2, workflow_chains=40,
                 tree_rounds=3, search_scales=(10_000, 100_000), search_queries=300,
                 live_followers=(1, 50, 200), live_events=50,
                 dashboard_tasks=100_000, dashboard_requests=50,
                 scale_tasks=(1_000, 100_000, 1_000_000), scale_requests=50,
                 burst_tasks=10_000, event_scales=(100_000, 10_000_000))
