"""The configuration the benchmark hands to cca's processes: a TOML file named by
``CCA_CONFIG``, and the environment those processes start with."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
UNLIMITED = 10**9
BODY = {"prompt": "benchmark task"}  # what every benchmark task asks for


def cca_config(*, redis_url: str, postgres_url: str, root: Path, claude_path: Path,
               max_agents: int) -> dict[str, Any]:
    """cca's defaults, except the servers, the directories, the stand-in for ``claude`` and
    rate limits high enough never to refuse the benchmark (they are still checked)."""
    return {
        "redis": {"url": redis_url},
        "postgres": {"url": postgres_url},
        "daemon": {"max_agents": max_agents, "log_level": "info"},
        "embedded": {"data_dir": str(root / "data")},
        "agents": {"claude_path": str(claude_path), "workspace_root": str(root / "work" / "cca")},
        "security": {"rate_limit_per_minute": UNLIMITED, "ip_rate_limit_per_minute": UNLIMITED},
    }


def write_toml(path: Path, data: dict[str, Any]) -> Path:
    """Write nested dicts of strings, numbers, booleans and lists as TOML; return ``path``."""
    path.write_text(_dumps(data))
    return path


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment without cca's own variables, with the repository importable."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("CCA_")}
    return {**env, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", **extra}


def _dumps(data: dict[str, Any], prefix: str = "") -> str:
    scalars = [f"{key} = {_value(value)}" for key, value in data.items()
               if not isinstance(value, dict)]
    lines = ([f"[{prefix}]"] if prefix and scalars else []) + scalars
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(_dumps(value, f"{prefix}.{key}" if prefix else key))
    return "\n".join(lines) + "\n"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")
