"""Which fire times of a schedule to run now: on-time fires, missed fires, stale fires (pure).

A fire is *on time* while it is at most ``grace_s`` late: a beat that was busy, or that took
over from a dead leader, still runs every such fire, each once. Older fires were *missed*
(nobody was running a beat); the catch-up policy decides: ``skip_missed`` runs none of them,
``run_once`` runs one for all of them, stamped with the latest missed time. Any fire older
than the schedule's ``expires_s`` is stale and dropped, whatever the policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from cca_core.schedules.cron import Timing, last_fire_before, next_fire

CatchUp = Literal["skip_missed", "run_once"]


@dataclass(frozen=True)
class FirePlan:
    """The fire times to run now, what was not run, and where the schedule goes next."""

    fires: tuple[datetime, ...]
    missed: bool
    stale: int
    next_fire_at: datetime


def plan_fires(
    timing: Timing, due_at: datetime, now: datetime, *, catchup: CatchUp, grace_s: float,
    expires_s: int | None, limit: int,
) -> FirePlan:
    """Plan the fires from ``due_at`` (the schedule's stored next fire) up to ``now``.

    At most ``limit`` fires are planned; ``next_fire_at`` is then the first one left over,
    already due, for the next tick.
    """
    cutoff = now - timedelta(seconds=grace_s)
    fires: list[datetime] = []
    missed = due_at < cutoff
    fire = due_at
    if missed:
        latest_missed = last_fire_before(timing, cutoff, due_at)
        if catchup == "run_once":
            fires.append(latest_missed)
        fire = next_fire(timing, latest_missed)
    while fire <= now and len(fires) < limit:
        fires.append(fire)
        fire = next_fire(timing, fire)
    fresh = tuple(f for f in fires if expires_s is None or now - f <= timedelta(seconds=expires_s))
    return FirePlan(fires=fresh, missed=missed, stale=len(fires) - len(fresh), next_fire_at=fire)
