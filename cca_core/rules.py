"""Tool rules and model names: the one grammar every value that reaches the `claude` command
line follows, and rules as the real CLI reads them (pure; notes/claude-cli.md §3).

A rule is a tool name, optionally with a pattern in parentheses: ``Read``, ``Bash(git *)``,
``mcp__cca__cca_task``. It cannot start with ``-`` (so it is never read as an option), holds
no control character (no newline splits it) and is bounded. The worker passes every value
as one ``--option=value`` token besides.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Annotated

from pydantic import AfterValidator

RULE_MAX_CHARS = 256
MODEL_MAX_CHARS = 200
_RULE = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\(.*\))?", re.DOTALL)
# Aliases (sonnet), API ids (claude-opus-4-8[1m]), Bedrock and Vertex ids and ARNs.
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@\[\]\-]*")
_WRITE_RULE = re.compile(r"^Write\((.+)\)$")
# Least to most permissive; a task may move left of its role's mode, only an admin right.
MODE_ORDER = {"sandbox": 0, "allowlist": 1, "dangerous": 2}


def check_rule(rule: str) -> str:
    """Return ``rule`` if it follows the grammar; raise ValueError saying why not."""
    if len(rule) > RULE_MAX_CHARS:
        raise ValueError(f"a tool rule is at most {RULE_MAX_CHARS} characters")
    if any(unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") for char in rule):
        raise ValueError("a tool rule holds no control, format or line-separator character "
                         "(newline, tab, NUL, U+2028, ...)")
    if not _RULE.fullmatch(rule) or not _balanced(rule):
        raise ValueError("a tool rule is a tool name (letters, digits, _), optionally followed "
                         "by one (pattern) with balanced parentheses, e.g. Read or Bash(git *)")
    return rule


def check_model(model: str) -> str:
    """Return ``model`` if it is a model name or alias; raise ValueError otherwise."""
    if len(model) > MODEL_MAX_CHARS or not _MODEL.fullmatch(model):
        raise ValueError("a model is a name such as sonnet or claude-sonnet-4-5 (letters, digits "
                         f"and . _ : / @ [ ] -, not starting with -, at most {MODEL_MAX_CHARS})")
    return model


def _balanced(rule: str) -> bool:
    """The name's ``(`` closes at the very end: ``Bash(x) -y (z)`` is two groups, not one."""
    depth = 0
    for index, char in enumerate(rule):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0 or (depth == 0 and char == ")" and index != len(rule) - 1):
            return False
    return depth == 0


ToolRule = Annotated[str, AfterValidator(check_rule)]
ModelName = Annotated[str, AfterValidator(check_model)]


def translate_rule(rule: str) -> str:
    """``Write(src/**)`` does nothing in the CLI; ``Edit(src/**)`` is the working form."""
    match = _WRITE_RULE.match(rule.strip())
    return f"Edit({match.group(1)})" if match else rule.strip()


def ignored_rules(rules: Iterable[str]) -> list[str]:
    """The rules the real CLI would silently ignore (for ``cca config check``)."""
    return [rule for rule in rules if _WRITE_RULE.match(rule.strip())]
