"""Configuration reloaded without a restart.

Any trigger (``POST /api/v1/admin/config/reload``, ``cca config reload``, SIGHUP to a worker or
to ``cca up``) bumps a generation in Redis; every API process and worker notices it within a
second (a worker's pool processes before their next run), reads its configuration files and
environment again, applies the reloadable keys and reports what changed and what needs a
restart. Runs already going keep the settings they started with.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from cca_core.errors import CcaError
from cca_core.settings import Settings

log = logging.getLogger(__name__)
GENERATION_KEY = "cca:config:generation"
REPORTS_KEY = "cca:config:reports"
REPORTS_TTL_S = 86400
# Keys (``section.key``; ``section.*`` for all of a section) a running process applies. Any
# other key is read at start-up only: connections, listening addresses, slots, queues, paths,
# the agents' launcher and confinement, keys and secrets.
RELOADABLE = (
    "agents.default_model", "agents.default_timeout_seconds", "agents.token_budget_per_task",
    "agents.context_compression", "agents.stall_timeout_seconds", "agents.stop_grace_seconds",
    "agents.nice",
    "agents.max_attempts", "agents.max_depth", "agents.max_children_per_task",
    "agents.max_workflow_steps", "agents.tree_token_budget", "agents.allowed_roots", "agents.env",
    "agents.permissions", "agents.roles", "agents.window_wait_seconds",
    "security.rate_limit_per_minute", "security.ip_rate_limit_per_minute",
    "worker.token_budget_per_window", "worker.budget_window_seconds", "worker.resend_after_seconds",
    "retention.*", "retries.*", "credentials.*", "memory.*", "sessions.*", "telemetry.*",
)


@dataclass(frozen=True)
class Diff:
    reloaded: list[str] = field(default_factory=list)
    needs_restart: list[str] = field(default_factory=list)


def diff(old: Settings, new: Settings) -> Diff:
    """The ``section.key`` entries that differ, split into what a running process applies and
    what needs a restart."""
    before, after = _flat(old), _flat(new)
    changed = sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))
    return Diff([key for key in changed if _reloadable(key)],
                [key for key in changed if not _reloadable(key)])


def apply(old: Settings, new: Settings, keys: list[str]) -> Settings:
    """``old`` with ``keys`` taken from ``new``."""
    data = old.model_dump()
    fresh = new.model_dump()
    for key in keys:
        section, name = key.split(".", 1)
        if name in fresh[section]:
            data[section][name] = fresh[section][name]
        else:
            data[section].pop(name, None)
    return Settings.model_validate(data)


def bump(client: redis.Redis) -> int:
    """Ask every process to reload; returns the new generation."""
    return int(client.incr(GENERATION_KEY))


def reports(client: redis.Redis, generation: int) -> list[dict[str, Any]]:
    """What the processes that reloaded for ``generation`` (or later) said, by process."""
    found = [json.loads(value) for value in client.hgetall(REPORTS_KEY).values()]
    return sorted((report for report in found if report["generation"] >= generation),
                  key=lambda report: report["process"])


class Watcher:
    """One process's live settings: :meth:`check` reloads them when the generation moved."""

    def __init__(self, client: redis.Redis, settings: Settings, load: Callable[[], Settings], process: str,
                 *, report: bool = True, generation: int | None = None) -> None:
        """``process`` names it in the reports (a worker's node name, an API process's
        :func:`api_process`); ``generation`` is the one ``settings`` are of (None: the
        current one; 0 for settings read before any reload, which a reload since replaces)."""
        self.client, self.settings, self._load, self._report = client, settings, load, report
        self.process = process
        self._generation = self._current() if generation is None else generation
        self._lock = threading.Lock()

    def check(self) -> Settings | None:
        """The new settings when the generation moved and something reloadable changed."""
        generation = self._current()
        if generation is None or generation == self._generation:
            return None
        with self._lock:
            if generation == self._generation:
                return None
            self._generation = generation
            return self._reload(generation)

    def _reload(self, generation: int) -> Settings | None:
        error = None
        changes = Diff()
        try:
            fresh = self._load()
            changes = diff(self.settings, fresh)
            if changes.reloaded:
                self.settings = apply(self.settings, fresh, changes.reloaded)
        except CcaError as exc:
            error = exc.message
        except Exception as exc:  # a new config that does not validate: keep the old one
            error = str(exc)[:500]
        log.info("configuration generation %s: reloaded %s; needs a restart: %s; error: %s",
                 generation, changes.reloaded, changes.needs_restart, error)
        if self._report:
            report = {"process": self.process, "generation": generation, **asdict(changes),
                      "error": error, "at": time.time()}
            try:
                self.client.hset(REPORTS_KEY, self.process, json.dumps(report))
                self.client.expire(REPORTS_KEY, REPORTS_TTL_S)
            except redis.RedisError:
                log.warning("could not report the reload of generation %s", generation)
        return self.settings if changes.reloaded and error is None else None

    def _current(self) -> int | None:
        try:
            value = self.client.get(GENERATION_KEY)
        except redis.RedisError:
            return None
        return int(value) if value is not None else 0


def api_process() -> str:
    return f"api@{socket.gethostname()}:{os.getpid()}"


def _flat(settings: Settings) -> dict[str, Any]:
    return {f"{section}.{name}": value for section, values in settings.model_dump(mode="json").items()
            for name, value in values.items()}


def _reloadable(key: str) -> bool:
    section = key.split(".", 1)[0]
    return key in RELOADABLE or f"{section}.*" in RELOADABLE
