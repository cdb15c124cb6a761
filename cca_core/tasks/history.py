"""The history estimates come from: the p50 and p90 of the duration, budget tokens and cost of
the recent successes of a role and model (cca_core.tasks.forecast), read at most once a minute
per role and model by each API process."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from sqlalchemy import Engine, text

from cca_core.infra.db import autocommit
from cca_core.tasks.forecast import MIN_SAMPLES, SAMPLE_DAYS, SAMPLE_TASKS, Estimate, Spread

CACHE_SECONDS = 60.0

_PERCENTILES = text("""
    SELECT count(*) AS samples,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS seconds_p50,
           percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds) AS seconds_p90,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY tokens) AS tokens_p50,
           percentile_cont(0.9) WITHIN GROUP (ORDER BY tokens) AS tokens_p90,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY cost) AS cost_p50,
           percentile_cont(0.9) WITHIN GROUP (ORDER BY cost) AS cost_p90
    FROM (SELECT extract(epoch FROM finished_at - started_at) AS seconds,
                 input_tokens + cache_creation_input_tokens + output_tokens AS tokens,
                 cost_usd AS cost
          FROM tasks
          WHERE status = 'succeeded' AND role IS NOT DISTINCT FROM :role
            AND model IS NOT DISTINCT FROM :model AND started_at IS NOT NULL
            AND finished_at > now() - make_interval(days => :days)
          ORDER BY finished_at DESC LIMIT :limit) AS recent
""")


@dataclass
class _Cached:
    at: float
    estimate: Estimate | None


class Estimates:
    """Estimates per role and model, each read at most once per ``CACHE_SECONDS``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._cache: dict[tuple[str | None, str | None], _Cached] = {}
        self._lock = threading.Lock()

    def of(self, role: str | None, model: str | None) -> Estimate | None:
        """None while fewer than ``MIN_SAMPLES`` such tasks succeeded."""
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get((role, model))
        if cached is not None and now - cached.at < CACHE_SECONDS:
            return cached.estimate
        estimate = self._read(role, model)
        with self._lock:
            self._cache[(role, model)] = _Cached(now, estimate)
        return estimate

    def _read(self, role: str | None, model: str | None) -> Estimate | None:
        with autocommit(self._engine) as connection:
            row = connection.execute(_PERCENTILES, {"role": role, "model": model, "days": SAMPLE_DAYS,
                                                    "limit": SAMPLE_TASKS}).mappings().one()
        if row["samples"] < MIN_SAMPLES:
            return None
        return Estimate(
            samples=row["samples"],
            duration_seconds=Spread(p50=round(row["seconds_p50"], 1), p90=round(row["seconds_p90"], 1)),
            tokens=Spread(p50=round(row["tokens_p50"]), p90=round(row["tokens_p90"])),
            cost_usd=Spread(p50=round(row["cost_p50"], 4), p90=round(row["cost_p90"], 4)))
