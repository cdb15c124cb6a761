"""Map a permission mode and tool rules to `claude` flags (pure; see notes/claude-cli.md §3).

The CLI ignores ``Write(glob)`` rules: path rules for writing must be spelled ``Edit(glob)``,
so every ``Write(...)`` rule is translated. Deny rules hold in every mode, bypass included.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from cca_core.errors import Invalid
from cca_core.rules import translate_rule
from cca_worker.argv import option

SANDBOX_TOOLS = ("Read", "Glob", "Grep")
SANDBOX_RULES = tuple(f"{tool}(./**)" for tool in SANDBOX_TOOLS)  # readable: the workspace only
NETWORK_DENIES = tuple(
    [f"Bash({cmd} *)" for cmd in ("curl", "wget", "nc", "ncat", "netcat", "telnet", "ssh", "scp",
                                  "sftp", "ftp", "rsync", "socat")]
    + ["WebFetch", "WebSearch"]
)
SECRET_DENIES = (
    "Read(.env*)", "Read(**/.env*)", "Edit(.env*)", "Edit(**/.env*)",
    "Read(**/*.pem)", "Read(**/*.key)", "Read(~/.ssh/**)", "Read(**/credentials*)",
    "Read(**/secrets/**)",
)


@dataclass(frozen=True)
class PermissionPlan:
    """The flags and environment a mode needs, plus the reason to log for dangerous runs."""

    flags: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    note: str | None = None


def plan_permissions(
    mode: str,
    allowed: Iterable[str],
    denied: Iterable[str],
    *,
    allow_network: bool,
    allow_dangerous: bool,
) -> PermissionPlan:
    """Build the CLI flags for a mode. Raises Invalid for ``dangerous`` unless enabled."""
    deny = _unique(
        [translate_rule(rule) for rule in denied]
        + list(SECRET_DENIES)
        + ([] if allow_network else list(NETWORK_DENIES))
    )
    dont_ask = option("permission-mode", "dontAsk")
    if mode == "allowlist":
        allow = _unique(translate_rule(rule) for rule in allowed)
        return PermissionPlan((dont_ask, rules_option(allow, deny)))
    if mode == "sandbox":
        return PermissionPlan((dont_ask, option("tools", ",".join(SANDBOX_TOOLS)),
                               rules_option(list(SANDBOX_RULES), deny)))
    if mode == "dangerous":
        if not allow_dangerous:
            raise Invalid(
                "permission_mode dangerous is refused: set agents.permissions.allow_dangerous"
                " = true to enable it", field="permission_mode", code="dangerous_refused")
        return PermissionPlan(
            ("--dangerously-skip-permissions", rules_option([], deny)),
            env=(("IS_SANDBOX", "1"),),
            note="dangerous mode: every permission check is off except the deny rules",
        )
    raise Invalid(f"unknown permission_mode {mode!r}", field="permission_mode")


def rules_option(allow: list[str], deny: list[str]) -> str:
    """The allow and deny rules as JSON lists of ``--settings``, never as values of
    ``--allowedTools``: the CLI splits those at spaces and commas outside parentheses, so a
    rule ``Bash(echo hi) Bash`` would allow every command (measured on CLI 2.1.197)."""
    permissions = {"allow": allow, "deny": deny}
    return option("settings", json.dumps({"permissions": permissions}, separators=(",", ":")))


def _unique(rules: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(rule for rule in rules if rule))
