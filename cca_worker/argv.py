"""Build the `claude` command line and its environment (pure: no I/O).

Every value travels inside one ``--option=value`` token, so no value (a rule, a model, a role's
prompt, a schema) can be read as an option of its own, whatever it holds; the prompt goes after
``--`` (an option that takes several values would swallow a prompt placed after it;
notes/claude-cli.md §9). Tool rules travel as JSON lists in ``--settings``
(:func:`cca_worker.permissions.rules_option`). Settings and MCP servers come from cca alone:
``--setting-sources`` leaves out the project's ``.claude/settings*.json`` (hooks included)
unless the role allows them, and ``--strict-mcp-config`` the project's ``.mcp.json``.
"""

from __future__ import annotations

import json
import re
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
# A model credential's variable (ANTHROPIC_API_KEY, ANTHROPIC_AUTH_TOKEN, CLAUDE_CODE_OAUTH_TOKEN;
# not CLAUDE_CODE_MAX_OUTPUT_TOKENS).
_CREDENTIAL_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)$")
# Never handed to an agent, whatever the configuration says.
_FORBIDDEN_PREFIXES = ("CCA_", "CCA__")


@dataclass(frozen=True)
class AgentSpec:
    """Everything one run of `claude` needs, as plain values."""

    prompt: str
    session_id: str
    permission_flags: tuple[str, ...]
    # A stored session to resume (``session_id`` then names it), or with ``fork`` to fork
    # into ``session_id``.
    resume: str | None = None
    fork: bool = False
    model: str | None = None
    max_turns: int | None = None
    max_budget_usd: float | None = None
    json_schema: Mapping[str, Any] | None = None
    append_system_prompt: str | None = None
    mcp_config: Mapping[str, Any] | None = None  # written to a 0600 file, never put on argv
    project_settings: bool = False  # the role trusts the workspace's .claude/settings*.json
    env: tuple[tuple[str, str], ...] = field(default_factory=tuple)


def option(name: str, value: object) -> str:
    """One argv token the CLI can only read as ``name`` with ``value``."""
    return f"--{name}={value}"


def build_argv(claude_path: str, spec: AgentSpec, mcp_config_path: str | None = None) -> list[str]:
    """Return the argv for one print-mode run that streams NDJSON events. ``mcp_config_path``
    is the file holding ``spec.mcp_config`` (its task token must not show in ``ps``)."""
    argv = [
        claude_path, "-p", option("output-format", "stream-json"), "--verbose",
        "--include-partial-messages", *_session_options(spec),
        option("setting-sources", "user,project" if spec.project_settings else "user"),
        "--strict-mcp-config",
    ]
    if spec.model:
        argv.append(option("model", spec.model))
    if spec.max_turns:
        argv.append(option("max-turns", spec.max_turns))
    if spec.max_budget_usd:
        argv.append(option("max-budget-usd", f"{spec.max_budget_usd:g}"))
    if spec.json_schema:
        argv.append(option("json-schema", json.dumps(spec.json_schema, separators=(",", ":"))))
    if spec.append_system_prompt:
        argv.append(option("append-system-prompt", spec.append_system_prompt))
    if mcp_config_path:
        argv.append(option("mcp-config", mcp_config_path))
    argv += list(spec.permission_flags)
    return [*argv, "--", spec.prompt]


def _session_options(spec: AgentSpec) -> list[str]:
    """A new session's id; ``--resume`` keeps the resumed session's id, and a fork takes a new
    one (measured on CLI 2.1.197: ``--session-id`` is accepted with ``--fork-session``)."""
    if spec.resume is None:
        return [option("session-id", spec.session_id)]
    if spec.fork:
        return [option("resume", spec.resume), "--fork-session", option("session-id", spec.session_id)]
    return [option("resume", spec.resume)]


def bridge_config(python: str, api_url: str, task_id: str, token: str | None) -> dict[str, Any]:
    """The MCP config that gives a fleet agent the cca bridge, as the child of ``task_id``.
    The task token (if the fleet has a secret) reaches the bridge's environment only."""
    env = {"CCA_TASK_ID": task_id, **({"CCA_API_KEY": token} if token else {})}
    return {"mcpServers": {"cca": {
        "type": "stdio", "command": python, "args": ["-m", "cca_mcp", "--daemon-url", api_url],
        "env": env,
    }}}


def build_env(
    parent_env: Mapping[str, str], extra: Mapping[str, str], *, home: str, config_dir: str,
    model_api: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Start from nothing: PATH and ANTHROPIC_*/CLAUDE_CODE_* from the worker, then
    ``[agents.env]``, then the per-slot HOME and CLAUDE_CONFIG_DIR (never the worker's HOME:
    it holds cca's data directory by default). cca's own variables never pass. ``model_api``
    (the worker's proxy and the run's token) replaces every model credential and base URL."""
    env = {
        name: value
        for name, value in parent_env.items()
        if name in PASS_THROUGH_NAMES or name.startswith(PASS_THROUGH_PREFIXES)
    }
    env = {**AGENT_DEFAULTS, **env, **extra}
    if model_api is not None:
        env = {name: value for name, value in env.items() if not _model_credential(name)}
        env.update(model_api)
    env.update({"HOME": home, "CLAUDE_CONFIG_DIR": config_dir})
    return {name: value for name, value in env.items() if not name.startswith(_FORBIDDEN_PREFIXES)}


def _model_credential(name: str) -> bool:
    """A variable that says which model API to use and with what credential."""
    return name == "ANTHROPIC_BASE_URL" or (name.startswith(PASS_THROUGH_PREFIXES)
                                            and _CREDENTIAL_NAME.search(name) is not None)
