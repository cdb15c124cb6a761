"""Tool rules as the real CLI reads them (pure; notes/claude-cli.md §3)."""

from __future__ import annotations

import re
from collections.abc import Iterable

_WRITE_RULE = re.compile(r"^Write\((.+)\)$")
# Least to most permissive; a task may move left of its role's mode, only an admin right.
MODE_ORDER = {"sandbox": 0, "allowlist": 1, "dangerous": 2}


def translate_rule(rule: str) -> str:
    """``Write(src/**)`` does nothing in the CLI; ``Edit(src/**)`` is the working form."""
    match = _WRITE_RULE.match(rule.strip())
    return f"Edit({match.group(1)})" if match else rule.strip()


def ignored_rules(rules: Iterable[str]) -> list[str]:
    """The rules the real CLI would silently ignore (for ``cca config check``)."""
    return [rule for rule in rules if _WRITE_RULE.match(rule.strip())]
