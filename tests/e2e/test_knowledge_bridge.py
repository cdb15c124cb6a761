"""Memory and code search end to end: a real `claude` on a fleet worker calls
cca_search_code and cca_memory_store through its cca-mcp bridge (authenticated by its task
token), against a tree the fleet indexed; its answer names the right file."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.conftest import start_api_process
from tests.support.fleet import script
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e
ADMIN = "knowledge-admin-key-0123456789"
HEADERS = {"X-API-Key": ADMIN}
SOURCES = {
    "payments/ledger.py": '''
def post_entry(ledger, amount):
    """Record money moving between two accounts, keeping debits and credits balanced."""
    ledger.append((amount, -amount))
''',
    "payments/retry.py": '''
def with_backoff(call, attempts=5):
    """Call again after a failure, waiting twice as long each time."""
    for n in range(attempts):
        try:
            return call()
        except OSError:
            sleep(2 ** n)
''',
    "web/banner.py": '''
def render_banner(title):
    """HTML for the page header."""
    return f"<h1>{title}</h1>"
''',
}


def ended(api_url: str, path: str) -> dict:
    def check():
        found = httpx.get(f"{api_url}{path}", headers=HEADERS, timeout=30).json()
        return found if found["status"] not in ("queued", "running") else None

    return wait_for(check, timeout_s=120, message=path)


def test_a_fleet_agent_finds_code_by_meaning_and_stores_a_memory(config_data, tmp_path,
                                                                 start_worker, model_api):
    root = Path(config_data["agents"]["allowed_roots"][0]) / "shop"
    for name, content in SOURCES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content)
    secured = {**config_data, "daemon": {**config_data["daemon"], "require_auth": True,
                                         "api_keys": [ADMIN], "task_token_secret": "kn0w-s3cret"}}
    api_url = start_api_process(tmp_path, secured)
    start_worker("w1", daemon={**secured["daemon"], "max_agents": 2}, agents={"bridge_url": api_url})
    job = httpx.post(f"{api_url}/api/v1/code/index", json={"path": str(root)}, headers=HEADERS,
                     timeout=10).json()
    assert ended(api_url, f"/api/v1/code/index/{job['id']}")["status"] == "succeeded"

    prompt = script(
        {"tool_use": {"name": "mcp__cca__cca_search_code",
                      "input": {"query": "where do we try a failed call again after waiting"}}},
        {"tool_use": {"name": "mcp__cca__cca_memory_store",
                      "input": {"content": "Retries live in payments/retry.py", "tags": ["code"]}}},
        {"text": "stored"},
    )
    task = httpx.post(f"{api_url}/api/v1/tasks", json={"prompt": "Find the retry code. " + prompt},
                      headers=HEADERS, timeout=10).json()
    done = ended(api_url, f"/api/v1/tasks/{task['id']}")
    assert done["status"] == "succeeded", done

    results = [block for body in model_api.requests for message in body["messages"]
               if isinstance(message["content"], list) for block in message["content"]
               if block.get("type") == "tool_result"]
    found = json.loads(_text(results[0]))
    assert found["mode"] == "hybrid" and found["results"][0]["path"] == "payments/retry.py"
    assert found["results"][0]["symbol"] == "with_backoff"
    memory = httpx.post(f"{api_url}/api/v1/memory/search", json={"query": "retries", "kind": "note"},
                        headers=HEADERS, timeout=10).json()["results"]
    assert [(m["content"], m["source_task_id"]) for m in memory] == [
        ("Retries live in payments/retry.py", task["id"])]


def _text(block: dict) -> str:
    content = block["content"]
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)
