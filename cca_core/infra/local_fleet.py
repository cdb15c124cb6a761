"""A running ``cca up`` fleet, found by other commands on the same machine.

``cca up`` writes ``fleet.json`` (mode 0600) into its data directory once its servers are up
and removes it when it stops: the URLs of its Redis, Postgres and API, where tasks may work,
and its pid. A command with no ``redis.url`` / ``postgres.url`` of its own (``cca worker``,
``cca beat``, ``cca doctor``, ``cca flower``, the client commands) joins that fleet: it takes
the same settings ``cca up`` gives its own processes, through the environment, so its child
processes and configuration reloads see them too. No secret is in the file: the admin key
and the bridges' token secret stay in their own files of the data directory."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from cca_core.infra.local_secrets import TOKEN_SECRET, read_local_key

FLEET_FILE = "fleet.json"


@dataclass(frozen=True)
class LocalFleet:
    pid: int
    api_url: str
    redis_url: str
    postgres_url: str
    allowed_roots: list[str]
    data_dir: str

    def environment(self) -> dict[str, str]:
        """The settings ``cca up`` gives its own processes (the CCA__ variables)."""
        env = {"CCA__REDIS__URL": self.redis_url, "CCA__POSTGRES__URL": self.postgres_url,
               "CCA__EMBEDDED__DATA_DIR": self.data_dir,
               "CCA__AGENTS__ALLOWED_ROOTS": ",".join(self.allowed_roots)}
        secret = read_local_key(Path(self.data_dir), TOKEN_SECRET)
        if secret:
            env["CCA__DAEMON__TASK_TOKEN_SECRET"] = secret
        return env


def write(data_dir: Path, fleet: LocalFleet) -> Path:
    path = data_dir / FLEET_FILE
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        json.dump(asdict(fleet), out, indent=2)
    return path


def remove(data_dir: Path, pid: int) -> None:
    """Remove the file if it is this fleet's (``pid``)."""
    found = _load(data_dir)
    if found is not None and found.pid == pid:
        (data_dir / FLEET_FILE).unlink(missing_ok=True)


def find(data_dir: Path) -> LocalFleet | None:
    """The fleet running from ``data_dir``, if its ``cca up`` is alive."""
    found = _load(data_dir)
    return found if found is not None and _alive(found.pid) else None


def _load(data_dir: Path) -> LocalFleet | None:
    try:
        return LocalFleet(**json.loads((data_dir.expanduser() / FLEET_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
