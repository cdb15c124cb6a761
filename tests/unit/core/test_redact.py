"""Previews for monitoring never show a secret."""

from __future__ import annotations

import pytest

from cca_core.infra.config import validate
from cca_core.infra.redact import Redactor, preview, redact, secret_env_values, settings_secrets
from cca_core.tasks.dispatch import message_options
from cca_core.tasks.outcome import Outcome


@pytest.mark.parametrize("secret", [
    "sk-ant-api03-abcdefghijklmnop", "sk-proj-0123456789abcdefghij", "ghp_0123456789abcdefghijABCDEF",
    "AKIAABCDEFGHIJKLMNOP", "password=hunter2", "API_KEY: s3cr3t-value", "Bearer abc.def",
    "postgres://cca:hunter2@db:5432/cca", "cca_0a1b2c3d4e5f_AbCdEfGh-123",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
])
def test_secrets_are_removed(secret):
    cleaned = redact(f"use {secret} to deploy")
    assert "[redacted]" in cleaned
    for part in ("hunter2", "s3cr3t", "abcdefghij", "AKIAABCD", "AbCdEfGh", "c2lnbmF0dXJl"):
        assert part not in cleaned


def test_preview_is_one_short_line():
    text = preview("fix the\nfailing   test in parser.py " + "x" * 100)
    assert "\n" not in text and len(text) == 60 and text.endswith("…")
    assert preview("short") == "short"


def test_messages_carry_the_id_and_a_preview_for_flower():
    options = message_options("cca", "high", 60, task_id="t-1", prompt="deploy with token=abc")
    assert options["argsrepr"] == "t-1 · deploy with token=[redacted]"
    assert options["kwargsrepr"] == "{}" and options["priority"] == 3
    assert options["time_limit"] == 180


def test_known_secret_values_are_removed_wherever_they_appear():
    redactor = Redactor(["model-key-1234", "short"])
    assert redactor.text("key is model-key-1234.") == "key is [redacted]."
    # Values too short to be secrets would blank out ordinary words.
    assert redactor.text("a short note") == "a short note"


@pytest.mark.parametrize(("line", "expected"), [
    ("ANTHROPIC_API_KEY=abc123 PATH=/bin", "ANTHROPIC_API_KEY=[redacted] PATH=/bin"),
    ("ANTHROPIC_AUTH_TOKEN: xyz", "ANTHROPIC_AUTH_TOKEN: [redacted]"),
    ("bridge ccat_6f1c2d3e-0000-4000-8000-000000000000_Ab-c_d ok", "bridge [redacted] ok"),
    ("local cca-local-AbC_d-e1", "local [redacted]"),
    ('{"api_key": "zzz"}', '{"api_key": "[redacted]"}'),
    ("Authorization: Bearer abc.def", "Authorization: [redacted]"),
    ("redis://:pw@host:6379/0", "redis://[redacted]@host:6379/0"),
])
def test_secret_patterns_are_removed_and_names_kept(line, expected):
    assert redact(line) == expected


def test_ordinary_numbers_next_to_token_words_are_kept():
    assert redact("input_tokens: 100, token_budget=5, author: Bob") == (
        "input_tokens: 100, token_budget=5, author: Bob")


def test_a_file_named_like_a_secret_is_not_an_assignment():
    line = "cat: /var/lib/cca/api-key: No such file or directory"
    assert redact(line) == line
    assert redact("CCA_API_KEY=abc123 token: xyz") == "CCA_API_KEY=[redacted] token: [redacted]"


def test_json_values_are_redacted_keys_and_numbers_kept():
    redactor = Redactor(["model-key-1234"])
    event = {"type": "user", "n": 3, "content": [{"text": "model-key-1234"}, "sk-ant-abcdef"]}
    assert redactor.value(event) == {"type": "user", "n": 3,
                                     "content": [{"text": "[redacted]"}, "[redacted]"]}


def test_credentials_of_an_environment_are_picked_by_name():
    env = {"ANTHROPIC_API_KEY": "k1", "ANTHROPIC_BASE_URL": "http://x", "ANTHROPIC_MODEL": "m",
           "CCA_API_KEY": "k2", "PATH": "/bin", "AWS_SECRET_ACCESS_KEY": "k3"}
    assert sorted(secret_env_values(env)) == ["k1", "k2", "k3"]


def test_settings_secrets_hold_keys_token_secret_and_url_passwords():
    settings = validate({"daemon": {"api_keys": ["admin-key-0123456789"],
                                    "task_token_secret": "tts-0123456789"},
                         "redis": {"url": "redis://:redispw@h:6379/0"},
                         "postgres": {"url": "postgres://cca:pgpass@h/cca"},
                         "flower": {"basic_auth": ["admin:flowerpw"]}})
    assert set(settings_secrets(settings)) >= {"admin-key-0123456789", "tts-0123456789",
                                                "redispw", "pgpass", "flowerpw"}


def test_an_outcome_keeps_no_secret_in_its_result_error_or_structured_output():
    outcome = Outcome(status="failed", result="key sk-ant-api03-abcdef",
                      error_message="claude exited: ANTHROPIC_API_KEY=model-key-1234 refused",
                      structured_output={"token": "model-key-1234"},
                      permission_denials=[{"tool_input": {"command": "echo model-key-1234"}}])
    cleaned = outcome.redacted(Redactor(["model-key-1234"]))
    assert "sk-ant" not in str(cleaned) and "model-key-1234" not in str(cleaned)
    assert cleaned.error_message == "claude exited: ANTHROPIC_API_KEY=[redacted] refused"
    assert cleaned.status == "failed"


def test_a_preview_hides_opaque_tokens_no_pattern_knows():
    assert preview("use admin key Zq8mK2vX9pL4nR7tY3wB5cF1 please") == "use admin key [redacted] please"
    assert preview("fix the failing test in parser_module.py") == "fix the failing test in parser_module.py"
