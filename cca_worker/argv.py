"""Build the `claude` command line and its environment (pure: no I/O).

The prompt goes after ``--``: ``--allowedTools`` and friends take several values and would
swallow a prompt placed after them (notes/claude-cli.md §9).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PASS_THROUGH_PREFIXES = ("ANTHROPIC_", "CLAUDE_CODE_")
PASS_THROUGH_NAMES = ("PATH", "LANG", "LC_ALL", "TZ", "API_TIMEOUT_MS")
AGENT_DEFAULTS = {
    "DISABLE_TELEMETRY": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_AUTOUPDATER": "1",
    "CLAUDE_CODE_MAX_RETRIES": "3",
    "API_TIMEOUT_MS": "120000",
    # In print mode the CLI connects MCP servers in the background and starts its first turn
    # at once: a bridge still starting (~1.5 s idle, several seconds on a loaded host) is
    # "pending" and its tools are missing. NONBLOCKING=0 makes it wait for them, up to
    # CONNECT_TIMEOUT_MS (default 5000). Measured on CLI 2.1.197; see bench/bridge_start.py.
    "MCP_CONNECTION_NONBLOCKING": "0",
    "MCP_CONNECT_TIMEOUT_MS": "30000",
}
# Never handed to an agent, whatever the configuration says.
_FORBIDDEN_PREFIXES = ("CCA_", "CCA__")


@dataclass(frozen=True)
class AgentSpec:
    """Everything one run of `claude` needs, as plain values."""

    prompt: str
    session_id: str
    permission_flags: tuple[str, ...]
    model: str | None = None
    max_turns: int | None = None
    max_budget_usd: float | None = None
    json_schema: Mapping[str, Any] | None = None
    append_system_prompt: str | None = None
    mcp_config: Mapping[str, Any] | None = None
    env: tuple[tuple[str, str], ...] = field(default_factory=tuple)


def build_argv(claude_path: str, spec: AgentSpec) -> list[str]:
    """Return the argv for one print-mode run that streams NDJSON events."""
    argv = [
        claude_path, "-p",
        "--output-format", "stream-json", "--verbose", "--include-partial-messages",
        "--session-id", spec.session_id,
    ]
    if spec.model:
        argv += ["--model", spec.model]
    if spec.max_turns:
        argv += ["--max-turns", str(spec.max_turns)]
    if spec.max_budget_usd:
        argv += ["--max-budget-usd", f"{spec.max_budget_usd:g}"]
    if spec.json_schema:
        argv += ["--json-schema", json.dumps(spec.json_schema, separators=(",", ":"))]
    if spec.append_system_prompt:
        argv += ["--append-system-prompt", spec.append_system_prompt]
    if spec.mcp_config:
        argv += ["--mcp-config", json.dumps(spec.mcp_config, separators=(",", ":")),
                 "--strict-mcp-config"]
    argv += list(spec.permission_flags)
    return [*argv, "--", spec.prompt]


def bridge_config(python: str, api_url: str, task_id: str, token: str | None) -> dict[str, Any]:
    """The MCP config that gives a fleet agent the cca bridge, as the child of ``task_id``.
    The task token (if the fleet has a secret) reaches the bridge's environment only."""
    env = {"CCA_TASK_ID": task_id, **({"CCA_API_KEY": token} if token else {})}
    return {"mcpServers": {"cca": {
        "type": "stdio", "command": python, "args": ["-m", "cca_mcp", "--daemon-url", api_url],
        "env": env,
    }}}


def build_env(
    parent_env: Mapping[str, str], extra: Mapping[str, str], *, home: str, config_dir: str
) -> dict[str, str]:
    """Start from nothing: PATH and ANTHROPIC_*/CLAUDE_CODE_* from the worker, then
    ``[agents.env]``, then the per-slot HOME and CLAUDE_CONFIG_DIR (never the worker's HOME:
    it holds cca's data directory by default). cca's own variables never pass."""
    env = {
        name: value
        for name, value in parent_env.items()
        if name in PASS_THROUGH_NAMES or name.startswith(PASS_THROUGH_PREFIXES)
    }
    env = {**AGENT_DEFAULTS, **env, **extra, "HOME": home, "CLAUDE_CONFIG_DIR": config_dir}
    return {name: value for name, value in env.items() if not name.startswith(_FORBIDDEN_PREFIXES)}
