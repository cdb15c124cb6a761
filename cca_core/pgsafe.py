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
