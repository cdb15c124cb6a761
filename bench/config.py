"""The configuration the benchmark hands to cca's processes: a TOML file named by
``CCA_CONFIG``, and the environment those processes start with."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
UNLIMITED = 10**9
BODY = {"prompt": "benchmark task"}  # what every benchmark task asks for


def cca_config(*, redis_url: str, postgres_url: str, root: Path, claude_path: Path,
               max_agents: int, agent_env: dict[str, str] | None = None,
               sections: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """cca's defaults, except the servers, the directories, the stand-in for ``claude`` (with
    ``agent_env`` added to its environment), rate limits high enough never to refuse the
    benchmark (they are still checked) and the keys of ``sections`` added to their tables."""
    data: dict[str, dict[str, Any]] = {
        "redis": {"url": redis_url},
        "postgres": {"url": postgres_url},
        "daemon": {"max_agents": max_agents, "log_level": "info"},
        "embedded": {"data_dir": str(root / "data")},
        "agents": {"claude_path": str(claude_path), "workspace_root": str(root / "work" / "cca"),
                   "env": agent_env or {}},
        "security": {"rate_limit_per_minute": UNLIMITED, "ip_rate_limit_per_minute": UNLIMITED},
    }
    for section, values in (sections or {}).items():
        data[section] = {**data.get(section, {}), **values}
    return data


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment without cca's own variables, with the repository importable."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("CCA_")}
    return {**env, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", **extra}
