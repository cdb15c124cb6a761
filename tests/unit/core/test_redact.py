"""Previews for monitoring never show a secret."""

from __future__ import annotations

import pytest

from cca_core.dispatch import message_options
from cca_core.redact import preview, redact


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
    assert options["argsrepr"] == "t-1 · deploy with [redacted]"
    assert options["kwargsrepr"] == "{}" and options["priority"] == 3
    assert options["time_limit"] == 180
