"""Read a `claude` command line the worker built (every option is one ``--name=value``)."""

from __future__ import annotations

import json
from collections.abc import Sequence


def option_values(argv: Sequence[str], name: str) -> list[str]:
    """The values given to ``--name``, in order."""
    prefix = f"--{name}="
    return [token[len(prefix):] for token in argv if token.startswith(prefix)]


def option_value(argv: Sequence[str], name: str) -> str | None:
    values = option_values(argv, name)
    assert len(values) <= 1, f"--{name} given {len(values)} times"
    return values[0] if values else None


def permission_rules(argv: Sequence[str], kind: str) -> list[str]:
    """The ``allow`` or ``deny`` rules the worker gave in ``--settings``."""
    settings = option_value(argv, "settings")
    return json.loads(settings)["permissions"][kind] if settings else []
