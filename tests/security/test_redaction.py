"""Secrets are redacted everywhere: an agent that prints its model API key or its bridge token,
a log line that carries a key, a prompt with a credential in it (docs/security.md, item 9)."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import pytest

from cca_api import create_app
from cca_core.access.task_tokens import mint
from cca_core.infra.logs import configure_logging_for, make_formatter
from cca_core.names import events_stream_key
from tests.support.fleet import FleetAPI, bash

pytestmark = pytest.mark.attack

MODEL_KEY = "test-model-key"  # what tests/conftest.py's workers give their agents
TOKEN_SECRET = "task-token-secret-0123456789"
MANAGED_KEY = "cca_0a1b2c3d4e5f_AbCdEfGhIjKlMnOpQrStUv"
# Prints the bridge token the worker minted for this task: the task id is the name of the
# agent's workspace, the token its HMAC under the fleet's secret (handed to this agent through
# [agents.env] for the test, so that no secret is in the prompt).
MINT_TOKEN = (
    "python3 -c 'import base64,hashlib,hmac,os; t=os.path.basename(os.getcwd()); "
    "m=hmac.new(os.environ[\"MINT_WITH\"].encode(),t.encode(),hashlib.sha256).digest(); "
    "print(\"ccat_\"+t+\"_\"+base64.urlsafe_b64encode(m).decode().rstrip(\"=\"))'"
)


def everything(value: Any) -> str:
    return json.dumps(value)


def test_an_agent_printing_its_model_key_and_bridge_token_leaves_neither_in_the_record(
        make_settings, start_worker, redis_client, tmp_path):
    sections = {"daemon": {"task_token_secret": TOKEN_SECRET},
                "agents": {"env": {"CLAUDE_CODE_MAX_RETRIES": "0", "MINT_WITH": TOKEN_SECRET}}}
    worker = start_worker("w1", **sections)
    api = FleetAPI(create_app(make_settings(**sections)).test_client())
    task = api.submit(bash("env"), bash("echo key=$ANTHROPIC_API_KEY"),
                      bash(MINT_TOKEN), {"text": "I found {tool_result}"},
                      allowed_tools=["Bash(env)", "Bash(echo *)", "Bash(python3 *)"])
    done = api.wait_terminal(task["id"], timeout_s=90)
    token = mint(TOKEN_SECRET, task["id"])

    assert done["status"] == "succeeded", done
    events = api.events(task["id"])
    outputs = [event for event in events if event["type"] == "user"]
    assert len(outputs) == 3  # the three commands ran and printed
    assert "[redacted]" in everything(outputs[0]) and "[redacted]" in everything(outputs[2])
    assert done["result"] == "I found [redacted]"
    stream = redis_client.xrange(events_stream_key(task["id"]))
    assert len(stream) == len(events)
    places = {"events": everything(events), "task": everything(done), "stream": str(stream),
              "worker log": worker.log.read_text()}
    for place, text in places.items():
        for secret in (MODEL_KEY, token, TOKEN_SECRET):
            assert secret not in text, (place, text[max(0, text.find(secret) - 300):][:400])


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_log_line_with_a_key_or_a_token_is_redacted(log_format):
    formatter = make_formatter(log_format, secrets=["configured-secret-value"])
    try:
        raise RuntimeError(f"cannot connect with {MANAGED_KEY}")
    except RuntimeError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "cca.worker", logging.ERROR, __file__, 1, "key %s token %s secret %s env %s", (
            MANAGED_KEY, "ccat_6f1c2d3e-0000-4000-8000-000000000000_AbCd-Ef_gh",
            "configured-secret-value", "ANTHROPIC_API_KEY=sk-ant-api03-abcdef"), exc_info)
    line = formatter.format(record)
    for secret in (MANAGED_KEY, "AbCd-Ef_gh", "configured-secret-value", "sk-ant-api03-abcdef"):
        assert secret not in line
    assert line.count("[redacted]") >= 5
    assert "cannot connect with" in line


def test_a_prompt_with_credentials_shows_none_of_them_in_the_celery_message(
        make_settings, redis_client):
    client = create_app(make_settings()).test_client()
    prompt = (f"deploy with {MANAGED_KEY} and ANTHROPIC_API_KEY=sk-ant-api03-zzzzzzzz "
              "password=hunter2 postgres://cca:pgpass@db/cca, admin key Zq8mK2vX9pL4nR7tY3wB5cF1")
    response = client.post("/api/v1/tasks", json={"prompt": prompt})
    assert response.status_code == 202
    (raw,) = redis_client.lrange("cca" + "\x06\x166", 0, -1) or redis_client.lrange("cca", 0, -1)
    message = json.loads(raw)
    # What Flower shows: the headers' argsrepr / kwargsrepr; the body carries only the id.
    shown = json.dumps(message["headers"]) + json.dumps(message["body"])
    for secret in (MANAGED_KEY, "sk-ant-api03-zzzzzzzz", "hunter2", "pgpass",
                   "Zq8mK2vX9pL4nR7tY3wB5cF1"):
        assert secret not in shown
    assert message["headers"]["argsrepr"].startswith(response.get_json()["id"])


def test_a_process_logging_as_configured_redacts_the_secrets_of_its_configuration(
        make_settings, capsys):
    settings = make_settings(daemon={"api_keys": ["plain-admin-key-of-no-known-shape"],
                                     "log_format": "json"})
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure_logging_for(settings)
        logging.getLogger("cca.test").warning("presented %s", "plain-admin-key-of-no-known-shape")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    line = capsys.readouterr().err
    assert "plain-admin-key-of-no-known-shape" not in line
    assert json.loads(line)["message"] == "presented [redacted]"
