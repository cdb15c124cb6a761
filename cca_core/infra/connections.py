"""How many Postgres connections each cca process may open, and what one host of each kind adds
up to (pure): the one place the pool sizes are decided, so ``cca config check`` can compare
their sum with the server's ``max_connections``.

Per process: an API process (gunicorn sync worker, one request at a time) keeps
``postgres.pool_size`` and opens at most ``postgres.max_connections``; a worker's pool process
(one agent at a time, one statement at a time) keeps one and may open a second; a worker's main
process (its sweep, its expiry handler) and a beat (its leader lock) open one at a time each.
Flower uses none.
"""

from __future__ import annotations

from cca_core.settings import Settings

WORKER_SLOT_POOL_SIZE = 1
WORKER_SLOT_OVERFLOW = 1
WORKER_MAIN_CONNECTIONS = 2
BEAT_CONNECTIONS = 1
# Postgres keeps superuser_reserved_connections (3 by default) out of max_connections.
SERVER_RESERVED = 3


def api_pool(settings: Settings) -> tuple[int, int]:
    """(pool_size, max_overflow) of one API process."""
    postgres = settings.postgres
    return postgres.pool_size, max(0, postgres.max_connections - postgres.pool_size)


def host_connections(settings: Settings) -> dict[str, int]:
    """The most connections one API host (``daemon.api_processes``), one worker
    (``daemon.max_agents`` slots) and one beat may hold together, by kind."""
    return {
        "api": settings.daemon.api_processes * max(settings.postgres.max_connections,
                                                   settings.postgres.pool_size),
        "worker": settings.daemon.max_agents * (WORKER_SLOT_POOL_SIZE + WORKER_SLOT_OVERFLOW)
        + WORKER_MAIN_CONNECTIONS,
        "beat": BEAT_CONNECTIONS,
    }


def connection_warning(settings: Settings) -> str | None:
    """A warning when one host of each kind could exceed the server's connection limit."""
    counts = host_connections(settings)
    limit = settings.postgres.server_max_connections - SERVER_RESERVED
    if sum(counts.values()) <= limit:
        return None
    parts = ", ".join(f"{kind} {count}" for kind, count in counts.items())
    return (f"postgres: one API host, one worker and one beat may open {sum(counts.values())} "
            f"connections ({parts}), above postgres.server_max_connections = "
            f"{settings.postgres.server_max_connections} less {SERVER_RESERVED} reserved; lower "
            "postgres.pool_size / max_connections, daemon.api_processes or daemon.max_agents")
