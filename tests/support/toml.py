"""Write the small TOML files tests hand to real processes (CCA_CONFIG)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


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


def dumps(data: dict[str, Any], prefix: str = "") -> str:
    scalars = [f"{key} = {_value(value)}" for key, value in data.items() if not isinstance(value, dict)]
    lines = ([f"[{prefix}]"] if prefix and scalars else []) + scalars
    for key, value in data.items():
        if isinstance(value, dict):
            name = f"{prefix}.{json.dumps(key) if '.' in key else key}" if prefix else key
            lines.append(dumps(value, name))
    return "\n".join(lines) + "\n"


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(dumps(data))
    return path
