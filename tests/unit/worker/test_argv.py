"""The pure argv, env and permission builders."""

from __future__ import annotations

import json

import pytest

from cca_core.errors import Invalid
from cca_core.rules import ignored_rules, translate_rule
from cca_worker.argv import AgentSpec, bridge_config, build_argv, build_env
from cca_worker.permissions import NETWORK_DENIES, SECRET_DENIES, plan_permissions
from tests.support.argv import option_value, permission_rules


def spec(**changes) -> AgentSpec:
    values = {"prompt": "--help me", "session_id": "0f0f", "permission_flags": (
        "--permission-mode=dontAsk", "--settings={}")}
    return AgentSpec(**{**values, **changes})


def test_prompt_comes_last_after_a_double_dash():
    argv = build_argv("/bin/claude", spec())
    assert argv[:2] == ["/bin/claude", "-p"]
    assert argv[-2:] == ["--", "--help me"]
    assert argv.index("--settings={}") < argv.index("--")


def test_every_option_is_one_token_holding_its_value():
    argv = build_argv("claude", spec(model="sonnet", append_system_prompt="--be brief\nok",
                                     json_schema={"type": "object"}))
    options = argv[1:argv.index("--")]
    assert all(token.startswith("--") or token == "-p" for token in options), options
    valued = [token for token in options if "=" in token]
    assert option_value(argv, "append-system-prompt") == "--be brief\nok"
    assert len(valued) == len(options) - 4  # -p, --verbose, --include-partial-messages, strict


def test_stream_json_needs_verbose_and_partial_messages_for_budgets():
    argv = build_argv("claude", spec())
    assert option_value(argv, "output-format") == "stream-json"
    assert "--verbose" in argv and "--include-partial-messages" in argv
    assert option_value(argv, "session-id") == "0f0f"


def test_optional_limits_become_flags():
    argv = build_argv("claude", spec(model="sonnet", max_turns=7, max_budget_usd=0.5,
                                     json_schema={"type": "object"}, append_system_prompt="be brief"))
    assert option_value(argv, "model") == "sonnet"
    assert option_value(argv, "max-turns") == "7"
    assert option_value(argv, "max-budget-usd") == "0.5"
    assert option_value(argv, "json-schema") == '{"type":"object"}'
    assert option_value(argv, "append-system-prompt") == "be brief"


def test_unset_limits_are_not_passed():
    argv = build_argv("claude", spec())
    for flag in ("model", "max-turns", "max-budget-usd", "json-schema", "mcp-config"):
        assert option_value(argv, flag) is None


def test_settings_and_mcp_servers_come_from_cca_alone_unless_the_role_trusts_the_project():
    argv = build_argv("claude", spec())
    assert option_value(argv, "setting-sources") == "user" and "--strict-mcp-config" in argv
    trusted = build_argv("claude", spec(project_settings=True))
    assert option_value(trusted, "setting-sources") == "user,project"
    assert "--strict-mcp-config" in trusted


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


def test_a_run_with_a_proxy_route_holds_no_model_credential_but_its_token():
    parent = {"PATH": "/usr/bin", "ANTHROPIC_API_KEY": "sk-model", "ANTHROPIC_AUTH_TOKEN": "gw-token",
              "ANTHROPIC_BASE_URL": "http://gw", "CLAUDE_CODE_OAUTH_TOKEN": "oauth",
              "CLAUDE_CODE_MAX_OUTPUT_TOKENS": "4000", "ANTHROPIC_MODEL": "claude-x"}
    route = {"ANTHROPIC_BASE_URL": "http://127.0.0.1:4100", "ANTHROPIC_API_KEY": "sk-cca-run-abc"}
    env = build_env(parent, {"ANTHROPIC_API_KEY": "sk-from-config"}, home="/h", config_dir="/h/.claude",
                    model_api=route)
    assert {name: env[name] for name in route} == route
    assert "ANTHROPIC_AUTH_TOKEN" not in env and "CLAUDE_CODE_OAUTH_TOKEN" not in env
    # what only tunes the CLI passes on
    assert env["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] == "4000" and env["ANTHROPIC_MODEL"] == "claude-x"


def test_write_rules_are_translated_to_the_edit_form_the_cli_obeys():
    assert translate_rule("Write(src/**)") == "Edit(src/**)"
    assert translate_rule("Bash(git *)") == "Bash(git *)"
    assert ignored_rules(["Write(src/**)", "Edit(x)", "Write"]) == ["Write(src/**)"]


def test_allowlist_is_dont_ask_with_allow_and_deny_lists():
    plan = plan_permissions("allowlist", ["Read", "Write(src/**)"], ["Bash(sudo *)"],
                            allow_network=False, allow_dangerous=False)
    flags = list(plan.flags)
    assert flags[0] == "--permission-mode=dontAsk"
    assert permission_rules(flags, "allow") == ["Read", "Edit(src/**)"]
    denied = permission_rules(flags, "deny")
    assert "Bash(sudo *)" in denied
    assert set(SECRET_DENIES) <= set(denied)
    assert set(NETWORK_DENIES) <= set(denied)


def test_network_is_allowed_only_when_configured():
    plan = plan_permissions("allowlist", ["Read"], [], allow_network=True, allow_dangerous=False)
    assert "Bash(curl *)" not in permission_rules(plan.flags, "deny")


def test_sandbox_offers_read_only_tools():
    flags = list(plan_permissions("sandbox", ["Bash"], [], allow_network=False,
                                  allow_dangerous=False).flags)
    assert option_value(flags, "tools") == "Read,Glob,Grep"
    assert permission_rules(flags, "allow") == ["Read(./**)", "Glob(./**)", "Grep(./**)"]


def test_dangerous_is_refused_unless_enabled():
    with pytest.raises(Invalid) as refused:
        plan_permissions("dangerous", [], [], allow_network=False, allow_dangerous=False)
    assert refused.value.field == "permission_mode"


def test_dangerous_when_enabled_keeps_deny_rules_and_says_why():
    plan = plan_permissions("dangerous", [], ["Bash(rm -rf *)"], allow_network=False,
                            allow_dangerous=True)
    assert plan.flags[0] == "--dangerously-skip-permissions"
    assert "Bash(rm -rf *)" in permission_rules(plan.flags, "deny")
    assert dict(plan.env) == {"IS_SANDBOX": "1"}
    assert plan.note


def test_the_bridge_config_carries_its_task_token_in_its_environment_only():
    config = bridge_config("/venv/bin/python", "http://api:9200", "task-7", "ccat_task-7_mac")
    assert config["mcpServers"]["cca"]["args"] == ["-m", "cca_mcp", "--daemon-url", "http://api:9200"]
    assert config["mcpServers"]["cca"]["env"] == {"CCA_TASK_ID": "task-7", "CCA_API_KEY": "ccat_task-7_mac"}
    argv = build_argv("claude", spec(mcp_config=config), "/slots/h-1/mcp.json")
    assert option_value(argv, "mcp-config") == "/slots/h-1/mcp.json"
    assert "ccat_task-7_mac" not in json.dumps(argv)  # the command line is public (ps)
