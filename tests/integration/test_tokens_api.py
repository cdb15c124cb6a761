"""Token analytics on the real Flask app and Postgres, from events the real CLI printed
(tests/data/transcripts): per task turn by turn, per day, key, role and model, and findings."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from cca_api import create_app
from cca_core.tasks import history, store

pytestmark = pytest.mark.integration
TRANSCRIPTS = Path(__file__).resolve().parents[1] / "data" / "transcripts"


def recorded(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (TRANSCRIPTS / f"{name}.jsonl").read_text().splitlines()]


@pytest.fixture
def client(make_settings):
    return create_app(make_settings()).test_client()


def ended(client, engine, events: list[dict[str, Any]], status="succeeded", error_code=None,
          **body: Any) -> str:
    task_id = client.post("/api/v1/tasks", json={"prompt": "p", **body}).get_json()["id"]
    with engine.begin() as connection:
        connection.execute(text("UPDATE tasks SET status = :status, error_code = :code, attempts = 1, "
                                "finished_at = now() WHERE id = :id"),
                           {"status": status, "code": error_code, "id": task_id})
        store.append_events(connection, task_id, 1, events)
    return task_id


def test_one_task_turn_by_turn_with_its_tool_output_and_cost_by_model(client, engine):
    task_id = ended(client, engine, recorded("tool_success"))
    found = client.get(f"/api/v1/tokens/metrics/{task_id}").get_json()
    assert [(t["turn"], t["context_tokens"], t["cache_read_input_tokens"], t["output_tokens"])
            for t in found["turns"]] == [(1, 1340, 300, 50), (2, 1200, 0, 70)]
    assert found["turns"][0]["cache_hit_ratio"] == round(300 / 1340, 4)
    assert found["context_peak"] == 1340 and found["cache_hit_ratio"] == round(300 / 2540, 4)
    [bash] = found["tool_outputs"]
    assert (bash["tool"], bash["calls"]) == ("Bash", 1) and bash["characters"] > 0
    assert found["cost_by_model"] == [{
        "model": "claude-opus-4-8[1m]", "input_tokens": 2200, "output_tokens": 120,
        "cache_read_input_tokens": 300, "cache_creation_input_tokens": 40, "cost_usd": 0.0144}]
    assert client.get("/api/v1/tokens/metrics/00000000-0000-4000-8000-000000000000").status_code == 404


def test_tokens_and_dollars_per_day_key_role_and_model(client, engine):
    for role in ("qa", "qa", "backend"):
        ended(client, engine, recorded("tool_success"), role=role)
    found = client.get("/api/v1/tokens/metrics?days=1").get_json()
    by_role = {row["role"]: row for row in found["rows"]}
    assert set(by_role) == {"qa", "backend"} and found["days"] == 1
    qa = by_role["qa"]
    assert (qa["tasks"], qa["model"], qa["input_tokens"], qa["output_tokens"]) == \
        (2, "claude-opus-4-8[1m]", 4400, 240)
    assert qa["cost_usd"] == pytest.approx(0.0288) and qa["cache_hit_ratio"] == round(600 / 5080, 4)
    assert found["total_cost_usd"] == pytest.approx(3 * 0.0144)
    bad = client.get("/api/v1/tokens/metrics?days=0")
    assert bad.status_code == 422 and bad.get_json()["error"]["field"] == "days"


def test_recommendations_name_what_the_record_shows(client, engine):
    events = recorded("tool_success")
    # a role whose runs read nothing from the cache, over many tokens
    uncached = copy.deepcopy(events)
    uncached[-1]["modelUsage"]["claude-opus-4-8[1m]"].update(
        {"inputTokens": 90_000, "cacheReadInputTokens": 0, "cacheCreationInputTokens": 0})
    ended(client, engine, uncached, role="dba")
    # a tool that printed about 10,000 tokens at once
    loud = copy.deepcopy(events)
    for event in loud:
        for block in (event.get("message") or {}).get("content") or []:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                block["content"] = "x" * 40_000
    ended(client, engine, loud, role="devops")
    for _ in range(3):
        ended(client, engine, events, status="failed", error_code="max_turns", role="qa")
        ended(client, engine, events, status="budget_exceeded", error_code="token_budget_exceeded",
              role="backend")
    found = client.get("/api/v1/tokens/recommendations").get_json()
    kinds = {(finding["kind"], finding["subject"]) for finding in found["findings"]}
    assert kinds == {("low_cache_hit_ratio", "role dba on claude-opus-4-8[1m]"),
                     ("oversized_tool_output", "tool Bash"), ("max_turns", "role qa"),
                     ("budget_always_hit", "role backend")}, found
    by_kind = {finding["kind"]: finding for finding in found["findings"]}
    assert by_kind["oversized_tool_output"]["evidence"]["largest_estimated_tokens"] == 10_000
    assert by_kind["budget_always_hit"]["evidence"]["share"] == 1.0
    assert by_kind["budget_always_hit"]["evidence"]["token_budget"] > 0
    assert found["tasks_examined"] == 8 and all(finding["advice"] for finding in found["findings"])


def test_a_submission_carries_an_estimate_from_history_and_warns_over_its_budget(client, engine,
                                                                                 monkeypatch):
    monkeypatch.setattr(history, "CACHE_SECONDS", 0.0)  # each API process reads it once a minute
    assert client.post("/api/v1/tasks", json={"prompt": "p", "role": "qa"}).get_json()["estimate"] is None
    assert client.get("/api/v1/tokens/estimate?role=qa").get_json()["error"]["code"] == "no_history"
    for seconds, tokens, cost in ((10, 1000, 0.01), (20, 2000, 0.02), (30, 3000, 0.03),
                                  (40, 4000, 0.04), (100, 10000, 0.10)):
        task_id = ended(client, engine, [], role="qa")
        with engine.begin() as connection:
            connection.execute(text(
                "UPDATE tasks SET started_at = now() - make_interval(secs => :s), finished_at = now(), "
                "input_tokens = :t, output_tokens = 0, cache_creation_input_tokens = 0, cost_usd = :c "
                "WHERE id = :id"), {"s": seconds, "t": tokens, "c": cost, "id": task_id})
    estimate = client.get("/api/v1/tokens/estimate?role=qa").get_json()
    assert estimate["samples"] == 5
    assert estimate["tokens"] == {"p50": 3000, "p90": 7600}
    assert estimate["duration_seconds"]["p50"] == pytest.approx(30, abs=1)
    assert estimate["cost_usd"] == {"p50": 0.03, "p90": 0.076}
    answer = client.post("/api/v1/tasks", json={"prompt": "p", "role": "qa", "token_budget": 2500,
                                               "max_budget_usd": 0.05}).get_json()
    assert answer["estimate"]["samples"] == 5
    assert [warning.split(":")[0] for warning in answer["warnings"]] == ["tokens", "cost"]
    assert "likely" in answer["warnings"][0] and "1 in 10" in answer["warnings"][1]
    assert client.post("/api/v1/tasks", json={"prompt": "p", "role": "qa"}).get_json()["warnings"] == []
    assert client.get(f"/api/v1/tasks/{answer['id']}").get_json()["estimate"] is None  # 202 only

