"""The pure argv, env and permission builders."""

from __future__ import annotations

import pytest

from cca_core.errors import Invalid
from cca_core.rules import ignored_rules, translate_rule
from cca_worker.argv import AgentSpec, build_argv, build_env
from cca_worker.permissions import NETWORK_DENIES, SECRET_DENIES, plan_permissions


def spec(**changes) -> AgentSpec:
    values = {"prompt": "--help me", "session_id": "0f0f", "permission_flags": (
        "--permission-mode", "dontAsk", "--allowedTools", "Read")}
    return AgentSpec(**{**values, **changes})


def test_prompt_comes_last_after_a_double_dash():
    argv = build_argv("/bin/claude", spec())
    assert argv[:2] == ["/bin/claude", "-p"]
    assert argv[-2:] == ["--", "--help me"]
    assert argv.index("--allowedTools") < argv.index("--")


def test_stream_json_needs_verbose_and_partial_messages_for_budgets():
    argv = build_argv("claude", spec())
    assert argv[argv.index("--output-format") + 1] == "stream-json"
    assert "--verbose" in argv and "--include-partial-messages" in argv
    assert argv[argv.index("--session-id") + 1] == "0f0f"


def test_optional_limits_become_flags():
    argv = build_argv("claude", spec(model="sonnet", max_turns=7, max_budget_usd=0.5,
                                     json_schema={"type": "object"}, append_system_prompt="be brief"))
    assert argv[argv.index("--model") + 1] == "sonnet"
    assert argv[argv.index("--max-turns") + 1] == "7"
    assert argv[argv.index("--max-budget-usd") + 1] == "0.5"
    assert argv[argv.index("--json-schema") + 1] == '{"type":"object"}'
    assert argv[argv.index("--append-system-prompt") + 1] == "be brief"


def test_unset_limits_are_not_passed():
    argv = build_argv("claude", spec())
    for flag in ("--model", "--max-turns", "--max-budget-usd", "--json-schema"):
        assert flag not in argv


def test_agent_env_starts_empty_and_never_carries_cca_secrets():
    parent = {
        "PATH": "/usr/bin", "HOME": "/home/w", "ANTHROPIC_API_KEY": "sk-model",
        "ANTHROPIC_BASE_URL": "http://gw", "CLAUDE_CODE_MAX_RETRIES": "1",
        "CCA__POSTGRES__URL": "postgres://u:pw@db/cca", "CCA__DAEMON__API_KEYS": "k1",
        "DATABASE_URL": "postgres://x", "REDIS_URL": "redis://y", "AWS_SECRET_ACCESS_KEY": "s",
        "CCA_CONFIG": "/etc/cca/cca.toml",
    }
    env = build_env(parent, {"MY_TOOL_FLAG": "1", "CCA__SNEAKY": "x"}, home="/slots/1",
                    config_dir="/slots/1/.claude")
    assert env["PATH"] == "/usr/bin" and env["HOME"] == "/slots/1"
    assert env["ANTHROPIC_API_KEY"] == "sk-model"
    assert env["CLAUDE_CODE_MAX_RETRIES"] == "1"  # the worker's own choice wins over the default
    assert env["MY_TOOL_FLAG"] == "1"
    assert env["CLAUDE_CONFIG_DIR"] == "/slots/1/.claude"
    assert env["DISABLE_TELEMETRY"] == "1"
    for name in ("CCA__POSTGRES__URL", "CCA__DAEMON__API_KEYS", "DATABASE_URL", "REDIS_URL",
                 "AWS_SECRET_ACCESS_KEY", "CCA_CONFIG", "CCA__SNEAKY"):
        assert name not in env


def test_write_rules_are_translated_to_the_edit_form_the_cli_obeys():
    assert translate_rule("Write(src/**)") == "Edit(src/**)"
    assert translate_rule("Bash(git *)") == "Bash(git *)"
    assert ignored_rules(["Write(src/**)", "Edit(x)", "Write"]) == ["Write(src/**)"]


def test_allowlist_is_dont_ask_with_allow_and_deny_lists():
    plan = plan_permissions("allowlist", ["Read", "Write(src/**)"], ["Bash(sudo *)"],
                            allow_network=False, allow_dangerous=False)
    flags = list(plan.flags)
    assert flags[:2] == ["--permission-mode", "dontAsk"]
    allowed = flags[flags.index("--allowedTools") + 1:flags.index("--disallowedTools")]
    assert allowed == ["Read", "Edit(src/**)"]
    denied = flags[flags.index("--disallowedTools") + 1:]
    assert "Bash(sudo *)" in denied
    assert set(SECRET_DENIES) <= set(denied)
    assert set(NETWORK_DENIES) <= set(denied)


def test_network_is_allowed_only_when_configured():
    plan = plan_permissions("allowlist", ["Read"], [], allow_network=True, allow_dangerous=False)
    assert "Bash(curl *)" not in plan.flags


def test_sandbox_offers_read_only_tools():
    flags = list(plan_permissions("sandbox", ["Bash"], [], allow_network=False,
                                  allow_dangerous=False).flags)
    assert flags[flags.index("--tools") + 1] == "Read,Glob,Grep"
    assert "Bash" not in flags[flags.index("--allowedTools"):flags.index("--disallowedTools")]


def test_dangerous_is_refused_unless_enabled():
    with pytest.raises(Invalid) as refused:
        plan_permissions("dangerous", [], [], allow_network=False, allow_dangerous=False)
    assert refused.value.field == "permission_mode"


def test_dangerous_when_enabled_keeps_deny_rules_and_says_why():
    plan = plan_permissions("dangerous", [], ["Bash(rm -rf *)"], allow_network=False,
                            allow_dangerous=True)
    assert plan.flags[0] == "--dangerously-skip-permissions"
    assert "Bash(rm -rf *)" in plan.flags
    assert dict(plan.env) == {"IS_SANDBOX": "1"}
    assert plan.note


def test_the_bridge_is_given_as_an_inline_strict_mcp_config():
    import json

    from cca_worker.argv import bridge_config

    config = bridge_config("/venv/bin/python", "http://api:9200", "task-7", "ccat_task-7_mac")
    argv = build_argv("claude", spec(mcp_config=config))
    given = json.loads(argv[argv.index("--mcp-config") + 1])
    assert given["mcpServers"]["cca"]["args"] == ["-m", "cca_mcp", "--daemon-url", "http://api:9200"]
    assert given["mcpServers"]["cca"]["env"] == {"CCA_TASK_ID": "task-7", "CCA_API_KEY": "ccat_task-7_mac"}
    assert "--strict-mcp-config" in argv and argv.index("--strict-mcp-config") < argv.index("--")
