"""Make values storable by Postgres without losing anything (pure).

Postgres refuses the NUL character in ``text`` columns and ``\\u0000`` in ``jsonb``; an agent's
output may hold one (a binary file ``cat``-ed by a tool). Each NUL is stored as the six
characters ``\\u0000`` instead: readable, and the rest of the event or result is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

NUL = "\x00"
ESCAPED_NUL = "\\u0000"


def escape_nul(value: Any) -> Any:
    """``value`` (a JSON-like value: dicts, lists, strings, numbers) with every NUL in its
    strings and keys replaced by the text ``\\u0000``."""
    if isinstance(value, str):
        return value.replace(NUL, ESCAPED_NUL) if NUL in value else value
    if isinstance(value, Mapping):
        return {escape_nul(key): escape_nul(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [escape_nul(item) for item in value]
    return value


def nul_path(value: Any, path: str = "") -> str | None:
    """Where the first NUL in a JSON-like value is (``prompt``, ``allowed_tools[2]``,
    ``json_schema.properties``), or None. Input is refused with it instead of escaped: a NUL
    cannot reach the agent's argv, and a caller can send what they mean."""
    if isinstance(value, str):
        return (path or "body") if NUL in value else None
    if isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if NUL in str(key):
                return where
            if (found := nul_path(item, where)) is not None:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            if (found := nul_path(item, f"{path}[{index}]")) is not None:
                return found
    return None
